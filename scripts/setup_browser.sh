#!/usr/bin/env bash
# Install headless Chromium (Debian's package) for tests/test_dashboard.py, which opens
# /dashboard in a real browser. Idempotent and quiet: a no-op when a Chromium is already on
# PATH (or SWITCHYARD_CHROMIUM names one); otherwise apt-get, as root or through sudo.
# The apt log goes to ${TMPDIR:-/tmp}/setup_browser.log (shown on failure; VERBOSE=1 shows it live).
#
# Usage: scripts/setup_browser.sh
set -euo pipefail

log() { printf '[setup_browser] %s\n' "$*" >&2; }

find_browser() {
  if [[ -n "${SWITCHYARD_CHROMIUM:-}" && -x "${SWITCHYARD_CHROMIUM}" ]]; then
    printf '%s\n' "$SWITCHYARD_CHROMIUM"
    return 0
  fi
  local name
  for name in chromium chromium-browser google-chrome-stable google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

if browser="$(find_browser)"; then
  log "ok: $browser"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "no Chromium and no apt-get: install Chromium (or Chrome) yourself, or set SWITCHYARD_CHROMIUM=/path/to/it"
  exit 1
fi
SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    log "no Chromium; installing it needs root: sudo apt-get install chromium fonts-liberation"
    exit 1
  fi
  SUDO=(sudo -n)
fi

LOG="${TMPDIR:-/tmp}/setup_browser.log"
: >"$LOG"
run() {
  if [[ -n "${VERBOSE:-}" ]]; then
    "$@" 2>&1 | tee -a "$LOG"
  else
    "$@" >>"$LOG" 2>&1
  fi
}
log "installing chromium with apt-get (log: $LOG)"
# fonts-liberation: metric-compatible sans/mono fonts, so labels render the same everywhere.
if ! run "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation; then
  # A stale or missing package index: refresh it once and retry.
  if ! { run "${SUDO[@]}" apt-get update -q &&
    run "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation; }; then
    log "apt-get failed; its output:"
    cat "$LOG" >&2
    exit 1
  fi
fi
browser="$(find_browser)" || { log "chromium installed but not on PATH"; exit 1; }
log "ok: $browser ($("$browser" --version 2>/dev/null || echo '?'))"
