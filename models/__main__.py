"""``python -m rerank.models``: ensure the embedded model, export a checkpoint, list the store."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

from .embedded import EMBEDDED
from .ensure import ensure_embedded
from .errors import ModelError, ParityError
from .export import export_model
from .load import list_models
from .registry import KINDS
from .store import ModelStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerank.models", description=__doc__)
    parser.add_argument("--store", default=None, help="store folder (default $RERANK_HOME/models)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    ens = sub.add_parser("ensure", help="export an embedded model into the store (no-op when already there)")
    ens.add_argument("name", choices=sorted(EMBEDDED))
    ens.add_argument("--force", action="store_true")
    ens.add_argument("--quantize", choices=["int8"], default=None)
    exp = sub.add_parser("export", help="export a checkpoint folder into the store (or --out)")
    exp.add_argument("source")
    exp.add_argument("kind", choices=sorted(KINDS))
    exp.add_argument("name")
    exp.add_argument("--out", default=None, help="output folder (default <store>/<name>)")
    exp.add_argument("--quantize", choices=["int8"], default=None)
    exp.add_argument("--max-query-tokens", type=int, default=None)
    exp.add_argument("--max-passage-tokens", type=int, default=None)
    exp.add_argument("--overwrite", action="store_true")
    sub.add_parser("list", help="models in the store, as JSON lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    store = ModelStore(args.store)
    try:
        if args.command == "ensure":
            m = ensure_embedded(args.name, store=store, force=args.force, quantize=args.quantize)
            print(json.dumps({"name": m.name, "path": str(store.path(m.name)), "variants": list(m.variants)}))
        elif args.command == "export":
            out = args.out or store.path(args.name)
            m = export_model(
                args.source,
                args.kind,
                out,
                name=args.name,
                quantize=args.quantize,
                max_query_tokens=args.max_query_tokens,
                max_passage_tokens=args.max_passage_tokens,
                overwrite=args.overwrite,
            )
            print(
                json.dumps(
                    {
                        "name": m.name,
                        "path": str(out),
                        "parity": {k: dict(v.parity) for k, v in m.variants.items()},
                    }
                )
            )
        else:
            for info in list_models(store):
                print(json.dumps(asdict(info)))
    except (ModelError, ParityError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
