"""The floor of any proxy on this machine: nginx ``proxy_pass`` pinned where switchyard runs.

    .venv/bin/python bench/nginx_floor.py [--rounds 3] [--duration 5]

The same load as ``bench/run.py``'s non-streaming part (wrk, the small chat body, an nginx
backend answering fixed JSON), straight at the backend and through an nginx reverse proxy
(one worker, keep-alive to the backend, no buffering) on the proxy's core: what relaying an
HTTP request in C costs here, wake-ups between the cores included. A Python proxy cannot beat
it; the gap between it and ``bench/run.py``'s switchyard column is switchyard's own work.
Needs nginx, wrk and taskset (see bench/run.sh).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the benchmark's nginx config, wrk script and process helpers

# nginx as a reverse proxy: keep-alive connections to the backend, answers passed on unbuffered.
PROXY_HTTP = """  upstream backend {{ server 127.0.0.1:{backend}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    args = ap.parse_args()
    with bench.workspace("switchyard-nginx-floor-") as (procs, tmp):
        lua = tmp / "post.lua"
        lua.write_text(bench.WRK_LUA.replace("%BODY%", bench.CHAT_BODY))
        backend, port = bench.free_port(), bench.free_port()
        (tmp / "backend.conf").write_text(bench.backend_conf(tmp, backend))
        (tmp / "proxy.conf").write_text(bench.nginx_conf(tmp, "proxy", PROXY_HTTP.format(port=port, backend=backend)))
        procs.start("backend", [*bench.taskset(args.load_cpus), "nginx", "-c", str(tmp / "backend.conf"), "-p", str(tmp)], tmp / "backend.out")
        procs.start("proxy", [*bench.taskset(args.proxy_cpus), "nginx", "-c", str(tmp / "proxy.conf"), "-p", str(tmp)], tmp / "proxy.out")
        bench.wait_http(f"http://127.0.0.1:{backend}/v1/models")
        bench.wait_http(f"http://127.0.0.1:{port}/v1/models")
        print(f"pinning: nginx proxy -> cpu {args.proxy_cpus}; wrk and the backend -> cpu {args.load_cpus}")
        for round_ in range(args.rounds):
            for name, target in (("direct", backend), ("nginx proxy", port)):
                for conns in (1, 32):
                    w = bench.run_wrk(f"http://127.0.0.1:{target}/v1/chat/completions", conns, args.duration, 1, lua, args.load_cpus, None)
                    print(f"round {round_}  {name:11s}  c={conns:<2d}  {w['rps']:8,.0f} req/s  p50 {w['p50_ms']:.3f} ms  p99 {w['p99_ms']:.3f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
