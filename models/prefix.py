"""Shared prompt prefixes: which sequences a causal model can run as one prefix plus several suffixes.

A pairwise prompt kind writes the query and passage a before passage b, so the pairs of a ranking request
that share their first passage share a long token prefix (chat header, query, passage a): with k
candidates and all pairs, each prefix is repeated k - 1 times. A decoder-only model attends causally, so
the keys and values of a prefix do not depend on what follows it: run once, they serve every suffix (the
prefix caching of LLM servers; RadixAttention in SGLang, Zheng et al. 2024). The model still sees exactly
the token ids of each whole prompt; only the work is shared.

:func:`share_groups` finds the groups from the token ids alone (nothing about the prompt template), so
any tokenization, chat template or truncation is covered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

#: The shortest prefix worth a separate prefix pass (tokens).
MIN_SHARED_PREFIX = 16
#: What one more group costs beyond its tokens (a prefix pass and a cache copy), in tokens.
GROUP_OVERHEAD_TOKENS = 16


@dataclass(frozen=True)
class PrefixGroup:
    """Sequences ``rows`` whose first ``prefix`` tokens are the same (every suffix keeps >= 1 token)."""

    prefix: int
    rows: tuple[int, ...]


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def share_groups(
    seqs: Sequence[Sequence[int]], *, min_prefix: int = MIN_SHARED_PREFIX,
    overhead: int = GROUP_OVERHEAD_TOKENS,
) -> tuple[list[PrefixGroup], list[int]]:
    """Split ``seqs`` into prefix groups (two or more sequences) and the rows run whole.

    Greedy over the sequences in lexicographic order, so that sequences with a common prefix are adjacent:
    the next sequence joins the current group when the tokens it saves (the shortened common prefix) exceed
    what the members already in the group lose by the shortening, unless it shares much more with the
    sequence after it (then it starts a group); a group whose prefix is shorter than ``min_prefix`` is
    run whole. On PRP prompts this yields one group per (query, passage a), and one per query for the
    pairs left alone."""
    order = sorted(range(len(seqs)), key=lambda i: tuple(seqs[i]))
    # ahead[n]: tokens the n-th sequence (sorted) shares with the next one
    ahead = [_common(seqs[a], seqs[b]) for a, b in pairwise(order)] + [0]
    groups: list[PrefixGroup] = []
    whole: list[int] = []

    def close(rows: list[int], prefix: int) -> None:
        if len(rows) > 1 and prefix >= min_prefix:
            groups.append(PrefixGroup(prefix, tuple(rows)))
        else:
            whole.extend(rows)

    rows: list[int] = []
    prefix = 0
    for n, i in enumerate(order):
        if rows:
            common = min(_common(seqs[rows[0]], seqs[i]), prefix, len(seqs[i]) - 1)
            gain = common - len(rows) * (prefix - common) if len(rows) > 1 else common
            # join unless it does not pay, or the next sequence shares much more with this one (a new group)
            if common >= min_prefix and gain > overhead and ahead[n] - common <= overhead:
                rows.append(i)
                prefix = common
                continue
            close(rows, prefix)
        rows, prefix = [i], len(seqs[i]) - 1
    if rows:
        close(rows, prefix)
    return groups, sorted(whole)
