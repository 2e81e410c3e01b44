"""``python -m demo``: the main job, the PTB language model (``demo.language_model``)."""

import sys

from demo.language_model.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
