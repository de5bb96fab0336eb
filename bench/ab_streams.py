"""Paced streams through several builds side by side: interleaved rounds, a fresh proxy each, medians.

    .venv/bin/python bench/ab_streams.py --python .venv-compiled/bin/python --python /tmp/other/.venv-compiled/bin/python

The stream part of ``bench/run.sh`` (1,000 streams of 50 chunks 20 ms apart, opened over one
second) gives a gap p99 that moves by 10 ms and more between runs of one build on this VM. This
runs each build in turn, round after round, each time as a fresh proxy (a used one keeps its pooled
backend connections, which changes the test) with the same warm-up of 100 streams, and prints the
median over the rounds of the added gap p99 and p99.9, TTFT p50 and p99, the proxy's CPU seconds and
the incomplete streams; the direct streams (client to backend) are measured in every round too.
Same backend, client and pinning as ``bench/run.py``. Needs gcc and taskset (see bench/run.sh).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the benchmark's process helpers and stream client runner

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", action="append", default=[], help="interpreter whose installed switchyard to measure (repeat; default: the compiled build)")
    ap.add_argument("--router-type", default="lexical")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=50)
    ap.add_argument("--interval-ms", type=float, default=20.0)
    ap.add_argument("--ramp", type=float, default=1.0, help="seconds over which the streams are opened")
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    args = ap.parse_args()
    pythons = args.python or [bench.PY]
    with bench.workspace("switchyard-ab-streams-") as (procs, tmp):
        for name in ("sse_backend", "stream_client"):
            subprocess.run(["gcc", "-O2", "-o", str(tmp / name), str(HERE / f"{name}.c")], check=True)
        backend = bench.free_port()
        procs.start("sse_backend", [*bench.taskset(args.load_cpus), str(tmp / "sse_backend"), str(backend), str(args.chunks), str(args.interval_ms)], tmp / "sse.out")
        bench.wait_http(f"http://127.0.0.1:{backend}/v1/models")
        client = tmp / "stream_client"
        names = ["direct", *(f"{i}: {python}" for i, python in enumerate(pythons))]
        rows: dict[str, list[dict]] = {name: [] for name in names}
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else list(reversed(names))
            for name in order:
                if name == "direct":
                    bench.run_streams(client, backend, args, args.load_cpus, None, streams=100)
                    d = bench.run_streams(client, backend, args, args.load_cpus, None)
                    d["cpu_s"] = float("nan")
                else:
                    python = pythons[int(name.split(":")[0])]
                    port = bench.free_port()
                    command = bench.taskset(args.proxy_cpus) + bench.proxy_args(python, port, backend, args.router_type)
                    proxy = procs.start(f"proxy-{round_}", command, tmp / f"proxy-{round_}.out")
                    try:
                        bench.wait_http(f"http://127.0.0.1:{port}/health", timeout=120, proc=proxy)
                        bench.run_streams(client, port, args, args.load_cpus, None, streams=100)
                        before = bench.cpu_seconds(proxy.pid)
                        d = bench.run_streams(client, port, args, args.load_cpus, None)
                        d["cpu_s"] = bench.cpu_seconds(proxy.pid) - before
                    finally:
                        procs.stop(proxy)
                rows[name].append(d)
            print(f"round {round_}: " + "  ".join(f"{name.split(':')[0]} gap p99 {rows[name][-1]['gap_ms']['p99']:.1f}" for name in names), flush=True)

        def median(name: str, pick) -> float:
            return statistics.median(pick(d) for d in rows[name])

        base = {key: median("direct", lambda d, key=key: d["gap_ms"][key]) for key in ("p99", "p999")}
        print(f"\n{args.streams} streams x {args.chunks} chunks every {args.interval_ms:g} ms, opened over {args.ramp:g} s; router {args.router_type}; "
              f"medians over {args.rounds} rounds (ms; added = minus direct's median; TTFT as measured)")
        print(f"{'':50s} {'gap p99':>8s} {'added':>7s} {'p99.9':>7s} {'added':>7s} {'TTFT p50':>8s} {'TTFT p99':>8s} {'CPU s':>6s} {'lost':>5s}")
        for name in names:
            g99, g999 = median(name, lambda d: d["gap_ms"]["p99"]), median(name, lambda d: d["gap_ms"]["p999"])
            t50, t99 = median(name, lambda d: d["ttft_ms"]["p50"]), median(name, lambda d: d["ttft_ms"]["p99"])
            lost = sum(d["incomplete"] for d in rows[name])
            print(f"{name[:50]:50s} {g99:8.2f} {g99 - base['p99']:+7.2f} {g999:7.2f} {g999 - base['p999']:+7.2f} "
                  f"{t50:8.2f} {t99:8.1f} "
                  f"{median(name, lambda d: d['cpu_s']):6.2f} {lost:5d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
