#!/usr/bin/env bash
# The test command (README): builds the pinned environment if needed, then runs pytest.
#
#   bash scripts/test.sh              the default suite (fast, a few minutes on 2 cores)
#   bash scripts/test.sh -m slow      the slow end-to-end checks
#   bash scripts/test.sh tests/test_cli.py -x   any pytest arguments
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$repo/scripts/setup_env.sh" --print-path)
cd "$repo"
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest "$@"
