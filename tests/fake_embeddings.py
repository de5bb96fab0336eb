"""A fake OpenAI-compatible ``/v1/embeddings`` server on loopback, for RouteLLM's mf and sw_ranking.

Deterministic vectors (a seeded hash of the text), a configurable delay, and counters:
requests, inputs per request, and the most requests in flight at once. Runs its own
event loop in a thread, so tests and benchmarks can use it from synchronous code.
Standard library only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import threading
from typing import Any, Self


def vector(text: str, dim: int) -> list[float]:
    """The fake embedding of ``text``: unit length, the same for the same text and dim."""
    rng = random.Random(hashlib.blake2b(text.encode(), digest_size=8).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [value / norm for value in values]


class FakeEmbeddings:
    """``with FakeEmbeddings(dim=16, delay=0.2) as server: server.url -> http://127.0.0.1:PORT/v1``."""

    def __init__(self, dim: int = 16, delay: float = 0.0, status: int = 200) -> None:
        self.dim = dim
        self.delay = delay
        self.status = status
        self.requests: list[dict[str, Any]] = []  # {"input": [...], "model": ..., "authorization": ...}
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    @property
    def batch_sizes(self) -> list[int]:
        with self._lock:
            return [len(request["input"]) for request in self.requests]

    def __enter__(self) -> Self:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-embeddings", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, _, value = line.partition(":")
                        headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload = await self._handle(method, target, headers, body)
                data = json.dumps(payload).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
                )
                await writer.drain()
        finally:
            writer.close()

    async def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method != "POST" or target != "/v1/embeddings":
            return 404, {"error": {"message": f"no route {method} {target}"}}
        request = json.loads(body)
        texts = [request["input"]] if isinstance(request["input"], str) else list(request["input"])
        with self._lock:
            self.requests.append({"input": texts, "model": request.get("model"), "authorization": headers.get("authorization")})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        if self.status != 200:
            return self.status, {"error": {"message": "fake failure"}}
        data = [{"object": "embedding", "index": i, "embedding": vector(text, self.dim)} for i, text in enumerate(texts)]
        return 200, {"object": "list", "data": data, "model": request.get("model"), "usage": {"prompt_tokens": 0, "total_tokens": 0}}
