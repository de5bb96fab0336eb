#!/usr/bin/env python
"""Router latency, throughput and server memory (a benchmark: nothing here is asserted in tests).

    .venv/bin/python bench/router_latency.py                       # learned + lexical, all sections
    .venv/bin/python bench/router_latency.py --routers learned --no-server

Sections:

1. **single-prompt latency** (one core: ``taskset`` to CPU 0 when available, the process's BLAS/ONNX
   threads are not used by the learned router): ``score_batch([prompt])`` per prompt, p50/p99/max,
   for real prompts of the routing corpus (when ``../shared/data/routing`` exists), synthetic prompts
   of 16, 64, 128, 256 and 512 word pieces, and a 100 KB prompt (truncated by the router);
2. **batched throughput**: prompts/s for batch sizes 1, 8, 32, 64 (the server's micro-batcher sends
   up to ``--router-batch-size`` prompts that arrived while the previous batch was scored);
3. **server RSS**: starts ``python -m dynamo.nemo_switchyard --router-type
   dynamo.nemo_switchyard.routers.learned:LearnedRouter`` in front of the test suite's fake backend,
   sends ``--requests`` routed requests, reads VmRSS/VmHWM of the server process from /proc.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
DATA = os.path.join(ROOT, "..", "shared", "data", "routing")


def pin_one_core() -> str:
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        return f"pinned to CPU {sorted(os.sched_getaffinity(0))[0]}"
    except (AttributeError, OSError):
        return "not pinned"


def make_router(name: str):
    from dynamo.nemo_switchyard.routers import registry

    if name == "learned":
        from dynamo.nemo_switchyard.routers.learned import LearnedRouter

        return LearnedRouter()
    return registry.build(name)


def synthetic(n_tokens: int, rng: random.Random) -> str:
    """A prompt of about ``n_tokens`` word pieces (mixed words, numbers, math)."""
    from dynamo.nemo_switchyard.routers.learned import shared_encoder

    words = ["the", "of", "solve", "equation", "integral", "python", "function", "return", "value", "explain", "why", "compare", "prove", "matrix", "probability", "3.14", "x^2", "+", "y", "=", "42", "derivative", "history", "poem", "recursion", "list", "sort"]
    text = " ".join(rng.choice(words) for _ in range(n_tokens))
    tok = shared_encoder().tokenizer
    ids = tok.encode(text, add_special_tokens=False).ids
    while len(ids) > n_tokens:
        text = text.rsplit(" ", 1)[0]
        ids = tok.encode(text, add_special_tokens=False).ids
    return text


def corpus_prompts(limit: int) -> list[str]:
    out = []
    for name in ("mmlu_pro", "math_l5", "crux", "arena_hard_v1", "routerbench_subset"):
        path = os.path.join(DATA, f"{name}.jsonl.gz")
        if os.path.exists(path):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                rows = [json.loads(line)["prompt"] for line in f]
            random.Random(0).shuffle(rows)
            out += rows[: limit // 5]
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def latency(router, prompts: list[str], repeat: int) -> dict:
    router.score_batch(prompts[:8])  # warm-up
    times = []
    for _ in range(repeat):
        for p in prompts:
            t0 = time.perf_counter()
            router.score_batch([p])
            times.append((time.perf_counter() - t0) * 1e3)
    return {"n": len(times), "p50_ms": statistics.median(times), "p99_ms": pct(times, 0.99), "max_ms": max(times),
            "mean_ms": statistics.mean(times)}


def throughput(router, prompts: list[str], batch: int, seconds: float = 2.0) -> float:
    done, t0, i = 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        b = [prompts[(i + k) % len(prompts)] for k in range(batch)]
        i += batch
        router.score_batch(b)
        done += batch
    return done / (time.perf_counter() - t0)


def server_rss(requests: int, router_type: str) -> dict:
    import tempfile

    from processes import fake_backend_command, free_port, running, switchyard_command

    bport, sport = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="router_bench_")
    body_hard = json.dumps({"model": "auto", "messages": [{"role": "user", "content":
                            "Prove that the sum of the first n odd numbers is n^2, then compute the integral of x^2."}]})
    body_easy = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi there!"}]})
    with running(fake_backend_command(bport), f"http://127.0.0.1:{bport}/_fake/log", os.path.join(tmp, "backend.log")):
        cmd = switchyard_command("--backend-url", f"http://127.0.0.1:{bport}", "--http-host", "127.0.0.1",
                                 "--http-port", str(sport), "--strong-model", "strong-model", "--weak-model", "weak-model",
                                 "--router-type", router_type)
        with running(cmd, f"http://127.0.0.1:{sport}/health", os.path.join(tmp, "switchyard.log"), timeout=60) as proc:
            routed = {}
            t0 = time.perf_counter()
            for i in range(requests):
                req = urllib.request.Request(f"http://127.0.0.1:{sport}/v1/chat/completions",
                                             data=(body_hard if i % 2 else body_easy).encode(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
                    m = resp.headers.get("x-routellm-routed-model")
                    routed[m] = routed.get(m, 0) + 1
            elapsed = time.perf_counter() - t0
            status = {}
            pids = [proc.pid] + _children(proc.pid)
            total = 0
            for pid in pids:
                with open(f"/proc/{pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                rss = int(fields["VmRSS"].split()[0]) / 1024
                total += rss
                status[pid] = {"rss_mb": round(rss, 1), "hwm_mb": round(int(fields["VmHWM"].split()[0]) / 1024, 1)}
            return {"router_type": router_type, "requests": requests, "routed": routed, "seconds": round(elapsed, 2),
                    "processes": status, "total_rss_mb": round(total, 1)}


def _children(pid: int) -> list[str]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        return [int(x) for x in out]
    except OSError:
        return []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routers", nargs="*", default=["learned", "lexical"])
    ap.add_argument("--corpus", type=int, default=1000, help="real prompts from the routing corpus (0 = none)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--server-router", default="dynamo.nemo_switchyard.routers.learned:LearnedRouter")
    ap.add_argument("--json", help="write all numbers here")
    args = ap.parse_args(argv)
    results: dict = {"pinning": pin_one_core()}
    print(f"# {results['pinning']}; python {sys.version.split()[0]}")
    routers = {}
    for name in args.routers:
        t0 = time.perf_counter()
        routers[name] = (make_router(name), time.perf_counter() - t0)
    rng = random.Random(0)
    sets = {f"synthetic-{n}wp": [synthetic(n, rng) for _ in range(50)] for n in (16, 64, 128, 256, 512)}
    sets["synthetic-100KB"] = ["Solve $x^2 + 1 = 0$ and explain. " * 3000] * 10
    real = corpus_prompts(args.corpus) if args.corpus else []
    if real:
        sets = {"corpus (5 sets)": real, **sets}
    for name in args.routers:
        router, load_s = routers[name]
        print(f"\n## {name} (load {load_s * 1e3:.0f} ms)")
        print(f"{'prompts':18s} {'n':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'mean ms':>8s}")
        res = {"load_ms": load_s * 1e3, "latency": {}, "throughput": {}}
        for sname, prompts in sets.items():
            r = latency(router, prompts, args.repeat if len(prompts) < 500 else 1)
            res["latency"][sname] = r
            print(f"{sname:18s} {r['n']:6d} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['max_ms']:8.3f} {r['mean_ms']:8.3f}")
        pool = real or sets["synthetic-128wp"]
        print(f"{'batch size':18s} {'prompts/s':>10s}")
        for b in (1, 8, 32, 64):
            tp = throughput(router, pool, b)
            res["throughput"][b] = tp
            print(f"{b:<18d} {tp:10.0f}")
        results[name] = res
    if not args.no_server:
        r = server_rss(args.requests, args.server_router)
        results["server"] = r
        print(f"\n## server RSS after {r['requests']} routed requests ({r['router_type']}): "
              f"{r['total_rss_mb']:.0f} MB total; per process {r['processes']}; routed {r['routed']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
