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
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the benchmark's nginx config, wrk script and process helpers

PROXY_CONF = """
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/proxy.pid;
error_log {tmp}/proxy-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path {tmp}/proxy-body;
  proxy_temp_path {tmp}/proxy-proxy;
  fastcgi_temp_path {tmp}/proxy-fastcgi;
  uwsgi_temp_path {tmp}/proxy-uwsgi;
  scgi_temp_path {tmp}/proxy-scgi;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    args = ap.parse_args()
    procs = bench.Procs()
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-nginx-floor-"))
    try:
        lua = tmp / "post.lua"
        lua.write_text(bench.WRK_LUA.replace("%BODY%", bench.CHAT_BODY))
        backend, port = bench.free_port(), bench.free_port()
        (tmp / "backend").mkdir()
        (tmp / "backend.conf").write_text(
            bench.NGINX_CONF.format(tmp=tmp / "backend", port=backend, models=bench.MODELS_RESPONSE, chat=bench.CHAT_RESPONSE)
        )
        (tmp / "proxy.conf").write_text(PROXY_CONF.format(tmp=tmp, port=port, backend=backend))
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
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
