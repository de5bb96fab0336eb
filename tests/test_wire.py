"""Unit tests for dynamo.nemo_switchyard.wire: header filtering and the exact bytes written."""

from __future__ import annotations

import pytest

from dynamo.nemo_switchyard.wire import (
    CHUNK,
    HOP_BY_HOP,
    LAST_CHUNK,
    NOT_FORWARDED,
    NOT_RETURNED,
    Request,
    filtered,
    is_named,
    request_head,
    response_head,
)

HOP = [b"Connection", b"Keep-Alive", b"TE", b"Transfer-Encoding", b"Upgrade", b"Proxy-Authorization", b"Proxy-Authenticate",
       b"Proxy-Connection", b"Trailer"]
DROPS = pytest.mark.parametrize("drop", [NOT_FORWARDED, NOT_RETURNED], ids=["request", "response"])


# ---------------------------------------------------------------- filtered()


@DROPS
@pytest.mark.parametrize("name", HOP)
def test_hop_by_hop_removed(drop, name: bytes):
    assert filtered([(name, b"x"), (b"X-Keep", b"1")], drop) == [(b"X-Keep", b"1")]


@DROPS
@pytest.mark.parametrize(
    "spelling", [b"connection", b"CONNECTION", b"Connection", b"keep-alive", b"KEEP-ALIVE", b"transfer-encoding", b"tRaNsFeR-EnCoDiNg"]
)
def test_hop_by_hop_case_insensitive(drop, spelling: bytes):
    assert filtered([(spelling, b"close")], drop) == []


def test_hop_by_hop_sets_are_lower_case():
    for names in (HOP_BY_HOP, NOT_FORWARDED, NOT_RETURNED):
        assert all(name == name.lower() for name in names)


@DROPS
def test_headers_named_in_connection_removed(drop):
    headers = [
        (b"Connection", b"keep-alive, X-Custom-Hop ,x-other"),
        (b"connection", b"X-Second-Line"),
        (b"X-Custom-Hop", b"a"),
        (b"x-OTHER", b"b"),
        (b"X-Second-Line", b"c"),
        (b"X-Stays", b"d"),
    ]
    assert filtered(headers, drop) == [(b"X-Stays", b"d")]


def test_connection_tokens_only_apply_to_their_message():
    assert filtered([(b"X-Custom", b"a")], NOT_FORWARDED) == [(b"X-Custom", b"a")]


def test_connection_header_after_the_named_header_still_removes_it():
    headers = [(b"X-Late", b"1"), (b"X-Keep", b"2"), (b"Connection", b"x-late")]
    assert filtered(headers, NOT_FORWARDED) == [(b"X-Keep", b"2")]


@pytest.mark.parametrize("name", [b"Host", b"host", b"HOST", b"Content-Length", b"content-length", b"Expect"])
def test_request_drops_host_length_expect(name: bytes):
    value = b"100-continue" if name == b"Expect" else b"5"
    out = filtered([(name, value), (b"Content-Type", b"application/json")], NOT_FORWARDED)
    assert out == [(b"Content-Type", b"application/json")]


@pytest.mark.parametrize(
    "name,value",
    [(b"Authorization", b"Bearer sk-123"), (b"x-dynamo-session-id", b"abc"), (b"traceparent", b"00-abc-def-01"),
     (b"Content-Type", b"application/json"), (b"Accept", b"text/event-stream"), (b"Accept-Encoding", b"gzip"),
     (b"User-Agent", b"OpenAI/Python"), (b"OpenAI-Organization", b"org"), (b"Cookie", b"a=b"), (b"X-Forwarded-For", b"1.2.3.4")],
)
def test_request_keeps_end_to_end_headers_with_their_spelling(name: bytes, value: bytes):
    assert filtered([(name, value), (b"Host", b"proxy:8080")], NOT_FORWARDED) == [(name, value)]


def test_request_keeps_repeated_headers_in_order():
    headers = [(b"X-Multi", b"1"), (b"Host", b"h"), (b"x-multi", b"2"), (b"Accept", b"a"), (b"X-Multi", b"3")]
    assert filtered(headers, NOT_FORWARDED) == [(b"X-Multi", b"1"), (b"x-multi", b"2"), (b"Accept", b"a"), (b"X-Multi", b"3")]


def test_response_keeps_content_encoding_and_repeated_set_cookie():
    headers = [
        (b"Content-Type", b"text/event-stream"),
        (b"Content-Encoding", b"gzip"),
        (b"Content-Length", b"123"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"x-request-id", b"r1"),
        (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
    ]
    assert filtered(headers, NOT_RETURNED) == [
        (b"Content-Type", b"text/event-stream"),
        (b"Content-Encoding", b"gzip"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"x-request-id", b"r1"),
        (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
    ]


def test_response_keeps_host_and_expect_like_headers():
    # Only requests drop Host and Expect; response headers of those names (odd but harmless) pass.
    assert filtered([(b"Host", b"h"), (b"Expect", b"e")], NOT_RETURNED) == [(b"Host", b"h"), (b"Expect", b"e")]


def test_values_are_kept_byte_for_byte():
    odd = [(b"X-Latin", b"caf\xe9"), (b"X-Spaces", b"  a , b  "), (b"X-Empty", b"")]
    assert filtered(odd, NOT_FORWARDED) == odd


def test_filtered_returns_a_new_list_and_accepts_any_iterable():
    source = [(b"Connection", b"close"), (b"X-A", b"1")]
    out = filtered(source, NOT_FORWARDED)
    out.append((b"X-B", b"2"))
    assert source == [(b"Connection", b"close"), (b"X-A", b"1")]
    assert filtered(iter([(b"x-hop", b"1"), (b"Connection", b"x-hop"), (b"Authorization", b"t")]), NOT_FORWARDED) == [(b"Authorization", b"t")]


def test_filtered_drops_any_set_of_names_in_any_case():
    # Names of the two usual sets' lengths take a short cut; any other set is honoured as well.
    drop = frozenset({b"x-internal-secret-token", b"te"})
    headers = [(b"X-Internal-Secret-Token", b"s"), (b"TE", b"trailers"), (b"Accept", b"*/*"), (b"Expect", b"100-continue")]
    assert filtered(headers, drop) == [(b"Accept", b"*/*"), (b"Expect", b"100-continue")]
    assert filtered(headers, NOT_FORWARDED) == [(b"X-Internal-Secret-Token", b"s"), (b"Accept", b"*/*")]
    assert filtered([(b"CONNECTION", b"Keep-Alive, X-Trace"), (b"x-trace", b"1"), (b"Keep-Alive", b"timeout=5"), (b"X-Other", b"2")],
                    NOT_RETURNED) == [(b"X-Other", b"2")]


def test_empty_headers():
    assert filtered([], NOT_FORWARDED) == [] == filtered([], NOT_RETURNED)


# ---------------------------------------------------------------- exact bytes


def test_request_head_exact_bytes():
    head = request_head("POST", b"/prefix/v1/chat/completions?a=%2F", b"backend:8000", [(b"Authorization", b"Bearer t"), (b"X-Multi", b"1"), (b"X-Multi", b"2")], 17)
    assert head == (
        b"POST /prefix/v1/chat/completions?a=%2F HTTP/1.1\r\n"
        b"Host: backend:8000\r\n"
        b"Authorization: Bearer t\r\n"
        b"X-Multi: 1\r\n"
        b"X-Multi: 2\r\n"
        b"Content-Length: 17\r\n"
        b"\r\n"
    )


def test_request_head_without_body_has_no_content_length():
    assert request_head("GET", b"/v1/models", b"h", [], None) == b"GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n"


def test_request_head_with_empty_body_sends_content_length_zero():
    assert request_head("POST", b"/x", b"h", [], 0) == b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"


def test_response_head_exact_bytes():
    head = response_head(200, None, [(b"Content-Type", b"application/json"), (b"Set-Cookie", b"a=1")], b"Content-Length: 2", True)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\nContent-Length: 2\r\n\r\n"


def test_response_head_chunked_and_closing():
    head = response_head(503, None, [], b"Transfer-Encoding: chunked", False)
    assert head == b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"


def test_response_head_close_delimited_has_no_framing():
    assert response_head(200, None, [(b"X", b"1")], None, False) == b"HTTP/1.1 200 OK\r\nX: 1\r\nConnection: close\r\n\r\n"


def test_response_head_keeps_the_backends_reason_and_names_unknown_statuses():
    assert response_head(200, b"Fine Thanks", [], None, True) == b"HTTP/1.1 200 Fine Thanks\r\n\r\n"
    assert response_head(599, None, [], None, True) == b"HTTP/1.1 599 Unknown\r\n\r\n"
    assert response_head(413, None, [], None, True).startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    assert response_head(431, None, [], None, True).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


def test_chunk_exact_bytes():
    def chunk(data: bytes) -> bytes:
        return CHUNK % (len(data), data)

    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert chunk(b"\r\n") == b"2\r\n\r\n\r\n"
    assert chunk(b"a" * 65536) == b"10000\r\n" + b"a" * 65536 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_request_header_lookup_is_by_lower_case_name_first_value():
    request = Request("GET", b"/", "/", [(b"X-A", b"1"), (b"x-a", b"2")], b"")
    assert request.header(b"x-a") == b"1"
    assert request.header(b"x-b") is None


def test_is_named_matches_any_case_and_only_the_whole_name():
    assert is_named(b"Content-Length", b"content-length")
    assert is_named(b"CONTENT-LENGTH", b"content-length")
    assert not is_named(b"Content-Type", b"content-length")  # another name
    assert not is_named(b"Content-Lengthx", b"content-length")  # longer: lower() never runs
    assert not is_named(b"Content-Lengt", b"content-length")
    assert not is_named(b"", b"x-request-id")
