#!/usr/bin/env bash
# Create .venv-routellm (repo root): switchyard (editable) with the "routellm" extra
# (RouteLLM 0.2.0's routers: mf, causal_llm, bert, sw_ranking) and the test tools.
# Idempotent: re-running is a fast import check until pyproject.toml or this script changes.
# PyPI only; nothing is downloaded from the Hugging Face hub.
#
# torch is pinned and installed FIRST: torch==2.13.0 is a CPU build here, while an unpinned
# torch (what routellm's own "torch" requirement asks for) pulls a multi-GB CUDA build.
#
# Usage: scripts/setup_routellm.sh            (quiet; pip log in .venv-routellm/setup_routellm.log)
#        VERBOSE=1 scripts/setup_routellm.sh  (pip output shown)
#        PYTHON=python3.11 ROUTELLM_VENV=/path scripts/setup_routellm.sh
# Then:  .venv-routellm/bin/python -m pytest -p no:asyncio tests/test_routellm.py
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROUTELLM_VENV:-$REPO_ROOT/.venv-routellm}"
PYTHON_BIN="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
ROUTELLM_VERSION="0.2.0"
# What the "routellm" extra lists, named here too so the script works while the extra is
# being added to pyproject.toml (installing both is idempotent).
EXTRA_PACKAGES=("routellm==$ROUTELLM_VERSION" "torch==$TORCH_VERSION")

PIP_OPTS=(-q --disable-pip-version-check --no-input)

log() { printf '[setup_routellm] %s\n' "$*" >&2; }
# shellcheck source=scripts/lib/venv.sh
source "$REPO_ROOT/scripts/lib/venv.sh"

stamp_value() { cat "$REPO_ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1; }
STAMP="$VENV/.switchyard-routellm-installed"

check_installed() {
  [[ -x "$VENV/bin/python" ]] || return 1
  # Imports RouteLLM's routers the way switchyard does (dummy OPENAI_API_KEY for the import only).
  env -u OPENAI_API_KEY HF_HUB_OFFLINE=1 "$VENV/bin/python" - "$TORCH_VERSION" "$ROUTELLM_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
torch_want, routellm_want = sys.argv[1:]
assert version("torch").split("+")[0] == torch_want, version("torch")
assert version("routellm") == routellm_want, version("routellm")
import dynamo.nemo_switchyard
from dynamo.nemo_switchyard.routers import routellm
routellm._import("routellm.routers.routers", "setup check")
import pytest, aiohttp, openai  # noqa: F401  (test tools)
EOF
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_value)" ]] && check_installed; then
  log "ok: $VENV already has switchyard[routellm,test] (torch $TORCH_VERSION, routellm $ROUTELLM_VERSION)"
  exit 0
fi

make_venv

LOG="$VENV/setup_routellm.log"
: >"$LOG"

log "installing torch==$TORCH_VERSION, then switchyard[routellm,test] into $VENV (log: $LOG)"
pip_install --upgrade pip
pip_install "torch==$TORCH_VERSION"
pip_install -e "${REPO_ROOT}[routellm,test]" "${EXTRA_PACKAGES[@]}"

torch_now="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
if [[ "${torch_now%%+*}" != "$TORCH_VERSION" ]]; then
  log "ERROR: pip replaced torch $TORCH_VERSION with $torch_now"
  exit 1
fi
if ! check_installed; then
  log "ERROR: install finished but the import check failed:"
  env -u OPENAI_API_KEY "$VENV/bin/python" -c 'from dynamo.nemo_switchyard.routers import routellm; routellm._import("routellm.routers.routers", "setup check")' || true
  exit 1
fi
stamp_value >"$STAMP"
log "done: $VENV ready (torch $torch_now, routellm $ROUTELLM_VERSION)"
