"""Running the application: one process, or N processes sharing one listening socket.

Several processes use several cores (one Python process uses one). The parent binds
the socket and forks; each child runs its own event loop on it, and the kernel
spreads connections. Metrics switch to prometheus_client's multiprocess mode so
every worker reports the totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile

from . import __version__, build
from .config import Settings

log = logging.getLogger("switchyard")

def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _serve(settings: Settings, sock: socket.socket | None, check_backend: bool) -> None:
    from .app import App
    from .protocol import HttpProtocol, protocol_factory

    app = App(settings)
    await app.startup(check_backend=check_backend)
    # What start-up loaded (modules, router weights) lives as long as the process: move it out
    # of the collector's view, so full collections under load scan only request objects.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    connections: set[HttpProtocol] = set()
    factory = protocol_factory(app.handle, max_body_size=settings.max_body_size, connections=connections, on_reject=app.rejected)
    if sock is not None:
        server = await loop.create_server(factory, sock=sock, backlog=2048)
    else:
        server = await loop.create_server(factory, settings.http_host, settings.http_port, backlog=2048, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "switchyard %s (%s) on %s:%d -> %s (router %s, threshold %g, strong %s, weak %s)",
        __version__, build(), settings.http_host, settings.http_port, settings.backend_url,
        settings.router_type, settings.threshold, settings.strong_model, settings.weak_model,
    )
    await stop.wait()
    # Shutdown: /ready turns 503 at once; after --shutdown-delay (load balancers notice) the listener
    # closes (new connections are refused); requests in progress get --drain-timeout to finish, then
    # are cut. A second signal cuts them at once.
    hurry = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, hurry.set)
    app.draining = True
    log.info("stopping: /ready is 503; closing the listener in %gs, then draining for up to %gs", settings.shutdown_delay, settings.drain_timeout)
    if settings.shutdown_delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), settings.shutdown_delay)
    server.close()  # no new connections; requests in progress finish
    deadline = loop.time() + settings.drain_timeout
    while not all(connection.close_when_idle() for connection in list(connections)):
        if loop.time() >= deadline or hurry.is_set():
            busy = sum(not connection.idle for connection in connections)
            log.warning("drain over: cutting %d connection(s) still busy", busy)
            break
        await asyncio.sleep(0.05)
    for connection in list(connections):
        connection.abort()
    await app.shutdown()


def reserve_descriptors(limit: int = 65536) -> int:
    """Grow this process's file-descriptor table now to its open-files limit (at most ``limit``);
    return the size reserved (0 if the platform refused).

    Linux grows the table by doubling when a new descriptor does not fit, and in a process with
    threads (the router's, libuv's resolver) each growth waits for an RCU grace period: 10-20 ms
    on the reference VM, during which the event loop, stuck in accept() or socket(), relays
    nothing. A thousand streams opening (a client and a backend connection each) crossed 512,
    1,024 and 2,048 descriptors in their first second and stalled every stream that many times.
    The table never shrinks, so doing it once at start costs ~8 bytes per descriptor and no stall.
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        size = limit if soft == resource.RLIM_INFINITY else min(soft, limit)
        if size <= 64:  # the table every process starts with
            return 0
        try:
            os.fstat(size - 1)
            return size  # in use (inherited): the table is already that large, and dup2 would close it
        except OSError:
            pass
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(fd, size - 1, inheritable=False)  # the highest descriptor allowed: the kernel sizes the table for it
            os.close(size - 1)
        finally:
            os.close(fd)
        return size
    except (ImportError, OSError, ValueError):
        return 0


def serve(settings: Settings, *, sock: socket.socket | None = None, check_backend: bool = True) -> None:
    """Serve in this process until SIGINT/SIGTERM."""
    reserve_descriptors()
    loop = _new_loop()
    try:
        loop.run_until_complete(_serve(settings, sock, check_backend))
    finally:
        loop.close()


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
    sock = socket.create_server((settings.http_host, settings.http_port), backlog=2048)
    sock.set_inheritable(True)
    children: list[int] = []
    try:
        for index in range(settings.workers):
            pid = os.fork()
            if pid == 0:  # child
                code = 0
                try:
                    serve(settings, sock=sock, check_backend=index == 0)
                except BaseException:
                    log.exception("worker %d failed", index)
                    code = 1
                os._exit(code)
            children.append(pid)
        sock.close()  # the workers hold it; so the listener closes when they stop (new connections refused)
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
            code = max(code, os.waitstatus_to_exitcode(status))
        return code
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
