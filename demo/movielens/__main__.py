"""``python -m demo.movielens``: the TFRS protocol and its variants (see ``train``)."""

from demo.movielens.train import main

raise SystemExit(main())
