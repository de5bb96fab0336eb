"""``switchyard train``: runs the learned router's training and writes a checkpoint (skipped until it exists)."""

from __future__ import annotations

import importlib.util
import json
import random
import sys

import pytest

from dynamo.nemo_switchyard import cli

TRAINING = "dynamo.nemo_switchyard.training"


def labeled(path, n: int = 300):
    rng = random.Random(3)
    topics = ["prove the theorem about primes", "what is the capital of France", "write a python function to sort a list",
              "hi there", "solve the integral of x squared", "translate hello to Spanish"]
    with open(path, "w") as f:
        for i in range(n):
            topic = topics[i % len(topics)]
            hard = "prove" in topic or "integral" in topic or "python" in topic
            f.write(json.dumps({"id": f"t{i}", "prompt": f"{topic} #{i}",
                                "outcomes": {"strong-m": float(rng.random() < 0.9), "weak-m": float(rng.random() < (0.3 if hard else 0.85))}}) + "\n")
    return path


def test_missing_training_module_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, TRAINING, None)
    data = labeled(tmp_path / "labeled.jsonl", 20)
    assert cli.main(["train", "-q", "-i", str(data), "--strong", "strong-m", "--weak", "weak-m", "-o", str(tmp_path / "ckpt")]) == 2
    assert "training is not available" in capsys.readouterr().err


def test_bad_input_and_unknown_model_fail_before_training(tmp_path, capsys):
    data = tmp_path / "labeled.jsonl"
    data.write_text('{"prompt": "a", "outcomes": {"s": 1}}\n[]\n')
    assert cli.main(["train", "-q", "-i", str(data), "--strong", "s", "--weak", "w", "-o", str(tmp_path / "ckpt")]) == 2
    assert "labeled.jsonl:2: expected a JSON object, got an array" in capsys.readouterr().err
    data.write_text('{"prompt": "a", "outcomes": {"s": 1}}\n')
    assert cli.main(["train", "-q", "-i", str(data), "--strong", "s", "--weak", "w", "-o", str(tmp_path / "ckpt")]) == 2
    assert "no prompt has outcomes for both --strong s and --weak w" in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.skipif(importlib.util.find_spec(TRAINING) is None, reason="the learned router's training module is not there yet")
def test_train_writes_a_checkpoint_and_prints_the_report(tmp_path, capsys):
    data = labeled(tmp_path / "labeled.jsonl")
    out = tmp_path / "ckpt"
    assert cli.main(["train", "-q", "--json", "-i", str(data), "--strong", "strong-m", "--weak", "weak-m", "-o", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] > 0 and {"apgr", "cpt50", "cpt80"} <= set(report)
    assert out.is_dir() and any(out.iterdir())


def test_train_calls_train_checkpoint_and_prints_its_report(tmp_path, capsys, monkeypatch):
    """With a stand-in training module: what the CLI passes and prints (the real one is tested above when present)."""
    import types

    calls = []

    def train_checkpoint(rows, strong, weak, output_dir, progress=None):
        calls.append((rows, strong, weak, output_dir))
        progress("fitting", 1, 2)
        progress("fitting", 2, 2)
        from pathlib import Path

        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "head.json").write_text("{}")
        return {"n": len(rows), "apgr": 0.7123, "cpt50": 0.31, "cpt80": 0.62}

    monkeypatch.setitem(sys.modules, TRAINING, types.SimpleNamespace(train_checkpoint=train_checkpoint))
    data = labeled(tmp_path / "labeled.jsonl", 30)
    with open(data, "a") as f:
        f.write(json.dumps({"id": "chat", "messages": [{"role": "user", "content": "from a chat"}], "outcomes": {"strong-m": 1, "weak-m": 0}}) + "\n")
    out = tmp_path / "ckpt"
    assert cli.main(["train", "-i", str(data), "--strong", "strong-m", "--weak", "weak-m,weak-alias", "-o", str(out)]) == 0
    (rows, strong, weak, output_dir), = calls
    assert strong == "strong-m" and weak == ["weak-m", "weak-alias"] and output_dir == str(out)
    assert len(rows) == 31 and rows[-1]["prompt"] == "from a chat" and "line" not in rows[0]
    text = capsys.readouterr().out
    assert f"wrote checkpoint {out} (trained on 31 prompts)" in text
    assert "APGR      0.7123" in text and "CPT(50%)  31.0%" in text and "CPT(80%)  62.0%" in text
