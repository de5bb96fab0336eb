"""CPU instructions per proxied request or stream, counted by valgrind (callgrind): a noise-free cost figure.

On this shared 2-core VM, requests/s and CPU time per request move by +-20 % between runs of
the same build, which hides a 5 % change. Instructions executed in user space per request do
not move (two runs of one build agree within 0.2 %), so they show whether a change to the hot
path made it cheaper. They leave out the kernel (system calls) and do not weigh cache misses:
confirm a real gain with ``bench/run.sh`` as well.

    .venv/bin/python bench/instructions.py                       # this checkout, router lexical
    .venv/bin/python bench/instructions.py --src /tmp/old --src .  # compare two source trees
    .venv/bin/python bench/instructions.py --streams 200         # per paced SSE stream instead
    .venv/bin/python bench/instructions.py --src . --python .venv-compiled/bin/python  # interpreted vs compiled

Each tree's ``src`` goes first on PYTHONPATH (run by .venv's interpreter); ``--python PY`` measures
the switchyard installed for PY instead (scripts/setup_compiled.sh builds the compiled one). The proxy runs under callgrind; after a warm-up the
counters are zeroed, the load runs, and the counters are dumped. Plain: ``hey`` sends ``--requests``
routed non-streaming requests at concurrency 32 to an nginx backend (fixed JSON answer). Streams:
``bench/stream_client.c`` opens ``--streams`` streams over a second against ``bench/sse_backend.c``
(``--chunks`` content chunks 20 ms apart, then usage and [DONE]); run it with ``--chunks 10`` and
``--chunks 50`` and divide the difference by 40 for the cost of one relayed chunk (streams are
paced in time; their counts repeat within ~3 %). Needs valgrind, hey, nginx and gcc
(Debian packages). About 30-40 s per tree.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the benchmark's nginx config, body and process helpers

HERE = Path(__file__).resolve().parent


def measure(src: Path | None, python: str, args: argparse.Namespace, tmp: Path, backend_port: int) -> dict:
    """``src``: that tree's sources (interpreted); None: the switchyard installed for ``python``."""
    port = bench.free_port()
    out = tmp / f"callgrind-{port}.out"
    env = dict(os.environ, PYTHONPATH=str(src / "src")) if src is not None else {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proxy = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no", *bench.proxy_args(python, port, backend_port, args.router_type)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/health", timeout=300, proc=proxy)
        if args.streams:
            client = [str(tmp / "stream_client"), "127.0.0.1", str(port), "/v1/chat/completions"]
            subprocess.run([*client, "20", str(args.chunks), "0.5", "120"], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-z", str(proxy.pid)], check=True, capture_output=True)
            report = subprocess.run([*client, str(args.streams), str(args.chunks), "1", "300"], check=True, capture_output=True, text=True).stdout
            found = re.search(r'"completed":(\d+)', report)
            unit = "stream"
        else:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            hey = ["hey", "-m", "POST", "-T", "application/json", "-D", str(tmp / "body.json"), "-c", str(args.concurrency)]
            subprocess.run([*hey, "-n", "200", url], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-z", str(proxy.pid)], check=True, capture_output=True)
            report = subprocess.run([*hey, "-n", str(args.requests), url], check=True, capture_output=True, text=True).stdout
            found = re.search(r"\[200\]\s+(\d+) responses", report)
            unit = "request"
        subprocess.run(["callgrind_control", "-d", str(proxy.pid)], check=True, capture_output=True)
        time.sleep(1)
    finally:
        os.killpg(proxy.pid, 15)
        proxy.wait()
    done = int(found.group(1)) if found else 0
    if done == 0:
        raise RuntimeError(f"nothing completed through the proxy of {src or python}:\n{report}")
    dump = min(tmp.glob(f"callgrind-{port}.out.*"))  # the -d dump (the file without a suffix is the exit's)
    if args.keep:
        shutil.copy(dump, args.keep)
    totals = subprocess.run(["callgrind_annotate", str(dump)], capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", totals).group(1).replace(",", ""))
    return {"unit": unit, "done": done, "per": round(total / done)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", action="append", type=Path, default=[], help="source tree(s) to measure, interpreted (default: this checkout)")
    ap.add_argument("--python", action="append", default=[], help="interpreter(s) whose installed switchyard to measure, e.g. .venv-compiled/bin/python (the compiled build)")
    ap.add_argument("--router-type", default="lexical")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--streams", type=int, default=0, help="measure per SSE stream, this many streams (default: plain requests)")
    ap.add_argument("--chunks", type=int, default=50, help="content chunks per stream")
    ap.add_argument("--keep", type=Path, help="copy the callgrind dump here (the last tree's), for callgrind_annotate --inclusive=yes")
    args = ap.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "hey", "nginx", "gcc") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install valgrind hey nginx-light gcc")
    interpreted = str(bench.EDITABLE_PY) if bench.EDITABLE_PY.exists() else sys.executable  # --src trees: never the compiled install
    targets: list[tuple[Path | None, str]] = [(path.resolve(), interpreted) for path in args.src]
    targets += [(None, python) for python in args.python]
    targets = targets or [(bench.REPO, interpreted)]
    with bench.workspace("switchyard-instructions-") as (procs, tmp):
        backend_port = bench.free_port()
        if args.streams:
            for name in ("sse_backend", "stream_client"):
                subprocess.run(["gcc", "-O2", "-o", str(tmp / name), str(HERE / f"{name}.c")], check=True)
            procs.start("sse_backend", [str(tmp / "sse_backend"), str(backend_port), str(args.chunks), "20"], tmp / "sse.out")
        else:
            (tmp / "body.json").write_text(bench.CHAT_BODY)
            (tmp / "nginx.conf").write_text(bench.backend_conf(tmp, backend_port))
            procs.start("nginx", ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], tmp / "nginx.out")
        bench.wait_http(f"http://127.0.0.1:{backend_port}/v1/models")
        first = None
        for tree, python in targets:
            result = measure(tree, python, args, tmp, backend_port)
            per = result["per"]
            first = first or per
            print(f"{per:>11,} instructions/{result['unit']}  ({per / first:.3f}x the first)  {tree or python + ' (installed)'}  "
                  f"[{result['done']} done, router {args.router_type}{f', {args.chunks} chunks' if args.streams else ''}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
