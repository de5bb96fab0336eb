"""GET /dashboard: the page itself, and the page in a real headless Chromium in front of the real
switchyard process and the fake backend, drawing live traffic.

The browser tests need Chromium (scripts/setup_browser.sh installs it): they skip without one,
and fail instead with SWITCHYARD_REQUIRE_BROWSER=1. SWITCHYARD_UPDATE_SCREENSHOT=1 also copies
the screenshot to docs/dashboard.png. Waits poll the page for a condition, with a generous bound.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from dynamo.nemo_switchyard import dashboard

from browser import INSTALL_HINT, Browser, Page, find_chromium
from processes import ROOT, http_get, http_request

PRICES = json.dumps({"strong-model": {"input": 3, "output": 15}, "weak-model": [0.2, 0.6]})
CHARTS = ("rate", "share", "scores", "errors", "routing-latency", "ttfb", "ttft", "duration", "cost")
KEY = "sk-dashboard-test-key-0123456789"
UPDATE_SCREENSHOT = os.environ.get("SWITCHYARD_UPDATE_SCREENSHOT") == "1"  # also write docs/dashboard.png
# Each chart's data-points, once every chart (but cost when unpriced) draws data and the page is live.
CHARTS_READY = """(() => {
  const charts = [...document.querySelectorAll('[data-chart]')];
  const points = Object.fromEntries(charts.map((c) => [c.dataset.chart, Number(c.dataset.points)]));
  const needed = charts.filter((c) => %s || c.dataset.chart !== 'cost');
  const ready = document.body.dataset.state === 'live' && needed.length > 0 && needed.every((c) => Number(c.dataset.points) > 0);
  return ready ? points : null;
})()"""


# -- the page as served ----------------------------------------------------------


def test_page_is_self_contained_html() -> None:
    body, content_type = dashboard.page()
    assert content_type == b"text/html; charset=utf-8"
    assert body.startswith(b"<!doctype html>")
    # Nothing loaded from elsewhere: no external scripts, styles, fonts or images.
    assert not re.search(rb"""<script[^>]+src=|<link[^>]+stylesheet|@import|url\(\s*['"]?(https?:)?//""", body)
    assert not re.search(rb"""(src|href)\s*=\s*["']?(https?:)?//""", body)
    assert body.count(b"<script>") == 1 and body.count(b"<style>") == 1


def test_headers_pin_the_inline_code_by_hash() -> None:
    body, _ = dashboard.page()
    headers = dict(dashboard.headers())
    policy = headers[b"Content-Security-Policy"].decode()
    for tag in ("script", "style"):
        content = re.search(rf"<{tag}>(.*?)</{tag}>".encode(), body, re.DOTALL)
        assert content is not None
        digest = base64.b64encode(hashlib.sha256(content.group(1)).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert headers[b"Content-Type"] == dashboard.CONTENT_TYPE
    assert headers[b"Referrer-Policy"] == b"no-referrer"
    assert dashboard.headers() is not dashboard.headers()  # a fresh list: callers may append


# -- in a browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        if os.environ.get("SWITCHYARD_REQUIRE_BROWSER") == "1":
            pytest.fail("SWITCHYARD_REQUIRE_BROWSER=1 but no Chromium: " + INSTALL_HINT)
        pytest.skip("no Chromium: " + INSTALL_HINT)
    return found


@functools.cache
def cli_help() -> str:
    return subprocess.run([sys.executable, "-m", "dynamo.nemo_switchyard", "--help"], capture_output=True, text=True, cwd=ROOT, check=False).stdout


class Traffic(threading.Thread):
    """A steady mix until stopped: routed chat (some streaming), empty prompts (fallback),
    backend errors and passthrough. Unexpected answers are kept in ``problems``."""

    CYCLE = ("routed", "routed", "stream", "routed", "empty", "routed", "stream", "error", "passthrough", "routed")
    EXPECTED: ClassVar[dict[str, int]] = {"routed": 200, "stream": 200, "empty": 200, "error": 500, "passthrough": 200}

    def __init__(self, base: str) -> None:
        super().__init__(name="dashboard-traffic", daemon=True)
        self.base = base
        self.halt = threading.Event()
        self.sent: collections.Counter[str] = collections.Counter()
        self.problems: list[str] = []

    def run(self) -> None:
        rng = random.Random(7)
        index = 0
        while not self.halt.is_set():
            kind = self.CYCLE[index % len(self.CYCLE)]
            index += 1
            body: dict = {"model": "auto", "messages": [{"role": "user", "content": f"question {index}: {rng.random():.6f}"}]}
            headers = {"x-fake-delay": f"{rng.uniform(0.0, 0.03):.3f}"}
            if kind == "stream":
                body["stream"] = True
            elif kind == "empty":
                body["messages"][0]["content"] = ""
            elif kind == "error":
                headers["x-fake-status"] = "500"
            elif kind == "passthrough":
                body["model"] = "weak-model"
            try:
                status, _, _ = http_request(self.base, "POST", "/v1/chat/completions", json.dumps(body).encode(), headers, timeout=10)
            except OSError as exc:
                self.problems.append(f"{kind}: {exc!r}")
            else:
                if status != self.EXPECTED[kind]:
                    self.problems.append(f"{kind}: HTTP {status}")
            self.sent[kind] += 1
            self.halt.wait(0.01)

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    with Browser.launch(tmp_path / "chromium", chromium) as launched:
        yield launched


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def wait_state(page: Page, wanted: str) -> None:
    page.wait_for(f"document.body.dataset.state === {json.dumps(wanted)}", timeout=30)


def test_dashboard_draws_live_traffic(browser: Browser, start_switchyard: Callable, reset_backend: str, tmp_path: Path) -> None:
    priced = "--prices" in cli_help()
    flags = ["--router-type", "random", *(["--prices", PRICES] if priced else [])]
    server = start_switchyard(*flags, backend=reset_backend)
    status, headers, body = http_request(server.url, "GET", "/dashboard")
    assert status == 200, f"GET /dashboard answered {status}: is the route wired in app.py?"
    assert body == dashboard.page()[0]
    # The Content-Security-Policy (scripts and styles pinned by hash) and the other headers go out too.
    absent = [(name, value) for name, value in dashboard.headers() if headers.get(name.decode().lower()) != [value.decode()]]
    assert not absent, f"GET /dashboard lacks these headers (answer with dashboard.headers()): {absent}"

    traffic = Traffic(server.url)
    traffic.start()
    try:
        page = browser.new_page(1440, 900)
        page.set_color_scheme("dark")
        page.goto(server.url + "/dashboard")
        points = page.wait_for(CHARTS_READY % ("true" if priced else "false"), timeout=60)
        assert set(points) == set(CHARTS)
        # The breakdowns reached the page: a fallback reason, errors, tokens by model.
        page.wait_for("document.querySelector('#t-fallbacks').textContent.includes('empty prompt')", timeout=30)
        page.wait_for("!document.querySelector('#kpi-errors-foot').textContent.startsWith('0 errors')", timeout=30)
        page.wait_for("document.querySelector('#t-tokens').textContent.includes('weak-model')", timeout=30)
        # A few seconds of history to look at (a minute for the screenshot in the docs).
        page.wait_for(f"Number(document.body.dataset.samples) >= {60 if UPDATE_SCREENSHOT else 8}", timeout=120)
    finally:
        traffic.stop()
    assert not traffic.problems, traffic.problems[:10]
    assert all(traffic.sent[kind] for kind in Traffic.EXPECTED), traffic.sent

    threshold = page.evaluate("(document.querySelector('[data-chart=scores] .threshold') || {dataset: {}}).dataset.value")
    assert threshold is not None, "no threshold marker in the score histogram"
    assert float(threshold) == json.loads(http_get(server.url + "/stats")[1])["threshold"]
    assert page.evaluate("document.querySelectorAll('[data-chart=scores] rect.bar').length") > 0

    saving = page.evaluate("({text: document.querySelector('#saving').textContent, value: document.querySelector('#saving').dataset.value,"
                           " state: document.querySelector('#kpi-saving').dataset.state, foot: document.querySelector('#saving-foot').textContent})")
    if priced:
        assert saving["state"] == "priced", saving
        assert re.fullmatch(r"−?(<)?\$[0-9][0-9.,k]*", saving["text"]), saving
        assert float(saving["value"]) >= 0, saving
        assert page.evaluate("document.querySelector('#chart-cost').dataset.state") == "priced"
    else:
        assert saving["state"] == "unpriced" and "no prices configured" in saving["foot"], saving
        assert page.evaluate("document.querySelector('#chart-cost').dataset.state") == "unpriced"

    # With the traffic stopped, the page catches up with /stats exactly.
    total = json.loads(http_get(server.url + "/stats")[1])["total"]
    page.wait_for(f"document.querySelector('#kpi-total').dataset.value === '{total}'", timeout=30)

    # Hovering a chart shows its values.
    box = page.evaluate("(() => { const r = document.querySelector('#chart-rate svg.plot').getBoundingClientRect();"
                        " return {x: r.left + r.width * 0.9, y: r.top + r.height / 2}; })()")
    page.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": box["x"], "y": box["y"]})
    page.wait_for("!document.querySelector('#tip').hidden && document.querySelector('#tip').textContent.includes('strong')", timeout=10)
    page.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 5, "y": 5})

    shot = tmp_path / "dashboard.png"
    width, height = png_size(page.screenshot(shot))
    assert width == 1440 and height > 900
    page.set_color_scheme("light")
    png_size(page.screenshot(tmp_path / "dashboard-light.png"))
    if UPDATE_SCREENSHOT:
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")
    assert page.errors() == []


def test_dashboard_asks_for_the_key(browser: Browser, start_switchyard: Callable, fake_backend: str) -> None:
    if "dashboard" not in cli_help():
        pytest.skip("--open-endpoints has no 'dashboard' yet")
    server = start_switchyard("--router-type", "random", "--api-key", KEY, "--open-endpoints", "health,ready,dashboard", backend=fake_backend)
    page = browser.new_page(1280, 800)
    banner = "document.getElementById('banner').textContent"

    page.goto(server.url + "/dashboard")
    wait_state(page, "unauthorized")
    assert "needs an API key" in page.evaluate(banner) and "?key=" in page.evaluate(banner)

    page.goto(server.url + "/dashboard?key=not-the-key")
    wait_state(page, "unauthorized")
    assert "rejected" in page.evaluate(banner)

    page.goto(server.url + "/dashboard?key=" + KEY)
    wait_state(page, "live")
    assert "key=" not in page.evaluate("location.href")  # moved out of the address bar
    assert page.evaluate("document.getElementById('banner').hidden")
    # The 401s above are logged by the browser as failed loads; nothing else may be.
    assert [error for error in page.errors() if "401" not in error] == []
