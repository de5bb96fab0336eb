#!/usr/bin/env bash
# Local multi-GPU launch: a strong and a weak model served by NVIDIA Dynamo workers (vLLM by
# default), Dynamo's OpenAI-compatible frontend, and switchyard in front of it. Started in that
# order, each polled until ready (the frontend's /v1/models lists both models, then switchyard's
# /ready answers 200); stays in the foreground. Ctrl-C, SIGTERM, SIGHUP or any component exiting
# stops everything (each process runs in its own process group, which is killed as a whole).
# A process that dies during start-up stops the launch with its log tail. (Started with `&` from
# another script, bash ignores SIGINT for it: stop it with SIGTERM then.)
#
# Usage
#   STRONG_MODEL=meta-llama/Llama-3.1-70B-Instruct STRONG_GPUS=0,1,2,3 \
#   WEAK_MODEL=meta-llama/Llama-3.1-8B-Instruct WEAK_GPUS=4 scripts/launch.sh
#   scripts/launch.sh --dry-run    print the commands it would run, start nothing
#
# Environment (only the two models are required)
#   STRONG_MODEL, WEAK_MODEL   the models to serve: hub id or local folder
#   STRONG_SERVED_NAME, WEAK_SERVED_NAME
#                     their names in /v1/models and in switchyard's routing (default: the model)
#   STRONG_GPUS, WEAK_GPUS     CUDA_VISIBLE_DEVICES of each worker (default 0 and 1; empty: inherit)
#   STRONG_TP, WEAK_TP         tensor-parallel size (default: the number of GPUs listed)
#   ROUTER_TYPE, THRESHOLD, CHECKPOINT_PATH
#                     switchyard's --router-type, --threshold, --checkpoint-path (unset: switchyard's
#                     own default, or SWITCHYARD_ROUTER_TYPE etc., or the SWITCHYARD_CONFIG file)
#   FRONTEND_HOST, FRONTEND_PORT      Dynamo's frontend (default 127.0.0.1, 8000; port 0: a free one)
#   SWITCHYARD_HOST, SWITCHYARD_PORT  switchyard (default 0.0.0.0, 8080; port 0: a free one)
#   WORKER_MODULE     the worker: dynamo.vllm (default), dynamo.sglang, dynamo.trtllm, or
#                     dynamo.mocker (Dynamo's simulated engine, CPU only: STRONG_MODEL/WEAK_MODEL
#                     are then tokenizer folders, e.g. from scripts/make_tiny_model.py)
#   WORKER_CMD        a worker command template replacing WORKER_MODULE's, e.g.
#                       '{python} -m dynamo.vllm --model {model} --served-model-name {name} --tensor-parallel-size {tp}'
#                     (that is dynamo.vllm's). Placeholders: {python} {model} {name} {tp} {role}
#                     ({role}: strong or weak). The template is split on spaces first, then each
#                     word is filled in, so values may contain spaces. Appended to every worker:
#                     --endpoint dyn://{role}.backend.generate --discovery-backend file --request-plane tcp
#   WORKER_ARGS, STRONG_WORKER_ARGS, WEAK_WORKER_ARGS
#                     extra worker flags, for both / one of them (split on spaces), e.g.
#                     WORKER_ARGS="--gpu-memory-utilization 0.45" when both share a GPU
#   FRONTEND_ARGS, SWITCHYARD_ARGS    extra flags for the frontend / switchyard (split on spaces)
#   DYNAMO_PYTHON     python with ai-dynamo and the engine (default: .venv-dynamo/bin/python if
#                     present, else python3)
#   SWITCHYARD_PYTHON python with switchyard (default: .venv-compiled/bin/python, else .venv/bin/python if present, else python3)
#   START_TIMEOUT     seconds for the workers to load and appear in /v1/models (default 1800)
#   SWITCHYARD_START_TIMEOUT  seconds for switchyard's /ready (default 60)
#   LAUNCH_RUN_DIR    logs (NAME.log), pid files and Dynamo's discovery data (default: a fresh
#                     .run/launch-XXXXXX; its path is printed)
#
# The workers find the frontend through a private file-discovery directory (DYN_FILE_KV in the
# run dir): no etcd or NATS, one machine. switchyard's /ready must stay open (the default
# --open-endpoints) when client API keys are configured, since readiness is polled without one.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROCS_LOG_PREFIX=launch
# shellcheck source=scripts/lib/procs.sh
source "$REPO_ROOT/scripts/lib/procs.sh"
# shellcheck source=scripts/lib/stack.sh
source "$REPO_ROOT/scripts/lib/stack.sh"

die() {
  procs_log "ERROR: $*"
  exit 2
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

dry_run=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument $arg (see --help)" ;;
  esac
done

[[ -n "${STRONG_MODEL:-}" && -n "${WEAK_MODEL:-}" ]] || die "set STRONG_MODEL and WEAK_MODEL (see --help)"
strong_name="${STRONG_SERVED_NAME:-$STRONG_MODEL}"
weak_name="${WEAK_SERVED_NAME:-$WEAK_MODEL}"
[[ "$strong_name" != "$weak_name" ]] || die "the strong and weak models are both served as '$strong_name'; set STRONG_SERVED_NAME / WEAK_SERVED_NAME"
strong_gpus="${STRONG_GPUS-0}"
weak_gpus="${WEAK_GPUS-1}"
worker_module="${WORKER_MODULE:-dynamo.vllm}"
frontend_host="${FRONTEND_HOST:-127.0.0.1}"
frontend_port="${FRONTEND_PORT:-8000}"
switchyard_host="${SWITCHYARD_HOST:-0.0.0.0}"
switchyard_port="${SWITCHYARD_PORT:-8080}"
start_timeout="${START_TIMEOUT:-1800}"
switchyard_timeout="${SWITCHYARD_START_TIMEOUT:-60}"
if [[ -z "${DYNAMO_PYTHON:-}" ]]; then
  DYNAMO_PYTHON=python3
  [[ -x "${DYNAMO_VENV:-$REPO_ROOT/.venv-dynamo}/bin/python" ]] && DYNAMO_PYTHON="${DYNAMO_VENV:-$REPO_ROOT/.venv-dynamo}/bin/python"
fi
if [[ -z "${SWITCHYARD_PYTHON:-}" ]]; then
  SWITCHYARD_PYTHON=python3
  if [[ -x "$REPO_ROOT/.venv-compiled/bin/python" ]]; then  # the compiled build (scripts/setup_compiled.sh)
    SWITCHYARD_PYTHON="$REPO_ROOT/.venv-compiled/bin/python"
  elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    SWITCHYARD_PYTHON="$REPO_ROOT/.venv/bin/python"
  fi
fi
for value in "$start_timeout" "$switchyard_timeout"; do
  [[ "$value" =~ ^[0-9]+$ ]] || die "START_TIMEOUT and SWITCHYARD_START_TIMEOUT are whole seconds (got '$value')"
done

# The engine each worker module needs besides ai-dynamo (checked before anything starts).
case "$worker_module" in
  dynamo.vllm)
    template='{python} -m dynamo.vllm --model {model} --served-model-name {name} --tensor-parallel-size {tp}'
    engine=vllm ;;
  dynamo.sglang)
    template='{python} -m dynamo.sglang --model-path {model} --served-model-name {name} --tp-size {tp}'
    engine=sglang ;;
  dynamo.trtllm)
    template='{python} -m dynamo.trtllm --model {model} --served-model-name {name} --tensor-parallel-size {tp}'
    engine=tensorrt_llm ;;
  dynamo.mocker)
    template='{python} -m dynamo.mocker --model-path {model} --model-name {name}'
    engine="" ;;
  *) [[ -n "${WORKER_CMD:-}" ]] || die "unknown WORKER_MODULE $worker_module: use dynamo.vllm, dynamo.sglang, dynamo.trtllm or dynamo.mocker, or set WORKER_CMD" ;;
esac
if [[ -n "${WORKER_CMD:-}" ]]; then
  template="$WORKER_CMD"
  engine=""
fi

# gpu_count LIST: entries in a CUDA_VISIBLE_DEVICES list (0 when empty: the worker inherits them).
gpu_count() {
  local -a ids=()
  [[ -n "$1" ]] && IFS=, read -ra ids <<<"$1"
  echo "${#ids[@]}"
}

# tensor_parallel ROLE GPUS TP: the TP size to use, checked against the GPUs given.
tensor_parallel() {
  local role="$1" gpus="$2" tp="$3" count
  count="$(gpu_count "$gpus")"
  [[ -n "$tp" ]] || tp=$((count > 0 ? count : 1))
  [[ "$tp" =~ ^[1-9][0-9]*$ ]] || die "${role^^}_TP must be a positive whole number (got '$tp')"
  if ((count > 0 && tp > count)); then
    die "${role^^}_TP=$tp needs $tp GPUs but ${role^^}_GPUS=$gpus lists $count"
  fi
  echo "$tp"
}
strong_tp="$(tensor_parallel strong "$strong_gpus" "${STRONG_TP:-}")"
weak_tp="$(tensor_parallel weak "$weak_gpus" "${WEAK_TP:-}")"

# worker_argv ROLE MODEL NAME TP GPUS EXTRA: set WORKER_ARGV to the worker's command.
worker_argv() {
  local role="$1" model="$2" name="$3" tp="$4" gpus="$5" extra="$6" word
  local -a words=() more=()
  WORKER_ARGV=()
  [[ -n "$gpus" ]] && WORKER_ARGV=(env "CUDA_VISIBLE_DEVICES=$gpus")
  read -ra words <<<"$template"
  for word in "${words[@]}"; do
    word="${word//"{python}"/"$DYNAMO_PYTHON"}"
    word="${word//"{model}"/"$model"}"
    word="${word//"{name}"/"$name"}"
    word="${word//"{tp}"/"$tp"}"
    word="${word//"{role}"/"$role"}"
    WORKER_ARGV+=("$word")
  done
  read -ra more <<<"${WORKER_ARGS:-} $extra"
  WORKER_ARGV+=("${more[@]}")
}

# Everything that can be wrong is checked before the workers spend minutes loading weights.
preflight() {
  local module missing=""
  local -a modules=(dynamo.frontend)
  [[ -z "${WORKER_CMD:-}" ]] && modules+=("$worker_module")
  [[ -n "$engine" ]] && modules+=("$engine")
  for module in "${modules[@]}"; do
    if ! "$DYNAMO_PYTHON" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)' "$module" 2>/dev/null; then
      missing+=" $module"
    fi
  done
  [[ -z "$missing" ]] || die "$DYNAMO_PYTHON cannot import${missing} (install ai-dynamo with the engine, e.g. pip install 'ai-dynamo[vllm]', or set DYNAMO_PYTHON)"
  # switchyard's own validation of the settings it will get (flags, SWITCHYARD_* and the config file).
  if ! "$SWITCHYARD_PYTHON" - --strong-model "$strong_name" --weak-model "$weak_name" \
      --backend-url "$frontend_url" --http-host "$switchyard_host" --http-port "$switchyard_port" \
      "${switchyard_flags[@]}" <<'PYEOF'
import argparse, sys
try:
    from dynamo.nemo_switchyard import cli
    from dynamo.nemo_switchyard.config import ConfigError
except ImportError as exc:
    sys.exit(f"switchyard does not import ({exc}): run scripts/setup.sh or set SWITCHYARD_PYTHON")
parser = argparse.ArgumentParser(prog="switchyard")
cli.add_settings_arguments(parser)
try:
    cli.settings_from_args(parser.parse_args(sys.argv[1:]))
except ConfigError as exc:
    sys.exit(f"switchyard: {exc}")
PYEOF
  then
    die "switchyard's settings are not valid (above)"
  fi
  procs_port_free "$frontend_host" "$frontend_port" || die "port $frontend_host:$frontend_port is in use (set FRONTEND_PORT, or 0 for a free one)"
  procs_port_free "$switchyard_host" "$switchyard_port" || die "port $switchyard_host:$switchyard_port is in use (set SWITCHYARD_PORT, or 0 for a free one)"
  if [[ -n "$engine" && -n "$strong_gpus" && -n "$weak_gpus" ]]; then
    local gpu
    for gpu in ${strong_gpus//,/ }; do
      if [[ ",$weak_gpus," == *",$gpu,"* ]]; then
        procs_log "warning: both workers use GPU $gpu; give each a share of its memory (e.g. WORKER_ARGS=\"--gpu-memory-utilization 0.45\" for vLLM)"
        break
      fi
    done
  fi
}

[[ "$frontend_port" == 0 ]] && frontend_port="$(procs_free_port)"
[[ "$switchyard_port" == 0 ]] && switchyard_port="$(procs_free_port)"
frontend_url="http://$(_stack_connect_host "$frontend_host"):$frontend_port"
switchyard_flags=()  # besides host, port, backend and models
[[ -n "${ROUTER_TYPE:-}" ]] && switchyard_flags+=(--router-type "$ROUTER_TYPE")
[[ -n "${THRESHOLD:-}" ]] && switchyard_flags+=(--threshold "$THRESHOLD")
[[ -n "${CHECKPOINT_PATH:-}" ]] && switchyard_flags+=(--checkpoint-path "$CHECKPOINT_PATH")
read -ra extra_switchyard <<<"${SWITCHYARD_ARGS:-}"
switchyard_flags+=("${extra_switchyard[@]}")
read -ra frontend_args <<<"${FRONTEND_ARGS:-}"

if [[ -n "$dry_run" ]]; then
  PROCS_DRY_RUN=1
  PROCS_RUN_DIR="${LAUNCH_RUN_DIR:-$REPO_ROOT/.run/launch-XXXXXX}"
else
  preflight
  procs_init "${LAUNCH_RUN_DIR:-}" launch
  rm -rf "$PROCS_RUN_DIR/kv"
fi

# Stop switchyard first (it drains in-flight requests while the backend still answers), then the rest.
# shellcheck disable=SC2317,SC2329  # run by the EXIT trap (shellcheck misses it before the final exit)
cleanup() {
  trap '' INT TERM HUP  # a second Ctrl-C must not cut the clean-up short
  PROCS_STOP_TIMEOUT=40 procs_stop switchyard
  # shellcheck disable=SC2119  # no names: all of them
  procs_stop
  [[ -n "$dry_run" ]] || rm -rf "$PROCS_RUN_DIR/kv"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

[[ -n "$dry_run" ]] || procs_log "run dir (logs): $PROCS_RUN_DIR"
stack_dynamo_env
worker_argv strong "$STRONG_MODEL" "$strong_name" "$strong_tp" "$strong_gpus" "${STRONG_WORKER_ARGS:-}"
stack_start_worker strong strong "${WORKER_ARGV[@]}"
worker_argv weak "$WEAK_MODEL" "$weak_name" "$weak_tp" "$weak_gpus" "${WEAK_WORKER_ARGS:-}"
stack_start_worker weak weak "${WORKER_ARGV[@]}"
stack_start_frontend "$DYNAMO_PYTHON" "$frontend_host" "$frontend_port" "${frontend_args[@]}"
if [[ -z "$dry_run" ]]; then
  procs_log "waiting for the workers to load (up to ${start_timeout}s; logs: $PROCS_RUN_DIR/{strong,weak}.log)"
  stack_wait_models "$frontend_url" "$start_timeout" "$strong_name" "$weak_name" || exit 1
  procs_log "frontend ready after ${PROCS_WAITED}s: $frontend_url lists $strong_name, $weak_name"
fi
stack_start_switchyard "$SWITCHYARD_PYTHON" "$switchyard_host" "$switchyard_port" "$frontend_url" \
  "$strong_name" "$weak_name" "$switchyard_timeout" "${switchyard_flags[@]}" || exit 1
[[ -z "$dry_run" ]] || exit 0

describe() {  # describe NAME GPUS TP
  if [[ -n "$2" ]]; then echo "$1 on GPU(s) $2, tensor parallel $3"; else echo "$1, tensor parallel $3"; fi
}
echo "switchyard on $STACK_SWITCHYARD_URL -> Dynamo frontend $frontend_url"
echo "  strong: $(describe "$strong_name" "$strong_gpus" "$strong_tp")"
echo "  weak:   $(describe "$weak_name" "$weak_gpus" "$weak_tp")"
echo "logs in $PROCS_RUN_DIR; Ctrl-C stops everything"
procs_watch || true
procs_log "a component exited; stopping everything"
exit 1
