#!/usr/bin/env bash
# Create .venv with switchyard installed (editable) and, with "test", the test tools.
# Re-runs are quick: nothing is installed again until pyproject.toml changes.
# Usage: scripts/setup.sh [test]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
extras=""
[[ "${1:-}" == "test" ]] && extras="[test,tracing]"
stamp=".venv/.switchyard-installed${extras}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && .venv/bin/python -c "import dynamo.nemo_switchyard" 2>/dev/null; then
  exit 0
fi
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 | grep -vE "is ignored|BuildBackendWarning|return '.n'.join" || true
.venv/bin/python -c "import dynamo.nemo_switchyard" || { echo "setup failed: switchyard does not import" >&2; exit 1; }
echo "$want" >"$stamp"
