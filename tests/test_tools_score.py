"""``switchyard score``: round trip, stdin/stdout, prompt extraction as the server does, bad input by line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dynamo.nemo_switchyard import cli
from dynamo.nemo_switchyard.prompt import extract_prompt
from dynamo.nemo_switchyard.routers.learned import LearnedRouter
from dynamo.nemo_switchyard.routers.random import RandomRouter

TESTS = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "import sys; from dynamo.nemo_switchyard.cli import main; sys.exit(main())"]

ROWS = [
    {"id": "a", "prompt": "What is 2 + 2?"},
    {"id": 7, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Prove Fermat's little theorem."}],
     "extra": {"kept": [1, 2.5, None]}},
    {"id": "c", "messages": [{"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": "x"}}]}]},
    {"id": "d", "prompt": "Write a haiku about routers."},
]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("SWITCHYARD_"):
            monkeypatch.delenv(name)


def write(path: Path, rows: list, blank_lines: bool = False) -> Path:
    lines = [json.dumps(row) for row in rows]
    path.write_text(("\n\n  \n" if blank_lines else "\n").join(lines) + "\n")
    return path


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_round_trip_keeps_objects_and_order_and_adds_scores(tmp_path):
    source = write(tmp_path / "prompts.jsonl", ROWS, blank_lines=True)
    out = tmp_path / "scores.jsonl"
    assert cli.main(["score", "--input", str(source), "--output", str(out), "--quiet", "--batch-size", "2"]) == 0
    got = read(out)
    assert [{k: v for k, v in row.items() if k != "score"} for row in got] == ROWS
    texts = [extract_prompt("chat" if "messages" in row else "completions", row) for row in ROWS]
    assert texts[1] == "Prove Fermat's little theorem." and texts[2] == "Describe"  # the server's chat extraction
    assert [row["score"] for row in got] == LearnedRouter.from_config().score_batch(texts)  # the default router
    assert all(isinstance(row["score"], float) and 0.0 <= row["score"] <= 1.0 for row in got)


def test_conversation_scope_and_router_options_as_the_server_reads_them(tmp_path):
    source = write(tmp_path / "prompts.jsonl", ROWS)
    out = tmp_path / "scores.jsonl"
    argv = ["score", "-i", str(source), "-o", str(out), "-q", "--router-type", "random", "--prompt-scope", "conversation",
            "--router-options", '{"random": {"seed": 7}}']
    assert cli.main(argv) == 0
    texts = [extract_prompt("chat" if "messages" in row else "completions", row, "conversation") for row in ROWS]
    assert texts[1] == "Be brief.\nProve Fermat's little theorem."
    assert [row["score"] for row in read(out)] == RandomRouter(seed=7).score_batch(texts)
    # --random-seed applies when the options do not set a seed, as in the server.
    assert cli.main(["score", "-i", str(source), "-o", str(out), "-q", "--router-type", "random", "--random-seed", "3"]) == 0
    plain = [extract_prompt("chat" if "messages" in row else "completions", row) for row in ROWS]
    assert [row["score"] for row in read(out)] == RandomRouter(seed=3).score_batch(plain)


def test_stdin_to_stdout_in_a_real_process(tmp_path):
    data = "".join(json.dumps(row) + "\n" for row in ROWS).encode()
    done = subprocess.run([*CLI, "score", "--router-type", "random", "--input", "-", "--output", "-"], input=data, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["id"] for row in got] == ["a", 7, "c", "d"]
    assert all(0.0 <= row["score"] < 1.0 for row in got)
    assert b"\r" not in done.stderr  # no progress bar off a terminal


def test_prompt_without_text_gets_null_like_the_server_falls_back(tmp_path):
    rows = [{"id": 1, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            {"id": 2, "messages": [{"role": "assistant", "content": "no user turn"}]}, {"id": 3, "prompt": "  "}, {"id": 4, "prompt": "hi"}]
    out = tmp_path / "scores.jsonl"
    assert cli.main(["score", "-i", str(write(tmp_path / "p.jsonl", rows)), "-o", str(out), "-q"]) == 0
    assert [row["score"] is None for row in read(out)] == [True, True, True, False]


def test_custom_router_by_class_path(tmp_path):
    out = tmp_path / "scores.jsonl"
    source = write(tmp_path / "p.jsonl", [{"id": i, "prompt": f"{i / 10}"} for i in range(10)])
    assert cli.main(["score", "-i", str(source), "-o", str(out), "-q", "--router-type", "test_tools_calibrate:PromptNumberRouter"]) == 0
    assert [row["score"] for row in read(out)] == [i / 10 for i in range(10)]


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"id": 1, "prompt": "ok"}\n\n{"id": 2}\n', 'prompts.jsonl:3: missing "prompt" or "messages"'),
        ('{"id": 1, "prompt": "ok"}\nnot json\n', "prompts.jsonl:2: not valid JSON"),
        ('{"id": 1, "prompt": "ok",\n', "prompts.jsonl:1: not valid JSON"),
        ("[1, 2]\n", "prompts.jsonl:1: expected a JSON object, got an array"),
        ('"a string"\n', "prompts.jsonl:1: expected a JSON object, got a string"),
        ('{"id": 1, "prompt": "ok"}\n{"prompt": "no id"}\n', 'prompts.jsonl:2: missing "id"'),
        ('{"id": 1, "messages": "not a list"}\n', "prompts.jsonl:1: 'messages' must be a list of messages"),
        ('{"id": 1, "prompt": 42}\n', 'prompts.jsonl:1: "prompt" must be a string, not a number'),
        ("\n\n", "prompts.jsonl: no prompts"),
    ],
)
def test_bad_input_names_the_line_and_writes_nothing(tmp_path, monkeypatch, capsys, content, message):
    monkeypatch.chdir(tmp_path)
    Path("prompts.jsonl").write_text(content)
    assert cli.main(["score", "--input", "prompts.jsonl", "--output", "scores.jsonl", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"switchyard: error: {message}"), err
    assert len(err.strip().splitlines()) == 1
    assert not Path("scores.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["prompts.jsonl"]  # no temporary file left either


def test_missing_file_unknown_router_and_broken_router_are_one_line_errors(tmp_path, capsys):
    assert cli.main(["score", "-i", str(tmp_path / "nope.jsonl"), "-o", "-"]) == 2
    assert "cannot read" in capsys.readouterr().err
    source = str(write(tmp_path / "p.jsonl", ROWS))
    assert cli.main(["score", "-i", source, "-o", "-", "--router-type", "nope"]) == 2
    assert "unknown router 'nope'" in capsys.readouterr().err
    assert cli.main(["score", "-i", source, "-o", str(tmp_path / "o.jsonl"), "--router-type", "routers_for_tests:FailingRouter"]) == 2
    assert "model weights are on fire" in capsys.readouterr().err
    assert cli.main(["score", "-i", source, "-o", str(tmp_path / "o.jsonl"), "--router-type", "routers_for_tests:NanRouter"]) == 2
    assert "outside [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_gzip_in_and_out(tmp_path):
    import gzip

    source = tmp_path / "p.jsonl.gz"
    source.write_bytes(gzip.compress("".join(json.dumps(row) + "\n" for row in ROWS).encode()))
    out = tmp_path / "s.jsonl.gz"
    assert cli.main(["score", "-i", str(source), "-o", str(out), "-q", "--router-type", "random"]) == 0
    assert [json.loads(line)["id"] for line in gzip.decompress(out.read_bytes()).splitlines()] == ["a", 7, "c", "d"]


def test_help_lists_the_tools_and_their_flags(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    for command in ("score", "calibrate", "eval", "train"):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        text = capsys.readouterr().out
        assert "--input" in text and "--quiet" in text
        if command != "train":
            assert "--router-type" in text and "SWITCHYARD_ROUTER_TYPE" in text and "--checkpoint-path" in text
    with pytest.raises(SystemExit):
        cli.main(["calibrate", "--help"])
    assert "Ties:" in capsys.readouterr().out
