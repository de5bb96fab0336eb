# shellcheck shell=bash
# Shared by the setup_*.sh scripts (source it after setting VENV, PYTHON_BIN, PIP_OPTS and log()).

# make_venv: create $VENV with $PYTHON_BIN unless it exists.
make_venv() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    "$PYTHON_BIN" -m venv "$VENV"
  fi
}

# pip_install ARGS...: pip into $VENV; its chatter goes to $LOG (shown on failure, or live with VERBOSE=1).
pip_install() {
  if [[ "${VERBOSE:-0}" == "1" ]]; then
    "$VENV/bin/python" -m pip install "${PIP_OPTS[@]}" "$@" 2>&1 | tee -a "$LOG"
  elif ! "$VENV/bin/python" -m pip install "${PIP_OPTS[@]}" "$@" >>"$LOG" 2>&1; then
    log "ERROR: pip install $* failed; last lines of $LOG:"
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}
