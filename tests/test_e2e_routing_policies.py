"""Routing beyond one threshold, through the real server process: tiers, conversation affinity,
the strong-share budget and per-request controls (load-aware routing: tests/test_e2e_load.py)."""

from __future__ import annotations

import base64
import json
import random

import pytest

from dynamo.nemo_switchyard.routers.random import RandomRouter

from processes import backend_log, http_get
from processes import http_request as request

TIERS = ("--tier", "big=0.7", "--tier", "mid=0.3", "--tier", "small=0")


def chat(*turns: str, model: str = "auto") -> bytes:
    messages = [{"role": "system", "content": "Be brief."}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return json.dumps({"model": model, "messages": messages}).encode()


def score(text: str) -> float:
    return RandomRouter(seed=0).score_batch([text])[0]


def prompts_scoring(low: float, high: float, count: int = 1, start: int = 0) -> list[str]:
    """Prompts whose random-router score (seed 0) lies in [low, high)."""
    found, i = [], start
    while len(found) < count:
        text = f"question number {i}"
        if low <= score(text) < high:
            found.append(text)
        i += 1
    return found


def send(base: str, body: bytes, headers: dict[str, str] | None = None) -> dict[str, str]:
    status, got, data = request(base, "POST", "/v1/chat/completions", body, headers)
    assert status == 200, data
    return {name: values[0] for name, values in got.items() if name.startswith("x-")}


def stats(base: str) -> dict:
    return json.loads(http_get(base + "/stats")[1])


@pytest.fixture(scope="module")
def tiered(start_switchyard, fake_backend):
    return start_switchyard("--router-type", "random", *TIERS, "--allow-model-header", "--allow-threshold-header", backend=fake_backend)


def test_tiers_route_reports_and_count(tiered, reset_backend):
    expected = {}
    for low, high, model, tier, decision in [(0.7, 1, "big", "0", "strong"), (0.3, 0.7, "mid", "1", "middle"), (0, 0.3, "small", "2", "weak")]:
        text = prompts_scoring(low, high)[0]
        got = send(tiered.url, chat(text))
        assert (got["x-routellm-routed-model"], got["x-switchyard-tier"], got["x-switchyard-decision"], got["x-switchyard-reason"]) == (
            model, tier, decision, "score")
        expected[model] = expected.get(model, 0) + 1
    sent = [json.loads(base64.b64decode(r["body_b64"]))["model"] for r in backend_log(reset_backend)["requests"]]
    assert sent == ["big", "mid", "small"]
    got = stats(tiered.url)
    assert [(t["model"], t["cut_point"]) for t in got["tiers"]] == [("big", 0.7), ("mid", 0.3), ("small", 0.0)]
    assert got["tier_requests"] == expected and got["middle"] == 1 and got["reasons"]["score"] == 3
    virtual = json.loads(http_get(tiered.url + "/v1/models")[1])["data"][0]
    assert virtual["id"] == "auto" and [t["model"] for t in virtual["tiers"]] == ["big", "mid", "small"]
    metrics = http_get(tiered.url + "/metrics")[1].decode()
    assert 'switchyard_tier_requests_total{model="mid",tier="1"} 1.0' in metrics
    assert 'switchyard_decision_reasons_total{reason="score"}' in metrics


def test_per_request_controls(tiered, reset_backend):
    low = prompts_scoring(0.2, 0.25)[0]
    got = send(tiered.url, chat(low), {"x-switchyard-model": "strong"})
    assert (got["x-routellm-routed-model"], got["x-switchyard-reason"]) == ("big", "override") and "x-switchyard-score" not in got
    got = send(tiered.url, chat(low), {"x-switchyard-model": "mid"})
    assert got["x-routellm-routed-model"] == "mid"
    got = send(tiered.url, chat(low), {"x-switchyard-threshold": "0.2"})
    assert (got["x-routellm-routed-model"], got["x-switchyard-reason"], got["x-switchyard-threshold"]) == ("big", "override", "0.2")
    for header, value, message in [
        ("x-switchyard-model", "gpt-9", "x-switchyard-model must be one of: strong, weak, big, mid, small"),
        ("x-switchyard-threshold", "1.5", "x-switchyard-threshold must be a number between 0 and 1"),
        ("x-switchyard-threshold", "abc", "x-switchyard-threshold must be a number between 0 and 1"),
    ]:
        status, _, data = request(tiered.url, "POST", "/v1/chat/completions", chat(low), {header: value})
        assert status == 400 and message in json.loads(data)["error"]["message"]


def test_per_request_controls_are_ignored_unless_allowed(proxy, reset_backend):
    low = prompts_scoring(0.0, 0.25)[0]
    got = send(proxy.url, chat(low), {"x-switchyard-model": "strong", "x-switchyard-threshold": "0"})
    assert (got["x-routellm-routed-model"], got["x-switchyard-reason"]) == ("weak-model", "score")


@pytest.fixture(scope="module")
def sticky(start_switchyard, fake_backend):
    return start_switchyard("--router-type", "random", "--affinity", "sticky", "--session-header", "x-chat-id", backend=fake_backend)


@pytest.fixture(scope="module")
def escalating(start_switchyard, fake_backend):
    return start_switchyard("--router-type", "random", "--affinity", "escalate", backend=fake_backend)


def test_sticky_keeps_the_first_turns_model_by_hash_and_by_header(sticky, reset_backend):
    hard, easy = prompts_scoring(0.6, 1)[0], prompts_scoring(0, 0.4)[0]
    first = send(sticky.url, chat(hard))
    assert (first["x-routellm-routed-model"], first["x-switchyard-reason"]) == ("strong-model", "score")
    later = send(sticky.url, chat(hard, "Sure.", easy))  # the same opening: the same conversation
    assert (later["x-routellm-routed-model"], later["x-switchyard-reason"]) == ("strong-model", "affinity")
    other = send(sticky.url, chat(easy))  # another conversation
    assert other["x-routellm-routed-model"] == "weak-model"
    # A session header names the conversation whatever its messages; the configured one comes first.
    assert send(sticky.url, chat(easy), {"x-chat-id": "c1", "x-session-id": "s9"})["x-routellm-routed-model"] == "weak-model"
    got = send(sticky.url, chat(hard), {"x-chat-id": "c1"})
    assert (got["x-routellm-routed-model"], got["x-switchyard-reason"]) == ("weak-model", "affinity")
    assert send(sticky.url, chat(hard), {"x-session-id": "s9"})["x-routellm-routed-model"] == "strong-model"
    assert send(sticky.url, chat(hard), {"x-dynamo-session-id": "d1"})["x-routellm-routed-model"] == "strong-model"
    assert send(sticky.url, chat(easy), {"x-dynamo-session-id": "d1"})["x-switchyard-reason"] == "affinity"
    got = stats(sticky.url)
    assert got["affinity"]["hit"] == 3 and got["affinity"]["miss"] == 5 and got["affinity"]["conversations"] == 5
    assert got["reasons"]["affinity"] == 3
    assert 'switchyard_affinity_lookups_total{result="hit"} 3.0' in http_get(sticky.url + "/metrics")[1].decode()


def test_escalate_moves_up_never_down(escalating, reset_backend):
    easy, hard, easy2 = prompts_scoring(0, 0.4)[0], prompts_scoring(0.6, 1)[0], prompts_scoring(0, 0.4, start=500)[0]
    assert send(escalating.url, chat(easy))["x-routellm-routed-model"] == "weak-model"
    got = send(escalating.url, chat(easy, "ok", hard))
    assert (got["x-routellm-routed-model"], got["x-switchyard-reason"]) == ("strong-model", "score")
    got = send(escalating.url, chat(easy, "ok", hard, "ok", easy2))
    assert (got["x-routellm-routed-model"], got["x-switchyard-reason"]) == ("strong-model", "affinity")


def test_budget_holds_the_target_share_and_exports_the_live_threshold(start_switchyard, fake_backend, reset_backend):
    server = start_switchyard("--router-type", "random", "--target-strong-fraction", "0.2", "--budget-window", "100", backend=fake_backend)
    # A drifting mix: the share of hard prompts (random-router score >= 0.5) grows from 10 % to 90 %.
    easy, hard = iter(prompts_scoring(0.0, 0.5, 800)), iter(prompts_scoring(0.5, 1.0, 800, start=10_000))
    rng = random.Random(1)
    mixed = [next(hard) if rng.random() < 0.1 + 0.8 * i / 800 else next(easy) for i in range(800)]
    routed = [send(server.url, chat(text))["x-routellm-routed-model"] for text in mixed]
    shares = [routed[start:start + 100].count("strong-model") / 100 for start in range(100, 800, 100)]
    assert all(abs(share - 0.2) <= 0.1 for share in shares), shares  # stated tolerance +-0.1 per 100 requests
    assert abs(routed[100:].count("strong-model") / 700 - 0.2) <= 0.03  # and +-0.03 overall
    assert sum(score(text) >= 0.5 for text in mixed[-100:]) >= 80  # a fixed 0.5 threshold would send most of the tail to strong
    got = stats(server.url)
    assert got["target_strong_fraction"] == 0.2 and got["configured_threshold"] == 0.5
    assert got["threshold"] > 0.5 and got["reasons"]["budget"] > 0  # the hard tail moved the threshold up
    assert f"switchyard_threshold {got['threshold']}" in http_get(server.url + "/metrics")[1].decode()
