#!/usr/bin/env bash
# Create .venv-compiled: switchyard as users install it (`pip install .`, not editable), so its
# request path is compiled to C by mypyc (setup.py), with the test tools. The benchmarks, the
# demo and the second pass of scripts/test.sh run this build; .venv keeps the editable,
# pure-Python install for development.
# Re-runs are quick: nothing is rebuilt until pyproject.toml, setup.py or a source file changes.
# Usage: scripts/setup_compiled.sh [--require]   (--require: fail unless the build is compiled)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=.venv-compiled
stamp="$venv/.switchyard-built"
want="$({ cat pyproject.toml setup.py README.md; find src -type f -not -path '*/__pycache__/*' -not -name '*.so' -print0 | sort -z | xargs -0 cat; } | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] || ! "$venv/bin/python" -c "import dynamo.nemo_switchyard" 2>/dev/null; then
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored" || true
  echo "building switchyard into $venv (mypyc compiles the request path: about a minute)" >&2
  # One wheel build; its dependencies and test tools, then the wheel itself even when the version is unchanged.
  wheels=$(mktemp -d)
  trap 'rm -rf "$wheels"' EXIT
  "$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$wheels" . 2>&1 | grep -vE "is ignored|BuildBackendWarning" || true
  wheel=$(find "$wheels" -name '*.whl' | head -n1)
  [[ -n "$wheel" ]] || { echo "setup failed: no wheel was built" >&2; exit 1; }
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${wheel}[test,tracing]" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/python" -c "import dynamo.nemo_switchyard" || { echo "setup failed: switchyard does not import in $venv" >&2; exit 1; }
  echo "$want" >"$stamp"
fi
build=$("$venv/bin/python" -c "import dynamo.nemo_switchyard as s; print(s.build())")
echo "$venv: switchyard $build" >&2
if [[ "${1:-}" == "--require" && "$build" != "compiled" ]]; then
  echo "setup failed: $venv is not compiled (is a C compiler installed? see setup.py)" >&2
  exit 1
fi
