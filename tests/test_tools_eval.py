"""``switchyard eval``: APGR / CPT through the CLI, checked against evaluation.py, custom routers and a shared set."""

from __future__ import annotations

import gzip
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from dynamo.nemo_switchyard import cli, evaluation
from dynamo.nemo_switchyard.routers.base import Router
from dynamo.nemo_switchyard.routers.learned import LearnedRouter

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "routing"


class OracleRouter(Router):
    """Reads the answer key hidden in the synthetic prompts: 'hard' prompts need the strong model."""

    name = "oracle"
    inline = True

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return [0.9 if prompt.startswith("hard") else 0.1 for prompt in prompts]


class ConstantRouter(Router):
    name = "constant"
    inline = True

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return [0.5 for _ in prompts]


def synthetic(path: Path, n: int = 1000, hard_share: float = 0.1) -> Path:
    """Strong is always right; weak is right on easy prompts only. Aliased names, a row without the weak model."""
    rng = random.Random(1)
    lines = []
    for i in range(n):
        hard = rng.random() < hard_share
        strong_name = "big-v1" if i % 2 else "Big-V1-Instruct"
        lines.append({"id": f"s-{i}", "set": "synthetic", "prompt": f"{'hard' if hard else 'easy'} question number {i}",
                      "outcomes": {strong_name: 1.0, "small": 0.0 if hard else 1.0, "other": 0.5}})
    lines.append({"id": "no-weak", "prompt": "hard one", "outcomes": {"big-v1": 1.0}})
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as f:
        f.write("".join(json.dumps(line) + "\n" for line in lines))
    return path


def run_eval(capsys, *argv: str) -> dict:
    assert cli.main(["eval", "--json", "-q", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_oracle_like_router_near_one_random_near_half_constant_exactly_half(tmp_path, capsys):
    data = str(synthetic(tmp_path / "labeled.jsonl.gz"))
    pair = ["--strong", "big-v1,Big-V1-Instruct", "--weak", "small"]
    oracle = run_eval(capsys, "--router-type", "test_tools_eval:OracleRouter", "-i", data, *pair)
    assert oracle["n"] == 1000 and oracle["skipped"] == 1
    assert oracle["q_strong"] == 1.0 and oracle["apgr"] > 0.93
    assert oracle["apgr"] == pytest.approx(oracle["oracle_apgr"])
    assert oracle["cpt50"] < 0.1 and oracle["cpt80"] < 0.15
    rand = run_eval(capsys, "--router-type", "random", "-i", data, *pair)
    assert 0.4 < rand["apgr"] < 0.6
    assert 0.35 < rand["cpt50"] < 0.65
    constant = run_eval(capsys, "--router-type", "test_tools_eval:ConstantRouter", "-i", data, *pair)
    assert constant["apgr"] == pytest.approx(0.5)  # ties split in expectation: exactly the random baseline
    assert [point["pgr"] for point in constant["curve"]] == pytest.approx([point["share"] for point in constant["curve"]])


def test_numbers_match_evaluation_module(tmp_path, capsys):
    data = synthetic(tmp_path / "labeled.jsonl", hard_share=0.4)
    got = run_eval(capsys, "--router-type", "random", "--random-seed", "9", "-i", str(data), "--strong", "Big-V1-Instruct,big-v1", "--weak", "small")
    rows = evaluation.load_labeled(str(data))
    prompts, qs, qw = evaluation.pair_rows(rows, ["Big-V1-Instruct", "big-v1"], "small")
    from dynamo.nemo_switchyard.routers.random import RandomRouter

    expected = evaluation.evaluate(RandomRouter(seed=9).score_batch(prompts), qs, qw)
    for key in ("n", "q_strong", "q_weak", "apgr", "cpt50", "cpt80"):
        assert got[key] == pytest.approx(expected[key]), key
    assert got["strong"] == "Big-V1-Instruct,big-v1"


def test_text_report_has_metrics_and_a_ten_percent_table(tmp_path, capsys):
    data = synthetic(tmp_path / "labeled.jsonl")
    assert cli.main(["eval", "-q", "--router-type", "test_tools_eval:OracleRouter", "-i", str(data), "--strong", "big-v1,Big-V1-Instruct",
                     "--weak", "small"]) == 0
    out = capsys.readouterr().out
    assert "APGR" in out and "CPT(50%)" in out and "CPT(80%)" in out
    table = out[out.index("strong calls"):].splitlines()[1:]
    assert len(table) == 11 and table[0].split()[0] == "0.0%" and table[-1].split()[:3] == ["100.0%", "1.0000", "1.000"]


def test_unknown_model_lists_the_models_in_the_file(tmp_path, capsys):
    data = synthetic(tmp_path / "labeled.jsonl")
    assert cli.main(["eval", "-q", "-i", str(data), "--strong", "gpt-5", "--weak", "small"]) == 2
    err = capsys.readouterr().err
    assert "no prompt has outcomes for both --strong gpt-5 and --weak small" in err and "small (1000)" in err


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"prompt": "a", "outcomes": {"s": 1, "w": 0}}\n{"prompt": "b"}\n', 'labeled.jsonl:2: missing "outcomes"'),
        ('{"prompt": "a", "outcomes": {"s": 1, "w": 0}}\n\n{"prompt": "b", "outcomes": {"s": "yes", "w": 0}}\n',
         "labeled.jsonl:3: outcome of 's' must be a number"),
        ('{"outcomes": {"s": 1, "w": 0}}\n', 'labeled.jsonl:1: missing "prompt" or "messages"'),
        ("{oops\n", "labeled.jsonl:1: not valid JSON"),
        ('{"prompt": "a", "outcomes": {"s": 1, "w": 1}}\n', "labeled.jsonl: strong and weak model have the same mean quality"),
    ],
)
def test_bad_labeled_input_names_the_line(tmp_path, monkeypatch, capsys, content, message):
    monkeypatch.chdir(tmp_path)
    Path("labeled.jsonl").write_text(content)
    assert cli.main(["eval", "-q", "-i", "labeled.jsonl", "--strong", "s", "--weak", "w"]) == 2
    assert capsys.readouterr().err.startswith(f"switchyard: error: {message}")


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    data = synthetic(tmp_path / "labeled.jsonl", hard_share=0.3)
    png = tmp_path / "curve.png"
    assert cli.main(["eval", "-q", "--router-type", "random", "-i", str(data), "--strong", "big-v1,Big-V1-Instruct", "--weak", "small",
                     "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_without_matplotlib_says_how_to_install_before_scoring(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    data = synthetic(tmp_path / "labeled.jsonl")
    assert cli.main(["eval", "-q", "-i", str(data), "--strong", "big-v1", "--weak", "small", "--plot", str(tmp_path / "x.png"),
                     "--router-type", "routers_for_tests:FailingRouter"]) == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[plot]"' in err and "fire" not in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.skipif(not (SHARED / "arena_hard_v1.jsonl.gz").exists(), reason="shared routing corpus not present")
def test_default_router_on_a_shared_set(capsys):
    path = SHARED / "arena_hard_v1.jsonl.gz"
    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    got = run_eval(capsys, "-i", str(path), "--strong", strong, "--weak", weak)  # the default router: learned
    assert got["router"] == "learned" and got["n"] > 250
    prompts, qs, qw = evaluation.pair_rows(evaluation.load_labeled(str(path)), strong, weak)
    expected = evaluation.evaluate(LearnedRouter.from_config().score_batch(prompts), qs, qw)
    assert got["apgr"] == pytest.approx(expected["apgr"]) and got["cpt50"] == pytest.approx(expected["cpt50"])
    assert 0.3 < got["apgr"] < 0.9
