"""Token usage read from answers and stream tails, without changing what the client gets."""

from __future__ import annotations

import gzip

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo.nemo_switchyard.usage import Tap, Usage, _read_event, read_usage

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"


def sse(*events: object) -> bytes:
    return b"".join(b"data: " + (e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n\n" for e in events)


def test_chat_and_completions_bodies():
    body = orjson.dumps({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})
    assert read_usage(body, JSON) == Usage(12, 5)


def test_responses_and_messages_bodies():
    assert read_usage(orjson.dumps({"output": [], "usage": {"input_tokens": 3, "output_tokens": 9}}), JSON) == Usage(3, 9)
    assert read_usage(orjson.dumps({"type": "message", "usage": {"input_tokens": 4, "output_tokens": 1}}), None) == Usage(4, 1)


@pytest.mark.parametrize("body", [b"not json", b'{"usage": null}', b"[1]", b'{"usage": {"prompt_tokens": -1}}', b'{"x": 1}'])
def test_bodies_without_usable_usage(body: bytes):
    assert read_usage(body, JSON) is None


def test_gzip_body_is_read_from_a_copy():
    plain = orjson.dumps({"usage": {"prompt_tokens": 2, "completion_tokens": 3}})
    packed = gzip.compress(plain)
    assert read_usage(packed, JSON, b"gzip") == Usage(2, 3)
    assert read_usage(packed, JSON, b"br") is None  # not decodable here: not counted, still relayed


def test_chat_stream_final_usage_chunk():
    tail = b": comment\n\n" + sse(
        {"choices": [{"delta": {"content": "hi"}}], "usage": None},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 20}},
        b"[DONE]",
    )
    assert read_usage(tail, SSE) == Usage(7, 20)


def test_stream_with_crlf_and_a_cut_first_event():
    tail = b'ens": 1}}\r\n\r\n' + sse({"usage": {"prompt_tokens": 1, "completion_tokens": 2}}).replace(b"\n", b"\r\n")
    assert read_usage(tail, SSE) == Usage(1, 2)


def test_anthropic_stream_input_and_output_from_different_events():
    tail = (
        b"event: message_start\n" + sse({"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1}}})
        + b"event: content_block_delta\n" + sse({"type": "content_block_delta", "delta": {"text": "x"}})
        + b"event: message_delta\n" + sse({"type": "message_delta", "usage": {"output_tokens": 15}})
        + b"event: message_stop\n" + sse({"type": "message_stop"})
    )
    assert read_usage(tail, SSE) == Usage(25, 15)


def test_responses_stream_completed_event():
    tail = sse({"type": "response.completed", "response": {"usage": {"input_tokens": 8, "output_tokens": 30}}})
    assert read_usage(tail, SSE) == Usage(8, 30)


def test_stream_without_usage():
    assert read_usage(sse({"choices": []}, b"[DONE]"), SSE) is None


class Sink:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.bound: object = None

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def bind_reader(self, transport: object) -> None:
        self.bound = transport


def test_tap_passes_every_chunk_unchanged_and_keeps_a_bounded_tail():
    sink = Sink()
    tap = Tap(sink, limit=10)
    pieces = [b"abcd", b"efgh", b"ijkl", b"mnop"]
    for piece in pieces:
        tap.write(piece)
    assert sink.data == pieces  # the same objects, in order
    tail = tap.tail()
    assert b"".join(pieces).endswith(tail) and len(tail) >= 10 and len(tail) < 10 + 4
    assert not tap.complete and tap.total == 16
    tap.bind_reader("transport")
    assert sink.bound == "transport"


def test_tap_complete_when_the_body_fits():
    tap = Tap(Sink(), limit=100)
    tap.write(b'{"usage": {"prompt_tokens": 1, "completion_tokens": 1}}')
    assert tap.complete
    assert read_usage(tap.tail(), JSON, None, tap.complete) == Usage(1, 1)
    assert read_usage(tap.tail(), JSON, None, complete=False) is None


def test_only_the_usage_object_is_parsed_nested_details_and_escaped_keys():
    body = (
        b'{"choices": [{"message": {"content": "the \\"usage\\": {\\"prompt_tokens\\": 99} of words"}}],\n'
        b' "usage" : {"prompt_tokens": 5, "completion_tokens": 6, "prompt_tokens_details": {"cached_tokens": 1},'
        b' "completion_tokens_details": {"reasoning_tokens": 2}}}'
    )
    assert read_usage(body, JSON) == Usage(5, 6)
    only_in_text = b'{"choices": [{"message": {"content": "\\"usage\\": {\\"prompt_tokens\\": 99}"}}]}'
    assert read_usage(only_in_text, JSON) is None
    assert read_usage(b'{"usage": {"prompt_tokens": 5, "completion_tokens": 6', JSON) is None  # cut short


def test_long_answers_are_not_parsed_whole():
    text = "x" * 1_000_000
    body = orjson.dumps({"choices": [{"message": {"content": text}}], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    assert read_usage(body, JSON) == Usage(1, 2)


def _reference_from_stream(tail: bytes) -> Usage | None:
    """The straightforward reading that usage._from_stream must agree with: every event, from the end."""
    tokens_in = tokens_out = None
    for event in reversed(tail.replace(b"\r\n", b"\n").split(b"\n\n")):
        tokens_in, tokens_out = _read_event(event, tokens_in, tokens_out)
        if tokens_in is not None and tokens_out is not None:
            break
    if tokens_in is None and tokens_out is None:
        return None
    return Usage(tokens_in or 0, tokens_out or 0)


_PAYLOADS = [
    b'{"choices":[{"delta":{"content":"x"}}]}', b'{"usage":null}', b'{"usage":{"prompt_tokens":7,"completion_tokens":3}}',
    b'{"usage":{"prompt_tokens":8}}', b'{"type":"message_start","message":{"usage":{"input_tokens":11,"output_tokens":1}}}',
    b'{"type":"message_delta","usage":{"output_tokens":42}}',
    b'{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":6}}}',
    b'{"text":"\\"usage\\": {\\"prompt_tokens\\": 1}"}', b"[DONE]",
]
_LINES = st.sampled_from([b"data: " + payload for payload in _PAYLOADS] + [b"data:" + _PAYLOADS[2], b": comment", b"event: message_delta"])
_EVENTS = st.lists(st.tuples(st.lists(_LINES, min_size=1, max_size=3), st.sampled_from([b"\n", b"\r\n"])), max_size=12)


@settings(max_examples=500, deadline=None)
@given(_EVENTS, st.integers(min_value=0, max_value=60))
def test_stream_usage_matches_reading_every_event(events: list[tuple[list[bytes], bytes]], cut: int):
    # Any arrangement of events (each with \n or \r\n line ends), comments and a cut-off start: the
    # events that hold "usage" are read alone, and the answer is the one from reading every event.
    tail = b"".join(end.join(lines) + end + end for lines, end in events)[cut:]
    assert read_usage(tail, SSE) == _reference_from_stream(tail)
