#!/usr/bin/env bash
# The GPU check, one command, at most 8 minutes: agent steps per second on the CUDA device of
# the shipped Breakout DQN (eager and compiled, frames kept on the GPU), of the drq_eps
# preset (eager and compiled), and of A2C and PPO, each with the time 10M steps would take.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, zoo installed
#
# Each measurement is benchmarks/throughput.py (its docstring says what is timed); each has a
# time limit, so the whole stays under 8 minutes even where one stalls. The tables it prints
# go in the performance guide with the card's name.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

run() {  # LIMIT_SECONDS then throughput.py's arguments
    local limit="$1"
    shift
    echo
    echo "## throughput.py $*"
    timeout --kill-after=10 "$limit" "$PYTHON" benchmarks/throughput.py --device cuda --env Breakout "$@" \
        || echo "(stopped or failed with exit code $?)"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
start=$SECONDS
# The shipped DQN (Double + Dueling + 3-step, one env); compiled = compile: true.
run 170 --algo dqn --backends ale ale+compile --set frame_store=device \
    --steps 4000 --env-steps 0 --warmup 2000
# DrQ(eps) of the Atari-100k suite: one gradient step per agent step.
run 130 --algo dqn --preset drq_eps --backends ale ale+compile --set frame_store=device \
    --steps 2000 --env-steps 0 --warmup 1000
# The shipped A2C and PPO (16 and 8 envs).
run 120 --algo a2c ppo --backends ale --steps 20000 --env-steps 0 --warmup 2000
echo
echo "gpu_check.sh: $((SECONDS - start)) s"
