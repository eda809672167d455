"""A server whose port is taken fails with a message that says so and how to choose another port."""

from __future__ import annotations

import socket
import threading

import pytest

from rerank.models.oracle import OracleModel
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig


def test_a_taken_port_is_named_with_the_way_out() -> None:
    before = set(threading.enumerate())
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = RerankServer(ServerConfig(port=port, warmup=False, metrics_port=0), models={"oracle": OracleModel({})})
        with pytest.raises(OSError) as failed:
            server.start()
    message = str(failed.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: port {port} is taken")
    assert "choose another with --port N, or --port 0 for a free one" in message
    assert server.wait(timeout=5)  # schedulers and metrics were stopped: nothing keeps the process alive
    assert not {t for t in threading.enumerate() if t not in before and not t.daemon}
