"""Issue 23 item 8: the warm-up covers the whole request path before the server says it is ready (the first
request took 0.6-0.8 s importing scipy and the aggregation code on first use; later ones 2 ms)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from rerank.client import RerankClient
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.testing import FakeModel

with RerankServer(ServerConfig(port=0, warmup={warmup}), models={{"fake": FakeModel()}}) as srv:
    with RerankClient(srv.address) as client:
        client.list_models()
        before = set(sys.modules)
        client.rerank("q", ["a 1", "b 2", "c 3"], normalize=True)  # the first ranking request
    print(sorted(m for m in set(sys.modules) - before if m.startswith(("rerank", "scipy"))))
"""


def _first_request_imports(warmup: bool) -> str:
    done = subprocess.run([sys.executable, "-c", CHECK.format(warmup=warmup)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_first_request_after_a_warm_start_imports_nothing() -> None:
    assert _first_request_imports(True) == "[]"
    cold = _first_request_imports(False)  # without the warm-up the first request loads the engine's parts
    assert "rerank.aggregation.aggregators.hodgerank" in cold and "scipy.sparse.csgraph" in cold
