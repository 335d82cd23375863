"""``python -m sklearn_fhe``: the command line (see ``sklearn_fhe.cli``)."""

import sys

from .cli import main

sys.exit(main())
