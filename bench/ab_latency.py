"""Added latency at concurrency 1 (or --connections N), builds side by side: interleaved rounds, medians.

    .venv/bin/python bench/ab_latency.py --python .venv-compiled/bin/python --python /tmp/other/bin/python

On this VM a single ``bench/run.sh`` c=1 figure moves by +-0.05 ms between runs of one build,
as much as a change to the request path gains. This runs every build (and nginx ``proxy_pass``,
the floor of any proxy here) as a proxy at once, each on the proxy core, and measures them in
turn, round after round, against the same nginx backend: the machine's drift hits all of them
alike, and the median over the rounds of each one's p50 and p99 is compared. Same load, body and
pinning as ``bench/run.py``'s non-streaming part. Needs nginx, wrk and taskset (see bench/run.sh).
The last column is each server's CPU time (user + system, its process tree) per request: at
concurrency 32 the proxy's core is saturated, and this moves less than requests/s between rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nginx_floor  # nginx proxy_pass, the reference
import run as bench  # the benchmark's nginx config, wrk script and process helpers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", action="append", default=[], help="interpreter whose installed switchyard to measure (repeat; default: the compiled build)")
    ap.add_argument("--router-type", default="lexical")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of wrk per build and round")
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    args = ap.parse_args()
    pythons = args.python or [bench.PY]
    with bench.workspace("switchyard-ab-") as (procs, tmp):
        lua = tmp / "post.lua"
        lua.write_text(bench.WRK_LUA.replace("%BODY%", bench.CHAT_BODY))
        backend = bench.free_port()
        (tmp / "backend.conf").write_text(bench.backend_conf(tmp, backend))
        pids = {"direct": procs.start("backend", [*bench.taskset(args.load_cpus), "nginx", "-c", str(tmp / "backend.conf"), "-p", str(tmp)], tmp / "backend.out").pid}
        bench.wait_http(f"http://127.0.0.1:{backend}/v1/models")
        targets = {"direct": backend}
        nginx_port = bench.free_port()
        (tmp / "proxy.conf").write_text(bench.nginx_conf(tmp, "proxy", nginx_floor.PROXY_HTTP.format(port=nginx_port, backend=backend)))
        pids["nginx proxy_pass"] = procs.start("nginx-proxy", [*bench.taskset(args.proxy_cpus), "nginx", "-c", str(tmp / "proxy.conf"), "-p", str(tmp)], tmp / "proxy.out").pid
        targets["nginx proxy_pass"] = nginx_port
        for i, python in enumerate(pythons):
            port = bench.free_port()
            proc = procs.start(f"proxy{i}", bench.taskset(args.proxy_cpus) + bench.proxy_args(python, port, backend, args.router_type), tmp / f"proxy{i}.out")
            bench.wait_http(f"http://127.0.0.1:{port}/health", timeout=120, proc=proc)
            targets[f"{i}: {python}"] = port
            pids[f"{i}: {python}"] = proc.pid
        for name, port in targets.items():  # warm every path once
            bench.run_wrk(f"http://127.0.0.1:{port}/v1/chat/completions", args.connections, 1, 0, lua, args.load_cpus, None)
        p50: dict[str, list[float]] = {name: [] for name in targets}
        p99: dict[str, list[float]] = {name: [] for name in targets}
        rps: dict[str, list[float]] = {name: [] for name in targets}
        cpu: dict[str, list[float]] = {name: [] for name in targets}  # µs of the server's CPU (user + system) per request
        for round_ in range(args.rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))  # no build always first after a pause
            for name in order:
                w = bench.run_wrk(f"http://127.0.0.1:{targets[name]}/v1/chat/completions", args.connections, args.duration, 0, lua, args.load_cpus, pids[name])
                if sum(w["errors"].values()):
                    raise RuntimeError(f"{name}: wrk saw errors {w['errors']}")
                p50[name].append(w["p50_ms"])
                p99[name].append(w["p99_ms"])
                rps[name].append(w["rps"])
                cpu[name].append(1e6 * w["cpu_s"] / max(1, w["requests"]))
            print(f"round {round_}: " + "  ".join(f"{name.split(':')[0]} {p50[name][-1]:.3f}" for name in targets), flush=True)
        base50, base99 = statistics.median(p50["direct"]), statistics.median(p99["direct"])
        print(f"\nc={args.connections}, {args.rounds} rounds of {args.duration:g} s, router {args.router_type}; medians over the rounds (ms)")
        print(f"{'':60s} {'p50':>7s} {'added':>7s} {'p99':>7s} {'added':>7s} {'req/s':>8s} {'CPU us/req':>10s}")
        for name in targets:
            m50, m99 = statistics.median(p50[name]), statistics.median(p99[name])
            print(f"{name[:60]:60s} {m50:7.3f} {m50 - base50:+7.3f} {m99:7.3f} {m99 - base99:+7.3f} {statistics.median(rps[name]):8,.0f} "
                  f"{statistics.median(cpu[name]):10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
