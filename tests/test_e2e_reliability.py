"""Reliability through the real server process: backend outages and recovery, retries, failover,
bad input, and shutdown. No timed asserts: waits poll for an event and only fail on a generous deadline."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

import pytest

from dynamo.nemo_switchyard.app import backoff, is_json_type
from dynamo.nemo_switchyard.prompt import PromptError, check_types

from fake_backend import stream_bytes
from processes import backend_log, fake_backend_command, free_port, http_get, running
from processes import http_request as request

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "Prove that there are infinitely many primes."}]}
STRONG = {**CHAT, "model": "router-random-0"}  # threshold 0: always the strong model




def chat(base: str, body: dict | None = None, **kwargs):
    return request(base, "POST", "/v1/chat/completions", json.dumps(body or CHAT).encode(), **kwargs)


def wait_until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


def metric(base: str, line_start: str) -> float:
    for line in http_get(base + "/metrics")[1].decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def refused(base: str) -> bool:
    parts = urllib.parse.urlsplit(base)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# -- units ------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped():
    for retry, low, high in ((1, 0.05, 0.1), (2, 0.1, 0.2), (4, 0.4, 0.8), (20, 2.5, 5.0)):
        for _ in range(50):
            assert low <= backoff(retry, 0.1) <= high
    assert backoff(3, 0.0) == 0.0


@pytest.mark.parametrize(
    "value, ok",
    [(None, True), (b"application/json", True), (b"Application/JSON; charset=utf-8", True), (b"application/merge-patch+json", True),
     (b"text/plain", False), (b"application/x-www-form-urlencoded", False), (b"", False), (b"multipart/form-data; boundary=x", False)],
)
def test_json_content_types(value, ok):
    assert is_json_type(value) is ok


@pytest.mark.parametrize(
    "endpoint, body, fragment",
    [
        ("chat", {"messages": "hi"}, "'messages' must be a list"),
        ("chat", {}, "'messages' must be a list"),
        ("chat", {"messages": [{"role": "user", "content": 5}]}, "'messages[0].content' must be a string or a list of content parts, not a number"),
        ("chat", {"messages": [{"role": "user", "content": "a"}, "junk"]}, "'messages[1]' must be an object, not a string"),
        ("messages", {"messages": [{"role": "user", "content": {"a": 1}}]}, "not an object"),
        ("completions", {"prompt": 3.5}, "'prompt' must be a string or a list, not a number"),
    ],
)
def test_check_types_names_the_field(endpoint, body, fragment):
    with pytest.raises(PromptError) as caught:
        check_types(endpoint, body)
    assert fragment in str(caught.value)


def test_check_types_accepts_what_openai_accepts():
    check_types("chat", {"messages": [{"role": "user", "content": None}, {"role": "user", "content": [{"type": "text", "text": "x"}]}]})
    check_types("completions", {"prompt": [1, 2, 3]})
    check_types("responses", {"input": 5})  # extract_prompt checks input


# -- backend outages and recovery ----------------------------------------------------


def test_backend_down_at_start_comes_up_goes_down_and_comes_back(start_switchyard, tmp_path):
    port = free_port()
    backend = f"http://127.0.0.1:{port}"
    server = start_switchyard("--router-type", "random", "--retries", "0", backend=backend)

    def outage() -> None:
        status, headers, body = chat(server.url)
        assert status == 502, body
        assert json.loads(body)["error"]["code"] == "backend_connect"
        assert headers["x-switchyard-error-source"] == ["switchyard"]
        wait_until(lambda: http_get(server.url + "/ready")[0] == 503, "/ready 503 while the backend is down")

    def serving() -> None:
        wait_until(lambda: http_get(server.url + "/ready")[0] == 200, "/ready 200 once the backend is up")
        for stream in (False, True):
            status, headers, body = chat(server.url, {**CHAT, "stream": stream})
            assert status == 200
            if stream:
                assert body == b"".join(stream_bytes(headers["x-routellm-routed-model"][0], 20))

    outage()  # down at start
    for round_ in range(2):  # comes up; goes down mid-run; comes back
        with running(fake_backend_command(port), backend + "/_fake/log", tmp_path / f"backend{round_}.log"):
            serving()
        outage()
    assert server.process.poll() is None
    assert metric(server.url, 'switchyard_upstream_errors_total{kind="connect"}') >= 3


# -- retries ------------------------------------------------------------------------------


def test_a_refused_request_is_retried_until_the_backend_comes_up(start_switchyard, tmp_path):
    port = free_port()
    backend = f"http://127.0.0.1:{port}"
    server = start_switchyard("--router-type", "random", "--retries", "10", "--retry-backoff", "0.2", backend=backend)
    result: list = []
    client = threading.Thread(target=lambda: result.append(chat(server.url, timeout=120)))
    client.start()
    wait_until(lambda: metric(server.url, 'switchyard_retries_total{kind="connect"}') >= 1, "a first retry")
    with running(fake_backend_command(port), backend + "/_fake/log", tmp_path / "backend.log"):
        client.join(120)
        status, headers, _ = result[0]
    assert status == 200
    retries = int(headers["x-switchyard-retries"][0])
    assert 1 <= retries <= 10
    assert metric(server.url, 'switchyard_retries_total{kind="connect"}') == retries


def test_retries_are_counted_in_headers_and_can_be_disabled(start_switchyard):
    dead = f"http://127.0.0.1:{free_port()}"
    default = start_switchyard("--router-type", "random", "--retry-backoff", "0", backend=dead)
    status, headers, _ = chat(default.url)
    assert status == 502 and headers["x-switchyard-retries"] == ["1"]  # the default: one retry
    none = start_switchyard("--router-type", "random", "--retries", "0", backend=dead)
    status, headers, _ = chat(none.url)
    assert status == 502 and "x-switchyard-retries" not in headers
    assert metric(none.url, 'switchyard_retries_total{kind="connect"}') == 0
    # The decision is counted although the request never reached the backend, and once.
    assert metric(default.url, "switchyard_routing_latency_seconds_count") == 1
    assert metric(default.url, 'switchyard_decision_reasons_total{reason="score"}') == 1


def test_no_retry_after_the_head_reached_the_client(proxy, reset_backend):
    before = metric(proxy.url, 'switchyard_retries_total{kind="reset_mid_body"}')
    with pytest.raises(http.client.IncompleteRead):
        chat(proxy.url, {**CHAT, "stream": True}, headers={"x-fake-reset-after": "5"})
    assert len(backend_log(reset_backend)["requests"]) == 1  # sent once, never again
    assert metric(proxy.url, 'switchyard_retries_total{kind="reset_mid_body"}') == before == 0


# -- failover --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_strong(tmp_path_factory):
    """A fake backend whose strong model resets every connection before answering."""
    port = free_port()
    with running(fake_backend_command(port, fail_models=("strong-model",)), f"http://127.0.0.1:{port}/_fake/log",
                 tmp_path_factory.mktemp("broken") / "backend.log"):
        yield f"http://127.0.0.1:{port}"


def test_failover_to_the_other_model_when_the_chosen_one_fails(start_switchyard, broken_strong):
    server = start_switchyard("--router-type", "random", "--failover", "--retry-backoff", "0", backend=broken_strong)
    raw = json.dumps({**STRONG, "temperature": 0.25, "nvext": {"model": "keep"}}).encode()
    status, headers, body = request(server.url, "POST", "/v1/chat/completions", raw)
    assert status == 200
    assert headers["x-switchyard-failover"] == ["strong-model->weak-model"]
    assert headers["x-routellm-routed-model"] == ["weak-model"]
    assert headers["x-switchyard-decision"] == ["strong"]  # the router's decision, unchanged
    assert headers["x-switchyard-retries"] == ["1"]  # the strong model was retried once first
    forwarded = base64.b64decode(backend_log(broken_strong)["requests"][-1]["body_b64"])
    assert forwarded == raw.replace(b'"router-random-0"', b'"weak-model"')
    assert json.loads(body)["received_sha256"] == hashlib.sha256(forwarded).hexdigest()
    # Streams fail over the same way, byte for byte.
    status, headers, body = chat(server.url, {**STRONG, "stream": True})
    assert status == 200 and body == b"".join(stream_bytes("weak-model", 20))
    assert metric(server.url, 'switchyard_failovers_total{from_model="strong-model",to_model="weak-model"}') == 2
    assert metric(server.url, 'switchyard_retries_total{kind="disconnected"}') == 2
    # Each decision counted once, as the router made it, although each request was sent three times.
    assert metric(server.url, "switchyard_routing_latency_seconds_count") == 2
    assert metric(server.url, 'switchyard_decision_reasons_total{reason="score"}') == 2
    assert metric(server.url, 'switchyard_requests_total{decision="strong",status="200"}') == 2
    # Passthrough requests never fail over.
    status, headers, body = chat(server.url, {**CHAT, "model": "strong-model"})
    assert status == 502 and json.loads(body)["error"]["code"] == "backend_disconnected"
    assert "x-switchyard-failover" not in headers


def test_without_failover_the_failure_is_a_clean_502(start_switchyard, broken_strong):
    server = start_switchyard("--router-type", "random", "--retry-backoff", "0", backend=broken_strong)
    status, headers, body = chat(server.url, STRONG)
    assert status == 502 and json.loads(body)["error"]["code"] == "backend_disconnected"
    assert headers["x-routellm-routed-model"] == ["strong-model"] and "x-switchyard-failover" not in headers
    assert chat(server.url, {**CHAT, "model": "router-random-1"})[0] == 200  # the weak model still works


def test_failover_on_a_503_answer(start_switchyard, tmp_path):
    port = free_port()
    backend = f"http://127.0.0.1:{port}"
    with running(fake_backend_command(port, fail_models=("strong-model",), fail_mode="503"), backend + "/_fake/log", tmp_path / "b.log"):
        plain = start_switchyard("--router-type", "random", backend=backend)
        status, headers, body = chat(plain.url, STRONG)
        assert status == 503 and headers["x-switchyard-error-source"] == ["backend"]  # passed through
        assert "x-switchyard-retries" not in headers  # an answer is not a connection error
        failover = start_switchyard("--router-type", "random", "--failover", backend=backend)
        status, headers, _ = chat(failover.url, STRONG)
        assert status == 200 and headers["x-switchyard-failover"] == ["strong-model->weak-model"]


# -- bad input ----------------------------------------------------------------------------------

DEEP = b'{"model": "auto", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    "path, raw, content_type, status, code, fragment",
    [
        ("/v1/chat/completions", b"{not json", "application/json", 400, "invalid_json", "not valid JSON"),
        ("/v1/chat/completions", b"", "application/json", 400, "invalid_json", "not valid JSON"),
        ("/v1/chat/completions", b'"just a string"', "application/json", 400, "invalid_json", "JSON object"),
        ("/v1/chat/completions", b'{"model": 5, "messages": []}', "application/json", 400, "invalid_request", "'model' must be a string, not a number"),
        ("/v1/chat/completions", b'{"model": ["auto"], "messages": []}', "application/json", 400, "invalid_request", "not an array"),
        ("/v1/chat/completions", b'{"model": "auto", "messages": "hi"}', "application/json", 400, "invalid_request", "'messages' must be a list"),
        ("/v1/chat/completions", b'{"model": "auto"}', "application/json", 400, "invalid_request", "'messages'"),
        ("/v1/chat/completions", b'{"model": "auto", "messages": [{"role": "user", "content": 42}]}', "application/json", 400,
         "invalid_request", "'messages[0].content'"),
        ("/v1/completions", b'{"model": "auto"}', "application/json", 400, "invalid_request", "'prompt' is required"),
        ("/v1/completions", b'{"model": "auto", "prompt": {"a": 1}}', "application/json", 400, "invalid_request", "'prompt' must be"),
        ("/v1/responses", b'{"model": "auto", "input": 7}', "application/json", 400, "invalid_request", "'input'"),
        ("/v1/chat/completions", DEEP, "application/json", 400, "invalid_json", "depth limit exceeded"),
        ("/v1/chat/completions", b'{"model": "auto", "messages": [{"role": "user", "content": "\xff\xfe bad"}]}', "application/json",
         400, "invalid_json", "UTF-8"),
        ("/v1/chat/completions", json.dumps(CHAT).encode(), "text/plain", 415, "unsupported_media_type", "Content-Type: application/json"),
        ("/v1/chat/completions", json.dumps(CHAT).encode(), "application/x-www-form-urlencoded", 415, "unsupported_media_type", "x-www-form"),
    ],
)
def test_bad_input_is_a_4xx_in_openai_shape_and_the_server_keeps_serving(proxy, path, raw, content_type, status, code, fragment):
    got, headers, body = request(proxy.url, "POST", path, raw, {"Content-Type": content_type})
    error = json.loads(body)["error"]
    assert (got, error["code"]) == (status, code), error
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert headers["x-switchyard-error-source"] == ["switchyard"]
    assert chat(proxy.url)[0] == 200 and proxy.process.poll() is None


def test_content_type_is_lenient_when_absent(proxy, reset_backend):
    parts = urllib.parse.urlsplit(proxy.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(CHAT).encode())  # no Content-Type at all
    assert connection.getresponse().status == 200
    connection.close()


def test_a_10_mb_prompt_within_the_limit_is_forwarded_whole(proxy, reset_backend):
    raw = json.dumps({**CHAT, "messages": [{"role": "user", "content": "lorem ipsum " * 900_000}]}).encode()
    assert len(raw) > 10_000_000
    status, headers, body = request(proxy.url, "POST", "/v1/chat/completions", raw, timeout=60)
    assert status == 200
    model = headers["x-routellm-routed-model"][0]
    assert json.loads(body)["received_sha256"] == hashlib.sha256(raw.replace(b'"auto"', json.dumps(model).encode(), 1)).hexdigest()


@pytest.mark.parametrize(
    "head, status, code",
    [
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n", 413, "body_too_large"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n", 431, "headers_too_large"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"x-h%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431, "headers_too_large"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400, "bad_http"),
    ],
)
def test_oversized_or_malformed_requests_are_refused_and_the_server_keeps_serving(proxy, head, status, code):
    parts = urllib.parse.urlsplit(proxy.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == code
    assert chat(proxy.url)[0] == 200 and proxy.process.poll() is None


def test_openapi_description_is_served(proxy):
    status, body = http_get(proxy.url + "/openapi.json")
    spec = json.loads(body)
    assert status == 200 and spec["openapi"].startswith("3.0")
    assert {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages", "/v1/route", "/ready"} <= set(spec["paths"])


def test_stats_report_tasks_and_backend_connections(proxy):
    stats = json.loads(http_get(proxy.url + "/stats")[1])
    assert stats["tasks"] >= 1 and stats["backend_connections"] >= 0


# -- shutdown -------------------------------------------------------------------------------------


class HeldStream:
    """A streaming request the fake backend holds after its first piece, until released."""

    def __init__(self, server_url: str, backend: str, key: str) -> None:
        self.backend, self.key = backend, key
        parts = urllib.parse.urlsplit(server_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
        payload = json.dumps({**CHAT, "model": "router-random-1", "stream": True}).encode()
        self.sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-fake-hold: " + key.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload
        )
        self.received = b""
        while b"\r\n\r\n" not in self.received:
            self.received += self.sock.recv(65536)
        assert self.received.startswith(b"HTTP/1.1 200")

    def release(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.backend}/_fake/release?key={self.key}", method="POST"), timeout=5).read()

    def read_to_end(self) -> bytes:
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
        except ConnectionResetError:
            pass
        self.sock.close()
        return self.received


def test_sigterm_turns_ready_off_refuses_new_connections_and_lets_streams_finish(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--shutdown-delay", "5", "--drain-timeout", "120", backend=fake_backend)
    stream = HeldStream(server.url, fake_backend, "drain-finish")
    os.kill(server.process.pid, signal.SIGTERM)
    # Within the 5 s delay: still listening, but not ready (once the signal has been handled).
    wait_until(lambda: http_get(server.url + "/ready")[0] == 503, "/ready 503 after SIGTERM")
    assert json.loads(http_get(server.url + "/ready")[1])["draining"] is True
    wait_until(lambda: refused(server.url), "the listener closes after the delay")
    assert server.process.poll() is None  # still draining the held stream
    stream.release()
    data = stream.read_to_end()
    assert data.endswith(b"0\r\n\r\n")  # the chunked stream ended properly
    body = data.split(b"\r\n\r\n", 1)[1]
    assert b"data: [DONE]" in body
    assert server.process.wait(30) == 0


def test_a_stream_longer_than_the_drain_timeout_is_cut_and_the_process_exits_0(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--drain-timeout", "0.5", backend=fake_backend)
    stream = HeldStream(server.url, fake_backend, "drain-cut")
    try:
        os.kill(server.process.pid, signal.SIGTERM)
        assert server.process.wait(30) == 0
        data = stream.read_to_end()
        assert not data.endswith(b"0\r\n\r\n") and b"[DONE]" not in data  # cut, visibly truncated
        assert "drain over: cutting 1 connection(s) still busy" in server.log.read_text()
    finally:
        stream.release()


def test_a_model_name_with_cr_lf_cannot_inject_response_headers(proxy, reset_backend):
    raw = json.dumps({**CHAT, "model": "evil\r\nSet-Cookie: owned=1\r\n\r\nbody"}).encode()
    status, headers, _ = request(proxy.url, "POST", "/v1/chat/completions", raw)
    assert status == 200 and "set-cookie" not in headers
    assert headers["x-routellm-routed-model"] == ["evil%0D%0ASet-Cookie: owned=1%0D%0A%0D%0Abody"]
    assert chat(proxy.url)[0] == 200


def test_sigterm_with_several_workers_drains_and_exits_0(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--workers", "2", "--drain-timeout", "120", backend=fake_backend)
    stream = HeldStream(server.url, fake_backend, "drain-workers")
    os.kill(server.process.pid, signal.SIGTERM)  # the parent forwards it to every worker
    wait_until(lambda: refused(server.url), "every worker closes the shared listener")
    assert server.process.poll() is None  # the worker holding the stream is still draining it
    stream.release()
    data = stream.read_to_end()
    assert data.endswith(b"0\r\n\r\n") and b"data: [DONE]" in data
    assert server.process.wait(30) == 0
