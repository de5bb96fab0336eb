"""Token usage read from a backend's answer, without touching the bytes the client gets.

A whole JSON body carries ``usage`` at its top level (chat and completions:
``prompt_tokens``/``completion_tokens``; responses and Anthropic messages:
``input_tokens``/``output_tokens``). A stream carries it near its end: the final
chunk of a chat stream with ``stream_options.include_usage``, the
``response.completed`` event of a responses stream, Anthropic's ``message_start``
(input) and ``message_delta`` (output). :class:`Tap` keeps a copy of the last bytes
of a relayed body (the client's copy is written first and never altered), and
:func:`read_usage` finds the counts there.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

from .body import value_start

_MAX_NESTING = 8  # closing braces tried for the usage object
TAIL_BYTES = 64 * 1024  # enough for the last events of any stream; a responses stream's final event repeats the output


@dataclass(slots=True, init=False)  # __init__ by hand: compiled, a NamedTuple's or a dataclass's own is a Python call
class Usage:
    """Tokens an answer reports: ``input`` (the prompt's) and ``output`` (generated); read-only by convention."""

    input: int
    output: int

    def __init__(self, input: int, output: int) -> None:
        self.input = input
        self.output = output


class Tap:
    """A body sink that passes every chunk on unchanged and remembers the last ``limit`` bytes."""

    __slots__ = ("_chunks", "_limit", "_sink", "_size", "first_at", "total")

    def __init__(self, sink: Any, limit: int = TAIL_BYTES) -> None:
        self._sink = sink
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self.total = 0
        self.first_at: float | None = None  # perf_counter() at the first chunk: time to first token

    def write(self, data: bytes) -> None:
        self._sink.write(data)
        if self.first_at is None:
            self.first_at = time.perf_counter()
        chunks = self._chunks
        chunks.append(data)
        self._size += len(data)
        self.total += len(data)
        while self._size - len(chunks[0]) >= self._limit:
            self._size -= len(chunks.popleft())

    def bind_reader(self, transport: Any) -> None:
        self._sink.bind_reader(transport)

    @property
    def complete(self) -> bool:
        """Whether the tail holds the whole body."""
        return self.total == self._size

    def tail(self) -> bytes:
        return b"".join(self._chunks)


def read_usage(body: bytes, content_type: bytes | None, content_encoding: bytes | None = None, complete: bool = True) -> Usage | None:
    """The usage in a response body (or the tail of a stream), or None when it has none."""
    # find, not in: bytes-in-bytes raises and clears a TypeError first on Python 3.11
    if content_type is not None and content_type.lower().find(b"event-stream") >= 0:
        return _from_stream(body)
    if not complete:
        return None
    if content_encoding is not None:
        decoded = _decoded(body, content_encoding)
        if decoded is None:
            return None
        body = decoded
    found = _counts(_usage_object(body))
    return Usage(found[0] or 0, found[1] or 0) if found != (None, None) else None


def _usage_object(body: bytes) -> Any:
    """The value of the last ``"usage"`` key of a JSON body, parsed alone.

    Answers put ``usage`` after the generated text, and parsing a whole answer (which may be
    long) on every request showed in profiles; the usage object is small. A ``"usage"`` inside
    a string is escaped (``\\"usage\\"``) and skipped; the object may nest one level
    (``prompt_tokens_details``), so the candidate ends are tried in turn.
    """
    index = body.rfind(b'"usage"')
    while index > 0 and body[index - 1] == 0x5C:  # \"usage\" inside a string
        index = body.rfind(b'"usage"', 0, index)
    if index < 0:
        return None
    start = value_start(body, index + 7)  # after the key: its colon, then the object's opening brace
    if start < 0 or start >= len(body) or body[start] != 0x7B:  # {
        return None
    end = body.find(b"}", start)
    for _ in range(_MAX_NESTING):
        if end < 0:
            return None
        try:
            return orjson.loads(body[start:end + 1])
        except orjson.JSONDecodeError:
            end = body.find(b"}", end + 1)
    return None


def _decoded(body: bytes, content_encoding: bytes | None) -> bytes | None:
    encoding = (content_encoding or b"identity").strip().lower()
    if encoding == b"identity":
        return body
    if encoding in (b"gzip", b"x-gzip", b"deflate"):
        try:
            return zlib.decompress(body, zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
        except zlib.error:
            return None
    return None  # br, zstd: not read (the client still gets the bytes as sent)


def _from_stream(tail: bytes) -> Usage | None:
    """Scan SSE events from the end for usage; input and output may come from different events.

    Only the events that hold ``"usage"`` are cut out and read (found with ``rfind`` from the end):
    splitting the whole tail into events cost more than relaying a stream's chunks did."""
    tokens_in = tokens_out = None
    end = len(tail)
    while tokens_in is None or tokens_out is None:
        at = tail.rfind(b'"usage"', 0, end)
        if at < 0:
            break
        start, stop = _event_bounds(tail, at)
        event = tail[start:stop]
        end = start
        tokens_in, tokens_out = _read_event(event, tokens_in, tokens_out)
    if tokens_in is None and tokens_out is None:
        return None
    return Usage(tokens_in or 0, tokens_out or 0)


def _event_bounds(tail: bytes, at: int) -> tuple[int, int]:
    """The event holding position ``at``: from after the blank line before it to the blank line after
    it (lines end with ``\\n`` or ``\\r\\n``). Stepped line by line from ``at``: searching the whole tail
    for a separator that one stream never uses (``\\n\\r\\n`` in a ``\\n`` stream) cost ~600 instructions
    per chunk."""
    newline = tail.rfind(b"\n", 0, at)
    while newline >= 0:
        before = tail.rfind(b"\n", 0, newline)
        if tail[before + 1:newline] in (b"", b"\r"):  # a blank line ends at ``newline``
            start = before + 1
            break
        newline = before
    else:
        start = 0
    newline = tail.find(b"\n", at)
    while newline >= 0:
        after = tail.find(b"\n", newline + 1)
        if after < 0:
            break
        if tail[newline + 1:after] in (b"", b"\r"):  # a blank line starts after ``newline``
            return start, newline
        newline = after
    return start, len(tail)


def _read_event(event: bytes, tokens_in: int | None, tokens_out: int | None) -> tuple[int | None, int | None]:
    """The counts still missing, from the usage objects of one SSE event's data lines."""
    for line in event.replace(b"\r\n", b"\n").split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        try:
            data = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue  # the first event of the tail may be cut
        if not isinstance(data, dict):
            continue
        for holder in (data, data.get("response"), data.get("message")):
            if isinstance(holder, dict) and "usage" in holder:
                found_in, found_out = _counts(holder["usage"])
                tokens_in = found_in if tokens_in is None else tokens_in
                tokens_out = found_out if tokens_out is None else tokens_out
    return tokens_in, tokens_out


def _counts(usage: Any) -> tuple[int | None, int | None]:
    if not isinstance(usage, dict):
        return None, None
    return _count(usage, "prompt_tokens", "input_tokens"), _count(usage, "completion_tokens", "output_tokens")


def _count(usage: dict[str, Any], name: str, other_name: str) -> int | None:
    """The count under ``name`` (OpenAI's chat and completions) or else ``other_name`` (responses, Anthropic)."""
    value = usage.get(name)
    if not _is_count(value):
        value = usage.get(other_name)
    return value if _is_count(value) else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
