"""Unit tests for dynamo.nemo_switchyard.affinity: the store, conversation keys and the affinity modes."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from dynamo.nemo_switchyard.affinity import AffinityStore, apply_affinity, conversation_key
from dynamo.nemo_switchyard.wire import Request


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _headers(**values: str) -> Callable[[bytes], bytes | None]:
    """A headers lookup like Request.header: lower-case byte names."""
    request = Request("POST", b"/v1/chat/completions", "/v1/chat/completions", [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()], b"")
    return request.header


NO_HEADERS = _headers()
RANK = {"weak-model": 0, "mid-model": 1, "strong-model": 2}.__getitem__


# -- the store ----------------------------------------------------------------


def test_get_put_and_counters() -> None:
    store = AffinityStore(10, 60, clock=FakeClock())
    assert store.get("a") is None
    store.put("a", "strong-model")
    assert store.get("a") == "strong-model"
    assert store.get("b") is None
    assert store.counters() == {"hits": 1, "misses": 2, "evictions": 0, "expirations": 0, "entries": 1}
    assert len(store) == 1 and "a" in store


def test_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    store = AffinityStore(10, ttl_seconds=30, clock=clock)
    store.put("a", "weak-model")
    clock.now += 29.9
    assert "a" in store
    clock.now += 0.1
    assert store.get("a") is None
    assert store.expirations == 1 and store.misses == 1 and len(store) == 0


def test_use_refreshes_the_ttl() -> None:
    clock = FakeClock()
    store = AffinityStore(10, ttl_seconds=30, clock=clock)
    store.put("a", "weak-model")
    store.put("b", "weak-model")
    for _ in range(5):
        clock.now += 20
        assert store.get("a") == "weak-model"  # used every 20 s: never expires
    assert "b" not in store  # untouched for 100 s
    assert store.expirations == 1
    store.put("a", "strong-model")  # put refreshes too
    clock.now += 29
    assert store.get("a") == "strong-model"


def test_lru_eviction_beyond_max_entries() -> None:
    store = AffinityStore(3, 60, clock=FakeClock())
    for key in "abc":
        store.put(key, "weak-model")
    assert store.get("a") == "weak-model"  # a is now the most recently used
    store.put("d", "weak-model")  # evicts b, the least recently used
    assert "b" not in store and {"a", "c", "d"} == {k for k in "abcd" if k in store}
    store.put("c", "strong-model")  # an update does not evict
    assert len(store) == 3 and store.evictions == 1
    store.put("e", "weak-model")
    assert "a" not in store and store.evictions == 2


def test_expired_entries_go_before_live_ones_are_evicted() -> None:
    clock = FakeClock()
    store = AffinityStore(2, ttl_seconds=10, clock=clock)
    store.put("old", "weak-model")
    clock.now += 11
    store.put("x", "weak-model")
    store.put("y", "weak-model")
    assert "x" in store and "y" in store
    assert store.expirations == 1 and store.evictions == 0


def test_store_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        AffinityStore(0, 60)
    with pytest.raises(ValueError):
        AffinityStore(10, 0)


# -- conversation keys --------------------------------------------------------


def _chat(*turns: tuple[str, object]) -> dict:
    return {"model": "auto", "max_tokens": 5, "messages": [{"role": role, "content": content} for role, content in turns]}


CONVERSATION = [
    ("system", "You are terse."),
    ("user", "What is 2+2?"),
    ("assistant", "4"),
    ("user", "And 3+3?"),
    ("assistant", "6"),
    ("user", "Now prove Fermat's last theorem."),
]


def test_hash_is_stable_across_turns() -> None:
    keys = {conversation_key(NO_HEADERS, None, _chat(*CONVERSATION[: 2 * turn]), "chat") for turn in (1, 2, 3)}
    assert len(keys) == 1
    key, source = keys.pop()
    assert source == "hash" and re.fullmatch(r"c:[0-9a-f]{32}", key)


def test_single_user_message_is_keyed() -> None:
    assert conversation_key(NO_HEADERS, None, _chat(("user", "hi")), "chat") is not None


def test_different_openings_differ() -> None:
    base = conversation_key(NO_HEADERS, None, _chat(*CONVERSATION[:2]), "chat")
    other_user = conversation_key(NO_HEADERS, None, _chat(CONVERSATION[0], ("user", "What is 2+3?")), "chat")
    other_system = conversation_key(NO_HEADERS, None, _chat(("system", "You are verbose."), CONVERSATION[1]), "chat")
    no_system = conversation_key(NO_HEADERS, None, _chat(CONVERSATION[1]), "chat")
    assert len({base, other_user, other_system, no_system}) == 4


def test_content_parts_hash_by_their_text() -> None:
    plain = conversation_key(NO_HEADERS, None, _chat(("user", "look at this")), "chat")
    parts = conversation_key(NO_HEADERS, None, _chat(("user", [{"type": "text", "text": "look at this"}])), "chat")
    with_image = _chat(("user", [{"type": "text", "text": "look at this"}, {"type": "image_url", "image_url": {"url": "data:..."}}]))
    assert plain == parts == conversation_key(NO_HEADERS, None, with_image, "chat")
    image_a = _chat(("user", [{"type": "image_url", "image_url": {"url": "https://a"}}]))
    image_b = _chat(("user", [{"image_url": {"url": "https://b"}, "type": "image_url"}]))
    assert conversation_key(NO_HEADERS, None, image_a, "chat") != conversation_key(NO_HEADERS, None, image_b, "chat")


def test_namespace_separates_clients() -> None:
    body = _chat(("user", "hi"))
    assert conversation_key(NO_HEADERS, None, body, "chat", namespace="team-a") != conversation_key(
        NO_HEADERS, None, body, "chat", namespace="team-b"
    )
    headers = _headers(x_session_id="s1")
    assert conversation_key(headers, None, body, "chat", namespace="a") != conversation_key(headers, None, body, "chat", namespace="b")


def test_messages_api() -> None:
    first = {"model": "auto", "max_tokens": 5, "system": "Be kind.", "messages": [{"role": "user", "content": "hello"}]}
    later = {**first, "messages": [*first["messages"], {"role": "assistant", "content": "hi"}, {"role": "user", "content": "more"}]}
    blocks = {**first, "system": [{"type": "text", "text": "Be kind."}]}
    assert conversation_key(NO_HEADERS, None, first, "messages") == conversation_key(NO_HEADERS, None, later, "messages")
    assert conversation_key(NO_HEADERS, None, blocks, "messages") == conversation_key(NO_HEADERS, None, first, "messages")
    assert conversation_key(NO_HEADERS, None, {**first, "system": "Be rude."}, "messages") != conversation_key(NO_HEADERS, None, first, "messages")


def test_responses_api() -> None:
    first = {"model": "auto", "instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}]}
    later = {
        **first,
        "input": [
            *first["input"],
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}]},
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            {"role": "user", "content": "more"},
        ],
    }
    bare = {"model": "auto", "instructions": "Be brief.", "input": "hello"}
    key = conversation_key(NO_HEADERS, None, first, "responses")
    assert key is not None and key == conversation_key(NO_HEADERS, None, later, "responses") == conversation_key(NO_HEADERS, None, bare, "responses")


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("completions", {"model": "auto", "prompt": "Once upon a time"}),
        ("chat", {"model": "auto", "messages": [{"role": "system", "content": "only a system prompt"}]}),
        ("chat", {"model": "auto", "messages": "not a list"}),
        ("chat", {"model": "auto"}),
        ("responses", {"model": "auto", "input": 42}),
        ("embeddings", {"model": "auto", "input": "x"}),
    ],
)
def test_nothing_to_key(endpoint: str, body: dict) -> None:
    assert conversation_key(NO_HEADERS, None, body, endpoint) is None


def test_header_precedence() -> None:
    body = _chat(("user", "hi"))
    every = _headers(x_my_session="mine", x_dynamo_session_id="dyn", x_session_id="plain")
    assert conversation_key(every, b"x-my-session", body, "chat") == ("h:mine", "header")
    assert conversation_key(every, b"X-My-Session", body, "chat") == ("h:mine", "header")  # names are matched lower-case
    assert conversation_key(every, None, body, "chat") == ("h:dyn", "header")
    assert conversation_key(_headers(x_session_id="plain"), b"x-my-session", body, "chat") == ("h:plain", "header")
    # An empty header counts as absent; a session header keys even bodies without turns.
    assert conversation_key(_headers(x_my_session=" ", x_session_id="plain"), b"x-my-session", body, "chat") == ("h:plain", "header")
    assert conversation_key(_headers(x_session_id="s"), None, {"prompt": "x"}, "completions") == ("h:s", "header")


def test_long_session_ids_are_hashed() -> None:
    key, source = conversation_key(_headers(x_session_id="x" * 5000), None, {}, "chat")
    assert source == "header" and len(key) < 40


# -- modes --------------------------------------------------------------------


def test_mode_off_ignores_the_past() -> None:
    assert apply_affinity("off", "strong-model", "weak-model", RANK) == ("weak-model", "score")


def test_no_previous_model_means_the_score_decides() -> None:
    for mode in ("off", "sticky", "escalate"):
        assert apply_affinity(mode, None, "weak-model", RANK) == ("weak-model", "score")


def test_sticky_keeps_the_previous_model() -> None:
    assert apply_affinity("sticky", "weak-model", "strong-model", RANK) == ("weak-model", "affinity")
    assert apply_affinity("sticky", "strong-model", "weak-model", RANK) == ("strong-model", "affinity")


def test_escalate_never_goes_down() -> None:
    assert apply_affinity("escalate", "weak-model", "strong-model", RANK) == ("strong-model", "score")
    assert apply_affinity("escalate", "strong-model", "weak-model", RANK) == ("strong-model", "affinity")
    assert apply_affinity("escalate", "strong-model", "strong-model", RANK) == ("strong-model", "score")
    # Over a conversation, the model's rank never decreases.
    store = AffinityStore(10, 60, clock=FakeClock())
    ranks = []
    for chosen in ("weak-model", "mid-model", "weak-model", "strong-model", "weak-model", "mid-model"):
        model, _ = apply_affinity("escalate", store.get("conv"), chosen, RANK)
        store.put("conv", model)
        ranks.append(RANK(model))
    assert ranks == sorted(ranks) == [0, 1, 1, 2, 2, 2]


def test_escalate_ignores_a_model_no_longer_ranked() -> None:
    assert apply_affinity("escalate", "retired-model", "weak-model", RANK) == ("weak-model", "score")


def test_unknown_mode() -> None:
    with pytest.raises(ValueError):
        apply_affinity("sometimes", "weak-model", "strong-model", RANK)
