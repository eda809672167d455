"""TLS (a self-signed certificate made in the test) and bearer-token authentication."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from conftest import NO_RETRY

from rerank.client import RerankClient, RerankError, TokenOverPlaintextWarning
from rerank.server.app import RerankServer
from rerank.server.config import ServerConfig, load_config
from rerank.server.testing import FakeModel

DOCS = [(f"d{i}", f"passage {i}") for i in range(4)]
TOKEN = "s3cret-token"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost / 127.0.0.1 and its key (cryptography if installed, else openssl)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither cryptography nor the openssl CLI is available to make a certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert, key
    pkey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pkey.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).add_extension(san, critical=False)
        .sign(pkey, hashes.SHA256())
    )  # fmt: skip
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        pkey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    config = ServerConfig(port=0, tls_cert=str(cert), tls_key=str(key), auth_token=TOKEN, max_wait_ms=0.0)
    srv = RerankServer(config, models={"fake": FakeModel()})
    srv.start()
    yield srv, cert
    srv.stop(grace=0)


def test_tls_with_the_token_works(tls_server) -> None:
    srv, cert = tls_server
    with RerankClient(f"localhost:{srv.port}", root_certificates=cert, token=TOKEN, timeout=20) as c:
        assert c.rerank("q", DOCS).ids == ["d3", "d2", "d1", "d0"]
        assert c.list_models()[0].name == "fake"
    with RerankClient(f"127.0.0.1:{srv.port}", root_certificates=cert, token=TOKEN, timeout=20) as c:
        assert c.compare([("q", "a 1", "b 0")])[0] > 0.5


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
def test_missing_or_wrong_token_is_unauthenticated_counted_and_logged(tls_server, token, sample, caplog) -> None:
    srv, cert = tls_server
    registry = srv.metrics.registry
    methods = ("Rerank", "ListModels", "Compare")
    before = {m: sample(registry, "rerank_requests_total", method=m, code="UNAUTHENTICATED") for m in methods}
    with (
        RerankClient(f"localhost:{srv.port}", root_certificates=cert, token=token, timeout=20) as c,
        caplog.at_level("INFO", logger="rerank.server"),
    ):
        for call in (lambda: c.rerank("q", DOCS), c.list_models, lambda: c.compare([("q", "a", "b")])):
            with pytest.raises(RerankError) as err:
                call()
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert c.health() == "SERVING"  # health checks need no token
    for m in methods:
        assert sample(registry, "rerank_requests_total", method=m, code="UNAUTHENTICATED") == before[m] + 1
    lines = [r.getMessage() for r in caplog.records if "unauthenticated call" in r.getMessage()]
    assert len(lines) == 3 and all(TOKEN not in line and "from ipv" in line for line in lines)


def test_a_malformed_unauthenticated_call_is_unauthenticated(tls_server) -> None:
    srv, cert = tls_server
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with (
        grpc.secure_channel(f"localhost:{srv.port}", credentials) as channel,
        pytest.raises(grpc.RpcError) as err,
    ):
        channel.unary_unary("/rerank.v1.Reranker/Rerank")(b"\xff\xff\xff", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED  # its body is never looked at


def test_start_up_says_whether_tls_and_auth_are_on(tls_server, caplog) -> None:
    plain = RerankServer(ServerConfig(port=0), models={"fake": FakeModel()})
    with caplog.at_level("INFO", logger="rerank.server"), plain:
        pass
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving rerank.v1")]
    assert len(started) == 1 and "TLS off: plaintext, token auth off" in started[0]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # no token: nothing to warn about


def test_plaintext_client_cannot_talk_to_the_tls_server(tls_server) -> None:
    srv, _ = tls_server
    with (
        pytest.warns(TokenOverPlaintextWarning),
        RerankClient(f"127.0.0.1:{srv.port}", token=TOKEN, timeout=3, retry=NO_RETRY) as c,
    ):
        with pytest.raises(RerankError) as err:
            c.rerank("q", DOCS)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE


def test_token_without_tls_warns_and_token_from_file_or_env(tmp_path, monkeypatch, caplog) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    cfg = tmp_path / "server.json"
    cfg.write_text(f'{{"port": 0, "token_file": "{token_file}", "max_candidates": 7}}')
    config = load_config(cfg)
    assert config.auth_token == TOKEN and config.max_candidates == 7
    monkeypatch.setenv("RERANK_AUTH_TOKEN", "from-env")
    assert load_config().auth_token == "from-env"
    with caplog.at_level("INFO", logger="rerank.server"), RerankServer(config, models={"fake": FakeModel()}) as srv:
        started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("serving rerank.v1")]
        assert "TLS off: plaintext, token auth on" in started[0]
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 1 and "bearer token travels over plaintext" in warned[0]
        with pytest.warns(TokenOverPlaintextWarning, match="over plaintext"):
            client = RerankClient(srv.address, token=TOKEN, timeout=20)
        with client as c:
            assert c.rerank("q", DOCS).ids[0] == "d3"
        with RerankClient(srv.address, timeout=20) as c, pytest.raises(RerankError) as err:
            c.rerank("q", DOCS)
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
