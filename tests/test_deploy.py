"""deploy/: the container build files, Kubernetes manifests and HAProxy configuration agree with
``rerank serve`` (flags it accepts, its port, its health service, its drain and grace periods)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rerank.server.app import SERVICE_NAME
from rerank.server.cli import serve_args
from rerank.server.replicas import render_haproxy_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DOCKERFILES = {"cpu": DEPLOY / "Dockerfile.cpu", "cuda": DEPLOY / "Dockerfile.cuda"}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _serve_args(argv: list[str]):
    """Parse as ``rerank serve`` does (an unknown flag is an error)."""
    return serve_args(argv)


def _manifests(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()) if d]


def _deployment() -> dict:
    (dep,) = [d for d in _manifests("deployment.yaml") if d["kind"] == "Deployment"]
    return dep


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_container_serves_with_flags_rerank_serve_accepts(flavour: str) -> None:
    steps = _instructions(DOCKERFILES[flavour])
    entry = [json.loads(a) for i, a in steps if i == "ENTRYPOINT"][-1]
    cmd = [json.loads(a) for i, a in steps if i == "CMD"][-1]
    assert entry == ["rerank", "serve"]
    args = _serve_args(cmd)
    exposed = {int(p) for i, a in steps if i == "EXPOSE" for p in a.split()}
    assert {args.port, args.metrics_port, args.http_port} == exposed
    assert args.host == "0.0.0.0" and args.drain_s > 0 and args.grace_s > 0
    assert cmd == _deployment()["spec"]["template"]["spec"]["containers"][0]["args"]  # one set of flags
    installs = " ".join(a for i, a in steps if i == "RUN" and "pip install" in a and ".[" in a)
    final = [a for i, a in steps if i == "RUN" and "pip install" in a and ".[" in a][-1]  # the serving stage
    if flavour == "cuda":
        assert re.search(r"\.\[gpu,server\]", final) and "cpu" not in final.split(".[")[1].split("]")[0]
        assert any(i == "FROM" and a.startswith("nvidia/cuda:") for i, a in steps)
    else:
        assert re.search(r"\.\[cpu,server\]", final)
    assert "rerank models ensure minilm" in " ".join(a for i, a in steps if i == "RUN")  # exported at build
    copied = set(" ".join(a for i, a in steps if i == "COPY").split())  # what building the wheel reads:
    assert {"pyproject.toml", "setup.py", "MANIFEST.in", "proto", "rerank", "models", "aggregation"} <= copied
    assert "export" in installs


def test_deployment_probes_ports_resources_and_grace_agree_with_serve() -> None:
    dep = _deployment()
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = _serve_args(container["args"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": args.port, "metrics": args.metrics_port, "http": args.http_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == args.port
    assert container["readinessProbe"]["grpc"]["service"] == SERVICE_NAME  # NOT_SERVING while draining
    assert container["livenessProbe"]["grpc"].get("service", "") == ""  # the server as a whole
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    # SIGKILL only after drain and grace are over, with room to spare
    assert pod["terminationGracePeriodSeconds"] > args.drain_s + args.grace_s
    assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"]


KUBERNETES_VERSION = "1.37.0"  # the schemas kubernetes-validate ships; the manifests use no beta APIs


@pytest.mark.parametrize("name", sorted(p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")))
def test_manifests_are_valid_against_the_kubernetes_schemas(name: str) -> None:
    """Each document against Kubernetes' own OpenAPI-derived JSON schemas, strict (an unknown or misspelt field
    is an error), with kubernetes-validate, which ships the schemas (nothing is downloaded)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = _manifests(name)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_what_kubernetes_would() -> None:
    """The check above has teeth: a misspelt probe field and a port given as text fail."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    dep = _deployment()
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["grpc"]["servce"] = container["readinessProbe"]["grpc"].pop("service")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBERNETES_VERSION, strict=True)
    dep = _deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "50051"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBERNETES_VERSION, strict=True)


def test_the_autoscaler_scales_the_deployment_on_a_metric_the_server_exports() -> None:
    from rerank.server.metrics import Metrics

    (hpa,) = _manifests("hpa.yaml")
    dep = _deployment()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}
    assert hpa["metadata"]["namespace"] == dep["metadata"]["namespace"]
    assert hpa["spec"]["minReplicas"] <= dep["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    exported = Metrics().text()
    for metric in hpa["spec"]["metrics"]:
        name = metric["pods"]["metric"]["name"]
        assert re.search(rf"^# TYPE {name} gauge$", exported, re.M), f"{name} is not a gauge the server exports"


def test_headless_service_selects_the_pods_on_the_grpc_port() -> None:
    (svc,) = _manifests("service.yaml")
    dep = _deployment()
    assert svc["kind"] == "Service" and svc["spec"]["clusterIP"] == "None"  # headless: one DNS record per pod
    assert svc["spec"]["selector"] == dep["spec"]["template"]["metadata"]["labels"]
    grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
    container_ports = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert grpc["targetPort"] == "grpc" and grpc["port"] == container_ports["grpc"]
    assert svc["metadata"]["namespace"] == dep["metadata"]["namespace"]


def test_haproxy_config_points_at_the_headless_service_over_h2() -> None:
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    (svc,) = _manifests("service.yaml")
    port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
    template = re.search(r"^\s*server-template \S+ \d+ (\S+):(\d+) (.*)$", text, re.M)
    assert template is not None
    host, backend_port, options = template.groups()
    assert host == f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
    assert int(backend_port) == port and "proto h2" in options and "check" in options.split()
    assert re.search(rf"^\s*bind :{port} proto h2$", text, re.M)
    assert re.search(r"^\s*retry-on .*conn-failure.*empty-response", text, re.M)
    # the check asks each replica's HTTP /ready (503 while it drains) on the port the replicas serve HTTP on
    check_port = int(re.search(r"\bcheck port (\d+)", options).group(1))
    (replica,) = [d for d in _manifests("deployment.yaml") if d["kind"] == "Deployment"]
    container = replica["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert int(args[args.index("--http-port") + 1]) == check_port
    assert check_port in [p["containerPort"] for p in container["ports"]]
    assert "check-proto h1" in options
    assert re.search(r"^\s*http-check send meth GET uri /ready\b", text, re.M)
    assert re.search(r"^\s*http-check expect status 200$", text, re.M)
    (proxy,) = [d for d in _manifests("haproxy.yaml") if d["kind"] == "Deployment"]
    assert proxy["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == port


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy missing: run deploy/haproxy/install.sh")
def test_haproxy_accepts_the_config_as_deployed_and_as_rendered_for_loopback(tmp_path: Path) -> None:
    deployed = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")],
                              capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stderr
    rendered = tmp_path / "haproxy.cfg"
    rendered.write_text(render_haproxy_config(["127.0.0.1:5001", "127.0.0.1:5002"], "127.0.0.1:5000",
                                              check_ports=[6001, 6002]))
    check = subprocess.run(["haproxy", "-c", "-f", str(rendered)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    servers = re.findall(r"^\s*server (\S+) (\S+) (.*)$", rendered.read_text(), re.M)
    assert [s[1] for s in servers] == ["127.0.0.1:5001", "127.0.0.1:5002"]
    assert all("proto h2" in s[2] and "resolvers" not in s[2] for s in servers)
    assert ["check port 6001" in servers[0][2], "check port 6002" in servers[1][2]] == [True, True]


def test_install_script_is_idempotent_and_quick_when_installed() -> None:
    script = DEPLOY / "haproxy" / "install.sh"
    assert "apt-get install" in script.read_text()
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy not installed here")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
