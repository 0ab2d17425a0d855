"""Evaluation games one after another against side by side, with a trained agent.

    python benchmarks/evaluation_speed.py RUN_DIR [--games 10] [--model best|final|checkpoint]

Plays the same `--games` whole games (game i with seed `--seed` + i, the run's eval_actions
and eval_epsilon, its frame cap) three ways and prints the seconds of each and whether the
per-game scores agree: SB3's evaluate_policy on one env per game (the sequential baseline),
zoo's GameTable with one seat (sequential) and with one seat per game (side by side, one
network call per step for all games). Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch as th

from zoo.algorithms.model_loading import load_model
from zoo.envs.stack import make_eval_env
from zoo.results.enjoy import choose_model, run_config
from zoo.runs.evaluation import ActionChooser, GameTable, play_evaluation_games
from zoo.runs.folders import open_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder")
    parser.add_argument("--games", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", choices=["best", "final", "checkpoint"])
    args = parser.parse_args()
    chosen = choose_model(open_run(Path(args.run)), args.model)
    config = run_config(chosen.run)
    sampled = config.evaluation.sampled
    epsilon = config.evaluation.epsilon
    max_frames = config.evaluation.max_frames
    seeds = [args.seed + game for game in range(args.games)]
    settings = config.env_settings()
    print(f"{chosen.kind} model {chosen.path}, {args.games} games, seeds {seeds[0]}-{seeds[-1]}, "
          f"{'sampled' if sampled else 'greedy'} actions, epsilon {epsilon:g}")  # fmt: skip
    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads {th.get_num_threads()}"
    )

    model = load_model(chosen.path, device="cpu")
    if not sampled and epsilon == 0:
        started = time.monotonic()
        baseline = []
        for seed in seeds:
            env = make_eval_env(config.env, settings, seed, max_frames)
            baseline.append(play_evaluation_games(model, env, 1, 0.0, seed)[0][0])
            env.close()
        print(f"SB3 evaluate_policy, one game after another: {time.monotonic() - started:7.1f} s")
    else:
        baseline = None  # SB3's loop draws its random numbers per batch, not per game

    def table(seats: int) -> tuple[list[float], list[int], float]:
        started = time.monotonic()
        games = GameTable(lambda s: make_eval_env(config.env, settings, s, max_frames), seats)
        scores, lengths = games.play(ActionChooser(model, epsilon, sampled), seeds)
        return scores, lengths, time.monotonic() - started

    one, lengths, one_seconds = table(1)
    print(f"zoo GameTable, 1 seat (sequential):          {one_seconds:7.1f} s")
    many, _, many_seconds = table(args.games)
    print(f"zoo GameTable, {args.games} seats (side by side):      {many_seconds:7.1f} s "
          f"({one_seconds / many_seconds:.2f}x)")  # fmt: skip
    print(f"scores: {one}")
    print(f"mean {sum(one) / len(one):.1f}, mean length {sum(lengths) / len(lengths):,.0f} frames")
    print(f"same scores side by side as sequential: {one == many}"
          + (f"; as SB3's loop: {baseline == one}" if baseline is not None else ""))  # fmt: skip


if __name__ == "__main__":
    main()
