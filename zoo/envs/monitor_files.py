"""Monitor files (`<rank>.monitor.csv`, SB3's format): what a resumed session reads back."""

from __future__ import annotations

import json
import os
from pathlib import Path


def monitor_file(monitor_dir: str, rank: int) -> Path:
    """The file SB3's make_vec_env gives env `rank` (and zoo's AleVecEnv likewise)."""
    return Path(os.path.join(monitor_dir, f"{rank}.monitor.csv"))


def first_session_start(monitor_dir: str, rank: int) -> float | None:
    """The `t_start` in the header of env `rank`'s monitor file, written when the run first
    started; None where there is no such file or header.

    Each row's `t` counts from it (SB3's load_results adds it back to order the games), so a
    resumed session counts from it too: with its own start, `t` began at 0 again and the
    resumed games sorted among the earlier ones."""
    try:
        with open(monitor_file(monitor_dir, rank), encoding="utf-8") as file:
            first_line = file.readline()
        header = json.loads(first_line[1:]) if first_line.startswith("#") else {}
        t_start = header.get("t_start") if isinstance(header, dict) else None
    except (OSError, ValueError):
        return None
    return float(t_start) if isinstance(t_start, (int, float)) else None
