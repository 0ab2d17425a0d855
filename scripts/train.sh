#!/usr/bin/env bash
# One command from a fresh clone to a training run: install, then `zoo train`.
#   bash scripts/train.sh                          # DQN on Breakout, the shipped settings
#   bash scripts/train.sh --algo a2c --env Pong    # any `zoo train` arguments instead
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
. .venv/bin/activate
if [ "$#" -eq 0 ]; then
    set -- --algo dqn --env Breakout
fi
exec zoo train "$@"
