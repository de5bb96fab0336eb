# shellcheck shell=bash
# The parts of a Switchyard stack, on top of procs.sh (source that first): Dynamo workers and
# frontend talking over a private file-discovery directory, and switchyard in front. Used by
# scripts/dynamo_stack.sh (CPU mockers), scripts/launch.sh (vLLM on GPUs) and scripts/demo.sh.
#
#   stack_dynamo_env                  STACK_ENV=(env DYN_FILE_KV=$PROCS_RUN_DIR/kv ...): prefix
#                                     for every Dynamo command, so stacks never see each other
#   stack_start_worker NAME NAMESPACE CMD...
#                                     spawn a Dynamo worker serving dyn://NAMESPACE.backend.generate
#   stack_start_frontend PYTHON HOST PORT [ARGS...]
#                                     spawn "frontend"; sets STACK_FRONTEND_URL
#   stack_wait_models URL TIMEOUT MODEL...
#                                     poll URL/v1/models until it lists every MODEL
#   stack_start_switchyard PYTHON HOST PORT BACKEND STRONG WEAK TIMEOUT [ARGS...]
#                                     spawn "switchyard" (PORT 0: a free one), poll /ready; sets
#                                     STACK_SWITCHYARD_URL

# Flags every Dynamo process needs to find the others without etcd or NATS.
STACK_DISCOVERY_ARGS=(--discovery-backend file --request-plane tcp)

# stack_dynamo_env: the private discovery root (the file backend reads DYN_FILE_KV; its default,
# $TMPDIR/dynamo_store_kv, is shared by every stack on the machine) and internal planes on loopback.
stack_dynamo_env() {
  STACK_ENV=(
    env
    "DYN_FILE_KV=$PROCS_RUN_DIR/kv"
    "DYN_TCP_RPC_HOST=127.0.0.1"
    "DYN_EVENT_PLANE_HOST=127.0.0.1"
    "DYN_SELF_HOST_METADATA=0"
    "DYN_SDK_DISABLE_ANSI_LOGGING=1"
    "PYTHONUNBUFFERED=1"
  )
}

# stack_start_worker NAME NAMESPACE CMD...: CMD is the worker's own command (python -m
# dynamo.vllm ..., possibly behind `env CUDA_VISIBLE_DEVICES=...`); endpoint and discovery flags
# are appended (every Dynamo worker takes them).
stack_start_worker() {
  local name="$1" namespace="$2"
  shift 2
  procs_spawn "$name" "${STACK_ENV[@]}" "$@" \
    --endpoint "dyn://$namespace.backend.generate" "${STACK_DISCOVERY_ARGS[@]}"
}

stack_start_frontend() {
  local py="$1" host="$2" port="$3"
  shift 3
  procs_spawn frontend "${STACK_ENV[@]}" "$py" -m dynamo.frontend \
    --http-host "$host" --http-port "$port" "${STACK_DISCOVERY_ARGS[@]}" "$@"
  # shellcheck disable=SC2034  # an output, read by the caller
  STACK_FRONTEND_URL="http://$(_stack_connect_host "$host"):$port"
}

# A wildcard bind address is reached through loopback.
_stack_connect_host() {
  case "$1" in
    0.0.0.0 | "" | "*") echo 127.0.0.1 ;;
    :: | "[::]") echo "[::1]" ;;
    *) echo "$1" ;;
  esac
}

# _stack_models_listed URL MODEL...: succeed when URL/v1/models lists every MODEL; else say what it lists.
_stack_models_listed() {
  "$(_procs_python)" - "$@" <<'PYEOF'
import json, sys, urllib.request
url, want = sys.argv[1], set(sys.argv[2:])
try:
    with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
        ids = {m.get("id") for m in json.load(response).get("data", [])}
except Exception as exc:  # not up yet
    sys.exit(f"{url}/v1/models: {exc}")
if not want <= ids:
    sys.exit(f"{url}/v1/models lists {sorted(ids)}")
PYEOF
}

stack_wait_models() {
  local url="$1" timeout="$2" names
  shift 2
  printf -v names '%s, ' "$@"
  procs_wait_until "the Dynamo frontend to list ${names%, }" "$timeout" _stack_models_listed "$url" "$@"
}

# _stack_ready URL: succeed when URL/ready answers 200 (switchyard: the backend answers too).
_stack_ready() {
  "$(_procs_python)" - "$1" <<'PYEOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/ready", timeout=2) as response:
        sys.exit(0 if response.status == 200 else f"/ready answered {response.status}")
except Exception as exc:
    sys.exit(f"{sys.argv[1]}/ready: {exc}")
PYEOF
}

# stack_start_switchyard PYTHON HOST PORT BACKEND STRONG WEAK TIMEOUT [ARGS...]: /ready must be
# one of --open-endpoints (the default) when client API keys are configured.
stack_start_switchyard() {
  local py="$1" host="$2" port="$3" backend="$4" strong="$5" weak="$6" timeout="$7"
  shift 7
  [[ "$port" == 0 ]] && port="$(procs_free_port)"
  if ! procs_port_free "$host" "$port"; then  # else /ready could answer from whatever holds the port
    procs_log "ERROR: port $host:$port is already in use (set SWITCHYARD_PORT, or 0 for a free one)"
    return 1
  fi
  procs_spawn switchyard env PYTHONUNBUFFERED=1 "$py" -m dynamo.nemo_switchyard \
    --http-host "$host" --http-port "$port" --backend-url "$backend" \
    --strong-model "$strong" --weak-model "$weak" "$@"
  STACK_SWITCHYARD_URL="http://$(_stack_connect_host "$host"):$port"
  procs_wait_until "switchyard at $STACK_SWITCHYARD_URL/ready" "$timeout" _stack_ready "$STACK_SWITCHYARD_URL"
}
