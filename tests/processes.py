"""Start real server processes for end-to-end tests, and always stop them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_request(
    base: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, list[str]], bytes]:
    """One raw HTTP/1.1 exchange: (status, lower-case header name -> its values, body bytes)."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        data = response.read()
        got: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            got.setdefault(name.lower(), []).append(value)
        return response.status, got, data
    finally:
        connection.close()


def wait_for(url: str, process: subprocess.Popen, timeout: float = 30.0, log: Path | None = None) -> None:
    """Poll ``url`` until it answers (any status) or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}:\n{log.read_text() if log else ''}")
        try:
            http_get(url, timeout=1.0)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{log.read_text() if log else ''}")


@contextlib.contextmanager
def running(args: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None, timeout: float = 30.0) -> Iterator[subprocess.Popen]:
    """Run a command in its own process group until the block ends; wait for ``ready_url``."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True, env={**os.environ, **(env or {})}
        )
    try:
        wait_for(ready_url, process, timeout, log)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> int | None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def switchyard_command(*flags: str) -> list[str]:
    return [sys.executable, "-m", "dynamo.nemo_switchyard", *flags]


def fake_backend_command(port: int, *models: str, fail_models: tuple[str, ...] = (), fail_mode: str = "reset") -> list[str]:
    command = [sys.executable, str(ROOT / "tests" / "fake_backend.py"), "--port", str(port), "--models", *(models or ("strong-model", "weak-model"))]
    if fail_models:
        command += ["--fail-models", *fail_models, "--fail-mode", fail_mode]
    return command


def backend_log(base_url: str) -> dict:
    return json.loads(http_get(base_url + "/_fake/log")[1])
