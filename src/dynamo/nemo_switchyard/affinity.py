"""Conversation affinity: later turns of a conversation go to the model that served the earlier ones.

Switching models mid-conversation changes style and loses the backend's prefix cache;
``escalate`` mode still lets a hard turn move a conversation up to the strong model,
but never back down. A conversation is recognised by a session header, or else by a
hash of its opening (system prompt + first user message), which every later turn of a
chat resends unchanged.

Everything here runs on the event loop per request: dictionary operations and one
blake2b over the opening messages, no I/O.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

import orjson

from .prompt import content_text

__all__ = ["SESSION_HEADERS", "AffinityStore", "apply_affinity", "conversation_key"]

Mode = Literal["off", "sticky", "escalate"]
AFFINITY, SCORE = "affinity", "score"

# Looked up after the configured header, in this order.
SESSION_HEADERS: tuple[bytes, ...] = (b"x-dynamo-session-id", b"x-session-id")

_SYSTEM_ROLES = frozenset({"system", "developer"})
_MAX_HEADER_KEY = 256  # longer session ids are hashed, so a client cannot make keys large


class AffinityStore:
    """Conversation key -> model, bounded by count (LRU) and age (TTL since last use).

    Every ``get`` hit and ``put`` refreshes the entry's TTL and moves it to the back, so the
    dictionary is ordered by expiry too: expired entries are always at the front and are
    dropped there without scanning.
    """

    __slots__ = ("_clock", "_entries", "evictions", "expirations", "hits", "max_entries", "misses", "ttl_seconds")

    def __init__(self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries!r}")
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds!r}")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()  # key -> (model, expires at)
        self.hits = 0
        self.misses = 0
        self.evictions = 0  # dropped for room (LRU)
        self.expirations = 0  # dropped for age (TTL)

    def get(self, key: str) -> str | None:
        """The model this conversation was sent to before, or None (unknown or expired)."""
        now = self._clock()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        model = entry[0]
        self._entries[key] = (model, now + self.ttl_seconds)
        self._entries.move_to_end(key)
        self.hits += 1
        return model

    def put(self, key: str, model: str) -> None:
        """Remember the model a conversation was sent to (refreshing its TTL)."""
        now = self._clock()
        self._expire(now)
        entries = self._entries
        entries[key] = (model, now + self.ttl_seconds)
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
            self.evictions += 1

    def counters(self) -> dict[str, int]:
        """hits, misses, evictions, expirations and entries, for metrics."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "expirations": self.expirations,
            "entries": len(self),
        }

    def clear(self) -> None:
        self._entries.clear()

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (_, expires) = next(iter(entries.items()))
            if expires > now:
                return
            del entries[key]
            self.expirations += 1

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is held (no counters or TTL refresh: for tests and debugging)."""
        self._expire(self._clock())
        return key in self._entries


def conversation_key(
    headers_lookup: Callable[[bytes], bytes | None],
    session_header: bytes | None,
    body: dict[str, Any],
    endpoint: str,
    *,
    namespace: str = "",
) -> tuple[str, str] | None:
    """The conversation's affinity key and where it came from ("header" or "hash"), or None.

    ``headers_lookup`` takes a lower-case header name (``Request.header``). The configured
    ``session_header`` wins over ``x-dynamo-session-id``, which wins over ``x-session-id``.
    Without one, the key hashes the conversation's opening: the system message(s) before the
    first user message plus that user message (for ``messages``: ``system``; for
    ``responses``: ``instructions`` and the ``input`` items), so turn 1 and turn 5 of one
    chat get the same key. ``namespace`` (e.g. the client's key id) is mixed into every key, so
    two clients with the same opening ("Hi") do not share one. None: nothing to key on
    (``completions``, no user message, a malformed body). A Responses request that continues
    with ``previous_response_id`` resends only the new input, so without a session header its
    turns do not share a key.
    """
    names = (session_header.lower(), *SESSION_HEADERS) if session_header else SESSION_HEADERS
    for name in names:
        value = headers_lookup(name)
        if value is not None and (value := value.strip()):
            if len(value) > _MAX_HEADER_KEY or namespace:
                value = _digest([namespace, value.decode("latin-1")]).encode()
            return "h:" + value.decode("latin-1"), "header"
    opening = _opening(body, endpoint)
    if opening is None:
        return None
    try:
        return "c:" + _digest([namespace, opening]), "hash"
    except (TypeError, orjson.JSONEncodeError):  # not plain JSON data (a caller's own body object)
        return None


def apply_affinity(mode: Mode | str, previous: str | None, chosen: str, rank: Callable[[str], int]) -> tuple[str, str]:
    """The model to use and why ("affinity" when the remembered model decided, else "score").

    ``sticky``: a remembered model always wins (the score is not needed for it). ``escalate``:
    the stronger of the remembered and the chosen model by ``rank`` (higher = stronger), so a
    conversation moves up but never down; equal strength keeps the chosen one. A remembered
    model that ``rank`` rejects (e.g. no longer configured) is ignored. ``off``: the chosen one.
    """
    if previous is None or mode == "off":
        return chosen, SCORE
    if mode == "sticky":
        return previous, AFFINITY
    if mode == "escalate":
        try:
            if rank(previous) > rank(chosen):
                return previous, AFFINITY
        except (KeyError, ValueError):
            pass
        return chosen, SCORE
    raise ValueError(f"unknown affinity mode {mode!r}; choose off, sticky or escalate")


def _digest(parts: list[Any]) -> str:
    # Sorted keys: a client may serialise a content part's keys in another order next turn.
    return hashlib.blake2b(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def _opening(body: dict[str, Any], endpoint: str) -> list[Any] | None:
    """[[role, content], ...] of the leading system turns and the first user turn, or None."""
    if not isinstance(body, dict):
        return None
    opening: list[Any] = []
    if endpoint == "chat":
        turns = body.get("messages")
    elif endpoint == "messages":
        turns = body.get("messages")
        if body.get("system") is not None:
            opening.append(["system", _content(body["system"])])
    elif endpoint == "responses":
        turns = body.get("input")
        if isinstance(body.get("instructions"), str):
            opening.append(["system", body["instructions"]])
        if isinstance(turns, str):  # a bare string is one user message
            turns = [{"role": "user", "content": turns}]
    else:
        return None  # completions: a bare prompt has no turns to follow
    if not isinstance(turns, list):
        return None
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        role = turn.get("role")
        if endpoint == "responses" and turn.get("type", "message") != "message":
            continue
        if role in _SYSTEM_ROLES:
            opening.append(["system", _content(turn.get("content"))])
        elif role == "user":
            opening.append(["user", _content(turn.get("content"))])
            return opening
    return None  # no user message yet


def _content(content: Any) -> Any:
    """A turn's text (text parts of a list joined); content without text (an image) as sent."""
    text = content_text(content)
    if text or not isinstance(content, list):
        return text
    return content
