#!/usr/bin/env bash
# The main job (README): on a fresh machine, build the environment, then record a small CoinRun
# data set, train the CPU preset through all stages, evaluate it and play it. Results go to
# ./demo_out (or the folder given with --out); run it again to resume after an interruption.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$(bash "$repo/scripts/setup_env.sh" --print-path)
cd "$repo"
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
exec "$venv/bin/worldmodels" demo "$@"
