"""A deterministic OpenAI-compatible backend for end-to-end tests, run as its own process.

Behaviour is chosen per request with ``x-fake-*`` headers, so one server covers
byte-exactness and faults. It records every request it gets (raw body and headers)
and events such as a client that went away mid-stream, at ``GET /_fake/log``.

    python tests/fake_backend.py --port 9000 --models strong-model weak-model
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import hashlib
import json
import time

from aiohttp import web

LOG: list[dict] = []
EVENTS: list[dict] = []
HOLDS: dict[str, asyncio.Event] = {}  # x-fake-hold: KEY streams wait here until POST /_fake/release?key=KEY


def _hold(key: str) -> asyncio.Event:
    return HOLDS.setdefault(key, asyncio.Event())


def stream_bytes(model: str, chunks: int) -> list[bytes]:
    """The exact SSE byte pieces of a streaming answer: comment, chunks, usage, [DONE].

    Pieces split a multi-byte character and an event across writes on purpose, so a
    proxy that decodes, re-encodes or re-frames the stream changes the bytes.
    """
    events = [b": fake backend keep-alive comment\n\n"]
    for i in range(chunks):
        payload = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": f"tök{i} \u2603 "}, "finish_reason": None}],
        }
        events.append(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")
    usage = {"prompt_tokens": 7, "completion_tokens": chunks, "total_tokens": 7 + chunks}
    final = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": [], "usage": usage}
    events.append(b"data: " + json.dumps(final).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    blob = b"".join(events)
    # Cut into pieces of uneven size (7, 13, 29 bytes, ...), mid-character and mid-event.
    pieces, start, sizes = [], 0, (7, 13, 29, 61, 127)
    index = 0
    while start < len(blob):
        size = sizes[index % len(sizes)]
        pieces.append(blob[start : start + size])
        start += size
        index += 1
    return pieces


def completion_body(model: str, raw: bytes) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "fake answer \u00e9"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            "received_sha256": hashlib.sha256(raw).hexdigest(),
        },
        ensure_ascii=False,
        separators=(", ", ": "),
    ).encode()


async def handle(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    headers = request.headers
    record = {
        "method": request.method,
        "path": request.raw_path,
        "headers": [[k, v] for k, v in headers.items()],
        "body_b64": base64.b64encode(raw).decode(),
        "time": time.time(),
    }
    LOG.append(record)
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    model = body.get("model", "") if isinstance(body, dict) else ""

    if model in request.app["fail_models"] and request.path != "/v1/models":
        # This model's "worker" is broken: reset the connection before answering, or answer 503.
        EVENTS.append({"event": "failed_model", "model": model, "path": request.path, "time": time.time()})
        if request.app["fail_mode"] == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        return web.Response(status=503, body=b'{"message":"Service temporarily unavailable","type":"Service Unavailable","code":503}',
                            content_type="application/json")
    if "x-fake-delay" in headers:
        await asyncio.sleep(float(headers["x-fake-delay"]))
    if "x-fake-status" in headers:
        status = int(headers["x-fake-status"])
        if headers.get("x-fake-error-body") == "text":
            return web.Response(status=status, body=b"upstream exploded\n<html>not json</html>", content_type="text/html")
        return web.Response(
            status=status,
            body=json.dumps({"error": {"message": f"fake error {status}", "type": "fake", "code": status}}).encode(),
            content_type="application/json",
        )
    if request.path == "/v1/models":
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in request.app["models"]]
        return web.json_response({"object": "list", "data": data})

    stream = isinstance(body, dict) and body.get("stream") is True
    if not stream:
        payload = completion_body(model, raw)
        if "gzip" in headers.get("x-fake-encoding", ""):
            return web.Response(body=gzip.compress(payload, mtime=0), headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        return web.Response(body=payload, content_type="application/json", headers={"x-fake-backend": "1"})

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "x-fake-backend": "1"})
    await response.prepare(request)
    interval = float(headers.get("x-fake-interval", "0"))
    reset_after = int(headers.get("x-fake-reset-after", "-1"))
    forever = "x-fake-forever" in headers
    chunks = int(headers.get("x-fake-chunks", "20"))
    hold = headers.get("x-fake-hold")  # after the first piece, wait for /_fake/release?key=...
    pieces = stream_bytes(model, chunks)
    sent = 0
    try:
        index = 0
        while True:
            if forever:
                piece = b"data: " + json.dumps({"choices": [{"delta": {"content": f"t{index}"}}]}).encode() + b"\n\n"
            elif index < len(pieces):
                piece = pieces[index]
            else:
                break
            if index == reset_after:
                EVENTS.append({"event": "reset", "path": request.path, "time": time.time()})
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(piece)
            sent += 1
            index += 1
            if hold is not None and index == 1:
                EVENTS.append({"event": "holding", "key": hold, "time": time.time()})
                await _hold(hold).wait()
            if interval:
                await asyncio.sleep(interval)
        await response.write_eof()
        EVENTS.append({"event": "completed", "path": request.path, "time": time.time(), "pieces": sent})
    except (asyncio.CancelledError, ConnectionResetError) as exc:
        EVENTS.append({"event": "client_gone", "path": request.path, "time": time.time(), "pieces": sent, "how": type(exc).__name__})
        raise
    return response


async def fake_log(request: web.Request) -> web.Response:
    return web.json_response({"requests": LOG, "events": EVENTS})


async def fake_release(request: web.Request) -> web.Response:
    _hold(request.query["key"]).set()
    return web.json_response({"ok": True})


async def fake_reset(request: web.Request) -> web.Response:
    LOG.clear()
    EVENTS.clear()
    return web.json_response({"ok": True})


def make_app(models: list[str], fail_models: list[str] = (), fail_mode: str = "reset") -> web.Application:
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app["models"] = models
    app["fail_models"] = frozenset(fail_models)
    app["fail_mode"] = fail_mode
    app.router.add_get("/_fake/log", fake_log)
    app.router.add_post("/_fake/reset", fake_reset)
    app.router.add_post("/_fake/release", fake_release)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--models", nargs="*", default=["strong-model", "weak-model"])
    parser.add_argument("--fail-models", nargs="*", default=[], help="requests naming these models fail before an answer")
    parser.add_argument("--fail-mode", choices=["reset", "503"], default="reset", help="how they fail: connection reset, or 503")
    args = parser.parse_args()
    web.run_app(make_app(args.models, args.fail_models, args.fail_mode), host="127.0.0.1", port=args.port, print=None, access_log=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
