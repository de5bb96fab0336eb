#!/usr/bin/env python3
"""Bare aiohttp proxy: the floor cost of any aiohttp server + client proxy (reference for bench/run.py).

    python bench/bare_proxy.py --port 8081 --backend-url http://127.0.0.1:8000

One catch-all handler: read the request body, send it with one shared ClientSession to the
backend at the same path (and query) with the client's Content-Type, relay the response.
Responses with a Content-Length are read whole and returned as a web.Response; others are
relayed chunk by chunk (iter_any) through a web.StreamResponse. Only the Content-Type header
is relayed in either direction. No routing, no metrics, no header filtering, no timeouts,
no error handling: whatever Switchyard costs above this is Switchyard's own.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
from aiohttp import web


async def serve(port: int, backend_url: str) -> None:
    base = backend_url.rstrip("/")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        ct = request.headers.get("Content-Type")
        async with session.request(
            request.method, base + request.path_qs, data=body, headers={"Content-Type": ct} if ct else None
        ) as resp:
            rct = resp.headers.get("Content-Type")
            headers = {"Content-Type": rct} if rct else None
            if "Content-Length" in resp.headers:
                return web.Response(status=resp.status, body=await resp.read(), headers=headers)
            out = web.StreamResponse(status=resp.status, headers=headers)
            await out.prepare(request)
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    # same listen backlog as Switchyard (server.py), so a 1,000-stream ramp is accepted alike
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=2048, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await session.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--backend-url", required=True)
    args = ap.parse_args()
    try:
        import uvloop
    except ImportError:  # uvloop is a Switchyard dependency; without it the floor is asyncio's
        asyncio.run(serve(args.port, args.backend_url))
    else:
        uvloop.run(serve(args.port, args.backend_url))


if __name__ == "__main__":
    main()
