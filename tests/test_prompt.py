"""Unit tests for dynamo.nemo_switchyard.prompt: what the router scores for each API."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dynamo.nemo_switchyard.prompt import PromptError, content_text, extract_prompt

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}


# ---------------------------------------------------------------- chat


def test_chat_last_user_message_string():
    body = {
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "second question"},
        ]
    }
    assert extract_prompt("chat", body) == "second question"
    assert extract_prompt("chat", body, "last-user") == "second question"


def test_chat_last_user_skips_trailing_assistant_and_tool():
    body = {
        "messages": [
            {"role": "user", "content": "the question"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "tool output", "tool_call_id": "1"},
        ]
    }
    assert extract_prompt("chat", body) == "the question"


def test_chat_content_parts_text_only():
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look at"}, IMAGE, AUDIO, {"type": "text", "text": "this"}]}
        ]
    }
    assert extract_prompt("chat", body) == "look at\nthis"


def test_chat_only_non_text_parts_gives_empty():
    body = {"messages": [{"role": "user", "content": [IMAGE, AUDIO]}]}
    assert extract_prompt("chat", body) == ""


def test_chat_no_user_message_gives_empty():
    body = {"messages": [{"role": "system", "content": "sys"}, {"role": "assistant", "content": "hi"}]}
    assert extract_prompt("chat", body) == ""
    assert extract_prompt("chat", {"messages": []}) == ""


def test_chat_user_message_without_content_gives_empty():
    assert extract_prompt("chat", {"messages": [{"role": "user"}]}) == ""
    assert extract_prompt("chat", {"messages": [{"role": "user", "content": None}]}) == ""


def test_chat_non_dict_messages_skipped():
    body = {"messages": ["junk", 3, None, {"role": "user", "content": "real"}, "more junk"]}
    assert extract_prompt("chat", body) == "real"


def test_chat_conversation_scope_joins_all_text_turns():
    body = {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "u1"}, IMAGE]},
            {"role": "assistant", "content": "a1"},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "u2"},
        ]
    }
    assert extract_prompt("chat", body, "conversation") == "sys\nu1\na1\nu2"


def test_chat_conversation_scope_empty():
    assert extract_prompt("chat", {"messages": []}, "conversation") == ""


@pytest.mark.parametrize("messages", [None, "hello", {"role": "user"}, 5])
def test_chat_non_list_messages_is_prompt_error(messages):
    body = {} if messages is None else {"messages": messages}
    with pytest.raises(PromptError, match="'messages'"):
        extract_prompt("chat", body)


def test_chat_ignores_system_field():
    # "system" is an Anthropic field; for chat it must not be scored.
    body = {"system": "ignored", "messages": [{"role": "user", "content": "q"}]}
    assert extract_prompt("chat", body, "conversation") == "q"


# ---------------------------------------------------------------- completions


def test_completions_string():
    assert extract_prompt("completions", {"prompt": "complete me"}) == "complete me"


def test_completions_list_of_strings_uses_first():
    assert extract_prompt("completions", {"prompt": ["first", "second"]}) == "first"


def test_completions_empty_list_gives_empty():
    assert extract_prompt("completions", {"prompt": []}) == ""


@pytest.mark.parametrize("prompt", [[1, 2, 3], [[1, 2], [3]], 42])
def test_completions_token_ids_give_empty(prompt):
    assert extract_prompt("completions", {"prompt": prompt}) == ""


@pytest.mark.parametrize("body", [{}, {"prompt": None}])
def test_completions_missing_prompt_is_prompt_error(body):
    with pytest.raises(PromptError, match="'prompt'"):
        extract_prompt("completions", body)


def test_completions_scope_irrelevant():
    assert extract_prompt("completions", {"prompt": "p"}, "conversation") == "p"


# ---------------------------------------------------------------- responses


def test_responses_input_string():
    assert extract_prompt("responses", {"input": "hi there"}) == "hi there"


def test_responses_input_string_conversation_scope_adds_instructions():
    body = {"input": "hi there", "instructions": "be brief"}
    assert extract_prompt("responses", body, "conversation") == "be brief\nhi there"
    assert extract_prompt("responses", body, "last-user") == "hi there"


def test_responses_input_items_last_user():
    body = {
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": "old"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "reply"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "new"}, {"type": "input_image"}]},
            {"type": "function_call_output", "call_id": "c", "output": "fn out"},
        ],
    }
    assert extract_prompt("responses", body) == "new"


def test_responses_input_items_conversation_with_instructions():
    body = {
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": "old"},
            {"type": "function_call", "name": "f", "arguments": "{}"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "reply"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "new"}]},
        ],
    }
    assert extract_prompt("responses", body, "conversation") == "be brief\nold\nreply\nnew"


def test_responses_non_message_items_ignored_even_with_user_role():
    body = {"input": [{"type": "function_call_output", "role": "user", "content": "not a message"}]}
    assert extract_prompt("responses", body) == ""


def test_responses_missing_input_is_prompt_error():
    with pytest.raises(PromptError, match="'input'"):
        extract_prompt("responses", {"instructions": "x"})


@pytest.mark.parametrize("value", [5, {"role": "user"}, True])
def test_responses_bad_input_type_is_prompt_error(value):
    with pytest.raises(PromptError, match="'input'"):
        extract_prompt("responses", {"input": value})


# ---------------------------------------------------------------- messages (Anthropic)


def test_messages_content_blocks_last_user():
    body = {
        "system": "sys",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "text", "text": "resp"}, {"type": "tool_use", "id": "t", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "result"},
                    {"type": "text", "text": "follow up"},
                    {"type": "image", "source": {"type": "base64", "data": "AA"}},
                ],
            },
        ],
    }
    assert extract_prompt("messages", body) == "follow up"


def test_messages_conversation_includes_system_string():
    body = {"system": "sys", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert extract_prompt("messages", body, "conversation") == "sys\nq\na"


def test_messages_conversation_includes_system_blocks():
    body = {
        "system": [{"type": "text", "text": "s1"}, {"type": "text", "text": "s2", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
    }
    assert extract_prompt("messages", body, "conversation") == "s1\ns2\nq"


def test_messages_without_system_conversation():
    assert extract_prompt("messages", {"messages": [{"role": "user", "content": "q"}]}, "conversation") == "q"


@pytest.mark.parametrize("messages", [None, "q", {"0": {"role": "user"}}])
def test_messages_non_list_is_prompt_error(messages):
    body = {"system": "s"} if messages is None else {"messages": messages}
    with pytest.raises(PromptError, match="'messages'"):
        extract_prompt("messages", body)


# ---------------------------------------------------------------- content_text and misc


def test_content_text_variants():
    assert content_text("plain") == "plain"
    assert content_text(None) == ""
    assert content_text(12) == ""
    assert content_text({"type": "text", "text": "x"}) == ""
    assert content_text(["a", {"type": "text", "text": "b"}, {"type": "text", "text": 5}, {"type": "text"}]) == "a\nb"
    assert content_text([{"type": "input_text", "text": "i"}, {"type": "output_text", "text": "o"}]) == "i\no"
    assert content_text([{"text": "no type"}]) == ""


def test_unknown_endpoint_is_value_error_not_prompt_error():
    with pytest.raises(ValueError) as info:
        extract_prompt("embeddings", {"input": "x"})  # type: ignore[arg-type]
    assert not isinstance(info.value, PromptError)


def test_prompt_error_is_value_error():
    assert issubclass(PromptError, ValueError)


# ---------------------------------------------------------------- properties

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(["role", "content", "type", "text", "messages", "prompt", "input", "instructions", "system", "x"])
# Like _json, but object keys are mostly the ones extraction looks at, so the generated bodies reach deep code paths.
_shaped = st.recursive(
    _scalars | st.sampled_from(["user", "assistant", "system", "text", "input_text", "message"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=25,
)
# Only hashable values where extraction compares with a set of part types (unhashable types have their own test below).
_shaped_hashable_types = st.recursive(
    _scalars | st.sampled_from(["user", "assistant", "system", "text", "input_text", "message"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_keys.filter(lambda k: k != "type"), children, max_size=4).flatmap(
        lambda d: st.one_of(
            st.just(d),
            (_scalars | st.sampled_from(["text", "input_text", "output_text", "image_url", "message"])).map(
                lambda t: {**d, "type": t}
            ),
        )
    ),
    max_leaves=25,
)
_bodies = st.dictionaries(_keys, _shaped_hashable_types, max_size=5) | st.dictionaries(st.text(max_size=8), _json, max_size=5)
_endpoints = st.sampled_from(["chat", "completions", "responses", "messages"])
_scopes = st.sampled_from(["last-user", "conversation"])


def _check(endpoint: str, body: dict, scope: str) -> None:
    try:
        result = extract_prompt(endpoint, body, scope)  # type: ignore[arg-type]
    except PromptError:
        return
    assert isinstance(result, str)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoint=_endpoints, body=_bodies, scope=_scopes)
def test_extraction_returns_str_or_prompt_error(endpoint, body, scope):
    _check(endpoint, body, scope)


@settings(max_examples=100, deadline=None)
@given(body=st.dictionaries(_keys, _shaped, max_size=5), scope=_scopes)
def test_completions_extraction_never_raises_other_errors(body, scope):
    _check("completions", body, scope)


@pytest.mark.parametrize("endpoint", ["chat", "messages", "responses"])
@settings(max_examples=100, deadline=None)
@given(turns=st.lists(_shaped_hashable_types, max_size=5), system=_shaped_hashable_types, scope=_scopes)
def test_turn_lists_extraction_never_raises(endpoint, turns, system, scope):
    key = "input" if endpoint == "responses" else "messages"
    body = {key: turns, "system": system, "instructions": system}
    result = extract_prompt(endpoint, body, scope)
    assert isinstance(result, str)


@pytest.mark.parametrize("endpoint", ["chat", "messages", "responses"])
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(_keys, _shaped, max_size=5), scope=_scopes)
@example(body={"messages": [{"role": "user", "content": [{"type": ["text"], "text": "x"}]}],
               "input": [{"role": "user", "content": [{"type": {}, "text": "x"}]}]}, scope="last-user")
def test_arbitrary_bodies_only_prompt_error(endpoint, body, scope):
    _check(endpoint, body, scope)
