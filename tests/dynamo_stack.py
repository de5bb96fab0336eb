"""Start a real NVIDIA Dynamo stack (frontend + two mocker workers) for tests.

Plain helper module, no tests in it. Usage::

    from dynamo_stack import DynamoUnavailable, dynamo_stack

    try:
        with dynamo_stack() as base_url:          # "http://127.0.0.1:PORT"
            ...                                   # /v1/models lists both models
    except DynamoUnavailable as exc:
        pytest.skip(str(exc))

Needs ``.venv-dynamo`` (``scripts/setup_dynamo.sh``); raises
:class:`DynamoUnavailable` if it is missing, so callers can skip.

Isolation, so several stacks (or test workers) can run at once:

* discovery: the file backend reads its root from ``DYN_FILE_KV`` (default:
  the shared ``$TMPDIR/dynamo_store_kv``); each stack gets a fresh one;
* frontend HTTP port: a free port (retried on a bind race);
* TCP request plane and ZMQ event plane: OS-assigned ports by default (the
  ``DYN_TCP_RPC_PORT`` env var would pin one; we leave it unset), hosts pinned
  to 127.0.0.1 with ``DYN_TCP_RPC_HOST`` / ``DYN_EVENT_PLANE_HOST``;
* per-worker system server (``/metrics``, ``/health``): off by default;
  ``worker_metrics=True`` gives each mocker a free ``DYN_SYSTEM_PORT``
  (below 32768: Dynamo parses it as an i16).

The yielded value is a ``str`` (the base URL) with extra attributes:
``.run_dir`` (logs), ``.worker_metrics`` ({model: "http://127.0.0.1:P"}),
``.pids`` ({name: pid}).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DYNAMO_VENV = Path(os.environ.get("DYNAMO_VENV", ROOT / ".venv-dynamo"))
DYNAMO_PYTHON = DYNAMO_VENV / "bin" / "python"
MAKE_TINY_MODEL = ROOT / "scripts" / "make_tiny_model.py"


class DynamoUnavailable(RuntimeError):
    """The Dynamo venv is not installed; callers should pytest.skip."""


class DynamoStartError(RuntimeError):
    """The stack was installed but did not come up (message has log tails)."""


class StackURL(str):
    """The frontend base URL, with details of the running stack attached."""

    run_dir: Path
    worker_metrics: dict[str, str]
    pids: dict[str, int]


def dynamo_python() -> Path:
    """Return the Dynamo venv's python, or raise DynamoUnavailable."""
    if not DYNAMO_PYTHON.exists():
        raise DynamoUnavailable(f"{DYNAMO_PYTHON} not found; run scripts/setup_dynamo.sh")
    return DYNAMO_PYTHON


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_system_port() -> int:
    """A free port below 32768: Dynamo parses DYN_SYSTEM_PORT as an i16 (!),
    so OS-assigned ephemeral ports (32768+) are rejected at start-up."""
    rng = random.Random()
    for _ in range(200):
        candidate = rng.randrange(20000, 32768)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise RuntimeError("no free port below 32768 for DYN_SYSTEM_PORT")


def make_tiny_model(directory: Path) -> Path:
    """Write the tiny tokenizer/config model folder (see scripts/make_tiny_model.py)."""
    subprocess.run(
        [str(dynamo_python()), str(MAKE_TINY_MODEL), str(directory)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    return directory


def _listed_models(base_url: str) -> set[str]:
    with urllib.request.urlopen(base_url + "/v1/models", timeout=2) as resp:
        return {m.get("id") for m in json.load(resp).get("data", [])}


def _log_tails(run_dir: Path, lines: int = 30) -> str:
    parts = []
    for log in sorted(run_dir.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"----- last {lines} lines of {log.name} -----\n" + "\n".join(text))
    return "\n".join(parts)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_processes(procs: dict[str, subprocess.Popen], timeout: float = 10.0) -> None:
    """TERM every process group, KILL stragglers, reap, and verify all are gone."""
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # start_new_session: pgid == pid
    deadline = time.monotonic() + timeout
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    # The leaders are reaped; wait for any other member of each group.
    deadline = time.monotonic() + 5
    for proc in procs.values():
        while _group_alive(proc.pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                time.sleep(0.1)
                if _group_alive(proc.pid):
                    raise RuntimeError(f"process group {proc.pid} survived SIGKILL")
                break
            time.sleep(0.05)


def _start_once(
    run_dir: Path,
    model_dir: Path,
    strong: str,
    weak: str,
    port: int,
    speedup: float,
    worker_metrics: bool,
    timeout: float,
    frontend_args: Sequence[str],
    mocker_args: Sequence[str],
    env: Mapping[str, str] | None,
) -> tuple[StackURL, dict[str, subprocess.Popen]]:
    py = str(dynamo_python())
    kv = run_dir / "kv"
    shutil.rmtree(kv, ignore_errors=True)
    base_env = {
        **os.environ,
        "DYN_FILE_KV": str(kv),
        "DYN_TCP_RPC_HOST": "127.0.0.1",
        "DYN_EVENT_PLANE_HOST": "127.0.0.1",
        "DYN_SELF_HOST_METADATA": "0",
        "DYN_SDK_DISABLE_ANSI_LOGGING": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    for var in ("DYN_SYSTEM_PORT", "DYN_HTTP_PORT", "DYN_NAMESPACE", "DYN_DISCOVERY_BACKEND"):
        base_env.pop(var, None)
    common = ["--discovery-backend", "file", "--request-plane", "tcp"]
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "frontend": (
            [py, "-m", "dynamo.frontend", "--http-host", "127.0.0.1", "--http-port", str(port), *common, *frontend_args],
            {},
        )
    }
    metrics: dict[str, str] = {}
    for role, model in (("strong", strong), ("weak", weak)):
        env = {}
        if worker_metrics:
            sys_port = free_system_port()
            env = {
                "DYN_SYSTEM_PORT": str(sys_port),
                "DYN_SYSTEM_HOST": "127.0.0.1",
                # Without this the worker's /health may answer 503 "notready".
                "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS": '["generate"]',
            }
            metrics[model] = f"http://127.0.0.1:{sys_port}"
        commands[role] = (
            [
                py,
                "-m",
                "dynamo.mocker",
                "--model-path",
                str(model_dir),
                "--model-name",
                model,
                "--endpoint",
                f"dyn://{role}.backend.generate",
                "--speedup-ratio",
                str(speedup),
                *common,
                *mocker_args,
            ],
            env,
        )

    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, (args, extra_env) in commands.items():
            with open(run_dir / f"{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(
                    args,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=run_dir,
                    env={**base_env, **extra_env},
                    start_new_session=True,
                )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
            if dead:
                raise DynamoStartError(f"exited during start-up: {dead}\n{_log_tails(run_dir)}")
            try:
                ids = _listed_models(base_url)
                if {strong, weak} <= ids:
                    break
                last = f"/v1/models lists {sorted(ids)}"
            except (OSError, ValueError) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise DynamoStartError(f"not ready after {timeout:g}s ({last})\n{_log_tails(run_dir)}")
            time.sleep(0.1)
    except BaseException:
        stop_processes(procs)
        raise
    url = StackURL(base_url)
    url.run_dir = run_dir
    url.worker_metrics = metrics
    url.pids = {n: p.pid for n, p in procs.items()}
    return url, procs


@contextlib.contextmanager
def dynamo_stack(
    strong: str = "strong-model",
    weak: str = "weak-model",
    port: int | None = None,
    *,
    speedup_ratio: float = 10.0,
    worker_metrics: bool = False,
    timeout: float = 60.0,
    model_dir: Path | None = None,
    keep_run_dir: bool | None = None,
    frontend_args: Sequence[str] = (),
    mocker_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[StackURL]:
    """Run frontend + two mockers until the block ends; yield the base URL.

    The strong model is served from namespace ``strong`` (dyn://strong.backend.generate)
    and the weak one from ``weak``. Every mocker request needs ``max_tokens``.
    ``frontend_args`` / ``mocker_args`` are appended to the commands (e.g.
    ``mocker_args=["--max-num-seqs", "2"]`` to make requests queue); ``env`` is
    added to all three processes (e.g. ``{"DYN_ENABLE_ANTHROPIC_API": "1"}``).
    The run dir (logs) is removed after a clean exit unless ``keep_run_dir`` or
    DYNAMO_KEEP_RUN_DIR=1; it is kept when start-up or the block fails.
    """
    dynamo_python()  # raise DynamoUnavailable before creating anything
    if keep_run_dir is None:
        keep_run_dir = os.environ.get("DYNAMO_KEEP_RUN_DIR") == "1"
    run_dir = Path(tempfile.mkdtemp(prefix="dynamo-stack-"))
    ok = False
    try:
        if model_dir is None:
            model_dir = make_tiny_model(run_dir / "model")
        attempts = 1 if port is not None else 3
        for attempt in range(attempts):
            try:
                url, procs = _start_once(
                    run_dir,
                    model_dir,
                    strong,
                    weak,
                    port or free_port(),
                    speedup_ratio,
                    worker_metrics,
                    timeout,
                    frontend_args,
                    mocker_args,
                    env,
                )
                break
            except DynamoStartError as exc:
                # A free port can be taken between choosing and binding; retry.
                if attempt + 1 == attempts or "in use" not in str(exc).lower():  # EADDRINUSE
                    raise
        try:
            yield url
        finally:
            stop_processes(procs)
        ok = True
    finally:
        if ok and not keep_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
