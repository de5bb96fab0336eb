#!/usr/bin/env bash
# Dependency audit: known vulnerabilities in the exact package set of the base install (.venv, as
# `pip freeze --exclude-editable` lists it: pip, setuptools and wheel, the venv's own tooling, are not
# in it), with pip-audit from a throwaway venv (.venv-audit).
#
# Usage: scripts/audit.sh [--online] [--ignore-vuln ID]... [-r REQUIREMENTS] [--no-pip-audit]
#   (default)        pip-audit against PyPI's per-release advisories; every package it could not look up
#                    is then checked against PyPI's project JSON, whose advisories are those of the
#                    project's latest release, so it settles only packages installed at that release.
#                    Exit 1 on any known vulnerability. Packages that neither could check are listed in
#                    a WARNING and the exit is 0: where no vulnerability database answers (this project's
#                    CI reaches only a PyPI mirror without per-release JSON, nor OSV) the audit cannot be
#                    complete, and it says so rather than pass in silence or fail every run.
#   --online         where the internet is reachable: `pip-audit --strict`, every package must be looked
#                    up; exit non-zero on a vulnerability or on any package it could not check.
#   --ignore-vuln ID an advisory (PYSEC-/GHSA-/CVE- id) reviewed and accepted; repeatable.
#   -r FILE          audit this pinned requirements file (name==version lines) instead of .venv.
#   --no-pip-audit   skip pip-audit, only the project-JSON check (used by tests/test_audit.py).
# Environment: AUDIT_OSV_URL: pip-audit asks this OSV API (e.g. https://api.osv.dev/v1/query, all
# releases) instead of PyPI; AUDIT_PYPI_URL (default https://pypi.org/pypi) for the project-JSON check;
# AUDIT_TIMEOUT (seconds per request, default 15); VERBOSE=1 shows pip's output.
set -euo pipefail
cd "$(dirname "$0")/.."

online=0
use_pip_audit=1
requirements=""
ignores=()
while (($#)); do
  case "$1" in
    --online) online=1 ;;
    --no-pip-audit) use_pip_audit=0 ;;
    --ignore-vuln) ignores+=("${2:?--ignore-vuln needs an id}"); shift ;;
    -r) requirements="${2:?-r needs a file}"; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "audit: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
((online && !use_pip_audit)) && { echo "audit: --online needs pip-audit" >&2; exit 2; }

log() { echo "audit: $*"; }
VENV=.venv-audit
PYTHON_BIN=${PYTHON:-python3}
LOG="$VENV/install.log"
PIP_OPTS=(-q --disable-pip-version-check)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The package set: pinned name==version lines (`pip list --format=freeze` pins packages that freeze
# shows as `name @ URL`; pip, setuptools, wheel and distribute are left out, as freeze leaves them).
req="$work/requirements.txt"
if [[ -n "$requirements" ]]; then
  grep -vE '^[[:space:]]*(#|$)' "$requirements" >"$req" || true
  source_name="$requirements"
else
  [[ -x .venv/bin/python ]] || { echo "audit: no .venv: run scripts/setup.sh first" >&2; exit 2; }
  .venv/bin/python -m pip list --disable-pip-version-check --format=freeze --exclude-editable >"$work/all.txt"
  grep -viE '^(pip|setuptools|wheel|distribute)==' "$work/all.txt" >"$req" || true
  source_name=".venv (pip freeze --exclude-editable)"
fi
grep -q . "$req" || { echo "audit: no packages to audit in $source_name" >&2; exit 2; }
log "$(grep -c . "$req") packages from $source_name"

# pip-audit in its own venv, installed once (its dependencies stay out of the audited set).
pa_json="$work/pip-audit.json"
pa_status="pip-audit not run (--no-pip-audit)"
if ((use_pip_audit)); then
  mkdir -p "$VENV"
  if [[ ! -x "$VENV/bin/pip-audit" ]]; then
    [[ -x "$VENV/bin/python" ]] || "$PYTHON_BIN" -m venv "$VENV"
    : >"$LOG"
    if [[ "${VERBOSE:-0}" == "1" ]]; then
      "$VENV/bin/python" -m pip install "${PIP_OPTS[@]}" pip-audit 2>&1 | tee -a "$LOG" || true
    else
      "$VENV/bin/python" -m pip install "${PIP_OPTS[@]}" pip-audit >>"$LOG" 2>&1 || true
    fi
  fi
  pa_args=(-r "$req" --no-deps --disable-pip --progress-spinner off --timeout "${AUDIT_TIMEOUT:-15}")
  for id in "${ignores[@]}"; do pa_args+=(--ignore-vuln "$id"); done
  service="PyPI's per-release advisories"
  if [[ -n "${AUDIT_OSV_URL:-}" ]]; then
    pa_args+=(-s osv --osv-url "$AUDIT_OSV_URL")
    service="OSV at $AUDIT_OSV_URL"
  fi
  if [[ ! -x "$VENV/bin/pip-audit" ]]; then
    ((online)) && { echo "audit: pip-audit did not install; last lines of $LOG:" >&2; tail -n 20 "$LOG" >&2; exit 2; }
    pa_status="pip-audit not installed (pip install pip-audit failed, see $LOG)"
  elif ((online)); then
    log "$("$VENV/bin/pip-audit" --version), $service: pip-audit ${pa_args[*]} --strict --desc"
    status=0
    "$VENV/bin/pip-audit" "${pa_args[@]}" --strict --desc || status=$?
    ((status == 0)) || log "FAILED (pip-audit exit $status): a known vulnerability, a package it could not check, or the service did not answer"
    exit "$status"
  else
    # Exit 1 means vulnerabilities found or a fatal error: the report below tells which.
    "$VENV/bin/pip-audit" "${pa_args[@]}" -f json --aliases on -o "$pa_json" >"$work/pip-audit.log" 2>&1 || true
    if [[ -s "$pa_json" ]]; then
      pa_status="$("$VENV/bin/pip-audit" --version), $service"
    else
      pa_status="pip-audit failed ($(grep -v '^WARNING' "$work/pip-audit.log" | tail -n 1 | cut -c1-200))"
    fi
  fi
fi

helper_python="$VENV/bin/python"
[[ -x "$helper_python" ]] || helper_python="$PYTHON_BIN"
AUDIT_REQ="$req" AUDIT_PA_JSON="$pa_json" AUDIT_PA_STATUS="$pa_status" AUDIT_IGNORE="${ignores[*]}" \
  "$helper_python" - <<'PY'
"""Merge pip-audit's results with PyPI's project JSON (the latest release's advisories) and report."""
import concurrent.futures
import json
import os
import re
import sys
import urllib.error
import urllib.request

BASE = os.environ.get("AUDIT_PYPI_URL", "https://pypi.org/pypi").rstrip("/")
TIMEOUT = float(os.environ.get("AUDIT_TIMEOUT", "15"))
IGNORE = set(os.environ.get("AUDIT_IGNORE", "").split())


def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(a, b):
    try:
        from packaging.version import Version
        return Version(a) == Version(b)
    except Exception:
        return a == b


pinned = {}
for line in open(os.environ["AUDIT_REQ"]):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, version = line.split("==", 1)
        pinned[canon(name.split("[")[0].strip())] = (name.strip(), version.split(";")[0].strip())
    elif line:
        print(f"audit: skipping a line that pins no version: {line}")

findings = []  # (name, version, vuln id, aliases, fixed in, source)
unchecked = {}  # canonical name -> reason
checked_by_pa = set()
pa_file = os.environ["AUDIT_PA_JSON"]
pa_data = None
if os.path.isfile(pa_file) and os.path.getsize(pa_file):
    pa_data = json.load(open(pa_file))
    for dep in pa_data.get("dependencies", []):
        key = canon(dep["name"])
        if "skip_reason" in dep:
            unchecked[key] = dep["skip_reason"]
            continue
        checked_by_pa.add(key)
        for v in dep.get("vulns", []):
            findings.append((dep["name"], dep["version"], v["id"], v.get("aliases", []), v.get("fix_versions", []), "pip-audit"))
for key in pinned:
    if key not in checked_by_pa and key not in unchecked:
        unchecked[key] = "not looked up by pip-audit"
reasons = sorted({re.sub(r": \S+ \(.*\)$", "", r) for r in unchecked.values()})
why = f" ({'; '.join(reasons[:3])})" if reasons else ""
print(f"audit: {os.environ['AUDIT_PA_STATUS']}: checked {len(checked_by_pa)}, could not check {len(unchecked)}{why}")


def project_json(key):
    try:
        with urllib.request.urlopen(f"{BASE}/{key}/json", timeout=TIMEOUT) as response:
            return key, json.load(response), None
    except urllib.error.HTTPError as e:
        return key, None, f"HTTP {e.code}"
    except Exception as e:  # unreachable, DNS, timeout, bad JSON
        return key, None, f"{type(e).__name__}: {getattr(e, 'reason', e)}"


fallback_checked = 0
if unchecked:
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(project_json, sorted(unchecked)))
    for key, data, error in results:
        name, version = pinned.get(key, (key, "?"))
        if error:
            unchecked[key] = f"{BASE}/{key}/json: {error}"
            continue
        latest = data.get("info", {}).get("version", "?")
        if not same_version(version, latest):
            unchecked[key] = f"latest release is {latest}; advisories for {version} need PyPI's per-release JSON or OSV"
            continue
        del unchecked[key]
        fallback_checked += 1
        for v in data.get("vulnerabilities") or []:
            if v.get("withdrawn"):
                continue
            findings.append((name, version, v.get("id", "?"), v.get("aliases") or [], v.get("fixed_in") or [], "PyPI JSON"))
    print(f"audit: PyPI project JSON ({BASE}/NAME/json, the latest release's advisories): checked {fallback_checked} installed at their latest release")

# One advisory often comes under several ids (PYSEC-, GHSA-, CVE-): report it once per package.
unique, seen = [], {}
for f in findings:
    ids = {f[2], *f[3]}
    known = seen.setdefault(canon(f[0]), set())
    if not ids & known:
        unique.append(f)
    known |= ids
findings = unique
ignored = [f for f in findings if IGNORE & ({f[2]} | set(f[3]))]
findings = [f for f in findings if f not in ignored]
for name, version, vid, aliases, fixed, source in ignored:
    print(f"audit: ignored (--ignore-vuln): {name} {version} {vid}")
for name, version, vid, aliases, fixed, source in findings:
    also = f" ({', '.join(aliases)})" if aliases else ""
    fix = f"fixed in {', '.join(fixed)}" if fixed else "no fixed release"
    print(f"audit: VULNERABLE {name} {version}: {vid}{also}, {fix} [{source}]")

total = len(pinned)
if unchecked:
    bar = "!" * 78
    print(bar)
    print(f"WARNING: the dependency audit is INCOMPLETE: {len(unchecked)} of {total} packages were NOT checked")
    print("WARNING: against any vulnerability database. From here neither pip-audit's PyPI per-release")
    print("WARNING: advisories nor OSV could be consulted for them (no internet beyond a package mirror),")
    print("WARNING: so known vulnerabilities in these versions would go unnoticed:")
    for key in sorted(unchecked):
        name, version = pinned.get(key, (key, "?"))
        print(f"WARNING:   {name}=={version}  ({unchecked[key]})")
    print("WARNING: Run the full audit where the internet is reachable:")
    print("WARNING:   bash scripts/audit.sh --online")
    print("WARNING: which runs (in .venv-audit, pip install pip-audit):")
    print("WARNING:   pip-audit -r <(.venv/bin/python -m pip list --format=freeze --exclude-editable \\")
    print("WARNING:       | grep -viE '^(pip|setuptools|wheel|distribute)==') --no-deps --disable-pip --strict")
    print(bar)
if findings:
    print(f"audit: FAILED: {len(findings)} known vulnerabilit{'y' if len(findings) == 1 else 'ies'} "
          f"(upgrade, or accept one with --ignore-vuln ID in scripts/test.sh)")
    sys.exit(1)
print(f"audit: no known vulnerabilities in the {total - len(unchecked)} of {total} packages checked"
      + (" (see the WARNING above)" if unchecked else ""))
PY
