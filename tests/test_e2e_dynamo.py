"""Switchyard in front of a real NVIDIA Dynamo frontend with two CPU mocker workers.

Skipped only when .venv-dynamo is missing and SWITCHYARD_REQUIRE_DYNAMO is unset
(scripts/test.sh sets it, so CI cannot skip these silently).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import openai
import pytest

from dynamo_stack import DynamoUnavailable, dynamo_stack
from processes import http_get

STRONG, WEAK = "strong-model", "weak-model"
SIMPLE = "hi"
HARD = "Prove that the square root of 2 is irrational, then derive the closed form of the sum of k^3 for k = 1..n by induction."


@pytest.fixture(scope="module")
def dynamo() -> Iterator[str]:
    try:
        with dynamo_stack(STRONG, WEAK) as url:
            yield str(url)
    except DynamoUnavailable as exc:
        if os.environ.get("SWITCHYARD_REQUIRE_DYNAMO"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def switchyard(start_switchyard, dynamo):
    return start_switchyard(backend=dynamo)  # the default router


@pytest.fixture
def client(switchyard) -> openai.OpenAI:
    return openai.OpenAI(base_url=switchyard.url + "/v1", api_key="unused", max_retries=0)


def test_routes_to_the_model_the_header_names(client):
    for prompt in (SIMPLE, HARD):
        raw = client.chat.completions.with_raw_response.create(model="auto", max_tokens=8, messages=[{"role": "user", "content": prompt}])
        completion = raw.parse()
        assert raw.headers["x-routellm-routed-model"] in (STRONG, WEAK)
        assert completion.model == raw.headers["x-routellm-routed-model"]  # Dynamo answered as that model
        assert completion.usage.completion_tokens > 0


def test_threshold_extremes_pick_each_model(client):
    for model, expected in (("router-lexical-0", STRONG), ("router-lexical-1", WEAK)):
        raw = client.chat.completions.with_raw_response.create(model=model, max_tokens=4, messages=[{"role": "user", "content": HARD}])
        assert raw.headers["x-routellm-routed-model"] == expected and raw.parse().model == expected


def test_streaming_keeps_dynamos_usage_chunk(client):
    stream = client.chat.completions.create(
        model="auto", max_tokens=12, stream=True, stream_options={"include_usage": True}, messages=[{"role": "user", "content": HARD}]
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].delta.content for c in chunks)


def test_passthrough_and_dynamo_errors(client, switchyard):
    raw = client.chat.completions.with_raw_response.create(model=WEAK, max_tokens=4, messages=[{"role": "user", "content": HARD}])
    assert raw.headers["x-switchyard-decision"] == "passthrough" and raw.parse().model == WEAK
    # Dynamo's own 4xx (unknown model) reaches the client with Dynamo's status and body.
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", max_tokens=4, messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["x-switchyard-error-source"] == "backend"


def test_models_and_readiness_reflect_dynamo(switchyard):
    ids = [m["id"] for m in json.loads(http_get(switchyard.url + "/v1/models")[1])["data"]]
    assert ids[0] == "auto" and {STRONG, WEAK} <= set(ids)
    assert http_get(switchyard.url + "/ready")[0] == 200
    assert "does not serve" not in switchyard.log.read_text()
