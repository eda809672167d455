"""Stress figures of the server (issue 21): SIGTERM while 16 clients churn health Watch streams (rounds that
hung; also pinned to one core), SIGTERM under load with ``--grace 1`` (seconds to exit, how the requests cut
at the grace were answered), and a flood of half-open HTTP connections (server file descriptors, success
rates of real gRPC and HTTP requests during it, time until the server dropped them). Each part records the
load average. Writes ``server_stress.json`` and ``server_stress.md`` under ``--out``.

    .venv/bin/python bench/server_stress_bench.py --store ~/.cache/rerank/test-exports/minilm-<key> \\
        --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from rerank.bench.flood import flood_round
from rerank.bench.shutdown import health_churn_round, loaded_sigterm_round, store_args

GRACE_S = 1.0


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def churn(store: str, rounds: int, pin: str | None, bound_s: float) -> dict:
    load0, out = _load(), []
    for _ in range(rounds):
        r = health_churn_round(store_args(store, "--grace", f"{GRACE_S:g}"), bound_s=bound_s, pin=pin)
        out.append({"exit_s": r.exit_s, "returncode": r.returncode, "watches": r.watches})
    hung = sum(1 for r in out if r["exit_s"] is None)
    exits = [r["exit_s"] for r in out if r["exit_s"] is not None]
    return {"pin": pin, "rounds": rounds, "hung": hung, "bound_s": bound_s, "max_exit_s": max(exits, default=None),
            "load_avg": [load0, _load()], "runs": out}  # fmt: skip


def sigterm(store: str, runs: int, bound_s: float) -> dict:
    load0, out = _load(), []
    totals: dict[str, int] = {}
    for seed in range(runs):
        r = loaded_sigterm_round(store_args(store, "--grace", f"{GRACE_S:g}", "--http-port", "0"), bound_s=bound_s,
                                 seed=seed)  # fmt: skip
        out.append({"exit_s": r.exit_s, "returncode": r.returncode, "requests": r.requests})
        for k, v in r.requests.items():
            totals[k] = totals.get(k, 0) + v
    exits = [r["exit_s"] for r in out if r["exit_s"] is not None]
    return {"runs": runs, "grace_s": GRACE_S, "not_exited": runs - len(exits), "bound_s": bound_s,
            "max_exit_s": max(exits, default=None), "outcomes": totals, "load_avg": [load0, _load()],
            "per_run": out}  # fmt: skip


def flood(store: str, sockets: int, settings: Path | None) -> dict:
    """``settings``: a config file for the server (None: its defaults)."""
    load0 = _load()
    extra = ["--config", str(settings)] if settings is not None else []
    r = flood_round(store_args(store, "--http-port", "0", *extra), sockets=sockets, watch_s=30.0, nofile=1024)
    text = settings.read_text() if settings is not None else "(defaults)"
    return {**r.as_dict(), "settings": text, "nofile": 1024, "load_avg": [load0, _load()]}


def markdown(results: dict) -> str:
    lines = ["# Server stress (issue 21)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared); python {platform.python_version()}. "
             f"Run {results['when']}: `{results['command']}`.", ""]  # fmt: skip
    if "churn" in results:
        lines += ["## SIGTERM with 16 clients churning grpc.health.v1 Watch streams (`--grace 1`)", "",
                  "| pinned | rounds | hung (no exit within bound) | bound s | max exit s | load avg |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
        for part in results["churn"]:
            lines.append(f"| {part['pin'] or 'no'} | {part['rounds']} | {part['hung']} | {part['bound_s']:g} | "
                         f"{_s(part['max_exit_s'])} | {part['load_avg']} |")  # fmt: skip
        lines.append("")
    if "sigterm" in results:
        s = results["sigterm"]
        lines += ["## SIGTERM under load (`--grace 1`; 4 gRPC + 4 HTTP clients with long requests)", "",
                  f"{s['runs']} runs: max exit {_s(s['max_exit_s'])} s after the signal, {s['not_exited']} not "
                  f"exited within {s['bound_s']:g} s; load avg {s['load_avg']}.", "",
                  f"Outcomes of the requests (all runs): `{json.dumps(s['outcomes'], sort_keys=True)}`",
                  ""]  # fmt: skip
    if "flood" in results:
        f = results["flood"]
        lines += ["## Half-open HTTP flood", "",
                  f"Server with {f['nofile']} file descriptors and settings "
                  f"`{'; '.join(f['settings'].split(chr(10))).strip('; ')}`; "
                  f"{f['sockets']} connections that never finish their headers, opened while real requests ran.",
                  "",
                  "| opened | server fds before / max | dropped | drop p50 / max s | gRPC ok | HTTP ok | load avg |",
                  "| ---: | --- | ---: | --- | --- | --- | --- |",
                  f"| {f['opened']} | {f['server_fds_before']} / {f['server_fds_max']} | {f['dropped']} | "
                  f"{_s(f['drop_p50_s'])} / {_s(f['drop_max_s'])} | {f['grpc_ok']}/{f['grpc_total']} | "
                  f"{f['http_ok']}/{f['http_total']} | {f['load_avg']} |", ""]  # fmt: skip
        if f["failures"]:
            lines += [f"Failed client requests: `{json.dumps(f['failures'], sort_keys=True)}`", ""]
    return "\n".join(lines)


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="a model store holding minilm")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--parts", default="churn,sigterm,flood")
    parser.add_argument("--churn-rounds", type=int, default=10)
    parser.add_argument("--sigterm-runs", type=int, default=20)
    parser.add_argument("--flood-sockets", type=int, default=3000)
    parser.add_argument("--bound-s", type=float, default=20.0, help="kill a server not exited within this")
    parser.add_argument("--name", default="server_stress", help="results file name (without suffix)")
    parser.add_argument("--flood-defaults", action="store_true",
                        help="flood a server with its default settings (else a 2 s header timeout and 256 connections)")
    a = parser.parse_args()
    parts = set(a.parts.split(","))
    results: dict = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "command": " ".join(["python", *sys.argv])}  # fmt: skip
    if "churn" in parts:
        pin = str(min(os.sched_getaffinity(0)))
        results["churn"] = [churn(a.store, a.churn_rounds, None, a.bound_s),
                            churn(a.store, a.churn_rounds, pin, a.bound_s)]  # fmt: skip
    if "sigterm" in parts:
        results["sigterm"] = sigterm(a.store, a.sigterm_runs, a.bound_s)
    if "flood" in parts:
        settings = None if a.flood_defaults else Path(a.out) / f"{a.name}_flood.toml"
        if settings is not None:
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text("http_header_timeout_s = 2.0\nhttp_max_connections = 256\n")
        try:
            results["flood"] = flood(a.store, a.flood_sockets, settings)
        finally:
            if settings is not None:
                settings.unlink()
    out = Path(a.out)
    (out / f"{a.name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / f"{a.name}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
