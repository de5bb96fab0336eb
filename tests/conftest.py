"""Shared fixtures: a fake backend process and switchyard processes in front of it."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from processes import fake_backend_command, free_port, running, switchyard_command


@dataclass
class Server:
    url: str
    log: Path
    process: object


@pytest.fixture(scope="session")
def fake_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One fake backend for the whole session; tests reset its log as they need."""
    port = free_port()
    log = tmp_path_factory.mktemp("fake") / "backend.log"
    with running(fake_backend_command(port), f"http://127.0.0.1:{port}/_fake/log", log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def reset_backend(fake_backend: str) -> str:
    urllib.request.urlopen(urllib.request.Request(fake_backend + "/_fake/reset", method="POST"), timeout=5).read()
    return fake_backend


@pytest.fixture(scope="session")
def start_switchyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Factory: start a switchyard process with the given flags (stopped at session end)."""
    stack = ExitStack()

    def start(*flags: str, backend: str, env: dict[str, str] | None = None, strong: str = "strong-model", weak: str = "weak-model") -> Server:
        port = free_port()
        log = tmp_path_factory.mktemp("switchyard") / "switchyard.log"
        args = switchyard_command(
            "--http-host", "127.0.0.1", "--http-port", str(port), "--backend-url", backend,
            "--strong-model", strong, "--weak-model", weak, *flags,
        )
        process = stack.enter_context(running(args, f"http://127.0.0.1:{port}/health", log, env=env))
        return Server(f"http://127.0.0.1:{port}", log, process)

    with stack:
        yield start


@pytest.fixture(scope="session")
def proxy(start_switchyard: Callable[..., Server], fake_backend: str) -> Server:
    """A switchyard in front of the fake backend, with the random router (seed 0)."""
    return start_switchyard("--router-type", "random", backend=fake_backend)
