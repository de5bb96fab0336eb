#!/usr/bin/env bash
# Run a real NVIDIA Dynamo stack on CPU: one OpenAI-compatible frontend plus
# two mocker workers (a "strong" and a "weak" model), discovered through a
# private file-discovery directory (DYN_FILE_KV), so parallel stacks never see
# each other's workers. Starting, waiting and stopping are scripts/lib/procs.sh and
# scripts/lib/stack.sh, shared with scripts/launch.sh (GPUs) and scripts/demo.sh.
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
# shellcheck source=scripts/lib/procs.sh
source "$DYNAMO_REPO_ROOT/scripts/lib/procs.sh"
# shellcheck source=scripts/lib/stack.sh
source "$DYNAMO_REPO_ROOT/scripts/lib/stack.sh"

_dynamo_log() { printf '[dynamo_stack] %s\n' "$*" >&2; }

_dynamo_python() { printf '%s/bin/python' "${DYNAMO_VENV:-$DYNAMO_REPO_ROOT/.venv-dynamo}"; }

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

  if [[ "$port" == "0" ]]; then port="$(procs_free_port)"; fi
  if ! procs_port_free "$host" "$port"; then
    _dynamo_log "ERROR: port $host:$port is already in use (set FRONTEND_PORT, or 0 for a free one)"
    return 1
  fi

  procs_init "${DYNAMO_RUN_DIR:-}" dynamo
  DYNAMO_RUN_DIR="$PROCS_RUN_DIR"
  export DYNAMO_RUN_DIR
  rm -rf "$DYNAMO_RUN_DIR/kv"

  model_dir="${DYNAMO_MODEL_DIR:-$DYNAMO_RUN_DIR/model}"
  if [[ ! -f "$model_dir/tokenizer.json" ]]; then
    "$py" "$DYNAMO_REPO_ROOT/scripts/make_tiny_model.py" "$model_dir" >/dev/null || return 1
  fi

  stack_dynamo_env
  _dynamo_log "run dir: $DYNAMO_RUN_DIR"
  stack_start_frontend "$py" "$host" "$port"
  stack_start_worker strong strong "$py" -m dynamo.mocker \
    --model-path "$model_dir" --model-name "$strong" --speedup-ratio "$speedup"
  stack_start_worker weak weak "$py" -m dynamo.mocker \
    --model-path "$model_dir" --model-name "$weak" --speedup-ratio "$speedup"

  DYNAMO_URL="$STACK_FRONTEND_URL"
  export DYNAMO_URL
  echo "$DYNAMO_URL" >"$DYNAMO_RUN_DIR/url"

  if ! stack_wait_models "$DYNAMO_URL" "$timeout" "$strong" "$weak"; then
    _dynamo_log "ERROR: stack did not become ready (logs in $DYNAMO_RUN_DIR)"
    dynamo_stop
    return 1
  fi
  _dynamo_log "ready in ${PROCS_WAITED}s: $DYNAMO_URL (models: $strong, $weak)"
}

# dynamo_stop [RUN_DIR]: TERM each process group, KILL after 10 s, verify.
dynamo_stop() {
  local PROCS_RUN_DIR="${1:-${DYNAMO_RUN_DIR:-}}"
  [[ -n "$PROCS_RUN_DIR" && -d "$PROCS_RUN_DIR" ]] || return 0
  PROCS_STOPPED=0
  # shellcheck disable=SC2119  # no names: all of them
  procs_stop
  rm -rf "$PROCS_RUN_DIR/kv"
  ((PROCS_STOPPED > 0)) && _dynamo_log "stopped (logs kept in $PROCS_RUN_DIR)"
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
      procs_watch || true
      _dynamo_log "a component exited; shutting down"
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
