"""``python -m demo.multilabel``: the MovieLens-100K multi-label job (see ``train``)."""

from demo.multilabel.train import main

raise SystemExit(main())
