"""Unit tests for the header filtering of dynamo.nemo_switchyard.upstream."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from dynamo.nemo_switchyard.upstream import HOP_BY_HOP, Upstream, request_headers, response_headers

HOP = ["Connection", "Keep-Alive", "TE", "Transfer-Encoding", "Upgrade", "Proxy-Authorization", "Proxy-Authenticate",
       "Proxy-Connection", "Trailer"]


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    """Headers as aiohttp hands them over (case-insensitive, repeatable)."""
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize("filt", [request_headers, response_headers])
@pytest.mark.parametrize("name", HOP)
def test_hop_by_hop_removed(filt, name: str):
    out = filt(_headers((name, "x"), ("X-Keep", "1")))
    assert name not in out
    assert out.get("X-Keep") == "1"


@pytest.mark.parametrize("filt", [request_headers, response_headers])
@pytest.mark.parametrize("spelling", ["connection", "CONNECTION", "Connection", "keep-alive", "KEEP-ALIVE", "transfer-encoding"])
def test_hop_by_hop_case_insensitive(filt, spelling: str):
    assert len(filt(_headers((spelling, "close")))) == 0


def test_hop_by_hop_set_is_lower_case():
    assert all(name == name.lower() for name in HOP_BY_HOP)


@pytest.mark.parametrize("filt", [request_headers, response_headers])
def test_headers_named_in_connection_removed(filt):
    headers = _headers(
        ("Connection", "keep-alive, X-Custom-Hop ,x-other"),
        ("Connection", "X-Second-Line"),
        ("X-Custom-Hop", "a"),
        ("x-OTHER", "b"),
        ("X-Second-Line", "c"),
        ("X-Stays", "d"),
    )
    out = filt(headers)
    assert list(out.items()) == [("X-Stays", "d")]


def test_connection_tokens_only_apply_to_their_message():
    assert request_headers(_headers(("X-Custom", "a"))).get("X-Custom") == "a"


@pytest.mark.parametrize("name", ["Host", "host", "Content-Length", "Expect"])
def test_request_drops_host_length_expect(name: str):
    out = request_headers(_headers((name, "100-continue" if name == "Expect" else "5"), ("Content-Type", "application/json")))
    assert name not in out
    assert out["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "name,value",
    [("Authorization", "Bearer sk-123"), ("x-dynamo-session-id", "abc"), ("traceparent", "00-abc-def-01"),
     ("Content-Type", "application/json"), ("Accept", "text/event-stream"), ("Accept-Encoding", "gzip"),
     ("User-Agent", "OpenAI/Python"), ("OpenAI-Organization", "org"), ("Cookie", "a=b"), ("X-Forwarded-For", "1.2.3.4")],
)
def test_request_keeps_end_to_end_headers(name: str, value: str):
    out = request_headers(_headers((name, value), ("Host", "proxy:8080")))
    assert out.getall(name) == [value]
    assert list(out.keys()) == [name]  # the original spelling is kept


def test_request_keeps_repeated_headers_in_order():
    out = request_headers(_headers(("X-Multi", "1"), ("Host", "h"), ("x-multi", "2"), ("Accept", "a"), ("X-Multi", "3")))
    assert out.getall("X-Multi") == ["1", "2", "3"]
    assert list(out.items()) == [("X-Multi", "1"), ("x-multi", "2"), ("Accept", "a"), ("X-Multi", "3")]


def test_response_keeps_content_encoding_and_repeated_set_cookie():
    out = response_headers(
        _headers(
            ("Content-Type", "text/event-stream"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", "123"),
            ("Transfer-Encoding", "chunked"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("x-request-id", "r1"),
            ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
        )
    )
    assert out["Content-Encoding"] == "gzip"
    assert out.getall("Set-Cookie") == ["a=1", "b=2"]
    assert "Content-Length" not in out and "Transfer-Encoding" not in out
    assert out["x-request-id"] == "r1" and out["Content-Type"] == "text/event-stream"
    assert "Date" in out


def test_response_keeps_host_like_headers():
    # Only requests drop Host; a response header of that name (odd but harmless) passes.
    assert response_headers(_headers(("Host", "h"))).get("Host") == "h"


def test_filters_return_new_mutable_multidict():
    source = CIMultiDict([("Connection", "close"), ("X-A", "1")])
    out = request_headers(CIMultiDictProxy(source))
    assert isinstance(out, CIMultiDict)
    out.add("X-B", "2")
    assert "X-B" not in source and "Connection" in source


def test_empty_headers():
    assert len(request_headers(_headers())) == 0
    assert len(response_headers(_headers())) == 0


def test_plain_mapping_accepted():
    out = request_headers({"connection": "close, x-hop", "x-hop": "1", "Authorization": "Bearer t"})
    assert dict(out) == {"Authorization": "Bearer t"}


# ---------------------------------------------------------------- URL building (no network)


def test_upstream_url_keeps_path_and_query_encoding():
    up = Upstream("http://backend:8000/prefix/", connect_timeout=1, first_byte_timeout=1, idle_timeout=1)
    assert up.base == "http://backend:8000/prefix"
    assert up.host == "backend:8000"
    url = up.url("/v1/chat/completions?a=%2F&b=c%20d")
    assert str(url) == "http://backend:8000/prefix/v1/chat/completions?a=%2F&b=c%20d"
