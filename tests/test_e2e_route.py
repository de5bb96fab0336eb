"""``POST /v1/route`` through the real server process: the decision, without calling the backend."""

from __future__ import annotations

import json

import pytest

from dynamo.nemo_switchyard.routers.random import RandomRouter

from processes import backend_log, http_get
from processes import http_request as request

QUESTION = "Prove that there are infinitely many primes."




def route(base: str, body: object) -> tuple[int, dict, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, data = request(base, "POST", "/v1/route", raw)
    return status, headers, json.loads(data)


def expected_score(text: str) -> float:
    return RandomRouter(seed=0).score_batch([text])[0]  # the proxy fixture runs the random router, seed 0


def stats(base: str) -> dict:
    return json.loads(http_get(base + "/stats")[1])


def test_route_answers_the_decision_and_never_calls_the_backend(proxy, reset_backend):
    before = stats(proxy.url)
    metrics_before = http_get(proxy.url + "/metrics")[1]
    chat = {"model": "auto", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]}
    status, headers, got = route(proxy.url, chat)
    assert status == 200 and headers["content-type"] == ["application/json"]
    score = expected_score(QUESTION)  # chat extraction: the last user message
    decision = "strong" if score >= 0.5 else "weak"
    assert got == {"model": f"{decision}-model", "decision": decision, "score": score, "router": "random", "threshold": 0.5,
                   "reason": "score", "tier": 0 if decision == "strong" else 1}

    # Completions body: the prompt; no model = auto.
    status, _, got = route(proxy.url, {"prompt": "Say hi."})
    assert status == 200 and got["score"] == expected_score("Say hi.") and got["router"] == "random" and got["threshold"] == 0.5

    # RouteLLM-style model names pick the router and threshold.
    status, _, got = route(proxy.url, {"model": "router-random-0.0", "messages": [{"role": "user", "content": "x"}]})
    assert status == 200 and got["decision"] == "strong" and got["model"] == "strong-model" and got["threshold"] == 0.0
    status, _, got = route(proxy.url, {"model": "router-random-1", "prompt": "x"})
    assert status == 200 and got["decision"] == "weak" and got["threshold"] == 1.0

    # Nothing to score: the fallback, with the reason.
    image_only = {"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    status, _, got = route(proxy.url, image_only)
    assert status == 200
    assert got == {"model": "strong-model", "decision": "fallback", "score": None, "router": "random", "threshold": 0.5,
                   "reason": "fallback", "fallback_reason": "empty_prompt", "tier": None}

    # A real model name passes through, as it would on the routed endpoints.
    status, _, got = route(proxy.url, {"model": "weak-model", "prompt": "x"})
    assert status == 200 and got == {"model": "weak-model", "decision": "passthrough", "score": None, "router": None, "threshold": None,
                                     "reason": "passthrough", "tier": None}

    assert backend_log(reset_backend)["requests"] == []
    assert stats(proxy.url)["total"] == before["total"]  # not traffic: not counted
    after = http_get(proxy.url + "/metrics")[1]
    def requests_lines(page: bytes) -> list[str]:
        return sorted(line for line in page.decode().splitlines() if line.startswith("switchyard_requests_total"))

    assert requests_lines(after) == requests_lines(metrics_before)


@pytest.mark.parametrize(
    "body,code,message",
    [
        (b"{not json", "invalid_json", "not valid JSON"),
        (b"[1, 2]", "invalid_json", "must be a JSON object"),
        ({"model": "auto"}, "invalid_request", "'messages'"),
        ({"model": "auto", "messages": "hi"}, "invalid_request", "'messages' must be a list"),
        ({"model": "router-nope-0.5", "prompt": "x"}, "invalid_request", "unknown router 'nope'"),
        ({"model": "router-random-2", "prompt": "x"}, "invalid_request", "must be between 0 and 1"),
        ({"model": "router-random", "prompt": "x"}, "invalid_request", "router-<router>-<threshold>"),
    ],
)
def test_bad_bodies_are_openai_shaped_400s(proxy, reset_backend, body, code, message):
    status, headers, got = route(proxy.url, body)
    assert status == 400
    assert set(got) == {"error"} and set(got["error"]) == {"message", "type", "param", "code"}
    assert got["error"]["code"] == code and got["error"]["type"] == "invalid_request_error"
    assert message in got["error"]["message"]
    assert headers["x-switchyard-error-source"] == ["switchyard"]
    assert backend_log(reset_backend)["requests"] == []
