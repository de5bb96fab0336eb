"""Load-aware routing against the real Dynamo frontend and mocker workers of small capacity:
when the strong pool's queue grows past the limit, borderline prompts go to the weak model.

Skipped only when .venv-dynamo is missing and SWITCHYARD_REQUIRE_DYNAMO is unset.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator

import pytest

from dynamo.nemo_switchyard.routers.random import RandomRouter

from dynamo_stack import DynamoUnavailable, dynamo_stack
from processes import http_get
from processes import http_request as request

STRONG, WEAK = "strong-model", "weak-model"
MAX_QUEUE = 3


@pytest.fixture(scope="module")
def dynamo() -> Iterator[str]:
    try:
        # Two sequences at a time per worker, in real time: a burst of requests queues at the frontend.
        with dynamo_stack(STRONG, WEAK, speedup_ratio=1.0, mocker_args=["--max-num-seqs", "2"]) as url:
            yield str(url)
    except DynamoUnavailable as exc:
        if os.environ.get("SWITCHYARD_REQUIRE_DYNAMO"):
            raise
        pytest.skip(str(exc))


def prompt_scoring(low: float, high: float) -> str:
    router = RandomRouter(seed=0)
    return next(t for i in range(100_000) if low <= router.score_batch([t := f"load question {i}"])[0] < high)


def chat(text: str, model: str = "auto", max_tokens: int = 4) -> bytes:
    return json.dumps({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}).encode()


def routed(base: str, text: str) -> tuple[str, str]:
    status, headers, data = request(base, "POST", "/v1/chat/completions", chat(text), timeout=120)
    assert status == 200, data
    return headers["x-routellm-routed-model"][0], headers["x-switchyard-reason"][0]


def load_stats(base: str) -> dict:
    return json.loads(http_get(base + "/stats")[1])["load"]


def wait_until(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_borderline_prompts_leave_a_saturated_strong_pool(start_switchyard, dynamo):
    server = start_switchyard(
        "--router-type", "random", "--load-aware", "--load-max-queue", str(MAX_QUEUE), "--load-interval", "0.2",
        "--load-margin", "0.3", backend=dynamo,
    )
    borderline, clear = prompt_scoring(0.5, 0.75), prompt_scoring(0.85, 1.0)
    assert routed(server.url, borderline) == (STRONG, "score")  # idle: the score decides

    # Flood the strong pool straight at the frontend (not through switchyard).
    flood = [threading.Thread(target=request, args=(dynamo, "POST", "/v1/chat/completions", chat("x", STRONG, 400)),
                              kwargs={"timeout": 300}) for _ in range(24)]
    for thread in flood:
        thread.start()
    try:
        wait_until(lambda: (load_stats(server.url)["models"][STRONG]["queued"] or 0) > MAX_QUEUE)
        metrics = http_get(server.url + "/metrics")[1].decode()
        got = load_stats(server.url)
        assert got["state"] == "ok" and got["models"][STRONG]["saturated"] is True and got["models"][WEAK]["saturated"] is False
        assert routed(server.url, borderline) == (WEAK, "load")  # within the margin above the threshold: moved
        assert routed(server.url, clear) == (STRONG, "score")  # beyond the margin: stays (and queues)
        assert f'switchyard_backend_saturated{{model="{STRONG}"}} 1.0' in metrics
        assert 'switchyard_decision_reasons_total{reason="load"} 1.0' in http_get(server.url + "/metrics")[1].decode()
    finally:
        for thread in flood:
            thread.join(300)
    wait_until(lambda: not load_stats(server.url)["models"][STRONG]["saturated"])
    assert routed(server.url, borderline) == (STRONG, "score")  # drained: back to the score
    log = server.log.read_text()
    assert "backend pool of strong-model is saturated (queue" in log and "no longer saturated" in log
