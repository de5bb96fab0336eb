#!/usr/bin/env bash
# Create .venv-dynamo (repo root) with NVIDIA Dynamo 1.6.1 (frontend + mocker)
# installed for CPU-only use. Idempotent: re-running is a fast no-op once the
# install is verified. PyPI only; no hub downloads, no torch.
#
# Usage: scripts/setup_dynamo.sh            (quiet; pip log in .venv-dynamo/setup_dynamo.log)
#        VERBOSE=1 scripts/setup_dynamo.sh  (pip output shown)
#        PYTHON=python3.11 DYNAMO_VENV=/path scripts/setup_dynamo.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DYNAMO_VENV:-$REPO_ROOT/.venv-dynamo}"
PYTHON_BIN="${PYTHON:-python3}"
DYNAMO_VERSION="1.6.1"

# ai-dynamo's declared dependency set cannot be resolved offline (aisimulate),
# so install ai-dynamo{,-runtime} with --no-deps and its runtime deps by hand.
RUNTIME_DEPS=(
  aiohttp
  msgspec
  prometheus-client
  pyzmq
  redis
  tqdm
  transformers
  typing-extensions
  zstandard
  "kubernetes>=32.0.1,<33"
  uvloop
  "pydantic<=2.13.5"
)

PIP_OPTS=(-q --disable-pip-version-check --no-input)

log() { printf '[setup_dynamo] %s\n' "$*" >&2; }
# shellcheck source=scripts/lib/venv.sh
source "$REPO_ROOT/scripts/lib/venv.sh"

check_installed() {
  [[ -x "$VENV/bin/python" ]] || return 1
  "$VENV/bin/python" - "$DYNAMO_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
want = sys.argv[1]
assert version("ai-dynamo") == want, version("ai-dynamo")
assert version("ai-dynamo-runtime") == want, version("ai-dynamo-runtime")
import dynamo.frontend, dynamo.mocker, dynamo.llm, dynamo.runtime  # noqa: F401
import tokenizers, transformers, uvloop, zmq, msgspec, kubernetes  # noqa: F401
EOF
}

if check_installed; then
  log "ok: $VENV already has ai-dynamo $DYNAMO_VERSION"
  exit 0
fi

make_venv

# pip's chatter goes to a log (shown on failure, or live with VERBOSE=1).
# The final "ai-dynamo requires aisimulate ... not installed" resolver warning
# is expected: aisimulate is only for the AIS perf model, which we don't use.
LOG="$VENV/setup_dynamo.log"
: >"$LOG"

log "installing ai-dynamo $DYNAMO_VERSION (+ runtime deps) into $VENV (log: $LOG)"
pip_install --upgrade pip
pip_install --no-deps "ai-dynamo==$DYNAMO_VERSION" "ai-dynamo-runtime==$DYNAMO_VERSION"
pip_install "${RUNTIME_DEPS[@]}"

if ! check_installed; then
  log "ERROR: install finished but the import check failed:"
  "$VENV/bin/python" -c 'import dynamo.frontend, dynamo.mocker, dynamo.llm' || true
  exit 1
fi
log "done: $VENV ready"
