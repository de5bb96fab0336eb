# shellcheck shell=bash
# Process handling shared by scripts/demo.sh, scripts/launch.sh and scripts/dynamo_stack.sh,
# so every stack starts, waits and stops the same way:
#
#   procs_init [DIR] [PREFIX]        use DIR (created) or a fresh .run/PREFIX-XXXXXX; sets PROCS_RUN_DIR
#   procs_spawn NAME CMD...          run CMD as the leader of its own session and process group,
#                                    output to NAME.log, pid to NAME.pid (in $PROCS_RUN_DIR)
#   procs_wait_until DESC TIMEOUT CMD...
#                                    run CMD every 0.2 s until it succeeds (its output on failure is
#                                    the reason shown at the timeout); fails at once, with that
#                                    process's log tail, when a started process exits meanwhile;
#                                    sets PROCS_WAITED (seconds, e.g. 1.3)
#   procs_watch                      block until a started process exits; log it with its log tail
#   procs_stop [NAME...]             TERM the named (default: all) process groups, KILL after
#                                    PROCS_STOP_TIMEOUT (10) s, and wait until every member is gone
#   procs_tail NAME [LINES]          the end of NAME.log, on stderr
#   procs_free_port / procs_port_free HOST PORT
#
# Why process groups: a worker may start children (vLLM's tensor-parallel workers, tokenizer
# pools); killing the group leaves none behind. State lives in files in $PROCS_RUN_DIR (NAME.pid;
# "started" lists names in start order), so another shell can stop a stack too.
# Settings: PROCS_LOG_PREFIX (default: the script's name), PROCS_PYTHON (any python3; default python3),
# PROCS_DRY_RUN=1 (procs_spawn prints "NAME: COMMAND" instead of running it; waits and port checks
# succeed at once), so a script can show exactly what it would run.

PROCS_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
_procs_script="${0##*/}"
PROCS_LOG_PREFIX="${PROCS_LOG_PREFIX:-${_procs_script%.sh}}"
PROCS_WAITED=""

procs_log() { printf '[%s] %s\n' "$PROCS_LOG_PREFIX" "$*" >&2; }

_procs_python() { printf '%s' "${PROCS_PYTHON:-python3}"; }

# Microseconds since the epoch (bash 5's EPOCHREALTIME without its decimal point).
_procs_now_us() { printf '%s' "${EPOCHREALTIME//[!0-9]/}"; }

# procs_init [DIR] [PREFIX]: the run directory for logs, pid files and discovery data.
procs_init() {
  local dir="${1:-}" prefix="${2:-run}"
  if [[ -z "$dir" ]]; then
    mkdir -p "$PROCS_REPO_ROOT/.run"
    dir="$(mktemp -d "$PROCS_REPO_ROOT/.run/$prefix-XXXXXX")"
  else
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
  fi
  PROCS_RUN_DIR="$dir"
  export PROCS_RUN_DIR
}

# procs_spawn NAME CMD...: start CMD in its own session (so pgid == pid, with or without job
# control; plain `setsid` forks when it is already a group leader, which would make $! the wrong pid).
procs_spawn() {
  local name="$1"
  shift
  if [[ -z "${PROCS_RUN_DIR:-}" ]]; then
    procs_log "ERROR: procs_spawn $name: call procs_init first"
    return 1
  fi
  if [[ -n "${PROCS_DRY_RUN:-}" ]]; then
    printf '%s:' "$name"
    printf ' %q' "$@"
    printf '\n'
    return 0
  fi
  "$(_procs_python)" -c '
import os, sys
try:
    os.setsid()
except OSError:  # already a process-group leader (job control): pgid == pid
    pass
try:
    os.execvp(sys.argv[1], sys.argv[1:])
except OSError as exc:
    sys.exit(f"cannot run {sys.argv[1]}: {exc.strerror}")' "$@" >"$PROCS_RUN_DIR/$name.log" 2>&1 </dev/null &
  echo "$!" >"$PROCS_RUN_DIR/$name.pid"
  echo "$name" >>"$PROCS_RUN_DIR/started"
}

# procs_names: the started processes that have not been stopped, in start order.
procs_names() {
  [[ -n "${PROCS_RUN_DIR:-}" && -f "$PROCS_RUN_DIR/started" ]] || return 0
  local name
  local -A seen=()
  while IFS= read -r name; do
    [[ -n "$name" && -z "${seen[$name]:-}" && -f "$PROCS_RUN_DIR/$name.pid" ]] || continue
    seen[$name]=1
    printf '%s\n' "$name"
  done <"$PROCS_RUN_DIR/started"
}

procs_pid() { cat "$PROCS_RUN_DIR/$1.pid"; }

procs_tail() {
  local name="$1" lines="${2:-25}" file="$PROCS_RUN_DIR/$1.log"
  [[ -f "$file" ]] || return 0
  printf '\n----- last %s lines of %s -----\n' "$lines" "$file" >&2
  tail -n "$lines" "$file" >&2
  printf -- '----- end of %s.log -----\n' "$name" >&2
}

procs_tails() {
  local name
  while IFS= read -r name; do procs_tail "$name"; done < <(procs_names)
}

# _procs_status PID: set PROCS_STATUS to the exit status of our child PID (after it exited), or
# "unknown" (not our child). Not called in $(...): a subshell cannot wait for its parent's children.
_procs_status() {
  local status=0
  wait "$1" 2>/dev/null || status=$?
  if ((status == 127)); then PROCS_STATUS=unknown; else PROCS_STATUS="$status"; fi
}

# procs_check WHILE: return 1 (with the log tail) when a started process has exited.
procs_check() {
  local name pid
  while IFS= read -r name; do
    pid="$(procs_pid "$name")"
    if ! kill -0 "$pid" 2>/dev/null; then
      _procs_status "$pid"
      procs_log "ERROR: $name (pid $pid) exited with status $PROCS_STATUS${1:+ $1}"
      procs_tail "$name" 40
      return 1
    fi
  done < <(procs_names)
}

# procs_wait_until DESC TIMEOUT CMD...: poll CMD; never a fixed sleep in place of a check.
procs_wait_until() {
  local desc="$1" timeout="$2" last="" t0 elapsed
  shift 2
  if [[ -n "${PROCS_DRY_RUN:-}" ]]; then
    PROCS_WAITED=0.0
    return 0
  fi
  t0="$(_procs_now_us)"
  while :; do
    if last="$("$@" 2>&1)"; then
      elapsed=$(($(_procs_now_us) - t0))
      # shellcheck disable=SC2034  # an output, read by the caller
      PROCS_WAITED="$((elapsed / 1000000)).$((elapsed / 100000 % 10))"
      return 0
    fi
    procs_check "while waiting for $desc" || return 1
    if (($(_procs_now_us) - t0 >= timeout * 1000000)); then
      procs_log "ERROR: $desc: not ready after ${timeout}s${last:+ (last check: $last)}"
      procs_tails
      return 1
    fi
    sleep 0.2
  done
}

# procs_watch: stay in the foreground until one of the started processes exits (returns 1) or a
# trapped signal arrives (the trap runs at once: `wait` is interruptible).
procs_watch() {
  local name pid done_pid status tick
  local -a pids=()
  while IFS= read -r name; do pids+=("$(procs_pid "$name")"); done < <(procs_names)
  ((${#pids[@]})) || return 1
  while :; do
    procs_check "" || return 1
    done_pid=""
    status=0
    # A one-second tick in the wait set: `wait -n` misses a child that bash reaped just before it
    # was called (it then waits for the next one, forever); after the tick procs_check sees it gone.
    sleep 1 &
    tick=$!
    wait -n -p done_pid "${pids[@]}" "$tick" 2>/dev/null || status=$?
    [[ "$done_pid" == "$tick" ]] && continue
    kill "$tick" 2>/dev/null || true
    wait "$tick" 2>/dev/null || true
    if [[ -n "$done_pid" ]]; then
      while IFS= read -r name; do
        [[ "$(procs_pid "$name")" == "$done_pid" ]] || continue
        procs_log "ERROR: $name (pid $done_pid) exited with status $status"
        procs_tail "$name" 40
        return 1
      done < <(procs_names)
    elif ((status == 127)); then
      sleep 1  # not our children (another shell started them): poll
    fi
  done
}

_procs_group_alive() { kill -0 -- "-$1" 2>/dev/null; }

# procs_stop [NAME...]: stop process groups (reverse start order), verify that none is left.
procs_stop() {
  [[ -n "${PROCS_RUN_DIR:-}" && -d "$PROCS_RUN_DIR" ]] || return 0
  local timeout="${PROCS_STOP_TIMEOUT:-10}" name pid g i deadline
  local -a names=() pgids=() alive=()
  if (($#)); then
    names=("$@")
  else
    mapfile -t names < <(procs_names)
  fi
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do
    name="${names[i]}"
    [[ -f "$PROCS_RUN_DIR/$name.pid" ]] || continue
    pid="$(procs_pid "$name")"
    if _procs_group_alive "$pid"; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      pgids+=("$pid")
    fi
    rm -f "$PROCS_RUN_DIR/$name.pid"
  done
  # shellcheck disable=SC2034  # an output, read by the caller
  PROCS_STOPPED=${#pgids[@]}
  deadline=$((SECONDS + timeout))
  while :; do
    alive=()
    for g in "${pgids[@]}"; do
      _procs_group_alive "$g" && alive+=("$g")
    done
    ((${#alive[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      procs_log "process groups ${alive[*]} ignored TERM for ${timeout}s; sending KILL"
      for g in "${alive[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
      deadline=$((SECONDS + 5))
      timeout=5
    fi
    sleep 0.1
  done
  # Reap our own children (no zombies); a no-op for processes another shell started.
  for g in "${pgids[@]}"; do wait "$g" 2>/dev/null || true; done
  return 0
}

procs_free_port() {
  "$(_procs_python)" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# procs_port_free HOST PORT: succeed when HOST:PORT can be bound now.
procs_port_free() {
  [[ -n "${PROCS_DRY_RUN:-}" ]] && return 0
  # SO_REUSEADDR as the servers set it: a port whose only users are connections in TIME_WAIT
  # (e.g. the previous run's) is free; one with a listener is not.
  "$(_procs_python)" -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.close()' \
    "$1" "$2" 2>/dev/null
}
