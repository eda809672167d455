"""trec_eval measures of a whole run, through `pytrec_eval <https://github.com/cvangysel/pytrec_eval>`_
(trec_eval's own C code as a Python extension; installed as ``pytrec-eval-terrier``, the ``eval`` extra).

Measure names are trec_eval's: ``ndcg_cut_10``, ``map``, ``recip_rank``, ``recall_100``, ``P_10``, ``bpref``,
... (a name without a cutoff, e.g. ``ndcg_cut``, gives trec_eval's default cutoffs). Our short names are
accepted too: ``ndcg@10``, ``mrr``, ``recall@100``, ``p@10``.

Which queries count follows trec_eval: by default only queries both in the run and in the qrels are averaged;
``complete`` (trec_eval ``-c``) averages over every qrels query, one missing from the run evaluated as an
empty ranking (0 on every standard measure). Unlike trec_eval, the queries left out are counted and reported
(:class:`Evaluation`), not dropped silently. ``rel_level`` is trec_eval's ``-l``: the lowest grade a binary
measure (MAP, RR, recall, P) counts as relevant; TREC Deep Learning uses 2. nDCG uses the grades themselves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pytrec_eval

#: Per-query measures of pytrec_eval (``runid`` and ``relstring`` are strings, not numbers).
KNOWN_MEASURES: tuple[str, ...] = tuple(sorted(set(pytrec_eval.supported_measures) - {"runid", "relstring"}))
_SHORT = {"ndcg": "ndcg_cut", "recall": "recall", "p": "P"}


class UnknownMeasureError(ValueError):
    """A measure name trec_eval does not know."""


def trec_measure(name: str) -> str:
    """pytrec_eval's spelling of one measure name (``ndcg_cut_10`` and ``ndcg@10`` -> ``ndcg_cut.10``)."""
    text = name.strip()
    short = re.fullmatch(r"(ndcg|recall|p)@(\d+)", text, flags=re.IGNORECASE)
    if short:
        return f"{_SHORT[short[1].lower()]}.{short[2]}"
    if text.lower() == "mrr":
        return "recip_rank"
    if text in KNOWN_MEASURES:
        return text
    cut = re.fullmatch(r"(.+?)[_.](\d+(?:\.\d+)?(?:,\d+(?:\.\d+)?)*)", text)
    if cut and cut[1] in KNOWN_MEASURES:
        return f"{cut[1]}.{cut[2]}"
    raise UnknownMeasureError(
        f"unknown measure {name!r}; known (trec_eval names, add _K for a cutoff, e.g. ndcg_cut_10): "
        f"{', '.join(KNOWN_MEASURES)}"
    )


@dataclass
class Evaluation:
    """Means over the evaluated queries, their per-query values, and the queries left out."""

    measures: list[str]
    means: dict[str, float]
    per_query: dict[str, dict[str, float]]
    run_only: list[str] = field(default_factory=list)  # in the run, no judgments: not evaluated
    missing: list[str] = field(default_factory=list)  # judged, not in the run: 0 with complete, else left out
    complete: bool = False
    rel_level: int = 1

    def notes(self) -> list[str]:
        """One line per group of queries left out or scored 0 (none when run and qrels hold the same queries)."""
        lines = []
        if self.run_only:
            lines.append(f"{len(self.run_only)} queries of the run have no judgments and are not evaluated "
                         f"(e.g. {', '.join(self.run_only[:3])})")
        if self.missing:
            what = ("are evaluated as empty rankings, 0 (--complete)" if self.complete
                    else "are not evaluated (--complete counts them as 0)")
            lines.append(f"{len(self.missing)} judged queries are not in the run and {what} "
                         f"(e.g. {', '.join(self.missing[:3])})")
        return lines


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str],
    *,
    rel_level: int = 1,
    complete: bool = False,
) -> Evaluation:
    """trec_eval's ``measures`` of ``run`` (``{qid: {docid: score}}``) against ``qrels`` (``{qid: {docid:
    grade}}``). Raises :class:`UnknownMeasureError` for a name trec_eval does not know. Means are NaN when no
    query is evaluated."""
    wanted = list(dict.fromkeys(trec_measure(m) for m in measures))
    evaluator = pytrec_eval.RelevanceEvaluator(
        {q: dict(judged) for q, judged in qrels.items()}, set(wanted), relevance_level=rel_level)
    missing = [q for q in qrels if q not in run]
    # --complete: a judged query missing from the run is evaluated as an empty ranking (0 on the standard
    # measures, as trec_eval -c; num_rel and gm_map get trec_eval's own values)
    empty = {q: {} for q in missing} if complete else {}
    per_query: dict[str, dict[str, float]] = evaluator.evaluate({**{q: dict(d) for q, d in run.items()}, **empty})
    names = _result_names(wanted, per_query.values())
    means = {
        m: pytrec_eval.compute_aggregated_measure(m, [v[m] for v in per_query.values()]) if per_query else math.nan
        for m in names
    }
    return Evaluation(names, means, per_query, [q for q in run if q not in qrels], missing, complete, rel_level)


def _result_names(wanted: Sequence[str], rows: Iterable[Mapping[str, float]]) -> list[str]:
    """The result keys of ``wanted`` in the order asked (``ndcg_cut.10`` -> ``ndcg_cut_10``; a name without a
    cutoff -> all its cutoffs)."""
    present = list(next(iter(rows), {}))
    names: list[str] = []
    for m in wanted:
        base, _, cuts = m.partition(".")
        if cuts:
            names += [f"{base}_{c}" for c in cuts.split(",")]
        else:
            names += [k for k in present if k == base or re.fullmatch(rf"{re.escape(base)}_[\d.]+", k)] or [base]
    return list(dict.fromkeys(names))
