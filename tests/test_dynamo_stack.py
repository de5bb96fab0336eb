"""A real NVIDIA Dynamo stack (frontend + two CPU mocker workers) answers the
OpenAI API the way Switchyard expects. Skipped when .venv-dynamo is absent
(scripts/setup_dynamo.sh installs it)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from dynamo_stack import DynamoUnavailable, dynamo_stack

STRONG, WEAK = "strong-model", "weak-model"


@pytest.fixture(scope="module")
def stack() -> Iterator[str]:
    try:
        with dynamo_stack(STRONG, WEAK, worker_metrics=True) as url:
            yield url
            pids = list(url.pids.values())
    except DynamoUnavailable as exc:
        pytest.skip(str(exc))
    for pid in pids:  # stop_processes already verified; double-check here
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def post(url: str, body: dict, timeout: float = 30) -> urllib.request.addinfourl:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    return urllib.request.urlopen(req, timeout=timeout)


def test_models_lists_both(stack: str) -> None:
    with urllib.request.urlopen(stack + "/v1/models", timeout=5) as resp:
        data = json.load(resp)
    assert data["object"] == "list"
    assert {m["id"] for m in data["data"]} >= {STRONG, WEAK}


@pytest.mark.parametrize("model", [STRONG, WEAK])
def test_chat_completion_non_streaming(stack: str, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 6}
    with post(stack + "/v1/chat/completions", body) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        data = json.load(resp)
    assert data["object"] == "chat.completion"
    assert data["model"] == model
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"]  # tiny model's filler words decode to text
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 6
    assert data["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize("model", [STRONG, WEAK])
def test_chat_completion_streaming_with_usage(stack: str, model: str) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Hello there"}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with post(stack + "/v1/chat/completions", body) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = resp.read().decode()
    events = [e for e in raw.split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events), raw
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in chunks)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 4
    assert usage_chunk["usage"]["total_tokens"] == usage_chunk["usage"]["prompt_tokens"] + 4
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text


def test_missing_max_tokens_is_rejected(stack: str) -> None:
    """Gotcha: the mocker refuses requests without max_tokens (HTTP 400)."""
    body = {"model": STRONG, "messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(urllib.error.HTTPError) as info:
        post(stack + "/v1/chat/completions", body)
    assert info.value.code == 400


def test_frontend_metrics_are_per_model(stack: str) -> None:
    with urllib.request.urlopen(stack + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for model in (STRONG, WEAK):
        assert f'dynamo_frontend_model_ready{{model="{model}"}} 1' in text
        assert f'dynamo_frontend_inflight_requests{{model="{model}"}}' in text
        assert f'dynamo_frontend_queued_requests{{model="{model}"}}' in text


def test_worker_metrics(stack) -> None:
    for url in stack.worker_metrics.values():
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert "vllm:num_requests_waiting" in text
        assert "dynamo_component_inflight_requests" in text
