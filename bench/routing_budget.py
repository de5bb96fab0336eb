"""Strong-share budget under a drifting prompt mix: does --target-strong-fraction hold its share?

    .venv/bin/python bench/routing_budget.py                          # F=0.3, W=200, N=2000 (+500 after the step), ~5 s
    .venv/bin/python bench/routing_budget.py --target 0.2 --window 1000 --requests 5000

A fixed threshold sends a share to the strong model that follows the prompt mix; the budget
should hold the target whatever the mix. This starts the fake backend (tests/fake_backend.py)
and switchyard (``--router-type random --target-strong-fraction F --budget-window W``), then
sends N chat requests whose share of "hard" prompts (random-router score >= 0.5, i.e. what a
fixed threshold 0.5 sends to strong) grows linearly from 10 % to 90 %, followed by a step
change (default: 500 requests at 10 %), at a fixed concurrency. Prompts are picked by their
score (the random router is a seeded hash, seed 0 as in switchyard), so the mix is exact.

Printed: per block of requests, the hard share (= the strong share a fixed threshold 0.5
gives), the target, the achieved strong share (from x-switchyard-decision), the mean threshold
the block's requests were compared with (x-switchyard-threshold) and the live threshold that
/stats reported when the block was done; then the overall figures and the live threshold over
time (/stats "threshold", polled in the background). Requests that fail are counted as lost
(exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dynamo.nemo_switchyard.routers.random import RandomRouter

from processes import fake_backend_command, free_port, running, switchyard_command

STRONG, WEAK = "strong-model", "weak-model"


@dataclass
class Result:
    """What one request came back with (None fields: the request failed)."""

    index: int
    hard: bool  # its score is >= 0.5: a fixed threshold 0.5 would send it to strong
    decision: str | None = None
    threshold: float | None = None
    score: float | None = None
    error: str | None = None


def prompt_pools(count_easy: int, count_hard: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Prompts scoring below / at or above 0.5 with switchyard's random router (so the mix is exact, not sampled)."""
    router = RandomRouter(seed=seed)
    easy: list[str] = []
    hard: list[str] = []
    i = 0
    while len(easy) < count_easy or len(hard) < count_hard:
        text = f"budget bench question {i}"
        pool = hard if router.score_batch([text])[0] >= 0.5 else easy
        if len(pool) < (count_hard if pool is hard else count_easy):
            pool.append(text)
        i += 1
    return easy, hard


def hard_flags(requests: int, start: float, end: float, step_requests: int, step_share: float, seed: int) -> list[bool]:
    """Per request, whether it is hard: probability drifting linearly start -> end, then a step to step_share."""
    rng = random.Random(seed)
    flags = [rng.random() < start + (end - start) * i / max(1, requests - 1) for i in range(requests)]
    flags += [rng.random() < step_share for _ in range(step_requests)]
    return flags


async def send_all(url: str, prompts: list[str], flags: list[bool], concurrency: int, progress: list[int]) -> list[Result]:
    """Send every prompt in order with ``concurrency`` requests in flight; read the routing headers."""
    results = [Result(i, flag) for i, flag in enumerate(flags)]
    next_index = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < len(prompts):
            index = next_index
            next_index += 1
            result = results[index]
            body = {"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": prompts[index]}]}
            try:
                async with session.post(url + "/v1/chat/completions", json=body) as response:
                    await response.read()
                    if response.status != 200:
                        result.error = f"HTTP {response.status}"
                    else:
                        result.decision = response.headers.get("x-switchyard-decision")
                        result.threshold = float(response.headers["x-switchyard-threshold"])
                        result.score = float(response.headers["x-switchyard-score"])
            except (TimeoutError, aiohttp.ClientError, KeyError, ValueError) as exc:
                result.error = repr(exc)
            progress[0] += 1

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return results


async def sample_threshold(url: str, interval: float, progress: list[int], samples: list[tuple[float, int, float]], stop: asyncio.Event) -> None:
    """Poll /stats: (seconds since start, requests answered so far, live threshold)."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url + "/stats") as response:
                stats = json.loads(await response.read())
            samples.append((time.monotonic() - started, progress[0], float(stats["threshold"])))
            if stop.is_set():
                return
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass


async def measure(url: str, prompts: list[str], flags: list[bool], args: argparse.Namespace) -> tuple[list[Result], list[tuple[float, int, float]], dict]:
    """Send the mix while sampling /stats; the final /stats cross-checks the client's own count."""
    progress = [0]
    samples: list[tuple[float, int, float]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_threshold(url, args.stats_interval, progress, samples, stop))
    try:
        results = await send_all(url, prompts, flags, args.concurrency, progress)
    finally:
        stop.set()
        await sampler
    async with aiohttp.ClientSession() as session, session.get(url + "/stats") as response:
        final = json.loads(await response.read())
    return results, samples, final


def share(results: list[Result]) -> float:
    """Share of the answered requests routed strong (NaN when none was answered)."""
    ok = [r for r in results if r.decision is not None]
    return sum(r.decision == "strong" for r in ok) / len(ok) if ok else float("nan")


def report(results: list[Result], samples: list[tuple[float, int, float]], final: dict, args: argparse.Namespace, seconds: float) -> int:
    """Print the tables; return the number of lost requests."""
    target, block = args.target, args.block
    warmup = min(50, args.window)  # switchyard's budget uses the configured threshold until it has seen this many scores
    answered = [n for _, n, _ in samples]
    print(f"\nper block of {block} requests (target {target:.2f}; window {args.window}; concurrency {args.concurrency}; "
          f"phase: drift {args.start_share:.0%} -> {args.end_share:.0%} hard, then step to {args.step_share:.0%})")
    print(f"{'requests':>11} {'phase':>5} {'hard (=fixed 0.5)':>17} {'achieved':>8} {'error':>6} {'thr used':>8} {'/stats thr':>10}")
    errors = []
    for start in range(0, len(results), block):
        chunk = results[start:start + block]
        end = start + len(chunk)
        phase = "drift" if start < args.requests else "step"
        hard = sum(r.hard for r in chunk) / len(chunk)
        achieved = share(chunk)
        used = [r.threshold for r in chunk if r.threshold is not None]
        at = bisect.bisect_left(answered, end)  # the first /stats sample taken once the block was answered
        live = f"{samples[at][2]:.3f}" if at < len(samples) else "-"
        if start >= warmup:
            errors.append(abs(achieved - target))
        print(f"{start:>5}-{end - 1:<5} {phase:>5} {hard:>17.2f} {achieved:>8.2f} {achieved - target:>+6.2f} "
              f"{sum(used) / max(1, len(used)):>8.3f} {live:>10}")
    lost = [r for r in results if r.error is not None or r.decision is None]
    drift = results[warmup:args.requests]
    step = results[args.requests:]
    print("\noverall")
    print(f"  requests {len(results)} in {seconds:.1f} s ({len(results) / seconds:.0f}/s), lost {len(lost)}")
    print(f"  target strong share                       {target:.3f}")
    print(f"  achieved, all requests                    {share(results):.3f}   (/stats strong_fraction {final['strong_fraction']:.3f})")
    print(f"  achieved, after the {warmup}-request warm-up     {share(results[warmup:]):.3f}")
    print(f"  achieved, drift phase (after warm-up)     {share(drift):.3f}")
    if step:
        print(f"  achieved, step phase                      {share(step):.3f}")
    print(f"  fixed threshold 0.5 would give            {sum(r.hard for r in results) / len(results):.3f}"
          f"   (drift {sum(r.hard for r in drift) / max(1, len(drift)):.3f}, step {sum(r.hard for r in step) / max(1, len(step)):.3f})")
    if errors:
        print(f"  per-block |achieved - target| after warm-up: mean {sum(errors) / len(errors):.3f}, max {max(errors):.3f}")
    print(f"  decision reasons {final['reasons']}; final live threshold {final['threshold']:.4f} (configured {final['configured_threshold']})")
    print(f"\nlive threshold over time (/stats, polled every {args.stats_interval:g} s)")
    print(f"{'t (s)':>7} {'answered':>8} {'threshold':>9}")
    shown = samples[:: max(1, len(samples) // 20)]
    if samples and shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    for t, n, threshold in shown:
        print(f"{t:>7.2f} {n:>8} {threshold:>9.4f}")
    for r in lost[:5]:
        print(f"lost: request {r.index}: {r.error}")
    return len(lost)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", "-F", type=float, default=0.3, help="--target-strong-fraction (default 0.3)")
    parser.add_argument("--window", "-W", type=int, default=200, help="--budget-window (default 200)")
    parser.add_argument("--requests", "-N", type=int, default=2000, help="requests in the drift phase (default 2000)")
    parser.add_argument("--start-share", type=float, default=0.1, help="hard share at the start of the drift (default 0.1)")
    parser.add_argument("--end-share", type=float, default=0.9, help="hard share at the end of the drift (default 0.9)")
    parser.add_argument("--step-requests", type=int, default=500, help="requests after the step change (default 500; 0: none)")
    parser.add_argument("--step-share", type=float, default=0.1, help="hard share after the step (default 0.1)")
    parser.add_argument("--concurrency", "-c", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--block", type=int, default=100, help="requests per reported block (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mix (default 1)")
    parser.add_argument("--stats-interval", type=float, default=0.025, help="seconds between /stats polls (default 0.025)")
    args = parser.parse_args()

    flags = hard_flags(args.requests, args.start_share, args.end_share, args.step_requests, args.step_share, args.seed)
    easy, hard = prompt_pools(len(flags) - sum(flags), sum(flags))
    easy_iter, hard_iter = iter(easy), iter(hard)
    prompts = [next(hard_iter) if flag else next(easy_iter) for flag in flags]

    with tempfile.TemporaryDirectory(prefix="routing-budget-") as tmp:
        backend_port, proxy_port = free_port(), free_port()
        backend = f"http://127.0.0.1:{backend_port}"
        proxy = f"http://127.0.0.1:{proxy_port}"
        command = switchyard_command(
            "--http-host", "127.0.0.1", "--http-port", str(proxy_port), "--backend-url", backend,
            "--strong-model", STRONG, "--weak-model", WEAK, "--router-type", "random",
            "--target-strong-fraction", str(args.target), "--budget-window", str(args.window), "--log-level", "warning",
        )
        # running() starts each in its own process group and kills the group when the block ends, however it ends.
        with running(fake_backend_command(backend_port), backend + "/_fake/log", Path(tmp) / "backend.log"), \
                running(command, proxy + "/health", Path(tmp) / "switchyard.log"):
            started = time.monotonic()
            results, samples, final = asyncio.run(measure(proxy, prompts, flags, args))
            seconds = time.monotonic() - started
    lost = report(results, samples, final, args, seconds)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
