"""The live HTTP face against its own OpenAPI schema, with a schema-driven API tester (schemathesis, its
command line: its pytest plugin does not load under this pytest): every route, generated valid and invalid
requests, every check but "positive data accepted", 0 failures and 0 server errors (issue 23 item 7). A real
server on 127.0.0.1 with fake models (fast); the schema is the one it serves at /openapi.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig
from rerank.server.http import openapi_schema
from rerank.server.testing import FakeModel

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_no_route_lists_a_422_that_never_happens() -> None:
    schema = openapi_schema()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            if method == "post":
                assert "400" in operation["responses"], (method, path)


def test_every_route_conforms_to_the_served_schema(tmp_path) -> None:
    config = ServerConfig(port=0, http_port=0, max_candidates=50, warmup=False)
    with RerankServer(config, models={"fake": FakeModel(max_chars=500), "fake-b": FakeModel()}) as srv:
        url = f"http://127.0.0.1:{srv.http_port}/openapi.json"
        # "positive data accepted" is left out: a request valid by the schema's types can still be refused by
        # rules a schema cannot express (an empty query, a budget below k, an unknown model name)
        done = subprocess.run(
            [str(SCHEMATHESIS), "run", url, "--checks", "all", "--exclude-checks", "positive_data_acceptance",
             "--max-examples", "20", "--seed", "1", "--workers", "1", "--report-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
    summary = done.stdout[-3000:]
    assert done.returncode == 0, summary + done.stderr[-2000:]
    assert "Tested: 8" in summary and " failed" not in summary.split("Test cases:")[-1], summary
