"""``rerank arena``: leaderboards from battle logs (Chatbot Arena's shape) and K-wise votes, and matchmaking.

Input, one JSON object per line (``-`` reads stdin):

- a battle: ``{"model_a": "x", "model_b": "y", "winner": "model_a" | "model_b" | "tie" | "tie (bothbad)"}``
  (other keys, such as ``tstamp`` or ``judge``, are ignored);
- a K-wise vote: ``{"models": ["x", "y", "z"], "ranking": [2, 1, 2]}`` (1 = best, equal = tie) or a K-wise
  choice ``{"models": ["x", "y", "z"], "winner": "y"}`` (the winner first, the others tied behind it).

Output (``rerank arena``): one JSON line per model, best first: ``model``, ``score`` (Elo scale), ``lower``,
``upper`` (null without intervals), ``rank`` (FastChat's: 1 + the models whose lower bound is above this
upper bound), ``votes``. ``rerank arena next`` prints the K models to compare next, as ``{"models": [...]}``.
Exit 0 done, 1 bad input (one line naming the line number), 2 bad usage.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import click

from .cli_options import CONTEXT, EXIT_BAD_INPUT, EXIT_USAGE, IN_FILE, OUT_FILE, fail

ARENA_METHOD_NAMES = ("bt", "elo", "ksort")
INTERVAL_NAMES = ("bootstrap", "sandwich", "posterior", "none")
_PAIR_RANKS = {"model_a": (1, 2), "model_b": (2, 1), "tie": (1, 1), "tie (bothbad)": (1, 1)}


class VoteError(ValueError):
    """A malformed line of a battle log: the message names the line."""


def _vote(record: Any, where: str) -> tuple[list[str], list[int]]:
    if not isinstance(record, dict):
        raise VoteError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "models" in record:
        shown = record["models"]
        if not isinstance(shown, list) or len(shown) < 2 or not all(isinstance(m, str) and m for m in shown):
            raise VoteError(f"{where}: 'models' must list at least 2 model names")
        if len(set(shown)) != len(shown):
            raise VoteError(f"{where}: 'models' names a model twice")
        if "ranking" in record:
            ranks = record["ranking"]
            if (not isinstance(ranks, list) or len(ranks) != len(shown)
                    or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in ranks)):
                raise VoteError(f"{where}: 'ranking' must give one integer rank >= 1 per model (1 = best)")
            return shown, ranks
        winner = record.get("winner")
        if winner not in shown:
            raise VoteError(f"{where}: a K-wise vote needs 'ranking' or a 'winner' among its 'models'")
        return shown, [1 if m == winner else 2 for m in shown]
    missing = [k for k in ("model_a", "model_b", "winner") if k not in record]
    if missing:
        raise VoteError(f"{where}: missing {', '.join(map(repr, missing))} (or give 'models' for a K-wise vote)")
    a, b, winner = record["model_a"], record["model_b"], record["winner"]
    if not (isinstance(a, str) and a and isinstance(b, str) and b):
        raise VoteError(f"{where}: 'model_a' and 'model_b' must be model names")
    if a == b:
        raise VoteError(f"{where}: model_a and model_b are the same model {a!r}")
    if winner not in _PAIR_RANKS:
        raise VoteError(f"{where}: unknown winner {winner!r}; known: {', '.join(map(repr, _PAIR_RANKS))}")
    return [a, b], list(_PAIR_RANKS[winner])


def read_votes(path: str):
    """All votes of a battle log (``-`` = stdin) as :class:`~rerank.aggregation.arena.Votes`."""
    from .aggregation.arena import votes_from_lists

    index: dict[str, int] = {}
    shown_all: list[list[int]] = []
    ranks_all: list[list[int]] = []
    with contextlib.nullcontext(sys.stdin) if path == "-" else open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{'stdin' if path == '-' else path} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VoteError(f"{where}: not JSON ({exc.msg})") from None
            shown, ranks = _vote(record, where)
            shown_all.append([index.setdefault(m, len(index)) for m in shown])
            ranks_all.append(ranks)
    if not shown_all:
        raise VoteError(f"{'stdin' if path == '-' else path}: no battles or votes")
    return votes_from_lists(tuple(index), shown_all, ranks_all)


def _load(path: str):
    try:
        return read_votes(path), None
    except OSError as exc:
        return None, fail(f"cannot read --input {path!r}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    except (VoteError, UnicodeDecodeError) as exc:
        return None, fail(str(exc), EXIT_BAD_INPUT)


def _row(row: Any) -> str:
    return json.dumps({"model": row.model, "score": row.score, "lower": row.lower, "upper": row.upper,
                       "rank": row.rank, "votes": row.votes})


@click.group("arena", context_settings=CONTEXT, invoke_without_command=True,
             help="Leaderboard of models from arena battles (Chatbot Arena's model_a/model_b/winner lines) and "
                  "K-wise votes: Bradley-Terry on the Elo scale with bootstrap intervals as FastChat computes "
                  "it (default), online Elo, or K-wise Bayesian ratings; `rerank arena next` proposes the K "
                  "models to compare next.")
@click.option("--input", "input_path", type=IN_FILE, metavar="FILE",
              help="battle log, one JSON object per line (- = stdin)")
@click.option("--output", "output_path", type=OUT_FILE, default="-", show_default=True, metavar="FILE",
              help="leaderboard, one JSON line per model, best first (- = stdout)")
@click.option("--method", type=click.Choice(ARENA_METHOD_NAMES), default="bt", show_default=True,
              help="bt: Bradley-Terry maximum likelihood (FastChat's compute_elo_mle_with_tie); elo: online "
                   "Elo, K=4 (FastChat's compute_elo; score = bootstrap median); ksort: K-wise Bayesian "
                   "update (K-Sort Arena)")
@click.option("--intervals", type=click.Choice(INTERVAL_NAMES), default=None,
              help="bootstrap (bt, elo; default there), sandwich (bt: robust normal intervals, no resampling), "
                   "posterior (ksort; default there) or none")
@click.option("--rounds", type=int, default=100, show_default=True,
              help="bootstrap rounds (FastChat's --num-bootstrap)")
@click.option("--seed", type=int, default=0, show_default=True,
              help="bootstrap seed: the rounds draw as FastChat's after np.random.seed(SEED)")
@click.option("--level", type=float, default=0.95, show_default=True, help="interval coverage, in (0, 1)")
@click.pass_context
def arena(ctx: click.Context, input_path: str | None, output_path: str, method: str, intervals: str | None,
          rounds: int, seed: int, level: float) -> int:
    if ctx.invoked_subcommand is not None:
        return 0
    if input_path is None:
        raise click.UsageError("give --input BATTLES.jsonl (or a command: next)", ctx)
    from .aggregation.arena import INTERVALS, NoFiniteRatingsError, leaderboard

    if intervals is not None and intervals not in INTERVALS[method]:
        return fail(f"--intervals: method {method!r} gives {', '.join(INTERVALS[method])}, not {intervals!r}",
                    EXIT_USAGE)
    if rounds < 1 and (intervals or INTERVALS[method][0]) == "bootstrap":
        return fail(f"--rounds must be >= 1 for bootstrap intervals, got {rounds}", EXIT_USAGE)
    if not 0.0 < level < 1.0:
        return fail(f"--level must be in (0, 1), got {level}", EXIT_USAGE)
    votes, code = _load(input_path)
    if votes is None:
        return code
    try:
        rows = leaderboard(votes, method, intervals=intervals, rounds=rounds, seed=seed, level=level)
    except NoFiniteRatingsError as exc:
        return fail(f"{input_path}: {exc}", EXIT_BAD_INPUT)
    from .files import write_text_atomic

    write_text_atomic(output_path, "".join(_row(r) + "\n" for r in rows))
    return 0


@arena.command("next", context_settings=CONTEXT,
               help="The K models to compare next given the votes so far (K-wise Bayesian posteriors: the most "
                    "uncertain model, then its most informative partners), as one JSON line {\"models\": [...]}.")
@click.option("--input", "input_path", type=IN_FILE, required=True, metavar="FILE",
              help="votes so far, one JSON object per line (- = stdin)")
@click.option("--k", "k", type=int, default=2, show_default=True, help="models per comparison (K >= 2)")
@click.option("--models", "extra", default=None,
              help="comma-separated models to consider besides those in the votes (new models, no vote yet)")
@click.option("--seed", type=int, default=0, show_default=True, help="breaks ties between equally good choices")
def arena_next(input_path: str, k: int, extra: str | None, seed: int) -> int:
    import numpy as np

    from .aggregation.arena import Posterior, ksort_posterior, next_group

    votes, code = _load(input_path)
    if votes is None:
        return code
    post = ksort_posterior(votes)
    names = list(votes.models)
    new = [m.strip() for m in (extra or "").split(",") if m.strip() and m.strip() not in votes.models]
    if new:
        fresh = Posterior.prior(len(new))
        post = Posterior(np.concatenate([post.mu, fresh.mu]), np.concatenate([post.sigma2, fresh.sigma2]),
                         np.concatenate([post.votes, fresh.votes]))
        names += new
    if not 2 <= k <= len(names):
        return fail(f"--k must be between 2 and the number of models ({len(names)}), got {k}", EXIT_USAGE)
    group = next_group(post, k, np.random.default_rng(seed))
    click.echo(json.dumps({"models": [names[i] for i in group]}))
    return 0
