#!/usr/bin/env bash
# Set up everything the tests need (switchyard's venv, a Dynamo venv for the real-backend
# tests) and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/setup_dynamo.sh
scripts/setup_routellm.sh
scripts/setup_compiled.sh --require  # switchyard as users install it: the request path compiled by mypyc
scripts/setup_browser.sh  # Chromium (Debian's package) for the dashboard's browser test
export SWITCHYARD_REQUIRE_DYNAMO=1 SWITCHYARD_REQUIRE_BROWSER=1
scripts/audit.sh  # known vulnerabilities in .venv's packages (a WARNING lists those no database could check)
# The whole suite in the base install (no torch, no RouteLLM: those tests check the install
# hint), then RouteLLM's routers in their own environment with the "routellm" extra.
.venv/bin/python -m pytest -p no:cacheprovider "$@"
# The same suite against the compiled build (the C extensions of setup.py), as installed by users.
SWITCHYARD_EXPECT_COMPILED=1 .venv-compiled/bin/python -m pytest -p no:cacheprovider --ignore=tests/test_audit.py "$@"
SWITCHYARD_REQUIRE_ROUTELLM=1 .venv-routellm/bin/python -m pytest -p no:cacheprovider -p no:asyncio "$@" tests/test_routellm.py
