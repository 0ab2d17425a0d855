"""Agent steps per second of a run folder as it trained, and the time its whole run takes.

    python benchmarks/run_speed.py logs/dqn/BreakoutNoFrameskip-v4_1 --from-step 100000

Reads the run's `progress.csv` (SB3's `time/total_timesteps` and `time/time_elapsed`, the
wall time of training with its evaluations and checkpoints included). `--from-step` times
only the rows after that step, e.g. after DQN's `learning_starts`, whose random phase trains
nothing and runs several times faster than the rest. The projection for the run's
`total_timesteps` (or `--total`) is the measured time up to that step plus the remaining
steps at the measured rate. Each `--resume` (listed in run.yml) restarts SB3's clock at its
checkpoint's step: each session is timed on its own. Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import yaml

STEP, ELAPSED = "time/total_timesteps", "time/time_elapsed"


@dataclass(frozen=True)
class Span:
    steps: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")


def progress_points(run_dir: Path) -> list[tuple[int, float]]:
    """(step, seconds since this session's start) for every row of progress.csv."""
    path = run_dir / "progress.csv"
    if not path.is_file():
        fail(f"{path} does not exist: the run logged nothing yet")
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [(int(float(row[STEP])), float(row[ELAPSED])) for row in rows if row.get(ELAPSED)]


def spans(
    points: list[tuple[int, float]], from_step: int, restarts: list[int]
) -> tuple[Span, Span]:
    """The steps and seconds up to `from_step`, and after it. A resume at step R (`restarts`,
    from run.yml) restarted the clock: its session's first row counts from R and zero."""
    before, after = Span(0, 0.0), Span(0, 0.0)
    previous_step, previous_seconds = 0, 0.0
    pending = sorted(restarts)
    for step, seconds in points:
        while pending and pending[0] < step:
            previous_step, previous_seconds = max(previous_step, pending.pop(0)), 0.0
        step_delta, time_delta = step - previous_step, seconds - previous_seconds
        if step <= from_step:
            before = Span(before.steps + step_delta, before.seconds + time_delta)
        else:
            after = Span(after.steps + step_delta, after.seconds + time_delta)
        previous_step, previous_seconds = step, seconds
    return before, after


def fail(message: str) -> NoReturn:
    print(f"run_speed.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--from-step", type=int, default=0, help="time only the rows after it")
    parser.add_argument("--total", type=int, help="steps to project to (default: the run's)")
    args = parser.parse_args()
    if not (args.run_dir / "run.yml").is_file():
        fail(f"{args.run_dir} is not a run folder (no run.yml)")
    run = yaml.safe_load((args.run_dir / "run.yml").read_text(encoding="utf-8"))
    total = args.total or int(run["total_timesteps"])
    points = progress_points(args.run_dir)
    if not points or points[-1][0] <= args.from_step:
        fail(
            f"the run logged no rows after step {args.from_step:,}: "
            "lower --from-step or let it train longer"
        )
    restarts = [int(resume["from_step"]) for resume in run.get("resumes") or []]
    before, after = spans(points, args.from_step, restarts)
    print(f"run: {args.run_dir} ({run['algo']}, {run['env']}, device {run['device']})")
    print(f"logged: {points[-1][0]:,} of {total:,} steps")
    whole = Span(before.steps + after.steps, before.seconds + after.seconds)
    print(f"whole: {whole.steps:,} steps in {whole.seconds:,.0f} s = {whole.rate:,.0f} steps/s")
    if args.from_step:
        print(f"up to step {args.from_step:,}: {before.steps:,} steps in {before.seconds:,.0f} s")
    print(
        f"after step {args.from_step:,}: {after.steps:,} steps in {after.seconds:,.0f} s "
        f"= {after.rate:,.0f} steps/s"
    )
    projected = before.seconds + (total - before.steps) / after.rate
    print(f"projected for {total:,} steps: {hours(projected)}")


if __name__ == "__main__":
    main()
