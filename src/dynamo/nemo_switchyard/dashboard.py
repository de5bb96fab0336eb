"""``GET /dashboard``: a live page over ``/stats``, served by switchyard itself.

The page is one self-contained file (``dashboard.html``: inline CSS and vanilla JS drawing
inline SVG; no CDN, nothing to build) shipped as package data and read once. It polls
``stats`` (same origin) every second and keeps the time series in the browser, so serving it
costs the proxy one cached write. Its inline ``<style>`` and ``<script>`` are allowed by hash in
a strict Content-Security-Policy: the page can run nothing else and reach nothing but this origin.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib.resources import files

CONTENT_TYPE = b"text/html; charset=utf-8"
_INLINE = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)


def page() -> tuple[bytes, bytes]:
    """The page's bytes and its Content-Type."""
    return _load()[0], CONTENT_TYPE


def headers() -> list[tuple[bytes, bytes]]:
    """Every response header the page should go out with (a fresh list: the caller may append):
    Content-Type, revalidation, and a Content-Security-Policy that pins its inline code."""
    return list(_load()[1])


@lru_cache(maxsize=1)
def _load() -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    body = files(__package__).joinpath("dashboard.html").read_bytes()
    return body, (
        (b"Content-Type", CONTENT_TYPE),
        (b"Cache-Control", b"no-cache"),  # revalidate, so an upgraded switchyard serves its own page
        (b"Content-Security-Policy", csp(body).encode()),
        (b"X-Content-Type-Options", b"nosniff"),
        (b"Referrer-Policy", b"no-referrer"),  # the URL may carry ?key=
    )


def csp(html: bytes) -> str:
    """A policy that allows exactly the page's own inline scripts and styles (by SHA-256),
    ``fetch`` to this origin and ``data:`` images (the icon), and nothing else."""
    hashes: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for kind, content in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
        hashes[kind].append(f"'sha256-{digest}'")
    scripts = " ".join(hashes[b"script"]) or "'none'"
    styles = " ".join(hashes[b"style"]) or "'none'"
    return (
        f"default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
