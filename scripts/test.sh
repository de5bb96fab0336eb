#!/usr/bin/env bash
# Set up everything the tests need (switchyard's venv, a Dynamo venv for the real-backend
# tests) and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/setup_dynamo.sh
export SWITCHYARD_REQUIRE_DYNAMO=1
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
