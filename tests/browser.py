"""A headless Chromium driven over the DevTools protocol, for tests of pages switchyard serves.

The protocol runs over ``--remote-debugging-pipe`` (NUL-separated JSON on the child's fds 3
and 4): no port to pick, no websocket client, no new dependency. One reader thread routes
answers to callers and collects events; each page records its JS exceptions and console
errors so tests can assert there were none.

    with Browser.launch(tmp_path) as browser:
        page = browser.new_page()
        page.goto("http://127.0.0.1:8000/dashboard")
        page.wait_for("document.body.dataset.state === 'live'")
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
INSTALL_HINT = "install Chromium with scripts/setup_browser.sh (Debian: apt-get install chromium), or set SWITCHYARD_CHROMIUM=/path/to/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # containers and root: the sandbox needs kernel features they often lack
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-dev-shm-usage",  # a small /dev/shm in containers crashes renderers
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--font-render-hinting=none",
    "--remote-debugging-pipe",
)
# Runs in the child: put the pipe ends on fds 3 and 4 (where Chromium expects them), then exec.
_EXEC_WITH_PIPES = (
    "import os,sys; a,b=int(sys.argv[1]),int(sys.argv[2]); os.dup2(a,3); os.dup2(b,4); os.close(a); os.close(b); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


class BrowserError(RuntimeError):
    """The browser answered a command with an error, died, or did not answer in time."""


def find_chromium() -> str | None:
    """``SWITCHYARD_CHROMIUM`` if set, else the first Chromium or Chrome on PATH."""
    named = os.environ.get("SWITCHYARD_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _high_fd(fd: int) -> int:
    """A close-on-exec copy of ``fd`` numbered 10 or more, so moving it to 3 or 4 clobbers nothing."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """One Chromium process and its protocol connection."""

    def __init__(self, process: subprocess.Popen, to_browser: int, from_browser: int, log: Path) -> None:
        self.process = process
        self.log = log
        self._out = os.fdopen(to_browser, "wb", buffering=0)
        self._in = os.fdopen(from_browser, "rb", buffering=0)
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()

    @classmethod
    @contextlib.contextmanager
    def launch(cls, workdir: Path, executable: str | None = None) -> Iterator[Browser]:
        """Start Chromium (profile and log under ``workdir``) and always stop it."""
        executable = executable or find_chromium()
        if executable is None:
            raise BrowserError("no Chromium found: " + INSTALL_HINT)
        workdir.mkdir(parents=True, exist_ok=True)
        commands_read, commands_write = os.pipe()
        answers_read, answers_write = os.pipe()
        child_in, child_out = _high_fd(commands_read), _high_fd(answers_write)
        args = [sys.executable, "-c", _EXEC_WITH_PIPES, str(child_in), str(child_out), executable,
                *FLAGS, f"--user-data-dir={workdir / 'profile'}", "about:blank"]
        log = workdir / "chromium.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       pass_fds=(child_in, child_out), start_new_session=True)
        os.close(child_in)
        os.close(child_out)
        browser = cls(process, commands_write, answers_read, log)
        try:
            browser.call("Browser.getVersion", timeout=30)
            yield browser
        finally:
            browser.close()

    # -- the protocol ---------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = self._in.read(65536)
            except OSError:
                data = b""
            if not data:
                break
            buffer += data
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._cond:
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and wait for its answer (its ``result``)."""
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        with self._write_lock:
            try:
                self._out.write(json.dumps(message).encode() + b"\0")
            except OSError as exc:
                raise BrowserError(f"{method}: the browser is gone ({exc}); see {self.log}") from exc
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise BrowserError(f"{method}: {'the browser is gone' if self._closed else 'no answer in time'}; see {self.log}")
                self._cond.wait(left)
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def wait_event(self, method: str, session: str | None = None, timeout: float = 30.0, since: int = 0) -> dict[str, Any]:
        """The first event ``method`` (of ``session``) at index ``since`` or later of ``events``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[since:]:
                    if event.get("method") == method and (session is None or event.get("sessionId") == session):
                        return event
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise BrowserError(f"no {method} event within {timeout} s; see {self.log}")
                self._cond.wait(left)

    def new_page(self, width: int = 1440, height: int = 900) -> Page:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, session, width, height)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=5)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for stream in (self._out, self._in):
            with contextlib.suppress(OSError):
                stream.close()


class Page:
    """One tab: navigate, evaluate JS, wait on a condition, take screenshots, collect errors."""

    def __init__(self, browser: Browser, session: str, width: int, height: int) -> None:
        self.browser = browser
        self.session = session
        self.width = width
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        return self.browser.call(method, params, self.session, timeout)

    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        since = len(self.browser.events)
        answer = self.call("Page.navigate", {"url": url}, timeout)
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session, timeout, since)

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JS expression (promises awaited), as JSON-compatible data."""
        answer = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, timeout)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} threw: {_describe_exception(answer['exceptionDetails'])}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy (its value is returned); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        raise BrowserError(f"{expression!r} still {value!r} after {timeout} s; page errors: {self.errors()}")

    def set_color_scheme(self, scheme: str) -> None:
        """Emulate ``prefers-color-scheme`` (light or dark)."""
        self.call("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})

    def screenshot(self, path: Path, full_page: bool = True) -> bytes:
        """A PNG of the page (the whole document with ``full_page``), also written to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        path.write_bytes(data)
        return data

    def errors(self, include_network: bool = True) -> list[str]:
        """JS exceptions, console.error/assert calls and (with ``include_network``) browser-logged errors
        such as failed loads, seen on this page so far."""
        found = []
        for event in list(self.browser.events):
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append("exception: " + _describe_exception(params.get("exceptionDetails", {})))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                texts = [str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])]
                found.append(f"console.{params['type']}: " + " ".join(texts))
            elif method == "Log.entryAdded" and include_network and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                found.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".rstrip())
        return found


def _describe_exception(details: dict[str, Any]) -> str:
    exception = details.get("exception", {})
    where = f" at line {details.get('lineNumber')}:{details.get('columnNumber')}" if "lineNumber" in details else ""
    return (exception.get("description") or details.get("text") or "unknown error") + where
