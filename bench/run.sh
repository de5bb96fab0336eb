#!/usr/bin/env bash
# Switchyard overhead benchmark: direct vs bare aiohttp proxy vs Switchyard. See bench/README.md.
#   bash bench/run.sh [--duration 10] [--no-workers2] [--no-profile] ...   (flags: bench/run.py --help)
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
missing=()
for t in wrk nginx gcc taskset; do command -v "$t" >/dev/null || missing+=("$t"); done
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (apt)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light gcc util-linux >/dev/null
fi
# switchyard as users install it: the request path compiled by mypyc (falls back to pure Python without gcc)
scripts/setup_compiled.sh
PY=.venv-compiled/bin/python
if [ ! -x "$(dirname "$PY")/py-spy" ] && [[ " $* " != *" --no-profile "* ]]; then
  "$PY" -m pip install -q py-spy >/dev/null 2>&1 || echo "py-spy not installed; profile skipped" >&2
fi
# run.py starts every process in its own session and kills them on exit/INT/TERM;
# this trap forwards INT/TERM to it and waits for its clean-up.
"$PY" bench/run.py "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 130' INT TERM HUP
wait "$pid"
