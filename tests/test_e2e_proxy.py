"""End to end through the real server process, against the deterministic fake backend."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import urllib.parse
from pathlib import Path

import pytest

from fake_backend import stream_bytes
from processes import backend_log, free_port, http_get
from processes import http_request as request

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "Prove that there are infinitely many primes."}]}




def last_request(backend: str) -> dict:
    return backend_log(backend)["requests"][-1]


def test_non_streaming_answer_is_byte_identical_and_only_model_changes(proxy, reset_backend):
    raw = b'{"model" :  "auto", "messages":[{"role":"user","content":"Prove \\u00e9 there are infinitely many primes."}],' \
          b' "temperature": 1.0e0, "seed": 12345678901234567890123, "nvext": {"model": "keep-me"}, "unknown_field": [1, 2.50, null]}'
    status, headers, body = request(proxy.url, "POST", "/v1/chat/completions", raw)
    assert status == 200
    routed = headers["x-routellm-routed-model"][0]
    assert routed in ("strong-model", "weak-model")
    forwarded = base64.b64decode(last_request(reset_backend)["body_b64"])
    assert forwarded == raw.replace(b'"auto"', json.dumps(routed).encode(), 1)
    # The body the client got is exactly what the backend sends for that request.
    direct_status, _, direct = request(reset_backend, "POST", "/v1/chat/completions", forwarded)
    assert direct_status == 200 and body == direct
    assert headers["x-switchyard-decision"][0] in ("strong", "weak")
    assert headers["x-switchyard-router"] == ["random"]
    assert 0.0 <= float(headers["x-switchyard-score"][0]) <= 1.0
    assert headers["x-fake-backend"] == ["1"]


def test_stream_is_byte_identical_including_comments_usage_and_done(proxy, reset_backend):
    body = json.dumps({**CHAT, "stream": True, "stream_options": {"include_usage": True}}).encode()
    status, headers, data = request(proxy.url, "POST", "/v1/chat/completions", body)
    assert status == 200
    model = headers["x-routellm-routed-model"][0]
    assert data == b"".join(stream_bytes(model, 20))
    assert data.startswith(b": fake backend keep-alive comment")
    assert b'"usage": {"prompt_tokens": 7' in data and data.endswith(b"data: [DONE]\n\n")
    assert headers["content-type"] == ["text/event-stream"]


def test_request_headers_are_forwarded_except_hop_by_hop(proxy, reset_backend):
    sent = {
        "Authorization": "Bearer client-key",
        "x-dynamo-session-id": "sess-42",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "Connection": "keep-alive, x-drop-me",
        "x-drop-me": "hop",
        "Keep-Alive": "timeout=5",
        "User-Agent": "my-client/1.0",
    }
    status, _, _ = request(proxy.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode(), sent)
    assert status == 200
    got = {name.lower(): value for name, value in last_request(reset_backend)["headers"]}
    assert got["authorization"] == "Bearer client-key"
    assert got["x-dynamo-session-id"] == "sess-42"
    assert got["traceparent"] == sent["traceparent"]
    assert got["user-agent"] == "my-client/1.0"
    assert "x-drop-me" not in got and "keep-alive" not in got
    assert got["accept-encoding"] == "identity"  # what http.client sent, nothing injected
    assert set(got) == {"host", "accept-encoding", "content-type", "content-length", "authorization", "x-dynamo-session-id", "traceparent", "user-agent",
                        "x-request-id"}  # switchyard's request id, also returned to the client


def test_passthrough_for_a_real_model_touches_nothing(proxy, reset_backend):
    raw = b'{"model":"weak-model","messages":[{"role":"user","content":"hi"}],"max_tokens":3}'
    status, headers, _ = request(proxy.url, "POST", "/v1/chat/completions", raw)
    assert status == 200
    assert base64.b64decode(last_request(reset_backend)["body_b64"]) == raw
    assert headers["x-switchyard-decision"] == ["passthrough"]
    assert headers["x-routellm-routed-model"] == ["weak-model"]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/completions", {"model": "auto", "prompt": "Integrate x^2 sin x dx"}),
        ("/v1/responses", {"model": "auto", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}]}),
        ("/v1/messages", {"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
    ],
)
def test_other_routed_endpoints(proxy, reset_backend, path, body):
    status, headers, _ = request(proxy.url, "POST", path, json.dumps(body).encode())
    assert status == 200
    assert headers["x-switchyard-decision"][0] in ("strong", "weak")
    forwarded = json.loads(base64.b64decode(last_request(reset_backend)["body_b64"]))
    assert forwarded == {**body, "model": headers["x-routellm-routed-model"][0]}
    assert last_request(reset_backend)["path"] == path


def test_routellm_style_model_name_sets_router_and_threshold(proxy, reset_backend):
    for threshold, expected in (("0.0", "strong-model"), ("1", "weak-model")):
        body = json.dumps({**CHAT, "model": f"router-random-{threshold}"}).encode()
        status, headers, _ = request(proxy.url, "POST", "/v1/chat/completions", body)
        assert status == 200
        assert headers["x-routellm-routed-model"] == [expected] or float(headers["x-switchyard-score"][0]) >= 1.0
        assert headers["x-switchyard-threshold"] == [threshold if threshold != "0.0" else "0"]


def test_unknown_router_in_model_name_is_400(proxy):
    status, headers, body = request(proxy.url, "POST", "/v1/chat/completions", json.dumps({**CHAT, "model": "router-nope-0.5"}).encode())
    assert status == 400
    error = json.loads(body)["error"]
    assert "nope" in error["message"] and error["type"] == "invalid_request_error"
    assert headers["x-switchyard-error-source"] == ["switchyard"]


def test_empty_prompt_goes_to_fallback(proxy, reset_backend):
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]})
    status, headers, _ = request(proxy.url, "POST", "/v1/chat/completions", body.encode())
    assert status == 200
    assert headers["x-switchyard-decision"] == ["fallback"]
    assert headers["x-switchyard-fallback-reason"] == ["empty_prompt"]
    assert headers["x-routellm-routed-model"] == ["strong-model"]


@pytest.mark.parametrize(
    "raw, fragment",
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (b'{"model": "auto", "messages": "hi"}', "messages"), (b"\xff\xfe", "JSON")],
)
def test_bad_bodies_are_400_in_openai_shape(proxy, raw, fragment):
    status, headers, body = request(proxy.url, "POST", "/v1/chat/completions", raw)
    assert status == 400
    assert fragment in json.loads(body)["error"]["message"]
    assert headers["x-switchyard-error-source"] == ["switchyard"]


def test_body_over_limit_is_413(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--max-body-size", "2048", backend=fake_backend)
    big = json.dumps({**CHAT, "pad": "x" * 4096}).encode()
    status, _, body = request(server.url, "POST", "/v1/chat/completions", big)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "body_too_large"
    assert request(server.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode())[0] == 200


@pytest.mark.parametrize("kind", ["json", "text"])
def test_backend_errors_pass_through_unchanged(proxy, reset_backend, kind):
    headers = {"x-fake-status": "503", "x-fake-error-body": kind}
    status, got, body = request(proxy.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode(), headers)
    direct_status, _, direct = request(reset_backend, "POST", "/v1/chat/completions", json.dumps(CHAT).encode(), headers)
    assert (status, body) == (direct_status, direct) == (503, direct)
    assert got["x-switchyard-error-source"] == ["backend"]


def test_backend_down_is_502_and_slow_backend_is_504(start_switchyard, fake_backend):
    dead = start_switchyard("--router-type", "random", backend=f"http://127.0.0.1:{free_port()}")
    status, headers, body = request(dead.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode())
    assert status == 502 and json.loads(body)["error"]["code"] == "backend_connect"
    assert headers["x-routellm-routed-model"][0] in ("strong-model", "weak-model")
    assert http_get(dead.url + "/ready")[0] == 503
    models = json.loads(http_get(dead.url + "/v1/models")[1])["data"]
    assert [m["id"] for m in models] == ["auto", "strong-model", "weak-model"]

    slow = start_switchyard("--router-type", "random", "--first-byte-timeout", "0.5", backend=fake_backend)
    status, _, body = request(slow.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode(), {"x-fake-delay": "5"})
    assert status == 504 and json.loads(body)["error"]["code"] == "backend_timeout"


def test_gzip_answer_passes_through_still_compressed(proxy, reset_backend):
    status, headers, body = request(proxy.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode(), {"x-fake-encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == ["gzip"]
    assert body[:2] == b"\x1f\x8b"


def test_backend_reset_mid_stream_ends_the_client_stream(proxy, reset_backend):
    body = json.dumps({**CHAT, "stream": True}).encode()
    with pytest.raises(http.client.IncompleteRead):
        request(proxy.url, "POST", "/v1/chat/completions", body, {"x-fake-reset-after": "5"}, timeout=10)
    metrics = http_get(proxy.url + "/metrics")[1].decode()
    assert 'switchyard_upstream_errors_total{kind="reset_mid_body"}' in metrics


def test_client_disconnect_cancels_the_upstream_request(proxy, reset_backend):
    parts = urllib.parse.urlsplit(proxy.url)
    sock = socket.create_connection((parts.hostname, parts.port))
    payload = json.dumps({**CHAT, "stream": True}).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"x-fake-forever: 1\r\nx-fake-interval: 0.05\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )
    received = b""
    while received.count(b"data:") < 3:
        received += sock.recv(65536)
    sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = backend_log(reset_backend)["events"]
        if any(event["event"] == "client_gone" for event in events):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"backend kept streaming after the client left: {events}")


def test_other_paths_and_methods_are_forwarded(proxy, reset_backend):
    status, _, body = request(proxy.url, "POST", "/v1/embeddings?x=1&y=%2F", b'{"model":"e","input":"hi"}')
    assert status == 200
    assert last_request(reset_backend)["path"] == "/v1/embeddings?x=1&y=%2F"
    status, _, _ = request(proxy.url, "DELETE", "/tokenize")
    assert status == 200 and last_request(reset_backend)["method"] == "DELETE"


def test_models_health_ready_stats_metrics(proxy, reset_backend):
    models = json.loads(http_get(proxy.url + "/v1/models")[1])
    assert [m["id"] for m in models["data"]] == ["auto", "strong-model", "weak-model"]
    status, health = http_get(proxy.url + "/health")
    assert status == 200 and json.loads(health)["ready"] is True
    assert http_get(proxy.url + "/ready")[0] == 200
    before = json.loads(http_get(proxy.url + "/stats")[1])
    for _ in range(4):
        request(proxy.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode())
    stats = json.loads(http_get(proxy.url + "/stats")[1])
    assert stats["total"] == before["total"] + 4
    assert stats["strong"] + stats["weak"] == before["strong"] + before["weak"] + 4
    assert stats["router"] == "random" and stats["threshold"] == 0.5
    assert stats["models"] == {"strong": "strong-model", "weak": "weak-model", "fallback": "strong-model"}
    metrics = http_get(proxy.url + "/metrics")[1].decode()
    for name in (
        "switchyard_requests_total", "switchyard_router_score_bucket", "switchyard_routing_latency_seconds_bucket",
        "switchyard_upstream_ttfb_seconds_bucket", "switchyard_upstream_duration_seconds_bucket",
        "switchyard_in_flight_requests", "switchyard_fallbacks_total",
    ):
        assert name in metrics, name


def test_startup_warns_when_backend_lacks_the_models(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", backend=fake_backend, strong="gpt-huge", weak="weak-model")
    deadline = time.monotonic() + 5
    while "does not serve 'gpt-huge'" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "does not serve 'gpt-huge'" in server.log.read_text()


def test_several_workers_share_the_port_and_the_counters(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--workers", "2", backend=fake_backend)
    for _ in range(20):
        assert request(server.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode())[0] == 200
    # A worker counts a request right after writing its answer, so the other worker, answering
    # /stats, can read the shared counters a moment before the last one is in: wait for it. A
    # worker that counted only its own requests would stay near 10.
    deadline = time.monotonic() + 5
    while (total := json.loads(http_get(server.url + "/stats")[1])["total"]) != 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert total == 20


def test_stream_idle_timeout_cuts_a_stalled_stream(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--idle-timeout", "0.5", "--first-byte-timeout", "5", backend=fake_backend)
    body = json.dumps({**CHAT, "stream": True}).encode()
    with pytest.raises(http.client.IncompleteRead):
        request(server.url, "POST", "/v1/chat/completions", body, {"x-fake-interval": "2", "x-fake-chunks": "3"}, timeout=10)
    # A stream whose chunks come faster than the idle timeout is not cut, however long it lasts.
    status, _, data = request(server.url, "POST", "/v1/chat/completions", body, {"x-fake-interval": "0.1", "x-fake-chunks": "10"})
    assert status == 200 and data.endswith(b"data: [DONE]\n\n")
    metrics = http_get(server.url + "/metrics")[1].decode()
    assert 'switchyard_upstream_errors_total{kind="idle_timeout"} 1.0' in metrics


@pytest.mark.parametrize(
    "router, reason",
    [("routers_for_tests:FailingRouter", "router_error"), ("routers_for_tests:NanRouter", "router_error"), ("routers_for_tests:SlowRouter", "router_timeout")],
)
def test_router_failures_fall_back_and_are_counted(start_switchyard, fake_backend, router, reason):
    server = start_switchyard(
        "--router-type", router, "--router-timeout", "0.3", "--fallback-model", "weak-model",
        backend=fake_backend, env={"PYTHONPATH": str(Path(__file__).parent)},
    )
    status, headers, _ = request(server.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode())
    assert status == 200
    assert headers["x-switchyard-decision"] == ["fallback"]
    assert headers["x-switchyard-fallback-reason"] == [reason]
    assert headers["x-routellm-routed-model"] == ["weak-model"]
    metrics = http_get(server.url + "/metrics")[1].decode()
    assert f'switchyard_fallbacks_total{{reason="{reason}"}} 1.0' in metrics
    assert "routing fell back" in server.log.read_text()


def test_a_slow_router_does_not_block_other_requests(start_switchyard, fake_backend):
    server = start_switchyard(
        "--router-type", "routers_for_tests:SlowRouter", "--router-timeout", "5",
        "--router-options", '{"routers_for_tests:SlowRouter": {"delay": 1.5}}',
        backend=fake_backend, env={"PYTHONPATH": str(Path(__file__).parent)},
    )
    import threading

    slow_done: list[float] = []
    scoring = threading.Thread(
        target=lambda: (request(server.url, "POST", "/v1/chat/completions", json.dumps(CHAT).encode()), slow_done.append(time.monotonic()))
    )
    scoring.start()
    time.sleep(0.2)  # the slow router is now busy in its thread
    fast_done = []
    for _ in range(5):  # passthrough requests and health checks are not held up behind it
        assert request(server.url, "POST", "/v1/chat/completions", json.dumps({**CHAT, "model": "weak-model"}).encode())[0] == 200
        assert http_get(server.url + "/health")[0] == 200
        fast_done.append(time.monotonic())
    scoring.join()
    assert max(fast_done) < slow_done[0]
