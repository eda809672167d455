"""``python -m rerank.server serve ...``: the same command as ``rerank serve``."""

import sys

from .cli import main

sys.exit(main())
