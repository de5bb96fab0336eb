"""Open N paced SSE streams at once (ramped) and measure them on the receive side.

Raw asyncio protocol on uvloop, one connection per stream, HTTP/1.1 chunked decoding.
Per stream it records the time to the first SSE event (from just before connecting) and
the gap between every two consecutive SSE events (content chunks and the usage chunk;
``[DONE]`` is not a gap sample). A stream is incomplete unless it got status 200,
exactly ``--chunks`` content events + 1 usage event + ``data: [DONE]``, and the chunked
terminator. Prints one JSON object to stdout.

    python bench/stream_client.py --url http://127.0.0.1:8080/v1/chat/completions --streams 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

perf = time.perf_counter


class Stream(asyncio.Protocol):
    def __init__(self, request: bytes, started: float, done: asyncio.Future) -> None:
        self.request = request
        self.started = started
        self.done = done
        self.raw = b""
        self.headers_done = False
        self.chunked = True
        self.status = 0
        self.sse = b""
        self.times: list[float] = []  # receive time of each non-[DONE] event
        self.got_done = False
        self.ended = False
        self.error: str | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = perf()
        raw = self.raw + data
        pos = 0
        if not self.headers_done:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                self.raw = raw
                return
            head = raw[:end].decode("latin-1").lower()
            self.status = int(head[9:12])
            self.chunked = "transfer-encoding: chunked" in head
            self.headers_done = True
            pos = end + 4
        if self.chunked:
            sse = self.sse
            n = len(raw)
            while pos < n:
                j = raw.find(b"\r\n", pos)
                if j < 0:
                    break
                size = int(raw[pos:j].split(b";", 1)[0], 16)
                if size == 0:
                    self.ended = True
                    pos = n
                    break
                end = j + 2 + size
                if n < end + 2:
                    break
                sse += raw[j + 2:end]
                pos = end + 2
            self.raw = raw[pos:]
        else:
            sse = self.sse + raw[pos:]
            self.raw = b""
        while True:
            k = sse.find(b"\n\n")
            if k < 0:
                break
            event = sse[:k]
            sse = sse[k + 2:]
            if event.startswith(b"data: [DONE]"):
                self.got_done = True
            else:
                self.times.append(now)
        self.sse = sse
        if self.ended or (self.got_done and not self.chunked):
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = type(exc).__name__
        if not self.done.done():
            self.done.set_result(self)


async def one(loop, host, port, request, delay_until, timeout, results, errors):
    await asyncio.sleep(max(0.0, delay_until - loop.time()))
    started = perf()
    done = loop.create_future()
    transport = None
    try:
        transport, proto = await asyncio.wait_for(
            loop.create_connection(lambda: Stream(request, started, done), host, port), timeout
        )
        await asyncio.wait_for(done, timeout)
        results.append(proto)
    except asyncio.TimeoutError:
        errors["timeout"] += 1
        if transport is not None:
            transport.abort()
            results.append(proto)
    except OSError as exc:
        errors[type(exc).__name__] += 1


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


async def main_async(args) -> dict:
    loop = asyncio.get_running_loop()
    u = urlsplit(args.url)
    host, port = u.hostname, u.port or 80
    body = json.dumps(
        {"model": args.model, "stream": True, "messages": [{"role": "user", "content": "Tell me a short story about a lighthouse."}], "max_tokens": args.chunks}
    ).encode()
    request = (
        b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (u.path.encode(), host.encode(), port, len(body), body)
    )
    results: list[Stream] = []
    errors: Counter = Counter()
    t0 = loop.time() + 0.05
    wall0 = perf()
    tasks = [
        loop.create_task(one(loop, host, port, request, t0 + i * args.ramp / args.streams, args.timeout, results, errors))
        for i in range(args.streams)
    ]
    await asyncio.gather(*tasks)
    wall = perf() - wall0
    ttft, gaps, durations = [], [], []
    incomplete = 0
    reasons: Counter = Counter(errors)
    expected = args.chunks + 1
    for s in results:
        ok = s.status == 200 and s.got_done and s.ended and len(s.times) == expected
        if not ok:
            incomplete += 1
            if s.status != 200:
                reasons[f"status_{s.status}"] += 1
            elif len(s.times) != expected:
                reasons["wrong_chunk_count"] += 1
            elif not s.got_done:
                reasons["no_done"] += 1
            else:
                reasons["no_terminator"] += 1
        if s.times:
            ttft.append(s.times[0] - s.started)
            gaps.extend(b - a for a, b in zip(s.times, s.times[1:]))
            durations.append(s.times[-1] - s.started)
    incomplete += sum(errors.values())
    ms = lambda v: None if v is None else round(v * 1000.0, 3)  # noqa: E731
    return {
        "url": args.url,
        "streams": args.streams,
        "chunks": args.chunks,
        "ramp_s": args.ramp,
        "wall_s": round(wall, 3),
        "completed": args.streams - incomplete,
        "incomplete": incomplete,
        "incomplete_reasons": dict(reasons),
        "gap_samples": len(gaps),
        "ttft_ms": {"p50": ms(pct(ttft, 50)), "p90": ms(pct(ttft, 90)), "p99": ms(pct(ttft, 99)), "max": ms(max(ttft) if ttft else None)},
        "gap_ms": {
            "p50": ms(pct(gaps, 50)), "p90": ms(pct(gaps, 90)), "p99": ms(pct(gaps, 99)), "p999": ms(pct(gaps, 99.9)),
            "max": ms(max(gaps) if gaps else None), "min": ms(min(gaps) if gaps else None),
        },
        "stream_duration_ms": {"p50": ms(pct(durations, 50)), "p99": ms(pct(durations, 99)), "max": ms(max(durations) if durations else None)},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="auto")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=50)
    ap.add_argument("--ramp", type=float, default=1.0, help="seconds over which the streams are opened")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    if uvloop is not None:
        uvloop.install()
    print(json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
