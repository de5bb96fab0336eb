"""Running the application: one process, or N processes sharing one listening socket.

Several processes use several cores (one Python process uses one). The parent binds
the socket and forks; each child runs its own event loop on it, and the kernel
spreads connections. Metrics switch to prometheus_client's multiprocess mode so
every worker reports the totals.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile

from .config import Settings

log = logging.getLogger("switchyard")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return
    import asyncio

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(settings: Settings, *, sock: socket.socket | None = None, check_backend: bool = True) -> None:
    """Serve in this process until SIGINT/SIGTERM."""
    from aiohttp import web

    from .app import create_app

    _install_uvloop()
    app = create_app(settings, check_backend=check_backend)
    log.info(
        "switchyard %s on %s:%d -> %s (router %s, threshold %g, strong %s, weak %s)",
        _version(), settings.http_host, settings.http_port, settings.backend_url,
        settings.router_type, settings.threshold, settings.strong_model, settings.weak_model,
    )
    web.run_app(
        app,
        host=None if sock else settings.http_host,
        port=None if sock else settings.http_port,
        sock=sock,
        reuse_address=True,
        handler_cancellation=True,
        access_log=None,
        print=None,
        backlog=2048,
    )


def run(settings: Settings) -> int:
    """Run the server with ``settings.workers`` processes; return the exit code."""
    configure_logging(settings.log_level)
    if settings.workers == 1:
        serve(settings)
        return 0
    return _run_workers(settings)


def _run_workers(settings: Settings) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="switchyard-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    sock = socket.create_server((settings.http_host, settings.http_port), reuse_port=False, backlog=2048)
    sock.set_inheritable(True)
    children: list[int] = []
    try:
        for index in range(settings.workers):
            pid = os.fork()
            if pid == 0:  # child
                code = 0
                try:
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    serve(settings, sock=sock, check_backend=index == 0)
                except BaseException:
                    log.exception("worker %d failed", index)
                    code = 1
                os._exit(code)
            children.append(pid)
        log.info("started %d workers: %s", len(children), ", ".join(map(str, children)))

        def forward(signum: int, frame: object) -> None:
            for child in children:
                try:
                    os.kill(child, signal.SIGTERM)
                except ProcessLookupError:
                    pass

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = 0
        for child in children:
            _, status = os.waitpid(child, 0)
            code = max(code, os.waitstatus_to_exitcode(status) if os.waitstatus_to_exitcode(status) > 0 else 0)
        return code
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _version() -> str:
    from . import __version__

    return __version__
