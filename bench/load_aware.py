"""Load-aware routing against a real Dynamo stack: the same open-loop workload without and with --load-aware.

    .venv/bin/python bench/load_aware.py                 # ~2 minutes: calibration, then two 30 s runs
    .venv/bin/python bench/load_aware.py --duration 60 --overload 1.5 --seed 2

Why: a score threshold sends ~50 % of prompts to the strong model whatever its pool can take;
when that pool is saturated, a borderline prompt waits in its queue longer than the weak model
would take to answer it. --load-aware reads the Dynamo frontend's /metrics and moves prompts
within --load-margin above the threshold to the weak model while the strong pool's queue is
above --load-max-queue. This measures what that buys, client side.

Setup: a real NVIDIA Dynamo 1.6.1 frontend and two mocker workers on CPU (``.venv-dynamo``,
see DEVELOPERS.md), started here rather than with tests/dynamo_stack.py because the two pools
get different capacities: the strong mocker runs few sequences at a time and slower
(``--strong-seqs 2 --speedup 0.5``), the weak one more and faster (``--weak-seqs 4
--weak-speedup 1.0``), as a small model would. The pools' capacities (requests/s) are
measured first, straight at the frontend; the arrival rate is then set so that the strong
pool gets ``--overload`` times its capacity at a 50 % strong share (``--rate`` overrides).

Each run gets a fresh stack and a fresh switchyard (``--router-type random --threshold 0.5``,
plus ``--load-aware --load-max-queue 4 --load-margin 0.2 --load-interval 0.25`` in the second
run), and the same workload (same seed): Poisson arrivals for ``--duration`` seconds (open
loop: a request is sent at its arrival time whatever is in flight), each a streaming chat
request with ``max_tokens`` tokens. Measured per request, client side: TTFT (from sending to
the first chunk with content), total time, the routed model and the decision reason
(x-routellm-routed-model, x-switchyard-reason). Meanwhile the frontend's /metrics is sampled
every 0.25 s for ``dynamo_frontend_queued_requests{model=...}`` (accepted, no first token yet).
Queue figures cover the arrival window; latencies cover every request.

A request is lost when it does not answer 200 with a complete stream (max_tokens content
chunks and ``data: [DONE]``). Exit status 1 when any is lost or a process is left behind.
Every process is started in its own session and its group is stopped in ``finally``; the end
checks with ``ps`` that none of them is left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from dynamo.nemo_switchyard.load import parse_metrics
from dynamo.nemo_switchyard.routers.random import RandomRouter

from dynamo_stack import dynamo_python, free_port, make_tiny_model, stop_processes
from processes import switchyard_command, wait_for

STRONG, WEAK = "strong-model", "weak-model"


# -- processes ---------------------------------------------------------------


class Processes:
    """Every process this run starts, each in its own session (group), so all can be stopped and checked."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.running: dict[str, subprocess.Popen] = {}
        self.started: list[int] = []  # every group ever started (pgid == pid), for the final ps check

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.run_dir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.run_dir,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )
        self.running[name] = process
        self.started.append(process.pid)
        return process

    def stop_all(self) -> None:
        """TERM, then KILL, every group still running (tests/dynamo_stack.py's stop_processes)."""
        running, self.running = self.running, {}
        if running:
            stop_processes(running)

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.run_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def leftovers(self) -> list[str]:
        """``ps`` lines of any process in a group this run started, or whose command line names the run dir."""
        out = subprocess.run(["ps", "-eo", "pid=,pgid=,args="], capture_output=True, text=True, check=True).stdout
        groups = {str(pid) for pid in self.started}
        found = []
        for line in out.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and (parts[1] in groups or str(self.run_dir) in parts[2]) and parts[0] != str(os.getpid()):
                found.append(line.strip())
        return found


def start_stack(procs: Processes, model_dir: Path, args: argparse.Namespace) -> str:
    """Frontend + a strong and a weak mocker of different capacity; returns the frontend URL once both models are listed."""
    py = str(dynamo_python())
    kv = procs.run_dir / f"kv-{len(procs.started)}"  # a fresh discovery dir per stack
    env = {
        "DYN_FILE_KV": str(kv), "DYN_TCP_RPC_HOST": "127.0.0.1", "DYN_EVENT_PLANE_HOST": "127.0.0.1",
        "DYN_SELF_HOST_METADATA": "0", "DYN_SDK_DISABLE_ANSI_LOGGING": "1", "PYTHONUNBUFFERED": "1",
    }
    for var in ("DYN_SYSTEM_PORT", "DYN_HTTP_PORT", "DYN_NAMESPACE", "DYN_DISCOVERY_BACKEND"):
        os.environ.pop(var, None)  # inherited ones would pin ports or namespaces (as in tests/dynamo_stack.py)
    common = ["--discovery-backend", "file", "--request-plane", "tcp"]
    port = free_port()
    procs.start("frontend", [py, "-m", "dynamo.frontend", "--http-host", "127.0.0.1", "--http-port", str(port), *common], env)
    for role, model, seqs, speedup in (("strong", STRONG, args.strong_seqs, args.speedup), ("weak", WEAK, args.weak_seqs, args.weak_speedup)):
        procs.start(role, [
            py, "-m", "dynamo.mocker", "--model-path", str(model_dir), "--model-name", model,
            "--endpoint", f"dyn://{role}.backend.generate", "--speedup-ratio", str(speedup), "--max-num-seqs", str(seqs), *common,
        ], env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        dead = [name for name, p in procs.running.items() if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead} exited during start-up:\n" + "\n".join(procs.tail(name) for name in dead))
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
                if {STRONG, WEAK} <= {m.get("id") for m in json.load(response).get("data", [])}:
                    return url
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the Dynamo stack did not list both models within 90 s:\n" + procs.tail("frontend"))
        time.sleep(0.1)


def start_switchyard(procs: Processes, backend: str, load_aware: bool, args: argparse.Namespace) -> str:
    """Switchyard in front of the frontend; the two runs differ only in the --load-aware flags."""
    port = free_port()
    flags = ["--http-host", "127.0.0.1", "--http-port", str(port), "--backend-url", backend, "--strong-model", STRONG,
             "--weak-model", WEAK, "--router-type", "random", "--threshold", str(args.threshold), "--log-level", "warning"]
    if load_aware:
        flags += ["--load-aware", "--load-max-queue", str(args.max_queue), "--load-margin", str(args.margin),
                  "--load-interval", str(args.interval)]
        if args.max_ttft is not None:
            flags += ["--load-max-ttft", str(args.max_ttft)]
    process = procs.start("switchyard", switchyard_command(*flags))
    wait_for(f"http://127.0.0.1:{port}/health", process, 30, procs.run_dir / "switchyard.log")
    return f"http://127.0.0.1:{port}"


# -- requests ------------------------------------------------------------------


@dataclass
class Outcome:
    """One streaming request, measured client side (seconds from sending it)."""

    index: int
    model: str | None = None
    reason: str | None = None
    ttft: float | None = None
    total: float | None = None
    chunks: int = 0
    done: bool = False
    error: str | None = None
    lag: float = 0.0  # how late it was sent after its arrival time (the client keeping up)

    @property
    def lost(self) -> bool:
        return self.error is not None or not self.done or self.ttft is None


def chat_body(prompt: str, model: str, max_tokens: int) -> dict:
    return {"model": model, "max_tokens": max_tokens, "stream": True, "messages": [{"role": "user", "content": prompt}]}


async def stream(session: aiohttp.ClientSession, url: str, body: dict, outcome: Outcome, expected: int) -> None:
    """Send one streaming chat request and time its first content chunk and its end."""
    sent = time.monotonic()
    try:
        async with session.post(url + "/v1/chat/completions", json=body) as response:
            outcome.model = response.headers.get("x-routellm-routed-model", body["model"])
            outcome.reason = response.headers.get("x-switchyard-reason")
            if response.status != 200:
                outcome.error = f"HTTP {response.status}: {(await response.read())[:200]!r}"
                return
            async for line in response.content:
                if line.startswith(b"data: [DONE]"):
                    outcome.done = True
                elif line.startswith(b"data: {"):
                    choices = json.loads(line[6:]).get("choices") or []
                    if choices and (choices[0].get("delta") or {}).get("content"):
                        outcome.chunks += 1
                        if outcome.ttft is None:
                            outcome.ttft = time.monotonic() - sent
        outcome.total = time.monotonic() - sent
        if outcome.done and outcome.chunks != expected:
            outcome.error = f"{outcome.chunks} content chunks, expected {expected}"
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        outcome.error = repr(exc)


async def calibrate(frontend: str, model: str, seqs: int, max_tokens: int, rounds: int = 2) -> float:
    """Requests/s one pool serves: ``seqs`` requests at once (a full batch), straight at the frontend."""
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await stream(session, frontend, chat_body("warm up", model, 4), Outcome(-1), 4)
        started = time.monotonic()
        for r in range(rounds):
            outcomes = [Outcome(i) for i in range(seqs)]
            await asyncio.gather(*(stream(session, frontend, chat_body(f"calibrate {r} {i}", model, max_tokens), o, max_tokens)
                                   for i, o in enumerate(outcomes)))
            if any(o.lost for o in outcomes):
                raise RuntimeError(f"calibration of {model} failed: {[o.error for o in outcomes]}")
        return rounds * seqs / (time.monotonic() - started)


async def sample_queues(frontend: str, interval: float, samples: list[tuple[float, float, float]], t0: float, stop: asyncio.Event) -> None:
    """Every ``interval`` s: (time since t0, strong queued, weak queued) from the frontend's /metrics."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while not stop.is_set():
            began = time.monotonic()
            try:
                async with session.get(frontend + "/metrics") as response:
                    models = parse_metrics(await response.text())
                strong, weak = models.get(STRONG), models.get(WEAK)
                samples.append((began - t0, (strong.queued if strong else None) or 0.0, (weak.queued if weak else None) or 0.0))
            except (TimeoutError, aiohttp.ClientError, ValueError):
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.monotonic() - began)))


async def wait_load_ready(proxy: str, timeout: float = 30) -> None:
    """With --load-aware: until switchyard reads per-model figures from the frontend (state ok)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(proxy + "/stats") as response:
                load = json.loads(await response.read()).get("load")
            if load is None or (load["state"] == "ok" and all(m["queued"] is not None for m in load["models"].values())):
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"switchyard did not read the frontend's load within {timeout:g} s: {load}")


async def run_workload(proxy: str, frontend: str, workload: list[tuple[float, str]], args: argparse.Namespace) -> dict:
    """Send the workload open loop; sample the frontend's queues meanwhile."""
    await wait_load_ready(proxy)
    outcomes = [Outcome(i) for i in range(len(workload))]
    samples: list[tuple[float, float, float]] = []
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=600, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        t0 = time.monotonic()
        sampler = asyncio.create_task(sample_queues(frontend, args.sample_interval, samples, t0, stop))

        async def one(at: float, prompt: str, outcome: Outcome) -> None:
            await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
            outcome.lag = time.monotonic() - t0 - at
            await stream(session, proxy, chat_body(prompt, "auto", args.max_tokens), outcome, args.max_tokens)

        try:
            await asyncio.gather(*(one(at, prompt, o) for (at, prompt), o in zip(workload, outcomes)))
            finished = time.monotonic() - t0
        finally:
            stop.set()
            await sampler
    return {"outcomes": outcomes, "samples": samples, "finished": finished}


# -- figures -------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def figures(result: dict, duration: float) -> dict[str, str]:
    """The table's rows for one run, formatted."""
    outcomes: list[Outcome] = result["outcomes"]
    window = [(s, w) for t, s, w in result["samples"] if t <= duration]
    strong_q = [s for s, _ in window]
    weak_q = [w for _, w in window]
    ok = [o for o in outcomes if not o.lost]
    n = len(outcomes)

    def ttft(model: str | None) -> str:
        values = [o.ttft for o in ok if model is None or o.model == model]
        return f"{quantile(values, 0.5):.2f} / {quantile(values, 0.9):.2f}" if values else "-"

    def total(model: str | None) -> str:
        values = [o.total for o in ok if model is None or o.model == model]
        return f"{quantile(values, 0.5):.2f} / {quantile(values, 0.9):.2f}" if values else "-"

    strong = sum(o.model == STRONG for o in outcomes)
    moved = sum(o.reason == "load" for o in outcomes)
    return {
        "requests sent": f"{n}",
        "requests lost": f"{sum(o.lost for o in outcomes)}",
        "share strong": f"{strong / n:.3f}",
        "share moved by load": f"{moved / n:.3f}",
        "strong queue mean / p90 / max": f"{sum(strong_q) / max(1, len(strong_q)):.1f} / {quantile(strong_q, 0.9):.1f} / {max(strong_q, default=0):.0f}",
        "weak queue mean / max": f"{sum(weak_q) / max(1, len(weak_q)):.2f} / {max(weak_q, default=0):.0f}",
        "TTFT p50 / p90 all (s)": ttft(None),
        "TTFT p50 / p90 strong (s)": ttft(STRONG),
        "TTFT p50 / p90 weak (s)": ttft(WEAK),
        "total p50 / p90 all (s)": total(None),
        "total p50 / p90 strong (s)": total(STRONG),
        "total p50 / p90 weak (s)": total(WEAK),
        "last answer after last arrival (s)": f"{result['finished'] - max(duration, 0):.1f}",
        "queue samples (arrival window)": f"{len(window)}",
        "client send lag max (ms)": f"{1000 * max((o.lag for o in outcomes), default=0):.0f}",
    }


def print_table(rows: dict[str, dict[str, str]]) -> None:
    names = list(rows)
    keys = list(next(iter(rows.values())))
    width = max(len(k) for k in keys)
    print(f"\n{'':<{width}}  " + "  ".join(f"{name:>22}" for name in names))
    for key in keys:
        print(f"{key:<{width}}  " + "  ".join(f"{rows[name][key]:>22}" for name in names))


# -- main ------------------------------------------------------------------------


def make_workload(rate: float, duration: float, seed: int) -> list[tuple[float, str]]:
    """Poisson arrivals at ``rate``/s for ``duration`` s: (arrival time, prompt); the same for a seed."""
    rng = random.Random(seed)
    workload, t, i = [], 0.0, 0
    while True:
        t += rng.expovariate(rate)
        if t > duration:
            return workload
        workload.append((t, f"load bench {seed} question {i}: {rng.getrandbits(64):x}"))
        i += 1


def bench(args: argparse.Namespace, procs: Processes) -> int:
    model_dir = make_tiny_model(procs.run_dir / "model")
    frontend = start_stack(procs, model_dir, args)
    strong_cap = asyncio.run(calibrate(frontend, STRONG, args.strong_seqs, args.max_tokens))
    weak_cap = asyncio.run(calibrate(frontend, WEAK, args.weak_seqs, args.max_tokens))
    rate = args.rate if args.rate is not None else args.overload * strong_cap / 0.5
    workload = make_workload(rate, args.duration, args.seed)
    router = RandomRouter(seed=0)
    scores = router.score_batch([prompt for _, prompt in workload])
    above = sum(s >= args.threshold for s in scores) / len(scores)
    borderline = sum(args.threshold <= s < args.threshold + args.margin for s in scores) / len(scores)
    print(f"capacity (measured, full batches of {args.max_tokens} tokens): strong {strong_cap:.2f} req/s "
          f"({args.strong_seqs} seqs, speedup {args.speedup:g}), weak {weak_cap:.2f} req/s ({args.weak_seqs} seqs, speedup {args.weak_speedup:g})")
    print(f"workload: {len(workload)} requests, Poisson {rate:.2f} req/s for {args.duration:g} s, seed {args.seed}; "
          f"scores >= {args.threshold:g}: {above:.3f}, within the margin [{args.threshold:g}, {args.threshold + args.margin:g}): {borderline:.3f}")
    print(f"offered load / capacity: strong {rate * above / strong_cap:.2f} at the score split, "
          f"{rate * (above - borderline) / strong_cap:.2f} with every borderline prompt moved; "
          f"weak {rate * (1 - above) / weak_cap:.2f} / {rate * (1 - above + borderline) / weak_cap:.2f}")
    rows: dict[str, dict[str, str]] = {}
    for label, load_aware in (("without --load-aware", False), ("with --load-aware", True)):
        if rows:  # a fresh stack per run: no queue, cache or metrics left from the last one
            procs.stop_all()
            frontend = start_stack(procs, model_dir, args)
            for model in (STRONG, WEAK):  # a first request each: the frontend's per-model metric series appear
                asyncio.run(calibrate(frontend, model, 1, 4, rounds=1))
        proxy = start_switchyard(procs, frontend, load_aware, args)
        print(f"running {label} ...", flush=True)
        result = asyncio.run(run_workload(proxy, frontend, workload, args))
        rows[label] = figures(result, args.duration)
        for o in [o for o in result["outcomes"] if o.lost][:5]:
            print(f"  lost: request {o.index} ({o.model}): {o.error or 'incomplete stream'}")
        stop_processes({"switchyard": procs.running.pop("switchyard")})
    flags = (f"router random, threshold {args.threshold:g}; load-aware: --load-max-queue {args.max_queue} --load-margin {args.margin:g} "
             f"--load-interval {args.interval:g}" + (f" --load-max-ttft {args.max_ttft:g}" if args.max_ttft else ""))
    print(f"\n{flags}; max_tokens {args.max_tokens}; queues sampled every {args.sample_interval:g} s over the {args.duration:g} s arrival window")
    print_table(rows)
    return sum(int(r["requests lost"]) for r in rows.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30, help="seconds of arrivals per run (default 30)")
    parser.add_argument("--rate", type=float, default=None, help="arrivals per second (default: from --overload and the measured capacity)")
    parser.add_argument("--overload", type=float, default=1.3, help="strong pool's offered load / capacity at a 50 %% strong share (default 1.3)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens per request (default 64)")
    parser.add_argument("--seed", type=int, default=1, help="seed of arrivals and prompts (default 1)")
    parser.add_argument("--threshold", type=float, default=0.5, help="--threshold (default 0.5)")
    parser.add_argument("--max-queue", type=int, default=4, help="--load-max-queue (default 4)")
    parser.add_argument("--max-ttft", type=float, default=None, help="--load-max-ttft (default: unset)")
    parser.add_argument("--margin", type=float, default=0.2, help="--load-margin (default 0.2)")
    parser.add_argument("--interval", type=float, default=0.25, help="--load-interval (default 0.25)")
    parser.add_argument("--sample-interval", type=float, default=0.25, help="seconds between the bench's own /metrics samples (default 0.25)")
    parser.add_argument("--strong-seqs", type=int, default=2, help="strong mocker --max-num-seqs (default 2)")
    parser.add_argument("--weak-seqs", type=int, default=4, help="weak mocker --max-num-seqs (default 4)")
    parser.add_argument("--speedup", type=float, default=0.5, help="strong mocker --speedup-ratio (default 0.5)")
    parser.add_argument("--weak-speedup", type=float, default=1.0, help="weak mocker --speedup-ratio (default 1.0)")
    args = parser.parse_args()

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds into the finally below

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    lost = 0
    with tempfile.TemporaryDirectory(prefix="load-aware-") as tmp:
        procs = Processes(Path(tmp))
        try:
            lost = bench(args, procs)
        finally:
            procs.stop_all()
            left = procs.leftovers()
            print(f"\nprocesses left behind (ps): {len(left)}" + "".join(f"\n  {line}" for line in left))
    return 1 if lost or left else 0


if __name__ == "__main__":
    sys.exit(main())
