"""The ``--engine`` options of ``rank``, ``bench budgets`` and ``index build`` (a light module: building the
parser imports no engine; :mod:`rerank.distributed` runs them)."""

from __future__ import annotations

import argparse

ENGINES = ("local", "ray")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--address``, ``--workers`` (the same for ``rank``, ``bench budgets``, ``index build``)."""
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: this process (default); ray: a pool of Ray actors (extra 'distributed')")
    parser.add_argument("--address", default=None,
                        help="--engine ray: join this Ray cluster (host:port or ray://...); default: start a "
                             "local Ray on this machine")
    parser.add_argument("--workers", type=int, default=None,
                        help="--engine ray: actors, each loading the model once (default: one per CPU)")
