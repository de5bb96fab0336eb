"""Operations through the real server process: token and cost accounting, tracing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from processes import backend_log, free_port, http_get, running, switchyard_command
from processes import http_request as request

PRICES = {"strong-model": {"input": 10.0, "output": 30.0}, "weak-model": [1.0, 2.0]}


def chat(model: str, stream: bool = False) -> bytes:
    body: dict = {"model": model, "messages": [{"role": "user", "content": "Count the primes below 100."}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def stats(base: str) -> dict:
    return json.loads(http_get(base + "/stats")[1])


def metric(base: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    line_start = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in http_get(base + "/metrics")[1].decode().splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    raise AssertionError(f"{line_start!r} not in /metrics")


@pytest.fixture(scope="module")
def priced(start_switchyard, fake_backend):
    return start_switchyard("--router-type", "random", "--prices", json.dumps(PRICES), backend=fake_backend)


def test_tokens_cost_and_saving_from_bodies_and_stream_tails(priced, reset_backend):
    base = priced.url
    # Strong (threshold 0): the fake backend's JSON answer reports 7 input and 3 output tokens.
    status, headers, _ = request(base, "POST", "/v1/chat/completions", chat("router-random-0.0"))
    assert status == 200 and headers["x-routellm-routed-model"] == ["strong-model"]
    # Weak (threshold 1), streamed: 7 input tokens, one output token per chunk, in the final usage chunk.
    status, headers, streamed = request(base, "POST", "/v1/chat/completions", chat("router-random-1", stream=True), {"x-fake-chunks": "12"})
    assert status == 200 and headers["x-routellm-routed-model"] == ["weak-model"]
    # The tap must not change a byte: the same request straight at the backend gives the same bytes.
    direct = request(reset_backend, "POST", "/v1/chat/completions", chat("weak-model", stream=True), {"x-fake-chunks": "12"})[2]
    assert streamed == direct and b'"usage"' in streamed
    # Weak, gzip-encoded: read from a decompressed copy; the client still gets gzip.
    status, headers, packed = request(base, "POST", "/v1/chat/completions", chat("router-random-1"), {"x-fake-encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == ["gzip"] and packed[:2] == b"\x1f\x8b"
    # Passthrough: tokens and cost counted, but no saving (the client chose the model).
    assert request(base, "POST", "/v1/chat/completions", chat("weak-model"))[0] == 200
    # Errors are not answers: nothing counted.
    assert request(base, "POST", "/v1/chat/completions", chat("router-random-1"), {"x-fake-status": "500"})[0] == 500

    got = stats(base)
    assert got["tokens"] == {"strong-model": {"input": 7, "output": 3}, "weak-model": {"input": 21, "output": 12 + 3 + 3}}
    # Time to first token: only the streamed answer has one (the JSON answers arrive whole).
    assert {model: h["count"] for model, h in got["upstream_ttft"].items()} == {"weak-model": 1}
    ttft, duration = got["upstream_ttft"]["weak-model"]["sum"], got["upstream_duration"]["weak-model"]["sum"]
    assert 0 < ttft < duration
    strong_cost = (7 * 10 + 3 * 30) / 1e6
    weak_cost = (21 * 1 + 18 * 2) / 1e6
    weak_routed = (14 * 1 + 15 * 2) / 1e6  # the two routed weak answers (not the passthrough)
    would_be = strong_cost + (14 * 10 + 15 * 30) / 1e6
    cost = got["cost"]
    assert cost["priced"] is True
    assert cost["by_model"] == pytest.approx({"strong-model": strong_cost, "weak-model": weak_cost})
    assert cost["all_strong_usd"] == pytest.approx(would_be)
    assert cost["saving_usd"] == pytest.approx(would_be - strong_cost - weak_cost)  # actual includes the passthrough
    assert metric(base, "switchyard_tokens_total", model="weak-model", kind="output") == 18
    assert metric(base, "switchyard_cost_usd_total", model="strong-model") == pytest.approx(strong_cost)
    assert metric(base, "switchyard_strong_cost_usd_total") == pytest.approx(would_be)
    assert metric(base, "switchyard_savings_usd_total") == pytest.approx(would_be - strong_cost - weak_routed)


def test_without_prices_tokens_are_still_counted(proxy, reset_backend):
    before = stats(proxy.url)
    assert request(proxy.url, "POST", "/v1/chat/completions", chat("router-random-0.0"))[0] == 200
    after = stats(proxy.url)
    strong_before = before["tokens"].get("strong-model", {"input": 0, "output": 0})
    assert after["tokens"]["strong-model"] == {"input": strong_before["input"] + 7, "output": strong_before["output"] + 3}
    assert after["cost"]["priced"] is False and after["cost"]["actual_usd"] == 0


def test_tracing_spans_and_trace_context_sent_to_the_backend(fake_backend, reset_backend, tmp_path):
    port = free_port()
    log = tmp_path / "switchyard.log"
    args = switchyard_command(
        "--http-host", "127.0.0.1", "--http-port", str(port), "--backend-url", fake_backend,
        "--strong-model", "strong-model", "--weak-model", "weak-model", "--router-type", "random", "--tracing",
    )
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "switchyard-test"}
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with running(args, f"http://127.0.0.1:{port}/health", log, env=env):
        base = f"http://127.0.0.1:{port}"
        sent = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        status, _, _ = request(base, "POST", "/v1/chat/completions", chat("auto", stream=True), sent)
        assert status == 200
        assert request(base, "GET", "/v1/embeddings?x=1", None)[0] in (200, 404)  # forwarded: traced too
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and log.read_text().count(trace_id) < 3:
            time.sleep(0.05)
    # The backend got the same trace, as a child of switchyard's upstream span (not the client's span id).
    received = [{k.lower(): v for k, v in r["headers"]} for r in backend_log(fake_backend)["requests"]]
    routed = [h for h in received if trace_id in h.get("traceparent", "")]
    assert len(routed) == 1 and not routed[0]["traceparent"].endswith("00f067aa0ba902b7-01")
    spans = _console_spans(log.read_text())
    ours = {span["name"]: span for span in spans if span["context"]["trace_id"] == "0x" + trace_id}
    assert set(ours) == {"POST /v1/chat/completions", "route", "upstream"}
    server, route, upstream = ours["POST /v1/chat/completions"], ours["route"], ours["upstream"]
    assert server["parent_id"] == "0x00f067aa0ba902b7" and server["kind"] == "SpanKind.SERVER"
    assert route["parent_id"] == upstream["parent_id"] == server["context"]["span_id"]
    assert upstream["kind"] == "SpanKind.CLIENT" and routed[0]["traceparent"].split("-")[2] == upstream["context"]["span_id"][2:]
    assert server["attributes"]["switchyard.decision"] in ("strong", "weak")
    assert server["attributes"]["http.response.status_code"] == 200
    assert "switchyard.score" in route["attributes"]
    assert server["resource"]["attributes"]["service.name"] == "switchyard-test"
    assert any(span["name"] == "GET forward" for span in spans)  # a forwarded request: its own trace


def _console_spans(text: str) -> list[dict]:
    """The JSON objects the console exporter wrote (each spans several lines) among the log lines."""
    spans, decoder, index = [], json.JSONDecoder(), 0
    while (start := text.find("{\n", index)) != -1:
        try:
            span, index = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        if isinstance(span, dict) and "context" in span:
            spans.append(span)
    return spans


BLOCKED_OPENTELEMETRY = (
    "import sys; sys.modules['opentelemetry'] = None; from dynamo.nemo_switchyard.cli import serve_main;"
    " sys.exit(serve_main(['--strong-model', 's', '--weak-model', 'w', '--tracing']))"
)


def test_tracing_misconfiguration_stops_start_up_with_one_line():
    args = switchyard_command("--strong-model", "s", "--weak-model", "w", "--tracing")
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, env={**os.environ, "OTEL_TRACES_EXPORTER": "jaeger"})
    assert result.returncode == 2
    assert result.stderr == (
        "switchyard: error: invalid configuration: --tracing / SWITCHYARD_TRACING: "
        "OTEL_TRACES_EXPORTER='jaeger' is not supported: use otlp, console or none (got True)\n"
    )
    missing = subprocess.run(
        [sys.executable, "-c", BLOCKED_OPENTELEMETRY],
        capture_output=True, text=True, timeout=60,
    )
    assert missing.returncode == 2 and "pip install 'dynamo-nemo-switchyard[tracing]'" in missing.stderr
