#!/usr/bin/env python3
"""Switchyard overhead benchmark: the same load straight at a backend and through the proxy.

    bash bench/run.sh            # or: .venv/bin/python bench/run.py [--help]

1. Non-streaming: wrk (Lua POST of a small chat body, model "auto") at concurrency 1 and 32
   against nginx returning a fixed JSON body; requests/s, latency p50/p99.
2. Streaming: N concurrent paced SSE streams (C epoll backend and C epoll client, see
   sse_backend.c / stream_client.c); TTFT and inter-chunk gap percentiles, incomplete streams.
Columns: direct (no proxy), bare aiohttp (bench/bare_proxy.py: the floor cost of any aiohttp
server+client proxy on this machine, pinned like the 1-worker proxy; --no-bare skips it),
proxy 1w, and optionally proxy 2w (--workers 2). Switchyard is reported both against direct
and against bare aiohttp (proxy/bare), the latter being comparable between days/machines.
Then (optionally) a py-spy profile of the single-worker proxy under c=32 and under the
streaming load, in runs separate from the measured ones.

Prints a table and writes bench/results/latest.json. Every process it starts runs in its
own session and is killed (process group) on exit, error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The compiled build users install (scripts/setup_compiled.sh), else the editable one, else this interpreter.
COMPILED_PY, EDITABLE_PY = REPO / ".venv-compiled" / "bin" / "python", REPO / ".venv" / "bin" / "python"
PY = str(next((py for py in (COMPILED_PY, EDITABLE_PY) if py.exists()), Path(sys.executable)))

CHAT_BODY = '{"model":"auto","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France? Answer in one word."}],"max_tokens":16}'
CHAT_RESPONSE = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"weak-model",'
    '"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":24,"completion_tokens":2,"total_tokens":26}}'
)
MODELS_RESPONSE = '{"object":"list","data":[{"id":"strong-model","object":"model","created":0,"owned_by":"bench"},{"id":"weak-model","object":"model","created":0,"owned_by":"bench"}]}'

WRK_LUA = r"""
wrk.method = "POST"
wrk.body = [[%BODY%]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""

# One nginx worker in the foreground, its files under {tmp} named after {name}; {http}: the rest of
# the http block (servers, upstreams).
NGINX_MAIN = """
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path {tmp}/{name}-body;
  proxy_temp_path {tmp}/{name}-proxy;
  fastcgi_temp_path {tmp}/{name}-fastcgi;
  uwsgi_temp_path {tmp}/{name}-uwsgi;
  scgi_temp_path {tmp}/{name}-scgi;
{http}
}}
"""
BACKEND_HTTP = """  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    default_type application/json;
    location = /v1/models {{ return 200 '{models}'; }}
    location / {{ return 200 '{chat}'; }}
  }}"""


def nginx_conf(tmp: Path, name: str, http: str) -> str:
    return NGINX_MAIN.format(tmp=tmp, name=name, http=http)


def backend_conf(tmp: Path, port: int) -> str:
    """The plain-request backend: nginx answering /v1/models and, on every other path, the chat answer."""
    return nginx_conf(tmp, "nginx", BACKEND_HTTP.format(port=port, models=MODELS_RESPONSE, chat=CHAT_RESPONSE))


# ---------------------------------------------------------------- process handling

class Procs:
    """Every process we start: own session, killed by process group on cleanup."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], log: Path | None = None, **kw) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        self.procs.append((name, p))
        return p

    def stop(self, p: subprocess.Popen, grace: float = 5.0) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # the group may hold children (proxy workers, nginx worker) even after the leader left
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            pass
        self.procs = [(n, q) for n, q in self.procs if q is not p]

    def stop_all(self) -> None:
        for _, p in reversed(list(self.procs)):
            self.stop(p, grace=3.0)


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[tuple[Procs, Path]]:
    """Started processes and a temporary folder, both gone on the way out (error and Ctrl-C included)."""
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield procs, tmp
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                r.read()
                return
        except Exception as exc:  # noqa: BLE001
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up: {last}")


# The backend's host in switchyard's --backend-url: a name (e.g. localhost) measures the cost of
# looking it up, as a deployment that names its backend (Kubernetes) pays.
BACKEND_HOST = os.environ.get("SWITCHYARD_BENCH_BACKEND_HOST", "127.0.0.1")


def proxy_args(python: str, port: int, backend_port: int, router: str) -> list[str]:
    """The switchyard command line every benchmark here measures (one worker unless more are added)."""
    return [
        python, "-m", "dynamo.nemo_switchyard", "--http-host", "127.0.0.1", "--http-port", str(port),
        "--backend-url", f"http://{BACKEND_HOST}:{backend_port}", "--strong-model", "strong-model", "--weak-model", "weak-model",
        "--router-type", router, "--log-level", "warning",
    ]


def taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


# ---------------------------------------------------------------- CPU accounting

TICK = os.sysconf("SC_CLK_TCK")


def tree_pids(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            pass
    return total


WATCHED: list[int] = []  # long-running processes we started (nginx, SSE backend, proxy)


class ForeignCPU:
    """CPU used by processes that are not ours during a measurement (other users of the box)."""

    def _busy(self) -> float:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (v[0] + v[1] + v[2]) / TICK  # user + nice + system (irq/softirq/steal left out)

    def _ours(self) -> float:
        import resource
        ru_c = resource.getrusage(resource.RUSAGE_CHILDREN)
        ru_s = resource.getrusage(resource.RUSAGE_SELF)
        return ru_c.ru_utime + ru_c.ru_stime + ru_s.ru_utime + ru_s.ru_stime + sum(cpu_seconds(p) for p in WATCHED)

    def __enter__(self):
        self.t0, self.b0, self.o0 = time.monotonic(), self._busy(), self._ours()
        return self

    def __exit__(self, *exc):
        wall = time.monotonic() - self.t0
        self.pct = round(100.0 * max(0.0, (self._busy() - self.b0) - (self._ours() - self.o0)) / wall, 1)
        return False


def system_busy(seconds: float = 1.0) -> dict:
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t1, i1 = snap()
    time.sleep(seconds)
    t2, i2 = snap()
    busy = 100.0 * (1 - (i2 - i1) / max(1, t2 - t1))
    top = []
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,etimes,args", "--sort=-pcpu"], capture_output=True, text=True).stdout.splitlines()[1:6]
        top = [line.strip()[:140] for line in out]
    except OSError:
        pass
    return {"busy_pct_all_cpus": round(busy, 1), "loadavg": os.getloadavg(), "top_processes": top}


# ---------------------------------------------------------------- measurements

def run_wrk(url: str, conns: int, duration: float, warmup: float, lua: Path, cpus: str | None, watch_pid: int | None) -> dict:
    base = taskset(cpus) + ["wrk", "-t1", f"-c{conns}", "-s", str(lua), "--timeout", "5s"]
    if warmup > 0:
        subprocess.run(base + [f"-d{max(1, round(warmup))}s", url], capture_output=True, text=True, timeout=warmup + 30)
    cpu0 = cpu_seconds(watch_pid) if watch_pid else None
    t0 = time.monotonic()
    with ForeignCPU() as foreign:
        r = subprocess.run(base + [f"-d{max(1, round(duration))}s", url], capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - t0
    cpu1 = cpu_seconds(watch_pid) if watch_pid else None
    line = next((out for out in r.stdout.splitlines() if out.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {r.stdout}\n{r.stderr}")
    d = json.loads(line[8:])
    secs = d["duration_us"] / 1e6
    res = {
        "connections": conns,
        "duration_s": round(secs, 3),
        "requests": d["requests"],
        "rps": round(d["requests"] / secs, 1),
        "p50_ms": d["lat_p50_us"] / 1000.0,
        "p90_ms": d["lat_p90_us"] / 1000.0,
        "p99_ms": d["lat_p99_us"] / 1000.0,
        "p999_ms": d["lat_p999_us"] / 1000.0,
        "max_ms": d["lat_max_us"] / 1000.0,
        "mean_ms": round(d["lat_mean_us"] / 1000.0, 4),
        "errors": {k[4:]: v for k, v in d.items() if k.startswith("err_")},
        "foreign_cpu_pct": foreign.pct,
    }
    if watch_pid:
        res["proxy_cpu_pct"] = round(100.0 * (cpu1 - cpu0) / wall, 1)
        res["cpu_s"] = round(cpu1 - cpu0, 3)
    return res


def run_streams(client: Path, port: int, args, cpus: str | None, watch_pid: int | None, streams: int | None = None) -> dict:
    n = streams or args.streams
    cmd = taskset(cpus) + [str(client), "127.0.0.1", str(port), "/v1/chat/completions", str(n), str(args.chunks), str(args.ramp), "60"]
    cpu0 = cpu_seconds(watch_pid) if watch_pid else None
    t0 = time.monotonic()
    with ForeignCPU() as foreign:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    wall = time.monotonic() - t0
    cpu1 = cpu_seconds(watch_pid) if watch_pid else None
    if r.returncode != 0:
        raise RuntimeError(f"stream client failed: {r.stdout}\n{r.stderr}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    d["foreign_cpu_pct"] = foreign.pct
    if watch_pid:
        d["proxy_cpu_pct"] = round(100.0 * (cpu1 - cpu0) / wall, 1)
    return d


def check_proxy(port: int, stream: bool) -> dict:
    body = json.loads(CHAT_BODY)
    if stream:
        body["stream"] = True
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return {
            "status": r.status,
            "headers": {k: v for k, v in r.headers.items() if k.lower().startswith(("x-switchyard", "x-routellm"))},
            "body_bytes": len(text),
        }


# ---------------------------------------------------------------- profiling

def summarize_pyspy(raw_path: Path, top: int = 15) -> dict:
    """py-spy --format raw: 'frame;frame;... count' (root first); frame 'func (file:line)'."""
    self_c: collections.Counter = collections.Counter()
    incl_own: collections.Counter = collections.Counter()
    self_own: collections.Counter = collections.Counter()
    by_file_self: collections.Counter = collections.Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        names = []
        for f in frames:
            func, _, loc = f.partition(" (")
            loc = loc.rstrip(")")
            file = loc.rsplit(":", 1)[0]
            short = file.split("site-packages/")[-1] if "site-packages/" in file else file.split("src/")[-1]
            names.append((f"{short}:{func}", file))
        if not names:
            continue
        leaf, leaf_file = names[-1]
        self_c[leaf] += n
        by_file_self[leaf.rsplit(":", 1)[0]] += n
        # attribute each sample to the innermost frame of switchyard's own code (self) and count
        # every own frame once per sample (inclusive)
        own = [nm for nm, file in names if "nemo_switchyard" in file]
        for nm in set(own):
            incl_own[nm] += n
        if own:
            self_own[own[-1]] += n
    pct = lambda c: [(k, round(100.0 * v / total, 1)) for k, v in c.most_common(top)]  # noqa: E731
    return {
        "samples": total,
        "top_self_all": pct(self_c),
        "top_self_by_file": pct(by_file_self),
        "own_code_inclusive": pct(incl_own),
        "own_code_innermost": pct(self_own),
    }


def pyspy_during(pyspy: str, pid: int, seconds: float, out: Path, load) -> dict:
    cmd = [pyspy, "record", "--format", "raw", "-r", "200", "-d", str(int(seconds) + 1), "-o", str(out), "-p", str(pid), "--nonblocking"]
    spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(0.5)
        load()
        spy_out = spy.communicate(timeout=seconds + 30)[0].decode(errors="replace")
    finally:
        if spy.poll() is None:
            os.killpg(spy.pid, signal.SIGKILL)
            spy.wait()
    if not out.exists():
        return {"error": spy_out[-2000:]}
    return summarize_pyspy(out)


# ---------------------------------------------------------------- main

def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}{unit}" if abs(v) < 100 else f"{v:,.0f}{unit}"
    return f"{v}{unit}"


def main() -> int:
    global PY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk measurement")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk warm-up before each measurement")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=50)
    ap.add_argument("--interval-ms", type=float, default=20.0)
    ap.add_argument("--ramp", type=float, default=1.0, help="seconds over which the streams are opened")
    ap.add_argument("--router-type", default=None, help="default: lexical if importable, else random")
    ap.add_argument("--proxy-cpus", default="0", help="taskset CPU list for the 1-worker proxy ('' = no pinning)")
    ap.add_argument("--load-cpus", default="1", help="taskset CPU list for wrk, nginx, SSE backend and client")
    ap.add_argument("--workers2-cpus", default="0,1", help="CPU list for the --workers 2 proxy")
    ap.add_argument("--no-workers2", action="store_true", help="skip the --workers 2 column")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare aiohttp reference column (bench/bare_proxy.py)")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy profile runs")
    ap.add_argument("--no-stream", action="store_true")
    ap.add_argument("--no-plain", action="store_true", help="skip the non-streaming part")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--python", default=PY, help="interpreter whose switchyard is measured (default: .venv-compiled's, the compiled build)")
    args = ap.parse_args()
    PY = args.python
    build = subprocess.run([PY, "-c", "import dynamo.nemo_switchyard as s; print(s.build())"], capture_output=True, text=True).stdout.strip()

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _raise_interrupt)
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        args.proxy_cpus = args.load_cpus = args.workers2_cpus = ""
    for tool in ("wrk", "nginx", "gcc", "taskset"):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool} (apt-get install -y wrk nginx-light gcc util-linux)", file=sys.stderr)
            return 2
    router = args.router_type
    router_note = "given on the command line"
    if router is None:  # lexical when it imports and builds with its default weights, else random
        probe = subprocess.run(
            [PY, "-c", "from dynamo.nemo_switchyard.routers import registry; registry.build('lexical', checkpoint_path=None, options={})"],
            capture_output=True, text=True, cwd=str(REPO),
        )
        router = "lexical" if probe.returncode == 0 else "random"
        router_note = "lexical builds" if probe.returncode == 0 else f"lexical unusable, random used: {(probe.stderr.strip().splitlines() or ['?'])[-1][:200]}"
        if probe.returncode != 0:
            print(f"NOTE: {router_note}", file=sys.stderr)
    pyspy = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")

    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    results: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env": {
            "host": platform.node(), "cpus": ncpu, "kernel": platform.release(), "python": PY, "build": build,
            "router_type": router, "router_note": router_note, "proxy_cpus": args.proxy_cpus, "load_cpus": args.load_cpus,
            "workers2_cpus": None if args.no_workers2 else args.workers2_cpus,
            "bare_cpus": None if args.no_bare else args.proxy_cpus,
            "wrk": subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()[0] if True else None,
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
            "chat_body": CHAT_BODY,
            "duration_s": args.duration, "warmup_s": args.warmup,
            "streams": args.streams, "chunks": args.chunks, "interval_ms": args.interval_ms, "ramp_s": args.ramp,
        },
        "plain": {}, "stream": {}, "checks": {}, "profile": {},
    }
    try:
        import aiohttp  # noqa: F401
        results["env"]["aiohttp"] = subprocess.run([PY, "-c", "import aiohttp,uvloop;print(aiohttp.__version__, uvloop.__version__)"], capture_output=True, text=True).stdout.strip()
    except ImportError:
        pass
    exit_code = 0
    try:
        results["env"]["system_before"] = system_busy(1.0)
        if results["env"]["system_before"]["busy_pct_all_cpus"] > 15:
            print(f"WARNING: the machine is already {results['env']['system_before']['busy_pct_all_cpus']}% busy before the benchmark; numbers will be noisy:", file=sys.stderr)
            for line in results["env"]["system_before"]["top_processes"]:
                print("   ", line, file=sys.stderr)
        # tools
        for name in ("sse_backend", "stream_client"):
            subprocess.run(["gcc", "-O2", "-o", str(tmp / name), str(HERE / f"{name}.c")], check=True)
        lua = tmp / "post.lua"
        lua.write_text(WRK_LUA.replace("%BODY%", CHAT_BODY))
        nginx_port, sse_port = free_port(), free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(backend_conf(tmp, nginx_port))
        nginx = procs.start("nginx", taskset(args.load_cpus) + ["nginx", "-c", str(conf), "-p", str(tmp)], tmp / "nginx.out")
        sse = procs.start("sse_backend", taskset(args.load_cpus) + [str(tmp / "sse_backend"), str(sse_port), str(args.chunks), str(args.interval_ms)], tmp / "sse.out")
        WATCHED.extend([nginx.pid, sse.pid])
        wait_http(f"http://127.0.0.1:{nginx_port}/v1/models", proc=nginx)
        wait_http(f"http://127.0.0.1:{sse_port}/v1/models", proc=sse)

        def start_proxy(backend_port: int, workers: int, cpus: str) -> tuple[subprocess.Popen, int]:
            port = free_port()
            cmd = taskset(cpus) + proxy_args(PY, port, backend_port, router) + ["--workers", str(workers)]
            p = procs.start(f"proxy-w{workers}", cmd, tmp / f"proxy-w{workers}-{backend_port}.log", cwd=str(REPO))
            wait_http(f"http://127.0.0.1:{port}/health", proc=p)
            time.sleep(0.5)
            WATCHED.append(p.pid)
            return p, port

        def start_bare(backend_port: int, cpus: str) -> tuple[subprocess.Popen, int]:
            port = free_port()
            cmd = taskset(cpus) + [PY, str(HERE / "bare_proxy.py"), "--port", str(port), "--backend-url", f"http://127.0.0.1:{backend_port}"]
            p = procs.start("bare", cmd, tmp / f"bare-{backend_port}.log", cwd=str(REPO))
            wait_http(f"http://127.0.0.1:{port}/v1/models", proc=p)  # forwarded to the backend
            time.sleep(0.5)
            WATCHED.append(p.pid)
            return p, port

        # (name, starter(backend_port) -> (Popen, port) or None for the backend itself)
        columns = [("direct", None)]
        if not args.no_bare:
            columns.append(("bare", lambda b: start_bare(b, args.proxy_cpus)))
        columns.append(("proxy", lambda b: start_proxy(b, 1, args.proxy_cpus)))
        if not args.no_workers2:
            columns.append(("proxy_w2", lambda b: start_proxy(b, 2, args.workers2_cpus)))

        if not args.no_plain:
            for name, starter in columns:
                print(f"[plain] {name} ...", file=sys.stderr, flush=True)
                if starter is None:
                    port, proxy = nginx_port, None
                else:
                    try:
                        proxy, port = starter(nginx_port)
                    except RuntimeError as exc:
                        results["plain"][name] = {"error": str(exc)}
                        print(f"    {name} skipped: {exc}", file=sys.stderr, flush=True)
                        continue
                    results["checks"][f"{name}_plain"] = check_proxy(port, False)
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                col = {}
                for c in (1, 32):
                    col[f"c{c}"] = run_wrk(url, c, args.duration, args.warmup, lua, args.load_cpus, proxy.pid if proxy else nginx.pid)
                    print(f"    c={c}: {col[f'c{c}']['rps']:.0f} req/s p50 {col[f'c{c}']['p50_ms']:.3f} ms p99 {col[f'c{c}']['p99_ms']:.3f} ms", file=sys.stderr, flush=True)
                results["plain"][name] = col
                if name == "proxy" and not args.no_profile and pyspy:
                    print("[profile] py-spy on the 1-worker proxy during a c=32 wrk run ...", file=sys.stderr, flush=True)
                    results["profile"]["plain_c32"] = pyspy_during(
                        pyspy, proxy.pid, args.duration, tmp / "pyspy-plain.txt",
                        lambda: run_wrk(url, 32, args.duration, 0, lua, args.load_cpus, None),
                    )
                if proxy:
                    WATCHED.remove(proxy.pid)
                    procs.stop(proxy)

        if not args.no_stream:
            for name, starter in columns:
                print(f"[stream] {name} ...", file=sys.stderr, flush=True)
                if starter is None:
                    port, proxy = sse_port, None
                else:
                    try:
                        proxy, port = starter(sse_port)
                    except RuntimeError as exc:  # e.g. the router's weights changed under us: record, go on
                        results["stream"][name] = {"error": str(exc)}
                        print(f"    {name} skipped: {exc}", file=sys.stderr, flush=True)
                        continue
                    results["checks"][f"{name}_stream"] = check_proxy(port, True)
                run_streams(tmp / "stream_client", port, args, args.load_cpus, None, streams=min(100, args.streams))  # warm-up
                d = run_streams(tmp / "stream_client", port, args, args.load_cpus, proxy.pid if proxy else sse.pid)
                results["stream"][name] = d
                print(f"    ttft p50 {d['ttft_ms']['p50']} p99 {d['ttft_ms']['p99']} ms, gap p50 {d['gap_ms']['p50']} p99 {d['gap_ms']['p99']} ms, incomplete {d['incomplete']}", file=sys.stderr, flush=True)
                if name == "proxy" and not args.no_profile and pyspy:
                    print("[profile] py-spy on the 1-worker proxy during a streaming run ...", file=sys.stderr, flush=True)
                    results["profile"]["stream"] = pyspy_during(
                        pyspy, proxy.pid, 3.0 + args.ramp, tmp / "pyspy-stream.txt",
                        lambda: run_streams(tmp / "stream_client", port, args, args.load_cpus, None),
                    )
                if proxy:
                    WATCHED.remove(proxy.pid)
                    procs.stop(proxy)
        results["env"]["system_after"] = system_busy(1.0)
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc}); cleaning up", file=sys.stderr)
        exit_code = 130
    except Exception as exc:  # noqa: BLE001
        print(f"benchmark failed: {exc!r}", file=sys.stderr)
        for log in sorted(tmp.glob("*.log")) + sorted(tmp.glob("*.out")):
            text = log.read_text(errors="replace")[-1500:]
            if text.strip():
                print(f"--- {log.name}\n{text}", file=sys.stderr)
        results["error"] = repr(exc)
        exit_code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    derive(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nJSON: {out}")
    return exit_code


def _ok(part: dict, col: str) -> bool:
    return col in part and "error" not in part[col]


# (column, reference, summary key): Switchyard and the bare aiohttp floor against the backend
# alone, and Switchyard against the floor (what Switchyard itself adds over any aiohttp proxy)
COMPARISONS = (("bare", "direct", "bare"), ("proxy", "direct", "proxy"), ("proxy_w2", "direct", "proxy_w2"), ("proxy", "bare", "proxy_vs_bare"))


def derive(r: dict) -> None:
    s = r["summary"] = {}
    p, st = r["plain"], r["stream"]
    for col, ref, key in COMPARISONS:
        if _ok(p, ref) and _ok(p, col):
            d, x = p[ref], p[col]
            s[key] = {
                "added_p50_ms_c1": round(x["c1"]["p50_ms"] - d["c1"]["p50_ms"], 3),
                "added_p99_ms_c1": round(x["c1"]["p99_ms"] - d["c1"]["p99_ms"], 3),
                "added_p50_ms_c32": round(x["c32"]["p50_ms"] - d["c32"]["p50_ms"], 3),
                "added_p99_ms_c32": round(x["c32"]["p99_ms"] - d["c32"]["p99_ms"], 3),
                "rps_c32": x["c32"]["rps"],
                "rps_ratio_c32": round(x["c32"]["rps"] / d["c32"]["rps"], 4),
                "rps_ratio_c1": round(x["c1"]["rps"] / d["c1"]["rps"], 4),
            }
        if _ok(st, ref) and _ok(st, col):
            d, x = st[ref], st[col]
            s.setdefault(key, {}).update({
                "stream_added_ttft_p50_ms": round(x["ttft_ms"]["p50"] - d["ttft_ms"]["p50"], 3),
                "stream_added_ttft_p99_ms": round(x["ttft_ms"]["p99"] - d["ttft_ms"]["p99"], 3),
                "stream_added_gap_p50_ms": round(x["gap_ms"]["p50"] - d["gap_ms"]["p50"], 3),
                "stream_added_gap_p99_ms": round(x["gap_ms"]["p99"] - d["gap_ms"]["p99"], 3),
                "stream_incomplete": x["incomplete"],
            })
    # each target also carries the same figure for the bare aiohttp floor in this run ("bare"),
    # so a FAIL can be told apart from a slow day: absolute targets only compare through it
    targets = {}
    if "proxy" in s:
        x, b = s["proxy"], s.get("bare", {})
        if "rps_c32" in x:
            targets["c32_rps_ge_6000"] = {"value": x["rps_c32"], "pass": x["rps_c32"] >= 6000, "bare": b.get("rps_c32")}
            targets["added_p50_c1_lt_0.3ms"] = {"value": x["added_p50_ms_c1"], "pass": x["added_p50_ms_c1"] < 0.3, "bare": b.get("added_p50_ms_c1")}
        if "stream_added_gap_p99_ms" in x:
            targets["stream_added_gap_p99_lt_5ms"] = {"value": x["stream_added_gap_p99_ms"], "pass": x["stream_added_gap_p99_ms"] < 5, "bare": b.get("stream_added_gap_p99_ms")}
            targets["stream_none_lost"] = {"value": x["stream_incomplete"], "pass": x["stream_incomplete"] == 0 and r["stream"]["direct"]["incomplete"] == 0, "bare": b.get("stream_incomplete")}
    r["targets_1_worker"] = targets


def print_table(r: dict) -> None:
    env = r["env"]
    cols = [c for c in ("direct", "bare", "proxy", "proxy_w2") if c in r["plain"] or c in r["stream"]]
    head = {"direct": "direct", "bare": "bare aiohttp", "proxy": "proxy 1w", "proxy_w2": "proxy 2w"}
    # difference/ratio columns: (plain label, streaming label, column, reference, width)
    diffs = [d for d in (("proxy/direct", "proxy-direct", "proxy", "direct", 14), ("proxy/bare", "proxy-bare", "proxy", "bare", 14),
                         ("2w/direct", "2w-direct", "proxy_w2", "direct", 12)) if d[2] in cols and d[3] in cols]
    print()
    print(f"Switchyard benchmark  {r['started']}  router={env['router_type']}  build={env.get('build', '?')}  cpus={env['cpus']}  "
          f"pinning: proxy(1w)->cpu {env['proxy_cpus'] or 'any'}, bare aiohttp->cpu {(env.get('bare_cpus') or 'any') if env.get('bare_cpus') is not None else '-'}, "
          f"proxy(2w)->cpu {env.get('workers2_cpus') or '-'}, load(wrk/nginx/sse/client)->cpu {env['load_cpus'] or 'any'}")
    sb = env.get("system_before", {})
    if sb:
        print(f"machine busy before start: {sb['busy_pct_all_cpus']}% (loadavg {', '.join(f'{x:.2f}' for x in sb['loadavg'])})")
    if r["plain"]:
        print(f"\n1) Non-streaming POST /v1/chat/completions, wrk -t1, {env['duration_s']:g} s per cell after {env['warmup_s']:g} s warm-up")
        print(f"{'':24}" + "".join(f"{head[c]:>14}" for c in cols) + "".join(f"{lab:>{w}}" for lab, _, _, _, w in diffs))
        for c in (1, 32):
            for key, label in (("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("proxy_cpu_pct", "server CPU %"), ("foreign_cpu_pct", "other users CPU %")):
                get = lambda col: r["plain"].get(col, {}).get(f"c{c}", {}).get(key)  # noqa: E731
                line = f"c={c:<3} {label:<18}" + "".join(f"{fmt(get(col)):>14}" for col in cols)
                for _, _, col, ref, w in diffs:
                    d, x = get(ref), get(col)
                    if d is None or x is None or key.endswith("cpu_pct"):
                        cell = ""
                    elif key == "rps":
                        cell = f"x{x / d:.3f}"
                    else:
                        cell = f"{x - d:+.3f}"
                    line += f"{cell:>{w}}"
                print(line.rstrip())
            errs = {col: r["plain"].get(col, {}).get(f"c{c}", {}).get("errors") for col in cols}
            if any(e and any(e.values()) for e in errs.values()):
                print(f"c={c:<3} wrk errors: {errs}")
        print("(server CPU % = CPU time of nginx for 'direct', of the proxy process tree otherwise, over the measured run;\n"
              " other users CPU % = CPU used on the machine by processes this benchmark did not start, 200 = both cores"
              + (";\n bare aiohttp = bench/bare_proxy.py, the floor of any aiohttp server+client proxy here: proxy/bare is what\n"
                 " Switchyard costs above it, the figure to compare across days, the machine's speed varying)" if "bare" in cols else ")"))
    if r["stream"]:
        print(f"\n2) Streaming: {env['streams']} paced SSE streams ({env['chunks']} chunks every {env['interval_ms']:g} ms + usage + [DONE]), opened over {env['ramp_s']:g} s")
        print(f"{'':24}" + "".join(f"{head[c]:>14}" for c in cols) + "".join(f"{lab:>{w}}" for _, lab, _, _, w in diffs))
        rows = [("ttft_ms", "p50", "TTFT p50 ms"), ("ttft_ms", "p99", "TTFT p99 ms"), ("gap_ms", "p50", "gap p50 ms"),
                ("gap_ms", "p99", "gap p99 ms"), ("gap_ms", "p999", "gap p99.9 ms"), ("gap_ms", "max", "gap max ms"),
                (None, "incomplete", "incomplete streams"), (None, "proxy_cpu_pct", "server CPU %"), (None, "foreign_cpu_pct", "other users CPU %")]
        for group, key, label in rows:
            get = (lambda col: r["stream"].get(col, {}).get(group, {}).get(key)) if group else (lambda col: r["stream"].get(col, {}).get(key))
            line = f"{label:<24}" + "".join(f"{fmt(get(col)):>14}" for col in cols)
            for _, _, col, ref, w in diffs:
                d, x = get(ref), get(col)
                cell = "" if d is None or x is None or key in ("incomplete", "proxy_cpu_pct", "foreign_cpu_pct") else f"{x - d:+.3f}"
                line += f"{cell:>{w}}"
            print(line.rstrip())
        for col in cols:
            reasons = {k: v for k, v in r["stream"].get(col, {}).get("incomplete_reasons", {}).items() if v}
            if reasons:
                print(f"  {col} incomplete reasons: {reasons}")
    t = r.get("targets_1_worker", {})
    if t:
        has_bare = any(v.get("bare") is not None for v in t.values())
        print("\nTargets (1 worker" + ("; in brackets the bare aiohttp figure of this run" if has_bare else "") + "): " + "; ".join(
            f"{k}: {v['value']} {'PASS' if v['pass'] else 'FAIL'}" + (f" [bare {v['bare']}]" if v.get("bare") is not None else "") for k, v in t.items()))
    for name, prof in r.get("profile", {}).items():
        if "error" in prof:
            print(f"\nprofile {name}: py-spy failed: {prof['error'][-300:]}")
            continue
        print(f"\nProfile ({name}, py-spy, {prof['samples']} samples): switchyard code, inclusive % of samples")
        for k, v in prof["own_code_inclusive"][:10]:
            print(f"   {v:5.1f}%  {k}")
        print("  top self time, all code:")
        for k, v in prof["top_self_all"][:10]:
            print(f"   {v:5.1f}%  {k}")
    if r.get("error"):
        print(f"\nERROR: {r['error']}")


if __name__ == "__main__":
    sys.exit(main())
