"""Replicated serving on one machine: requests/s and p50/p99 latency at 8 clients for 1 and 3 `rerank serve`
replicas, balanced by the clients (gRPC round_robin) and through HAProxy (deploy/haproxy/haproxy.cfg), side by
side in one run, interleaved round by round (the machine is noisy).

    .venv/bin/python bench/replicas_bench.py --out bench/results [--rounds 3 --per-client 10]

Requests: DL19 queries with their BM25 top K (real texts), MiniLM, all pairs. Writes replicas.json and
replicas.md under --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import add_out_and_data

from rerank.client import RerankClient
from rerank.evaluation import read_corpus, read_queries, read_run
from rerank.server.replicas import send_concurrently, start_haproxy, start_replicas

SERVE_ARGS = ["--model", "minilm", "--drain", "1", "--grace", "20", "--http-port", "0"]  # HTTP: the proxy checks /ready


def load_requests(data: Path, queries: int, depth: int) -> list:
    """Calls on DL19 queries and their BM25 top ``depth``; every call's texts carry a unique tag, so no
    replica answers from its embedding cache what another set-up already asked (each text is embedded once
    per call, as for fresh traffic)."""
    dl = data / "trec-dl-2019-passage"
    serial = itertools.count()
    run, texts, corpus = read_run(dl / "run.bm25.top100.trec"), read_queries(dl / "queries.tsv"), read_corpus(
        dl / "corpus.jsonl")
    out = []
    for qid in sorted(run)[:queries]:
        top = sorted(run[qid], key=lambda d: -run[qid][d])[:depth]
        cands = [(d, corpus[d]) for d in top]
        def call(client, q=texts[qid], c=cands):
            tag = f" [{next(serial)}]"
            return client.rerank(q + tag, [(d, t + tag) for d, t in c], timeout=120)

        out.append(call)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_out_and_data(parser)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=6, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depth", type=int, default=10, help="candidates per request (all pairs)")
    args = parser.parse_args()

    requests = load_requests(Path(args.data), 16, args.depth)
    folder = Path(tempfile.mkdtemp(prefix="replicas-bench-"))
    replicas = start_replicas(3, SERVE_ARGS)
    (folder / "one").mkdir()
    (folder / "three").mkdir()
    proxies = {1: start_haproxy([replicas[0].address], folder / "one", check_ports=[replicas[0].http_port]),
               3: start_haproxy([r.address for r in replicas], folder / "three",
                                check_ports=[r.http_port for r in replicas])}
    setups = {
        "1 replica, client-side": lambda: RerankClient(replicas[0].address),
        "3 replicas, client-side (round_robin)": lambda: RerankClient([r.address for r in replicas]),
        "1 replica, via HAProxy": lambda: RerankClient(proxies[1].address, health_service=None),
        "3 replicas, via HAProxy": lambda: RerankClient(proxies[3].address, health_service=None),
    }
    latencies: dict[str, list[float]] = {name: [] for name in setups}
    rates: dict[str, list[float]] = {name: [] for name in setups}
    failed: dict[str, int] = dict.fromkeys(setups, 0)
    try:
        for make in setups.values():  # warm every path once (connections, first-run costs)
            send_concurrently(make, requests, clients=args.clients, per_client=1)
        for r in range(args.rounds):
            order = list(setups) if r % 2 == 0 else list(reversed(setups))
            for name in order:
                t0 = time.perf_counter()
                outcomes = send_concurrently(setups[name], requests, clients=args.clients, per_client=args.per_client)
                wall = time.perf_counter() - t0
                ok = [o for o in outcomes if o.error is None]
                failed[name] += len(outcomes) - len(ok)
                latencies[name] += [o.seconds for o in ok]
                rates[name].append(len(ok) / wall)
                print(f"round {r + 1} {name}: {len(ok) / wall:.1f} req/s", file=sys.stderr)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        for replica in replicas:
            replica.stop()

    base = "1 replica, client-side"
    rows = {}
    for name in setups:
        lat = np.asarray(latencies[name]) * 1000
        rows[name] = {"requests_per_s": float(np.median(rates[name])), "rounds_requests_per_s": rates[name],
                      "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                      "requests": int(lat.size), "failed": failed[name]}
    for name in setups:
        rows[name]["throughput_vs_1_replica_client_side"] = rows[name]["requests_per_s"] / rows[base]["requests_per_s"]
    meta = {"command": "python bench/replicas_bench.py " + " ".join(sys.argv[1:]), "clients": args.clients,
            "per_client": args.per_client, "rounds": args.rounds, "depth": args.depth,
            "model": "minilm (int8, CPU), unique texts per call",
            "cpus": os.cpu_count(), "machine": platform.platform(), "load_average": os.getloadavg()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replicas.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    lines = [f"# Replicated serving: {args.clients} clients, 1 vs 3 replicas, client-side vs HAProxy", "",
             f"Command: `{meta['command']}`; {args.rounds} interleaved rounds of {args.clients} x {args.per_client} "
             f"requests (DL19 queries, BM25 top {args.depth}, MiniLM, all pairs, unique texts per call) per set-up; "
             f"{meta['cpus']} CPUs, "
             f"load average at the end {meta['load_average'][0]:.1f}.", "",
             "| set-up | requests/s (median of rounds) | vs 1 replica client-side | p50 ms | p99 ms | failed |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['requests_per_s']:.1f} | {row['throughput_vs_1_replica_client_side']:.2f} | "
                     f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['failed']} |")
    (out / "replicas.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
