"""Security end to end, through the real server process: client keys, the backend key, no open proxy, request ids."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from processes import backend_log, free_port, http_get

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
CLIENT_KEYS = ("sk-client-one-3f9a", "sk-client-two-77b1")
BACKEND_SECRET = "sk-backend-SECRET-d41d8cd98f00b204"
HEX16 = re.compile(r"[0-9a-f]{16}")


def exchange(base: str, raw: bytes, timeout: float = 10.0) -> tuple[int, dict[str, list[str]], bytes]:
    """Send raw request bytes on a new connection; return (status, lower-case headers, body)."""
    parts = urllib.parse.urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock, method=raw.split(b" ", 1)[0].decode())
        response.begin()
        body = response.read()
        headers: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            headers.setdefault(name.lower(), []).append(value)
        return response.status, headers, body


def call(base: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """One request with a normal Host header."""
    host = urllib.parse.urlsplit(base).netloc
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return exchange(base, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))


def chat(base: str, headers: dict[str, str] | None = None, body: dict | None = None):
    return call(base, "POST", "/v1/chat/completions", json.dumps(body or CHAT).encode(), headers)


def backend_requests(backend: str) -> list[dict]:
    return backend_log(backend)["requests"]


def forwarded_headers(backend: str) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for name, value in backend_requests(backend)[-1]["headers"]:
        got.setdefault(name.lower(), []).append(value)
    return got


def assert_openai_401(status: int, headers: dict[str, list[str]], body: bytes) -> None:
    assert status == 401
    error = json.loads(body)["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert set(error) == {"message", "type", "param", "code"}
    assert headers["x-switchyard-error-source"] == ["switchyard"]
    assert HEX16.fullmatch(headers["x-request-id"][0])


@pytest.fixture(scope="module")
def secured(start_switchyard, fake_backend):
    """Client keys on, a backend key configured, default open endpoints."""
    return start_switchyard(
        "--router-type", "random", "--api-key", CLIENT_KEYS[0], "--api-key", CLIENT_KEYS[1],
        "--backend-api-key", BACKEND_SECRET, backend=fake_backend,
    )


# ------------------------------------------------------------------ client keys


def test_missing_or_wrong_key_is_401_in_openai_shape_and_never_reaches_the_backend(secured, reset_backend):
    for headers in (
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": "Bearer " + CLIENT_KEYS[0][:-1]},  # a prefix of a real key
        {"Authorization": "Bearer " + CLIENT_KEYS[0] + "x"},  # a real key plus one character
        {"Authorization": CLIENT_KEYS[0]},  # no scheme
        {"Authorization": "Basic " + CLIENT_KEYS[0]},
        {"x-api-key": "nope"},
    ):
        status, got, body = chat(secured.url, headers)
        assert_openai_401(status, got, body)
        assert CLIENT_KEYS[0] not in body.decode()
    assert backend_requests(reset_backend) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {CLIENT_KEYS[0]}"},
        {"Authorization": f"bearer {CLIENT_KEYS[1]}"},
        {"x-api-key": CLIENT_KEYS[1]},  # Anthropic style
        {"Authorization": "Bearer sk-not-ours", "x-api-key": CLIENT_KEYS[0]},
    ],
)
def test_a_configured_key_is_accepted_as_bearer_or_x_api_key(secured, reset_backend, headers):
    status, got, _ = chat(secured.url, headers)
    assert status == 200
    assert got["x-routellm-routed-model"][0] in ("strong-model", "weak-model")


def test_health_and_ready_are_open_metrics_stats_and_the_rest_are_protected(secured, reset_backend):
    assert http_get(secured.url + "/health")[0] == 200
    assert http_get(secured.url + "/ready")[0] == 200
    for method, path in (("GET", "/metrics"), ("GET", "/stats"), ("GET", "/v1/models"), ("POST", "/v1/route"),
                         ("GET", "/v1/embeddings"), ("HEAD", "/health"), ("POST", "/health")):
        body = json.dumps(CHAT).encode() if method == "POST" else None
        status, headers, data = call(secured.url, method, path, body)
        if method == "HEAD":  # no body to parse, but the same refusal
            assert status == 401 and headers["x-switchyard-error-source"] == ["switchyard"]
        else:
            assert_openai_401(status, headers, data)
    assert backend_requests(reset_backend) == []  # HEAD/POST /health were not forwarded either
    key = {"Authorization": f"Bearer {CLIENT_KEYS[0]}"}
    for path in ("/metrics", "/stats", "/v1/models"):
        assert call(secured.url, "GET", path, headers=key)[0] == 200, path


def test_open_endpoints_are_configurable(start_switchyard, fake_backend):
    server = start_switchyard(
        "--router-type", "random", "--open-endpoints", "metrics,stats", backend=fake_backend, env={"SWITCHYARD_API_KEY": "k-env-1,k-env-2"},
    )
    assert call(server.url, "GET", "/metrics")[0] == 200
    assert call(server.url, "GET", "/stats")[0] == 200
    assert call(server.url, "GET", "/health")[0] == 401
    assert call(server.url, "GET", "/health", headers={"x-api-key": "k-env-2"})[0] == 200
    assert chat(server.url, {"Authorization": "Bearer k-env-1"})[0] == 200

    closed = start_switchyard("--router-type", "random", "--api-key", "k1", "--open-endpoints", "none", backend=fake_backend)
    assert call(closed.url, "GET", "/ready")[0] == 401


def test_keys_file_with_comments(start_switchyard, fake_backend, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# team A\nsk-file-a\n\n  sk-file-b  \n# sk-commented-out\n")
    server = start_switchyard("--router-type", "random", "--api-keys-file", str(keys), "--api-key", "sk-flag", backend=fake_backend)
    for key in ("sk-file-a", "sk-file-b", "sk-flag"):
        assert chat(server.url, {"Authorization": f"Bearer {key}"})[0] == 200, key
    for key in ("sk-commented-out", "# team A", "team"):
        assert chat(server.url, {"Authorization": f"Bearer {key}"})[0] == 401, key


# ------------------------------------------------------------------ what reaches the backend


def test_backend_key_replaces_the_client_credentials(secured, reset_backend):
    status, _, _ = chat(secured.url, {"Authorization": f"Bearer {CLIENT_KEYS[0]}", "x-api-key": CLIENT_KEYS[1]})
    assert status == 200
    got = forwarded_headers(reset_backend)
    assert got["authorization"] == [f"Bearer {BACKEND_SECRET}"]
    assert "x-api-key" not in got
    assert not any(key in json.dumps(backend_requests(reset_backend)) for key in CLIENT_KEYS)
    # forwarded (non-routed) paths too
    assert call(secured.url, "POST", "/v1/embeddings", b'{"input": "x"}', {"x-api-key": CLIENT_KEYS[0]})[0] == 200
    assert forwarded_headers(reset_backend)["authorization"] == [f"Bearer {BACKEND_SECRET}"]


def test_client_keys_without_backend_key_forward_no_credentials(start_switchyard, fake_backend, reset_backend):
    server = start_switchyard("--router-type", "random", "--api-key", "sk-only-for-switchyard", backend=fake_backend)
    assert chat(server.url, {"Authorization": "Bearer sk-only-for-switchyard"})[0] == 200
    got = forwarded_headers(reset_backend)
    assert "authorization" not in got and "x-api-key" not in got


def test_backend_key_without_client_keys_replaces_the_client_authorization(start_switchyard, fake_backend, reset_backend):
    server = start_switchyard("--router-type", "random", backend=fake_backend, env={"SWITCHYARD_BACKEND_API_KEY": BACKEND_SECRET})
    assert chat(server.url, {"Authorization": "Bearer client-own-key"})[0] == 200
    assert forwarded_headers(reset_backend)["authorization"] == [f"Bearer {BACKEND_SECRET}"]
    assert chat(server.url)[0] == 200  # no client header at all: injected anyway
    assert forwarded_headers(reset_backend)["authorization"] == [f"Bearer {BACKEND_SECRET}"]


def test_secrets_never_appear_in_logs_stats_metrics_or_errors(start_switchyard, fake_backend, secured, reset_backend):
    key = {"Authorization": f"Bearer {CLIENT_KEYS[0]}"}
    seen = []
    for headers in (key, {"Authorization": "Bearer wrong"}, {**key, "x-fake-status": "500"}):
        seen.append(chat(secured.url, headers)[2])
    seen.append(chat(secured.url, key, {**CHAT, "stream": True})[2])
    seen.append(call(secured.url, "GET", "/stats", headers=key)[2])
    seen.append(call(secured.url, "GET", "/metrics", headers=key)[2])
    seen.append(call(secured.url, "GET", "/health")[2])
    seen.append(call(secured.url, "GET", "/v1/../x", headers=key)[2])
    # a backend that cannot be reached: the 502 names the backend, never the key
    dead = start_switchyard(
        "--router-type", "random", "--backend-api-key", BACKEND_SECRET, "--api-key", CLIENT_KEYS[0], "--log-level", "debug",
        backend=f"http://127.0.0.1:{free_port()}",
    )
    status, _, body = chat(dead.url, key)
    assert status == 502
    seen.append(body)
    wait_for_text(secured.log, "/v1/../x")  # the last request's access line is written
    for text in [*(data.decode("utf-8", "replace") for data in seen), secured.log.read_text(), dead.log.read_text()]:
        assert BACKEND_SECRET not in text
        assert CLIENT_KEYS[0] not in text and CLIENT_KEYS[1] not in text


# ------------------------------------------------------------------ not an open proxy


class Listener:
    """A TCP port that records whether anything connected to it (the address an attacker would want reached)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def evil() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def open_server(start_switchyard, fake_backend):
    return start_switchyard("--router-type", "random", backend=fake_backend)


@pytest.mark.parametrize(
    "method, target",
    [
        ("GET", "http://{evil}/x"),
        ("POST", "http://{evil}/v1/chat/completions"),
        ("GET", "https://{evil}/v1/models"),
        ("GET", "//{evil}/x"),
        ("GET", "//{evil}"),
        ("GET", "{evil}"),
        ("GET", "/v1/../../x"),
        ("GET", "/v1/%2e%2e/%2e%2e/x"),
        ("GET", "/v1/%2E%2E/x"),
        ("GET", "/v1/.%2e/x"),
        ("GET", "/v1/%252e%252e/x"),
        ("GET", "/v1\\..\\x"),
        ("GET", "/v1/%5c..%5cx"),
        ("GET", "/%2F%2F{evil}/x"),
        ("GET", "/health/../v1/models"),  # an open endpoint's path cannot lend its openness
        ("GET", "*"),
    ],
)
def test_targets_that_could_leave_the_backend_are_400(open_server, reset_backend, evil, method, target):
    target = target.format(evil=f"127.0.0.1:{evil.port}")
    body = json.dumps(CHAT).encode() if method == "POST" else b""
    raw = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{evil.port}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    try:
        status, headers, data = exchange(open_server.url, raw)
    except (ConnectionError, http.client.RemoteDisconnected):  # the parser refused it outright
        status, headers, data = 400, {"x-switchyard-error-source": ["switchyard"]}, b'{"error": {}}'
    assert status == 400
    assert headers["x-switchyard-error-source"] == ["switchyard"]
    assert "error" in json.loads(data)
    assert backend_requests(reset_backend) == []
    assert evil.connections == 0
    assert http_get(open_server.url + "/health")[0] == 200  # still serving


def test_host_header_tricks_reach_only_the_configured_backend(open_server, reset_backend, evil):
    backend_host = urllib.parse.urlsplit(reset_backend).netloc
    for host_headers in (
        [f"Host: 127.0.0.1:{evil.port}"],
        ["Host: evil.example"],
        [f"Host: 127.0.0.1:{evil.port}", "X-Forwarded-Host: evil.example", f"Forwarded: host=127.0.0.1:{evil.port}"],
    ):
        body = json.dumps(CHAT).encode()
        raw = (
            "POST /v1/chat/completions HTTP/1.1\r\n" + "\r\n".join(host_headers)
            + f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        status, _, _ = exchange(open_server.url, raw)
        assert status == 200
        got = forwarded_headers(reset_backend)
        assert got["host"] == [backend_host]
    # A request with two Host headers is malformed (RFC 9112 3.2): refused or sent to the backend, nothing else.
    raw = f"GET /v1/models HTTP/1.1\r\nHost: evil.example\r\nHost: 127.0.0.1:{evil.port}\r\nConnection: close\r\n\r\n".encode()
    status, _, _ = exchange(open_server.url, raw)
    assert status in (200, 400)
    assert evil.connections == 0
    assert all({k.lower(): v for k, v in r["headers"]}["host"] == backend_host for r in backend_requests(reset_backend))


def test_ordinary_paths_with_dots_and_encodings_are_still_forwarded(open_server, reset_backend):
    for path in ("/v1/files/report.v2.json", "/v1/embeddings?q=../x&y=%2e%2e", "/v1/files/a%2Fb"):
        status, _, _ = call(open_server.url, "GET", path)
        assert status == 200, path
        assert backend_requests(reset_backend)[-1]["path"] == path


# ------------------------------------------------------------------ request ids


def test_every_response_carries_a_request_id_that_is_forwarded(open_server, reset_backend):
    status, headers, _ = chat(open_server.url)
    assert status == 200
    rid = headers["x-request-id"]
    assert len(rid) == 1 and HEX16.fullmatch(rid[0])
    assert forwarded_headers(reset_backend)["x-request-id"] == rid
    second = chat(open_server.url)[1]["x-request-id"][0]
    assert second != rid[0]
    # streams, switchyard's errors, backend errors, own endpoints, forwarded paths
    for response in (
        chat(open_server.url, body={**CHAT, "stream": True}),
        call(open_server.url, "POST", "/v1/chat/completions", b"{not json"),
        chat(open_server.url, {"x-fake-status": "503"}),
        call(open_server.url, "GET", "/health"),
        call(open_server.url, "GET", "/metrics"),
        call(open_server.url, "GET", "/v1/models"),
        call(open_server.url, "GET", "/tokenize"),
        call(open_server.url, "GET", "/v1/%2e%2e/x"),
    ):
        assert HEX16.fullmatch(response[1]["x-request-id"][0]), response


def test_the_clients_request_id_is_kept_when_sane(open_server, reset_backend):
    mine = "req-2026.11.27_abc:DEF/42"
    status, headers, _ = chat(open_server.url, {"X-Request-Id": mine})
    assert status == 200 and headers["x-request-id"] == [mine]
    assert forwarded_headers(reset_backend)["x-request-id"] == [mine]
    for bad in ("x" * 129, "has space", "tab\there", "caf\u00e9"):
        status, headers, _ = chat(open_server.url, {"x-request-id": bad})
        assert status == 200
        assert HEX16.fullmatch(headers["x-request-id"][0]), bad
        assert forwarded_headers(reset_backend)["x-request-id"] == headers["x-request-id"]  # the bad one is not forwarded


def test_a_request_refused_before_it_is_read_has_a_request_id(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--max-body-size", "1024", backend=fake_backend)
    status, headers, _ = chat(server.url, body={**CHAT, "pad": "x" * 4096})
    assert status == 413 and HEX16.fullmatch(headers["x-request-id"][0])


def wait_for_text(path: Path, needle: str, timeout: float = 10.0) -> str:
    """The log's text once it contains ``needle`` (log lines are written after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text()
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.02)


def test_the_request_id_is_in_the_log_lines_about_that_request(start_switchyard, fake_backend):
    server = start_switchyard(
        "--router-type", "routers_for_tests:FailingRouter", backend=fake_backend, env={"PYTHONPATH": str(Path(__file__).parent)},
    )
    status, headers, _ = chat(server.url, {"x-request-id": "trace-me-123"})
    assert status == 200 and headers["x-switchyard-decision"] == ["fallback"]
    text = wait_for_text(server.log, "switchyard.access: POST /v1/chat/completions 200")
    lines = [line for line in text.splitlines() if "trace-me-123" in line]
    assert any("routing fell back" in line for line in lines), text
    assert any("switchyard.access" in line and "decision=fallback" in line for line in lines), text
