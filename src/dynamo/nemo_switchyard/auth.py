"""Who may use the proxy, what reaches the backend: client API keys, the backend key, request targets.

* Client keys (``--api-key``, ``--api-keys-file``): a request must present one, as
  ``Authorization: Bearer <key>`` (OpenAI) or ``x-api-key: <key>`` (Anthropic). Keys are
  compared as SHA-256 digests with ``hmac.compare_digest``, against every configured key
  without stopping at a match, so neither a key's content nor its length shows in timing.
* The client's credentials are switchyard's then, not the backend's: ``Authorization``
  and ``x-api-key`` are not forwarded. ``--backend-api-key`` replaces the client's
  ``Authorization`` with the configured one (with or without client keys).
* Request targets: only origin-form paths (``/...``) reach the backend; absolute URIs,
  ``//host`` and ``..`` segments (also percent-encoded) are refused, so the proxy never
  becomes an open proxy or a way around the backend URL's path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote_to_bytes

Headers = list[tuple[bytes, bytes]]

OWN_ENDPOINTS = ("health", "ready", "metrics", "stats", "dashboard")
DEFAULT_OPEN_ENDPOINTS: tuple[str, ...] = ("health", "ready", "dashboard")  # the page holds no data: /stats needs the key
MAX_KEY_LENGTH = 4096

_AUTHORIZATION = b"authorization"
_X_API_KEY = b"x-api-key"
_KEY_TEXT = re.compile(r"[\x21-\x7e]+").fullmatch  # what fits in a header value unchanged


def check_key(key: str, subject: str = "the key") -> str:
    """``key`` if it can be sent in a header; else ValueError about ``subject``, never quoting the key."""
    if not key:
        raise ValueError(f"{subject} must not be empty")
    if len(key) > MAX_KEY_LENGTH or _KEY_TEXT(key) is None:
        raise ValueError(f"{subject} must be at most {MAX_KEY_LENGTH} printable ASCII characters without spaces")
    return key


def read_keys_file(path: str | Path) -> list[str]:
    """Keys from a file: one per line; blank lines and ``#`` comments are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read API keys file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(check_key(line, f"{path}:{number}: the key"))
    if not keys:
        raise ValueError(f"API keys file {path} holds no key")
    return keys


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class Authenticator:
    """Checks a request's client key and rewrites the credentials forwarded to the backend."""

    __slots__ = ("_digests", "_drop", "_inject", "_open", "enabled")

    def __init__(self, keys: Iterable[str], open_endpoints: Iterable[str], backend_key: str | None) -> None:
        self._digests = tuple(_digest(key.encode("ascii")) for key in dict.fromkeys(keys))
        self.enabled = bool(self._digests)
        self._open = frozenset("/" + name for name in open_endpoints)
        drop: set[bytes] = set()
        if self.enabled:
            drop |= {_AUTHORIZATION, _X_API_KEY}  # switchyard's key: never sent on
        if backend_key is not None:
            drop.add(_AUTHORIZATION)
        self._drop = frozenset(drop)
        self._inject = [(b"Authorization", b"Bearer " + backend_key.encode("ascii"))] if backend_key is not None else []

    @property
    def rewrites(self) -> bool:
        """Whether forwarded headers change (credentials dropped or injected)."""
        return bool(self._drop)

    def is_open(self, method: str, path: str) -> bool:
        """Switchyard's own endpoints configured as open, for GET only (other methods are forwarded)."""
        return method == "GET" and path in self._open

    def allowed(self, headers: Headers) -> bool:
        """Whether the request presents a configured key (Bearer or x-api-key)."""
        presented = []
        for name, value in headers:
            lower = name.lower()
            if lower == _AUTHORIZATION:
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    presented.append(token.strip())
            elif lower == _X_API_KEY:
                presented.append(value.strip())
        ok = 0
        for value in presented:
            digest = _digest(value)
            for key in self._digests:  # every key, no early exit
                ok |= hmac.compare_digest(digest, key)
        return bool(ok)

    def forwarded(self, headers: Headers) -> Headers:
        """The headers to forward: without the client's credentials, with the backend key if configured."""
        drop = self._drop
        kept = [(name, value) for name, value in headers if name.lower() not in drop]
        kept += self._inject
        return kept


# A dot, a percent sign or a backslash: what decoding could turn into a '..' segment. One regex
# search rather than ``b"." in path``: on Python 3.11 ``bytes in bytes`` first tries the operand as
# an integer and raises and clears a TypeError, ~2,000 instructions a test (callgrind).
_DECODABLE = re.compile(rb"[.%\\]").search


def unsafe_target(target: bytes) -> str | None:
    """Why a request target must not be forwarded, or None: only ``/path?query`` reaches the backend."""
    if target[:1] != b"/":
        return "request target must be a path such as /v1/models (absolute URIs are not proxied)"
    if target[:2] == b"//":
        return "request target must not start with //"
    path = target.split(b"?", 1)[0]
    if _DECODABLE(path) is None:
        return None  # the common case: nothing to decode
    for _ in range(4):  # decoded again and again: a lenient backend may decode %252e%252e twice
        slashed = path.replace(b"\\", b"/")  # some servers take a backslash for a slash
        if slashed[:2] == b"//":
            return "request target must not start with //"
        segments = slashed.split(b"/")
        if b".." in segments or b"." in segments:
            return "request target must not have '.' or '..' segments"
        if b"%" not in path:
            break
        path = unquote_to_bytes(path)
    if b"\x00" in path:
        return "request target must not contain NUL"
    return None
