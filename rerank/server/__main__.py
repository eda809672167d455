"""``python -m rerank.server serve|bench-load``."""

import sys

from .cli import main

sys.exit(main())
