"""scripts/launch.sh end to end on CPU: Dynamo's mocker stands in for vLLM (WORKER_MODULE=dynamo.mocker),
with a real Dynamo frontend and switchyard, on free ports. The script must route to both models, pass
its knobs on, stop every process it started on SIGTERM / SIGINT or when one of them dies, and refuse bad
settings before starting anything.

The end-to-end tests are skipped only when .venv-dynamo is missing and SWITCHYARD_REQUIRE_DYNAMO is
unset (scripts/test.sh sets it); the dry-run and settings tests need neither Dynamo nor a GPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dynamo_stack import DYNAMO_PYTHON, make_tiny_model
from processes import free_port, http_request

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "launch.sh"
STRONG, WEAK = "strong-model", "weak-model"
MARKER_VAR = "LAUNCH_TEST_MARKER"  # inherited by everything the script starts: finds leftovers
# A shell ignores SIGINT in the programs it runs in the background, and bash cannot trap a signal
# ignored at start: when pytest itself runs like that, its children would too. Reset, then exec.
DEFAULT_SIGINT_EXEC = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])"


def require_dynamo() -> None:
    """Skip (or fail, under SWITCHYARD_REQUIRE_DYNAMO) without the Dynamo venv, like test_e2e_dynamo."""
    if not DYNAMO_PYTHON.exists():
        message = f"{DYNAMO_PYTHON} not found; run scripts/setup_dynamo.sh"
        if os.environ.get("SWITCHYARD_REQUIRE_DYNAMO"):
            pytest.fail(message)
        pytest.skip(message)


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment minus settings a developer's shell could leak into the launch."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHYARD_", "DYN_", "STRONG_", "WEAK_", "WORKER_"))}
    for name in ("ROUTER_TYPE", "THRESHOLD", "CHECKPOINT_PATH", "FRONTEND_ARGS", "FRONTEND_HOST", "FRONTEND_PORT", "LAUNCH_RUN_DIR"):
        env.pop(name, None)
    return {**env, "SWITCHYARD_PYTHON": sys.executable, **extra}


# -- finding every process a launch started --------------------------------------------------------


def _proc_stat(pid: str) -> tuple[str, int, int] | None:
    """(state, process group, session) of a process, from /proc (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, _ppid, pgrp, session = stat[stat.rindex(")") + 2 :].split()[:4]
    return state, int(pgrp), int(session)


def _has_marker(pid: str, marker: str) -> bool:
    try:
        return f"{MARKER_VAR}={marker}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def leftovers(marker: str, groups: set[int]) -> list[str]:
    """Live processes that inherited the launch's marker, or sit in one of its process groups or sessions."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(entry.name)
        if stat is None or stat[0] == "Z":  # gone, or a zombie about to be reaped by its parent
            continue
        if stat[1] in groups or stat[2] in groups or _has_marker(entry.name, marker):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
                found.append(f"{entry.name}: {cmdline.decode(errors='replace')}")
    return found


def wait_until_none_left(marker: str, groups: set[int], timeout: float = 15.0) -> list[str]:
    """Poll until nothing is left (a process that exits is gone within moments), or give up and list them."""
    deadline = time.monotonic() + timeout
    while (left := leftovers(marker, groups)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


# -- running the script ----------------------------------------------------------------------------


@dataclass
class Launch:
    process: subprocess.Popen
    output: Path
    run_dir: Path
    marker: str
    url: str = ""
    pids: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def groups(self) -> set[int]:
        return {self.process.pid, *self.pids.values()}


def start_launch(tmp_path: Path, **extra: str) -> Launch:
    """Start launch.sh with the mocker on free ports (in its own session, like a terminal would)."""
    model = tmp_path / "model"
    if not (model / "tokenizer.json").exists():
        make_tiny_model(model)
    marker = uuid.uuid4().hex
    run_dir = tmp_path / "run"
    env = base_env(
        STRONG_MODEL=str(model),
        WEAK_MODEL=str(model),
        STRONG_SERVED_NAME=STRONG,
        WEAK_SERVED_NAME=WEAK,
        WORKER_MODULE="dynamo.mocker",
        WORKER_ARGS="--speedup-ratio 10",
        DYNAMO_PYTHON=str(DYNAMO_PYTHON),
        FRONTEND_PORT=str(free_port()),
        SWITCHYARD_HOST="127.0.0.1",
        SWITCHYARD_PORT=str(free_port()),
        START_TIMEOUT="120",
        LAUNCH_RUN_DIR=str(run_dir),
        **{MARKER_VAR: marker},
        **extra,
    )
    output = tmp_path / "launch.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", DEFAULT_SIGINT_EXEC, "bash", str(SCRIPT)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True,
        )
    return Launch(process, output, run_dir, marker)


def wait_ready(launch: Launch, timeout: float = 180.0) -> None:
    """Wait for the script's 'switchyard on URL' line (printed once /ready answered)."""
    deadline = time.monotonic() + timeout
    while "switchyard on " not in launch.text():
        if launch.process.poll() is not None:
            pytest.fail(f"launch.sh exited with {launch.process.returncode} before it was ready:\n{launch.text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"launch.sh not ready after {timeout}s:\n{launch.text()}")
        time.sleep(0.1)
    launch.url = launch.text().split("switchyard on ", 1)[1].split()[0]
    launch.pids = {p.stem: int(p.read_text()) for p in launch.run_dir.glob("*.pid")}


@contextlib.contextmanager
def launched(tmp_path: Path, **extra: str) -> Iterator[Launch]:
    """A started launch; whatever happens in the block, nothing it started outlives the test."""
    launch = start_launch(tmp_path, **extra)
    try:
        yield launch
    finally:
        if launch.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(launch.process.pid, signal.SIGTERM)
            try:
                launch.process.wait(60)
            except subprocess.TimeoutExpired:
                pass
        for group in launch.groups():  # a safety net only: the assertions are in the tests
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            launch.process.wait(10)


def chat(url: str, model: str) -> tuple[int, dict[str, list[str]], dict]:
    body = json.dumps({"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "Hello there"}]}).encode()
    status, headers, data = http_request(url, "POST", "/v1/chat/completions", body)
    return status, headers, json.loads(data) if status == 200 else {"raw": data.decode(errors="replace")}


def environ_of(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in items if b"=" in item)


# -- end to end ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_launch_routes_to_both_models_and_stops_everything_on_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    require_dynamo()
    with launched(tmp_path, ROUTER_TYPE="random", THRESHOLD="0.3", STRONG_GPUS="0,1", WEAK_GPUS="2") as launch:
        wait_ready(launch)
        assert set(launch.pids) == {"strong", "weak", "frontend", "switchyard"}, launch.text()
        for pid in launch.pids.values():
            assert os.getpgid(pid) == pid  # each in its own process group, stopped as a whole

        # router-random-0 scores everything >= 0 (strong), router-random-1 everything < 1 (weak).
        for model, expected in (("router-random-0", STRONG), ("router-random-1", WEAK)):
            status, headers, body = chat(launch.url, model)
            assert status == 200, body
            assert headers["x-routellm-routed-model"] == [expected]
            assert body["model"] == expected  # the mocker serving that name answered
        # The knobs reached switchyard and the workers.
        status, headers, _ = chat(launch.url, "auto")
        assert status == 200
        assert headers["x-switchyard-router"] == ["random"] and headers["x-switchyard-threshold"] == ["0.3"]
        assert environ_of(launch.pids["strong"])["CUDA_VISIBLE_DEVICES"] == "0,1"
        assert environ_of(launch.pids["weak"])["CUDA_VISIBLE_DEVICES"] == "2"

        launch.process.send_signal(signum)
        returncode = launch.process.wait(60)
        assert returncode == 128 + signum, launch.text()
        assert wait_until_none_left(launch.marker, launch.groups()) == [], launch.text()
        assert not list(launch.run_dir.glob("*.pid"))


def test_launch_stops_everything_when_a_component_dies(tmp_path: Path) -> None:
    require_dynamo()
    with launched(tmp_path) as launch:
        wait_ready(launch)
        os.killpg(launch.pids["weak"], signal.SIGKILL)
        returncode = launch.process.wait(60)
        assert returncode == 1
        assert f"weak (pid {launch.pids['weak']}) exited" in launch.text()
        assert wait_until_none_left(launch.marker, launch.groups()) == [], launch.text()


def test_a_worker_dying_during_start_up_fails_with_its_log(tmp_path: Path) -> None:
    require_dynamo()
    with launched(tmp_path, STRONG_WORKER_ARGS="--no-such-flag") as launch:
        returncode = launch.process.wait(120)
        text = launch.text()
        assert returncode != 0
        assert "ERROR: strong (pid" in text and "exited with status 2" in text
        assert "--no-such-flag" in text  # the worker's own complaint, from its log tail
        assert "switchyard on" not in text
        assert wait_until_none_left(launch.marker, launch.groups()) == [], text


# -- without Dynamo: commands and checks -----------------------------------------------------------


def run_script(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env=base_env(**extra), capture_output=True, text=True, timeout=60, cwd=ROOT)


def dry_run_commands(**extra: str) -> dict[str, list[str]]:
    result = run_script("--dry-run", **extra)
    assert result.returncode == 0, result.stderr
    commands = {}
    for line in result.stdout.splitlines():
        name, command = line.split(":", 1)
        commands[name] = shlex.split(command)
    return commands


def after(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


def test_dry_run_shows_the_vllm_commands() -> None:
    commands = dry_run_commands(
        STRONG_MODEL="meta-llama/Llama-3.1-70B-Instruct", STRONG_GPUS="0,1,2,3",
        WEAK_MODEL="meta-llama/Llama-3.1-8B-Instruct", WEAK_GPUS="4",
        THRESHOLD="0.3", ROUTER_TYPE="mf", CHECKPOINT_PATH="/models/mf", WEAK_WORKER_ARGS="--max-model-len 8192",
        FRONTEND_PORT="8123", SWITCHYARD_PORT="8124",
    )
    assert list(commands) == ["strong", "weak", "frontend", "switchyard"]  # the start order
    strong, weak = commands["strong"], commands["weak"]
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3" in strong and "CUDA_VISIBLE_DEVICES=4" in weak
    assert strong[strong.index("-m") + 1] == "dynamo.vllm"
    assert after(strong, "--model") == after(strong, "--served-model-name") == "meta-llama/Llama-3.1-70B-Instruct"
    assert after(strong, "--tensor-parallel-size") == "4" and after(weak, "--tensor-parallel-size") == "1"
    assert after(strong, "--endpoint") == "dyn://strong.backend.generate" and after(weak, "--endpoint") == "dyn://weak.backend.generate"
    assert after(weak, "--max-model-len") == "8192" and "--max-model-len" not in strong
    for words in (strong, weak, commands["frontend"]):
        assert after(words, "--discovery-backend") == "file"
        assert any(word.startswith("DYN_FILE_KV=") for word in words)  # a private discovery directory
    assert after(commands["frontend"], "--http-port") == "8123"
    switchyard = commands["switchyard"]
    assert after(switchyard, "--backend-url") == "http://127.0.0.1:8123" and after(switchyard, "--http-port") == "8124"
    assert after(switchyard, "--strong-model") == "meta-llama/Llama-3.1-70B-Instruct"
    assert (after(switchyard, "--threshold"), after(switchyard, "--router-type"), after(switchyard, "--checkpoint-path")) == ("0.3", "mf", "/models/mf")


def test_worker_cmd_template_fills_in_each_word() -> None:
    commands = dry_run_commands(
        STRONG_MODEL="/models/big one", WEAK_MODEL="small", STRONG_TP="2", STRONG_GPUS="0,1", WEAK_GPUS="",
        WORKER_CMD="{python} -m my.engine --model-path {model} --name {name} --tp {tp} --role {role}", DYNAMO_PYTHON="/opt/py",
    )
    strong = commands["strong"]
    start = strong.index("/opt/py")
    assert strong[start:] == [
        "/opt/py", "-m", "my.engine", "--model-path", "/models/big one", "--name", "/models/big one", "--tp", "2", "--role", "strong",
        "--endpoint", "dyn://strong.backend.generate", "--discovery-backend", "file", "--request-plane", "tcp",
    ]
    assert strong[start - 2 : start] == ["env", "CUDA_VISIBLE_DEVICES=0,1"]
    assert after(commands["weak"], "--role") == "weak" and after(commands["weak"], "--name") == "small"
    assert not any(word.startswith("CUDA_VISIBLE_DEVICES=") for word in commands["weak"])  # empty: inherited


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "set STRONG_MODEL and WEAK_MODEL"),
        ({"STRONG_MODEL": "a", "WEAK_MODEL": "a"}, "both served as 'a'"),
        ({"STRONG_MODEL": "a", "WEAK_MODEL": "b", "STRONG_GPUS": "0,1", "STRONG_TP": "4"}, "STRONG_TP=4 needs 4 GPUs"),
        ({"STRONG_MODEL": "a", "WEAK_MODEL": "b", "WORKER_MODULE": "dynamo.nope"}, "unknown WORKER_MODULE"),
        ({"STRONG_MODEL": "a", "WEAK_MODEL": "b", "DYNAMO_PYTHON": sys.executable}, "cannot import dynamo.frontend dynamo.vllm vllm"),
    ],
)
def test_bad_settings_stop_before_anything_starts(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    result = run_script(LAUNCH_RUN_DIR=str(tmp_path / "run"), **extra)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_switchyard_settings_are_checked_before_the_workers_load(tmp_path: Path) -> None:
    require_dynamo()  # the preflight imports dynamo.frontend first
    result = run_script(
        STRONG_MODEL="a", WEAK_MODEL="b", WORKER_MODULE="dynamo.mocker", DYNAMO_PYTHON=str(DYNAMO_PYTHON), THRESHOLD="1.5",
        LAUNCH_RUN_DIR=str(tmp_path / "run"),
    )
    assert result.returncode == 2
    assert "--threshold / SWITCHYARD_THRESHOLD: input should be less than or equal to 1" in result.stderr
    assert not (tmp_path / "run").exists()
