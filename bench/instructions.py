"""CPU instructions per proxied request, counted by valgrind (callgrind): a noise-free cost figure.

On this shared 2-core VM, requests/s and CPU time per request move by +-20 % between runs of
the same build, which hides a 5 % change. Instructions executed in user space per request do
not move (two runs of one build agree within 0.2 %), so they show whether a change to the hot
path made it cheaper. They leave out the kernel (system calls) and do not weigh cache misses:
confirm a real gain with ``bench/run.sh`` as well.

    .venv/bin/python bench/instructions.py                       # this checkout, router lexical
    .venv/bin/python bench/instructions.py --src /tmp/old --src .  # compare two source trees

Each tree's ``src`` goes first on PYTHONPATH. The proxy runs under callgrind in front of nginx
(fixed JSON answer); after 200 warm-up requests the counters are zeroed, ``hey`` sends
``--requests`` routed non-streaming requests at concurrency 32, and the counters are dumped.
Needs valgrind and hey (Debian packages: valgrind, hey) and nginx. About 30 s per tree.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the benchmark's nginx config, body and process helpers


def measure(src: Path, router: str, requests: int, concurrency: int, tmp: Path, nginx_port: int) -> dict:
    body = tmp / "body.json"
    port = bench.free_port()
    out = tmp / f"callgrind-{port}.out"
    env = dict(os.environ, PYTHONPATH=str(src / "src"))
    proxy = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no", bench.PY, "-m", "dynamo.nemo_switchyard",
         "--http-host", "127.0.0.1", "--http-port", str(port), "--backend-url", f"http://127.0.0.1:{nginx_port}",
         "--strong-model", "strong-model", "--weak-model", "weak-model", "--router-type", router, "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/health", timeout=300, proc=proxy)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        hey = ["hey", "-m", "POST", "-T", "application/json", "-D", str(body), "-c", str(concurrency)]
        subprocess.run([*hey, "-n", "200", url], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-z", str(proxy.pid)], check=True, capture_output=True)
        report = subprocess.run([*hey, "-n", str(requests), url], check=True, capture_output=True, text=True).stdout
        subprocess.run(["callgrind_control", "-d", str(proxy.pid)], check=True, capture_output=True)
        time.sleep(1)
    finally:
        os.killpg(proxy.pid, 15)
        proxy.wait()
    ok = re.search(r"\[200\]\s+(\d+) responses", report)
    answered = int(ok.group(1)) if ok else 0
    if answered == 0:
        raise RuntimeError(f"no 200 answers through the proxy of {src}:\n{report}")
    dump = min(tmp.glob(f"callgrind-{port}.out.*"))  # the -d dump (the file without a suffix is the exit's)
    totals = subprocess.run(["callgrind_annotate", str(dump)], capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", totals).group(1).replace(",", ""))
    return {"src": str(src), "answered": answered, "instructions_per_request": round(total / answered)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", action="append", type=Path, help="source tree(s) to measure (default: this checkout)")
    ap.add_argument("--router-type", default="lexical")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "hey", "nginx") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install valgrind hey nginx-light")
    trees = [path.resolve() for path in (args.src or [bench.REPO])]
    procs = bench.Procs()
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-instructions-"))
    try:
        (tmp / "body.json").write_text(bench.CHAT_BODY)
        nginx_port = bench.free_port()
        (tmp / "nginx.conf").write_text(bench.NGINX_CONF.format(tmp=tmp, port=nginx_port, models=bench.MODELS_RESPONSE, chat=bench.CHAT_RESPONSE))
        procs.start("nginx", ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], tmp / "nginx.out")
        bench.wait_http(f"http://127.0.0.1:{nginx_port}/v1/models")
        first = None
        for tree in trees:
            result = measure(tree, args.router_type, args.requests, args.concurrency, tmp, nginx_port)
            per = result["instructions_per_request"]
            first = first or per
            print(f"{per:>9,} instructions/request  ({per / first:.3f}x the first)  {tree}  [{result['answered']} answers, router {args.router_type}]")
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
