"""Soak and fault run: thousands of mixed requests through switchyard with backend faults injected.

    .venv/bin/python bench/soak.py                      # 6,000 requests, concurrency 64
    .venv/bin/python bench/soak.py --duration 180       # a longer soak: as many requests as 3 minutes allow

Starts the deterministic fake backend (tests/fake_backend.py) and switchyard, sends a mix of
streaming and non-streaming requests, and injects faults: backend 5xx answers, resets mid-stream,
slow answers, and backend restarts (connections refused meanwhile). Every request must end in one of:

* ok: 200 and exactly the bytes the fake backend produces for the forwarded request;
* clean error: a 4xx/5xx with an OpenAI-shaped error body (switchyard's, or the backend's passed through);
* truncated: a stream cut short (the client sees an incomplete body, every byte received a prefix of
  the right answer), only where a reset was injected or the backend restarted during the request.

Anything else (a wrong byte, a hang, a 200 that is incomplete, an error without a body) is lost.
Switchyard's RSS, open file descriptors and asyncio tasks are measured after a warm-up and at the
end (and their range during the run). Exit status 1 if anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fake_backend import completion_body, stream_bytes  # noqa: E402
from processes import fake_backend_command, free_port, stop, switchyard_command, wait_for  # noqa: E402

# kind -> (weight, extra request headers, stream?)
MIX = {
    "ok": (40, {}, False),
    "ok_stream": (30, {"x-fake-chunks": "20"}, True),
    "slow": (5, {"x-fake-delay": "0.2"}, False),
    "slow_stream": (5, {"x-fake-interval": "0.005", "x-fake-chunks": "10"}, True),
    "backend_5xx": (8, {"x-fake-status": "503"}, False),
    "reset_mid_stream": (7, {"x-fake-reset-after": "5"}, True),
    "passthrough": (5, {}, False),
}


class Backend:
    """The fake backend on a fixed port, restartable (a restart refuses connections meanwhile)."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.process: subprocess.Popen | None = None
        self.epoch = 0  # bumped whenever the backend goes down
        self.down = False

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(fake_backend_command(self.port), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(f"http://127.0.0.1:{self.port}/v1/models", self.process, 30)
        self.down = False

    def kill(self) -> None:
        self.down = True
        self.epoch += 1
        if self.process is not None:
            stop(self.process)


def proc_figures(pid: int) -> dict[str, int]:
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
    return {"rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/stats", timeout=10) as response:
        return json.loads(response.read())


def figures(url: str, pid: int) -> dict[str, int]:
    data = stats(url)
    return {**proc_figures(pid), "tasks": data["tasks"], "backend_connections": data["backend_connections"]}


async def one(session: aiohttp.ClientSession, url: str, index: int, kind: str, backend: Backend, results: Counter, lost: list) -> None:
    _, headers, stream = MIX[kind]
    model = "weak-model" if kind == "passthrough" else "auto"
    raw = json.dumps({"model": model, "messages": [{"role": "user", "content": f"question {index}: what is {index} squared?"}], "stream": stream}).encode()
    epoch = backend.epoch
    down_at_start = backend.down
    got = b""
    status = 0
    try:
        async with session.post(url + "/v1/chat/completions", data=raw, headers={"Content-Type": "application/json", **headers}) as response:
            status = response.status
            routed = response.headers.get("x-routellm-routed-model", "")
            try:
                async for data in response.content.iter_any():
                    got += data
                complete = True
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                complete = False
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError, asyncio.TimeoutError) as exc:
        lost.append((index, kind, f"no answer: {exc!r}"))
        return
    faulted = backend.epoch != epoch or down_at_start or backend.down  # the backend restarted during this request
    if status == 200:
        forwarded = raw if model != "auto" else raw.replace(b'"auto"', json.dumps(routed).encode(), 1)
        expected = b"".join(stream_bytes(routed, int(headers.get("x-fake-chunks", "20")))) if stream else completion_body(routed, forwarded)
        if complete and got == expected:
            results["ok"] += 1
        elif not complete and expected.startswith(got) and (kind == "reset_mid_stream" or faulted):
            results["truncated (injected)"] += 1
        else:
            lost.append((index, kind, f"200 but {'incomplete' if not complete else 'different bytes'} ({len(got)} of {len(expected)} bytes)"))
        return
    try:
        error = json.loads(got)
        shaped = isinstance(error, dict) and isinstance(error.get("error"), dict) and "message" in error["error"]
    except ValueError:
        shaped = False
    if status >= 400 and complete and shaped and (kind == "backend_5xx" or faulted or status < 500):
        results[f"clean error {status}"] += 1
    else:
        lost.append((index, kind, f"status {status}, {'complete' if complete else 'incomplete'}, body {got[:200]!r}"))


async def restarter(backend: Backend, every: float, outage: float, done: asyncio.Event, faults: Counter) -> None:
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), every)
            return
        except TimeoutError:
            pass
        await asyncio.to_thread(backend.kill)
        faults["backend restart"] += 1
        await asyncio.sleep(outage)
        await asyncio.to_thread(backend.start)


async def run(args: argparse.Namespace, url: str, backend: Backend, pid: int) -> int:
    kinds = list(MIX)
    weights = [MIX[k][0] for k in kinds]
    rng = random.Random(args.seed)
    results: Counter = Counter()
    faults: Counter = Counter()
    lost: list = []
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=timeout) as session:
        # Warm-up: connections, router, allocator.
        await asyncio.gather(*(one(session, url, -i, "ok", backend, Counter(), lost) for i in range(1, 257)))
    await asyncio.sleep(1)  # the warm-up's client connections are closed: "before" is idle, like "after"
    before = figures(url, pid)
    samples = [before]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=timeout) as session:
        done = asyncio.Event()
        restarts = asyncio.create_task(restarter(backend, args.restart_every, args.outage, done, faults))
        started = time.monotonic()
        counter = itertools.count()
        sent = Counter()

        async def worker() -> None:
            while True:
                index = next(counter)
                if args.duration:
                    if time.monotonic() - started > args.duration:
                        return
                elif index >= args.requests:
                    return
                kind = rng.choices(kinds, weights)[0]
                sent[kind] += 1
                outcome: Counter = Counter()
                await one(session, url, index, kind, backend, outcome, lost)
                results.update(outcome)
                if outcome["clean error 502"]:
                    await asyncio.sleep(0.25)  # like a client that backs off while the backend is down

        async def sampler() -> None:
            while not done.is_set():
                await asyncio.sleep(5)
                samples.append(await asyncio.to_thread(figures, url, pid))

        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - started
        done.set()
        await restarts
        await sampling
    if backend.down:
        backend.start()
    await asyncio.sleep(2)  # idle keep-alive connections settle
    after = figures(url, pid)
    samples.append(after)
    total = sum(sent.values())
    faults.update({
        "backend 5xx": sent["backend_5xx"], "reset mid-stream": sent["reset_mid_stream"],
        "slow answer": sent["slow"] + sent["slow_stream"],
    })
    switchyard = stats(url)
    print(f"requests: {total} in {elapsed:.1f}s ({total / elapsed:.0f}/s), concurrency {args.concurrency}")
    print(f"mix: {dict(sent)}")
    print(f"faults injected: {dict(faults)}")
    print(f"outcomes: {dict(results)}")
    print(f"lost: {len(lost)}")
    for item in lost[:20]:
        print("  lost:", item)
    for sample in samples:
        sample["fds_other"] = sample["fds"] - sample["backend_connections"]  # pooled backend connections come and go
    for name, unit in (("rss_kib", " KiB"), ("fds", ""), ("backend_connections", ""), ("fds_other", ""), ("tasks", "")):
        values = [sample[name] for sample in samples]
        print(f"{name}: before {before[name]}{unit}, after {after[name]}{unit}, during min {min(values)} max {max(values)}")
    print("rss MiB every 5 s:", " ".join(f"{sample['rss_kib'] / 1024:.1f}" for sample in samples))
    print(f"switchyard /stats: total {switchyard['total']}, errors {switchyard['errors']}")
    return 1 if lost else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests to send (after a 256-request warm-up)")
    parser.add_argument("--duration", type=float, default=0, help="seconds to run instead of a request count (a longer soak)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--restart-every", type=float, default=10.0, help="seconds between backend restarts")
    parser.add_argument("--outage", type=float, default=1.0, help="seconds the backend stays down per restart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="switchyard-soak-"))
    backend = Backend(free_port(), workdir / "backend.log")
    backend.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = switchyard_command(
        "--http-host", "127.0.0.1", "--http-port", str(port), "--backend-url", f"http://127.0.0.1:{backend.port}",
        "--strong-model", "strong-model", "--weak-model", "weak-model", "--router-type", "random",
        "--retries", "2", "--retry-backoff", "0.05", "--log-level", "warning",
    )
    with open(workdir / "switchyard.log", "wb") as out:
        proxy = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
    try:
        wait_for(url + "/health", proxy, 30)
        code = asyncio.run(run(args, url, backend, proxy.pid))
        print(f"logs: {workdir}")
        return code
    finally:
        os.kill(proxy.pid, signal.SIGTERM)
        proxy.wait(60)
        print(f"switchyard exit code after SIGTERM: {proxy.returncode}")
        if backend.process is not None:
            stop(backend.process)


if __name__ == "__main__":
    sys.exit(main())
