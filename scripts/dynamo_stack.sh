#!/usr/bin/env bash
# Run a real NVIDIA Dynamo stack on CPU: one OpenAI-compatible frontend plus
# two mocker workers (a "strong" and a "weak" model), discovered through a
# private file-discovery directory (DYN_FILE_KV), so parallel stacks never see
# each other's workers.
#
# Usage
#   scripts/dynamo_stack.sh run      start, wait until ready, stay in the
#                                    foreground; Ctrl-C / TERM / exit stops all
#   scripts/dynamo_stack.sh start    start in the background, print the run dir
#   scripts/dynamo_stack.sh stop [RUN_DIR]   stop a stack started with `start`
#                                    (default: the newest under .run/)
#
# Sourceable (bash):
#   source scripts/dynamo_stack.sh
#   dynamo_start            # sets DYNAMO_URL, DYNAMO_RUN_DIR; returns 1 on failure
#   ...                     # curl "$DYNAMO_URL/v1/models"
#   dynamo_stop             # kills the process groups, verifies they are gone
#
# Environment (all optional)
#   FRONTEND_PORT   frontend HTTP port (default 8000; 0 = pick a free port)
#   FRONTEND_HOST   bind address (default 127.0.0.1)
#   STRONG_MODEL    served name of the strong model (default strong-model)
#   WEAK_MODEL      served name of the weak model   (default weak-model)
#   SPEEDUP_RATIO   mocker --speedup-ratio (default 10)
#   DYNAMO_MODEL_DIR  tokenizer/config folder (default: generated per run by
#                   scripts/make_tiny_model.py into the run dir)
#   DYNAMO_RUN_DIR  where logs/pids/discovery go (default: a fresh
#                   .run/dynamo-XXXXXX under the repo root)
#   DYNAMO_START_TIMEOUT  seconds to wait for readiness (default 60)
#   DYNAMO_VENV     venv with ai-dynamo (default .venv-dynamo; see
#                   scripts/setup_dynamo.sh)

_DYNAMO_STACK_SRC="${BASH_SOURCE[0]}"
DYNAMO_REPO_ROOT="$(cd "$(dirname "$_DYNAMO_STACK_SRC")/.." && pwd)"

_dynamo_log() { printf '[dynamo_stack] %s\n' "$*" >&2; }

_dynamo_python() { printf '%s/bin/python' "${DYNAMO_VENV:-$DYNAMO_REPO_ROOT/.venv-dynamo}"; }

# Print a free TCP port on 127.0.0.1.
_dynamo_free_port() {
  "$(_dynamo_python)" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Launch "$@" as the leader of its own session/process group (so pgid == pid,
# with or without job control; plain `setsid` forks when it is already a group
# leader, which would make $! the wrong pid). Log to NAME.log, pid to NAME.pid.
_dynamo_spawn() {
  local name="$1"; shift
  "$(_dynamo_python)" -c '
import os, sys
try:
    os.setsid()
except OSError:  # already a process-group leader (job control): pgid == pid
    pass
os.execvp(sys.argv[1], sys.argv[1:])' "$@" >"$DYNAMO_RUN_DIR/$name.log" 2>&1 </dev/null &
  echo "$!" >"$DYNAMO_RUN_DIR/$name.pid"
}

_dynamo_log_tails() {
  local f
  for f in "$DYNAMO_RUN_DIR"/*.log; do
    [[ -f "$f" ]] || continue
    printf '\n----- last 25 lines of %s -----\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
}

# dynamo_start: start frontend + strong/weak mockers and wait until
# /v1/models lists both models. Exports DYNAMO_URL, DYNAMO_RUN_DIR.
dynamo_start() {
  local py port host strong weak speedup timeout model_dir
  py="$(_dynamo_python)"
  if [[ ! -x "$py" ]]; then
    _dynamo_log "ERROR: $py not found; run scripts/setup_dynamo.sh first"
    return 1
  fi
  host="${FRONTEND_HOST:-127.0.0.1}"
  port="${FRONTEND_PORT:-8000}"
  strong="${STRONG_MODEL:-strong-model}"
  weak="${WEAK_MODEL:-weak-model}"
  speedup="${SPEEDUP_RATIO:-10}"
  timeout="${DYNAMO_START_TIMEOUT:-60}"

  if [[ "$port" == "0" ]]; then port="$(_dynamo_free_port)"; fi
  if ! "$py" -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.close()' \
      "$host" "$port" 2>/dev/null; then
    _dynamo_log "ERROR: port $host:$port is already in use (set FRONTEND_PORT, or 0 for a free one)"
    return 1
  fi

  if [[ -z "${DYNAMO_RUN_DIR:-}" ]]; then
    mkdir -p "$DYNAMO_REPO_ROOT/.run"
    DYNAMO_RUN_DIR="$(mktemp -d "$DYNAMO_REPO_ROOT/.run/dynamo-XXXXXX")"
  else
    mkdir -p "$DYNAMO_RUN_DIR"
  fi
  export DYNAMO_RUN_DIR
  rm -rf "$DYNAMO_RUN_DIR/kv"

  model_dir="${DYNAMO_MODEL_DIR:-$DYNAMO_RUN_DIR/model}"
  if [[ ! -f "$model_dir/tokenizer.json" ]]; then
    "$py" "$DYNAMO_REPO_ROOT/scripts/make_tiny_model.py" "$model_dir" >/dev/null || return 1
  fi

  # Private discovery root (file backend reads DYN_FILE_KV; default would be
  # the shared $TMPDIR/dynamo_store_kv). Pin internal planes to loopback.
  local -a env_common=(
    env
    "DYN_FILE_KV=$DYNAMO_RUN_DIR/kv"
    "DYN_TCP_RPC_HOST=127.0.0.1"
    "DYN_EVENT_PLANE_HOST=127.0.0.1"
    "DYN_SELF_HOST_METADATA=0"
    "DYN_SDK_DISABLE_ANSI_LOGGING=1"
    "PYTHONUNBUFFERED=1"
  )
  local -a common=(--discovery-backend file --request-plane tcp)
  _dynamo_log "run dir: $DYNAMO_RUN_DIR"
  _dynamo_spawn frontend "${env_common[@]}" "$py" -m dynamo.frontend \
    --http-host "$host" --http-port "$port" "${common[@]}"
  _dynamo_spawn strong "${env_common[@]}" "$py" -m dynamo.mocker \
    --model-path "$model_dir" --model-name "$strong" \
    --endpoint "dyn://strong.backend.generate" --speedup-ratio "$speedup" "${common[@]}"
  _dynamo_spawn weak "${env_common[@]}" "$py" -m dynamo.mocker \
    --model-path "$model_dir" --model-name "$weak" \
    --endpoint "dyn://weak.backend.generate" --speedup-ratio "$speedup" "${common[@]}"

  DYNAMO_URL="http://$host:$port"
  [[ "$host" == "0.0.0.0" ]] && DYNAMO_URL="http://127.0.0.1:$port"
  export DYNAMO_URL
  echo "$DYNAMO_URL" >"$DYNAMO_RUN_DIR/url"

  # Poll /v1/models until both names are listed; fail fast if a process dies.
  local ready_s
  if ! ready_s="$("$py" - "$DYNAMO_URL" "$timeout" "$strong" "$weak" \
      "$(cat "$DYNAMO_RUN_DIR"/frontend.pid "$DYNAMO_RUN_DIR"/strong.pid "$DYNAMO_RUN_DIR"/weak.pid)" <<'PYEOF'
import json, os, sys, time, urllib.request
t0 = time.monotonic()
url, timeout, strong, weak, pids = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5].split()
deadline = time.monotonic() + timeout
last = "no answer yet"
while time.monotonic() < deadline:
    for pid in pids:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(f"process {pid} exited during start-up")
    try:
        with urllib.request.urlopen(url + "/v1/models", timeout=2) as r:
            ids = {m.get("id") for m in json.load(r).get("data", [])}
        if {strong, weak} <= ids:
            print(f"{time.monotonic() - t0:.1f}")
            sys.exit(0)
        last = f"/v1/models lists {sorted(ids)}"
    except Exception as e:  # noqa: BLE001 - keep polling
        last = repr(e)
    time.sleep(0.1)
sys.exit(f"not ready after {timeout:g}s ({last})")
PYEOF
  )"; then
    _dynamo_log "ERROR: stack did not become ready (logs in $DYNAMO_RUN_DIR)"
    _dynamo_log_tails
    dynamo_stop
    return 1
  fi
  _dynamo_log "ready in ${ready_s}s: $DYNAMO_URL (models: $strong, $weak)"
}

# dynamo_stop [RUN_DIR]: TERM each process group, KILL after 10 s, verify.
dynamo_stop() {
  local dir="${1:-${DYNAMO_RUN_DIR:-}}"
  [[ -n "$dir" && -d "$dir" ]] || return 0
  local -a pgids=()
  local f pid
  for f in "$dir"/*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"
    # setsid makes the pid the pgid of its group.
    if kill -0 -- "-$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      pgids+=("$pid")
    fi
    rm -f "$f"
  done
  local deadline=$((SECONDS + 10)) alive g
  while :; do
    alive=()
    for g in "${pgids[@]}"; do
      kill -0 -- "-$g" 2>/dev/null && alive+=("$g")
    done
    ((${#alive[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      _dynamo_log "process groups ${alive[*]} ignored TERM; sending KILL"
      for g in "${alive[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
      deadline=$((SECONDS + 5))
    fi
    sleep 0.1
  done
  # Reap our own children so no zombies remain (no-op when not our children).
  wait 2>/dev/null || true
  rm -rf "$dir/kv"
  [[ ${#pgids[@]} -gt 0 ]] && _dynamo_log "stopped (logs kept in $dir)"
  return 0
}

_dynamo_main() {
  set -euo pipefail
  case "${1:-run}" in
    run)
      trap 'dynamo_stop' EXIT
      trap 'exit 130' INT
      trap 'exit 143' TERM
      dynamo_start
      _dynamo_log "running; Ctrl-C to stop"
      # Stay in the foreground until any component exits (or we are signalled).
      local pids
      pids="$(cat "$DYNAMO_RUN_DIR"/frontend.pid "$DYNAMO_RUN_DIR"/strong.pid "$DYNAMO_RUN_DIR"/weak.pid)"
      # shellcheck disable=SC2086  # word splitting of the pid list is intended
      wait -n $pids || true
      _dynamo_log "a component exited; shutting down"
      _dynamo_log_tails
      exit 1
      ;;
    start)
      dynamo_start
      echo "DYNAMO_RUN_DIR=$DYNAMO_RUN_DIR"
      echo "DYNAMO_URL=$DYNAMO_URL"
      ;;
    stop)
      local dir="${2:-}"
      if [[ -z "$dir" ]]; then
        dir="$(find "$DYNAMO_REPO_ROOT/.run" -maxdepth 1 -name 'dynamo-*' -type d -printf '%T@ %p\n' 2>/dev/null \
          | sort -n | tail -n 1 | cut -d' ' -f2-)"
      fi
      [[ -n "$dir" ]] || { _dynamo_log "no run dir found"; exit 1; }
      dynamo_stop "$dir"
      ;;
    -h|--help|help)
      sed -n '2,/^$/p' "$_DYNAMO_STACK_SRC" | sed 's/^# \{0,1\}//'
      ;;
    *)
      _dynamo_log "unknown command: $1 (use run|start|stop)"
      exit 2
      ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  _dynamo_main "$@"
fi
