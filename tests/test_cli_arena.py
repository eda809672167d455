"""`rerank arena` and `rerank arena next`: battle logs in, leaderboard lines out; bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest


def battle_log(n: int = 3000, n_models: int = 5, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    strength = np.linspace(1.5, -1.5, n_models)  # model-0 best
    lines = []
    for _ in range(n):
        a, b = rng.choice(n_models, 2, replace=False)
        p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
        u = rng.random()
        winner = "tie" if u < 0.1 else "tie (bothbad)" if u < 0.15 else "model_a" if rng.random() < p else "model_b"
        lines.append(json.dumps({"model_a": f"model-{a}", "model_b": f"model-{b}", "winner": winner, "judge": "j"}))
    for _ in range(n // 10):  # K-wise votes: a ranking of 3 and a choice among 4
        shown = rng.choice(n_models, 3, replace=False)
        order = np.argsort(-(strength[shown] + rng.gumbel(size=3)))
        ranks = np.empty(3, dtype=int)
        ranks[order] = [1, 2, 3]
        lines.append(json.dumps({"models": [f"model-{i}" for i in shown], "ranking": ranks.tolist()}))
        lines.append(json.dumps({"models": [f"model-{i}" for i in range(4)], "winner": "model-0"}))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("method", "intervals"), [("bt", "bootstrap"), ("bt", "sandwich"), ("elo", "bootstrap"),
                                                   ("ksort", "posterior")])
def test_leaderboard_lines(cli, tmp_path, method, intervals) -> None:
    log = tmp_path / "battles.jsonl"
    log.write_text(battle_log())
    out = tmp_path / "board.jsonl"
    code, _, err = cli(["arena", "--input", str(log), "--output", str(out), "--method", method,
                        "--intervals", intervals, "--rounds", "20"])
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["model"] for r in rows] == [f"model-{i}" for i in range(5)]
    for r in rows:
        assert set(r) == {"model", "score", "lower", "upper", "rank", "votes"}
        assert r["lower"] < r["score"] < r["upper"]
    assert rows[0]["rank"] == 1 and rows[-1]["rank"] > 1


def test_stdin_to_stdout_and_no_intervals(cli) -> None:
    code, out, err = cli(["arena", "--input", "-", "--intervals", "none"], stdin=battle_log(500))
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5] and rows[0]["lower"] is None


def test_next_proposes_k_distinct_models_including_a_new_one(cli) -> None:
    code, out, err = cli(["arena", "next", "--input", "-", "--k", "3", "--models", "newcomer"],
                         stdin=battle_log(300))
    assert code == 0, err
    group = json.loads(out)["models"]
    assert len(group) == 3 and len(set(group)) == 3 and group[0] == "newcomer"


@pytest.mark.parametrize(("stdin", "argv", "code", "message"), [
    ('{"model_a": "x", "model_b": "y", "winner": "model_c"}\n', [], 1, "stdin line 1: unknown winner 'model_c'"),
    ('{"model_a": "x", "model_b": "x", "winner": "tie"}\n', [], 1, "line 1: model_a and model_b are the same"),
    ('{"model_a": "x"}\n', [], 1, "line 1: missing 'model_b', 'winner'"),
    ('\n{"models": ["x", "y"], "ranking": [1]}\n', [], 1, "line 2: 'ranking' must give one integer rank"),
    ('{"models": ["x", "y"], "winner": "z"}\n', [], 1, "line 1: a K-wise vote needs 'ranking' or a 'winner'"),
    ("not json\n", [], 1, "stdin line 1: not JSON"),
    ("", [], 1, "stdin: no battles or votes"),
    ('{"model_a": "x", "model_b": "y", "winner": "model_a"}\n', ["--intervals", "sandwich"], 1,
     "Bradley-Terry ratings are unbounded"),
    ('{"model_a": "x", "model_b": "y", "winner": "tie"}\n', ["--method", "elo", "--intervals", "sandwich"], 2,
     "--intervals: method 'elo' gives bootstrap, none"),
    ('{"model_a": "x", "model_b": "y", "winner": "tie"}\n', ["--rounds", "0"], 2, "--rounds must be >= 1"),
    ('{"model_a": "x", "model_b": "y", "winner": "tie"}\n', ["--level", "1.5"], 2, "--level must be in (0, 1)"),
])
def test_bad_input_is_one_line(cli, stdin, argv, code, message) -> None:
    got, out, err = cli(["arena", "--input", "-", *argv], stdin=stdin)
    assert (got, out) == (code, "")
    assert err.startswith("rerank: error: ") and message in err and err.count("\n") == 1, err


def test_missing_input_file_and_no_input(cli, tmp_path) -> None:
    code, _, err = cli(["arena", "--input", str(tmp_path / "absent.jsonl")])
    assert code == 1 and "cannot read --input" in err
    code, _, err = cli(["arena"])
    assert code == 2 and "give --input" in err
    code, _, err = cli(["arena", "next", "--input", "-", "--k", "5"],
                       stdin='{"model_a": "x", "model_b": "y", "winner": "tie"}\n')
    assert code == 2 and "--k must be between 2 and the number of models (2)" in err
