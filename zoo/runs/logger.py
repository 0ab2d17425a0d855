"""The SB3 logger of a run folder: TensorBoard events and `progress.csv`.

A resumed run writes into the same folder and continues both from its checkpoint's step:
TensorBoard is told to hide what the first session logged after that step (`purge_step`,
so the curve goes on instead of doubling back), and `progress.csv` keeps its earlier rows up
to that step and appends after them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import (
    CSVOutputFormat,
    KVWriter,
    Logger,
    TensorBoardOutputFormat,
)
from torch.utils.tensorboard import SummaryWriter

from zoo.core.atomic import atomic_write_text
from zoo.runs.tracking import TrackingFormat

PROGRESS_FILE = "progress.csv"
_STEP_COLUMN = "time/total_timesteps"


class ContinuedTensorBoardFormat(TensorBoardOutputFormat):
    def __init__(self, folder: str, purge_step: int) -> None:
        # SB3's constructor only opens a SummaryWriter; this one purges after `purge_step`.
        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


class ContinuedCSVFormat(CSVOutputFormat):
    """progress.csv with the rows up to `last_step` kept and new rows appended after them."""

    def __init__(self, filename: str, last_step: int) -> None:
        path = Path(filename)
        header, rows = _read_progress(path)
        kept = [row for row in rows if _row_step(header, row) <= last_step]
        if header:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows([header, *kept])
            atomic_write_text(path, buffer.getvalue())
        else:
            path.write_text("")
        self.file = open(path, "r+")  # noqa: SIM115  (SB3 closes it)
        self.file.seek(0, io.SEEK_END)
        self.keys = list(header)
        self.separator = ","
        self.quotechar = '"'


def _read_progress(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as file:
        lines = list(csv.reader(file))
    if not lines:
        return [], []
    return lines[0], [line for line in lines[1:] if len(line) == len(lines[0])]


def _row_step(header: list[str], row: list[str]) -> float:
    if _STEP_COLUMN not in header:
        return 0
    try:
        return float(row[header.index(_STEP_COLUMN)])
    except ValueError:
        return float("inf")


def run_logger(folder: Path, resume_step: int | None = None, tracker: Any = None) -> Logger:
    """Logger writing TensorBoard and progress.csv into `folder`, continuing at `resume_step`,
    and sending the same metrics to `tracker` (--track) where there is one."""
    progress = folder / PROGRESS_FILE
    formats: list[KVWriter]
    if resume_step is None:
        formats = [TensorBoardOutputFormat(str(folder)), CSVOutputFormat(str(progress))]
    else:
        formats = [
            ContinuedTensorBoardFormat(str(folder), purge_step=resume_step),
            ContinuedCSVFormat(str(progress), last_step=resume_step),
        ]
    if tracker is not None:
        formats.append(TrackingFormat(tracker))
    return Logger(folder=str(folder), output_formats=formats)
