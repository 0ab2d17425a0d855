#!/usr/bin/env bash
# Install zoo into .venv at the repository root (created if missing), with its test and lint tools.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
# PyTorch first, pinned to the CPU build zoo is tested with, so that pip does not pull a
# multi-GB CUDA build to satisfy the package's torch requirement.
pip install torch==2.13.0
pip install -e ".[dev,mlflow,wandb,slurm]"  # the trackers (tests/test_tracking.py) and Slurm (tests/test_slurm.py)
