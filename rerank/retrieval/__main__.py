"""``python -m rerank.retrieval index build|add|search ...``: the same commands as ``rerank index ...``."""

import sys

from .cli import main

sys.exit(main())
