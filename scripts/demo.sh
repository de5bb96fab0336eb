#!/usr/bin/env bash
# The main job, on CPU: a real NVIDIA Dynamo frontend with two mocker workers (a strong
# and a weak model), switchyard in front of it with the default router, and sample
# requests showing where each prompt went. Everything stops on exit.
#
# Usage: scripts/demo.sh            run the samples, then stop
#        scripts/demo.sh --serve    keep serving on :8080 until Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."

SWITCHYARD_PORT=${SWITCHYARD_PORT:-8080}
export FRONTEND_PORT=${FRONTEND_PORT:-8000}
export STRONG_MODEL=${STRONG_MODEL:-strong-model}
export WEAK_MODEL=${WEAK_MODEL:-weak-model}

scripts/setup_compiled.sh  # switchyard as users install it (the request path compiled by mypyc)
scripts/setup_dynamo.sh
# shellcheck source=scripts/dynamo_stack.sh
source scripts/dynamo_stack.sh  # and, through it, the shared scripts/lib/{procs,stack}.sh

# Stop switchyard first (it drains in-flight requests while Dynamo still answers), then Dynamo.
cleanup() {
  trap '' INT TERM  # a second Ctrl-C must not cut the clean-up short
  PROCS_STOP_TIMEOUT=40 procs_stop switchyard
  dynamo_stop
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

dynamo_start
stack_start_switchyard .venv-compiled/bin/python 127.0.0.1 "$SWITCHYARD_PORT" "$DYNAMO_URL" "$STRONG_MODEL" "$WEAK_MODEL" 30
url="$STACK_SWITCHYARD_URL"
echo "switchyard on $url -> Dynamo frontend $DYNAMO_URL"
echo

ask() {  # ask LABEL STREAM PROMPT
  local label=$1 stream=$2 prompt=$3 body headers
  body=$(.venv-compiled/bin/python -c 'import json,sys; print(json.dumps({"model": "auto", "max_tokens": 16, "stream": sys.argv[1] == "true",
    **({"stream_options": {"include_usage": True}} if sys.argv[1] == "true" else {}),
    "messages": [{"role": "user", "content": sys.argv[2]}]}))' "$stream" "$prompt")
  headers=$(mktemp)
  curl -sS -D "$headers" -o "$DYNAMO_RUN_DIR/answer.txt" -H 'Content-Type: application/json' -d "$body" "$url/v1/chat/completions"
  printf '%-28s stream=%-5s -> %-13s score=%s  (HTTP %s, %s bytes%s)\n' "$label" "$stream" \
    "$(grep -i '^x-routellm-routed-model:' "$headers" | cut -d' ' -f2 | tr -d '\r')" \
    "$(grep -i '^x-switchyard-score:' "$headers" | cut -d' ' -f2 | tr -d '\r')" \
    "$(head -1 "$headers" | cut -d' ' -f2)" "$(wc -c <"$DYNAMO_RUN_DIR/answer.txt")" \
    "$(grep -q '"usage"' "$DYNAMO_RUN_DIR/answer.txt" && echo ', usage included')"
  rm -f "$headers"
}

simple="Hi! How are you today?"
hard="Prove that for every integer n > 1 the sum 1/1^2 + 1/2^2 + ... + 1/n^2 is less than 2 - 1/n, then write a Python function that checks it numerically for n up to 10^6 and explain its complexity."
ask "simple prompt" false "$simple"
ask "simple prompt" true "$simple"
ask "hard prompt" false "$hard"
ask "hard prompt" true "$hard"
echo
# The headline counters of /stats (it also holds histograms, tokens and cost: see /dashboard).
curl -s "$url/stats" | .venv-compiled/bin/python -c 'import json, sys; s = json.load(sys.stdin)
print("routing counters:", json.dumps({k: s[k] for k in ("total", "strong", "weak", "fallback", "strong_fraction", "reasons", "tokens")}))'
echo "dashboard: $url/dashboard (with --serve)"

if [[ "${1:-}" == "--serve" ]]; then
  echo "serving on $url (Ctrl-C stops switchyard and Dynamo)"
  procs_watch || exit 1
fi
