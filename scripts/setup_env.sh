#!/usr/bin/env bash
# Build (or reuse) the project's pinned virtual environment and install the project into it.
#
#   bash scripts/setup_env.sh               build if needed, install worldmodels + plug-ins, print nothing else
#   bash scripts/setup_env.sh --print-path  print the environment's path (builds it first if needed)
#
# The third-party packages are pinned in constraints/ci.txt. The environment lives OUTSIDE the
# clone, in $WORLDMODELS_VENV_CACHE (default ~/.cache/worldmodels), in a folder named by a hash
# of the constraints and the Python version, so CI and repeated runs reuse it; when it is absent
# it is built from nothing (about 2 minutes: torch and torchvision come from the local wheel
# cache where one exists). Our own packages are (re)installed editable each time (seconds).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python_bin=${WORLDMODELS_PYTHON:-$(command -v python3.11 || command -v python3)}
cache=${WORLDMODELS_VENV_CACHE:-$HOME/.cache/worldmodels}
pyver=$("$python_bin" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$( (cat "$repo/constraints/ci.txt"; echo "python $pyver") | sha256sum | cut -c1-16)
venv="$cache/venv-$key"

log() { [ "${1:-}" = "" ] || echo "[setup_env] $*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.lock-$key"
flock 9  # one builder at a time; others wait and then reuse its result
if [ ! -f "$venv/.complete" ]; then
  log "building the pinned environment in $venv (first run only, about 2 minutes)"
  rm -rf "$venv"  # a half-built environment from an interrupted run
  build_log="$cache/build-$key.log"
  # pip's own chatter (index warnings, progress) goes to the log; it is shown only if a step fails.
  if ! {
    "$python_bin" -m venv "$venv" &&
      "$venv/bin/python" -m pip install --quiet --upgrade -c "$repo/constraints/ci.txt" pip setuptools wheel &&
      # torch first, exactly pinned, so nothing resolves a different (multi-GB) build.
      "$venv/bin/python" -m pip install --quiet -c "$repo/constraints/ci.txt" torch torchvision &&
      "$venv/bin/python" -m pip install --quiet -c "$repo/constraints/ci.txt" -r "$repo/constraints/requirements.txt"
  } >"$build_log" 2>&1; then
    tail -n 60 "$build_log" >&2
    log "building the environment failed; the whole log is $build_log"
    exit 1
  fi
  touch "$venv/.complete"
fi

# Our packages: editable, no dependency resolution (all pinned above). setuptools prints banner
# walls about editable installs on every run; keep its output and show it only if pip fails.
install_log=$(mktemp)
if ! "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation \
  -e "$repo" -e "$repo/plugins/genie" -e "$repo/plugins/iris" -e "$repo/examples/plugin_template" >"$install_log" 2>&1; then
  cat "$install_log" >&2
  rm -f "$install_log"
  exit 1
fi
rm -f "$install_log"

if [ "${1:-}" = "--print-path" ]; then
  echo "$venv"
fi
