"""Experiment tracking (`--track mlflow|wandb`): a run's params, metrics and files, sent on.

The tracker is one more output of the run's SB3 logger (`TrackingFormat`), so it receives the
metrics TensorBoard receives, at the same global steps; the scalars zoo writes to TensorBoard
itself (each game's score, the evaluations) go through `track_scalars`. The tracked run's id is
kept in the run folder (`tracking.yml`): `zoo train --resume` continues that tracked run.

MLflow and W&B are optional extras, imported only when a run is tracked (zoo/runs/trackers.py).
Everything that can be refused (the extra missing, a store that cannot be reached or created)
is checked by `check_tracking` before any run folder is made.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from stable_baselines3.common.logger import KVWriter

from zoo.core.atomic import atomic_write_text
from zoo.core.errors import UserError
from zoo.core.yamlio import dump_yaml, read_yaml_file

TRACKERS = ("mlflow", "wandb")
TRACKING_FILE = "tracking.yml"
DEFAULT_MLFLOW_STORE = "mlruns"
_WANDB_DEFAULT_HOST = "https://api.wandb.ai"
_CONNECT_SECONDS = 3.0


@dataclass(frozen=True)
class Tracking:
    """Where a run is tracked: the tracker, its store or server, the group of runs (a tune
    study, a benchmark grid) and, once opened, the tracked run's id."""

    kind: str
    uri: str | None = None
    group: str | None = None
    run_id: str | None = None

    def in_group(self, group: str) -> Tracking:
        return replace(self, group=group)


def check_tracking(kind: str, uri: str | None) -> Tracking:
    """The tracking asked for, its URI made absolute; a missing extra or a store that cannot
    be reached or created is a UserError (before anything is written)."""
    if kind not in TRACKERS:
        raise UserError(f"--track {kind}: choose one of {', '.join(TRACKERS)}")
    if importlib.util.find_spec(kind) is None:
        raise UserError(f"--track {kind} needs its extra: pip install zoo[{kind}]")
    if kind == "mlflow":
        return Tracking(kind, _checked_mlflow_uri(uri))
    return Tracking(kind, _checked_wandb_host(uri))


def _checked_mlflow_uri(uri: str | None) -> str:
    if uri is None:
        uri = DEFAULT_MLFLOW_STORE
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        _check_answers(uri, "--track-uri", "start the tracking server or fix the address")
        return uri
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else uri).expanduser().absolute()
        _check_creatable(path, uri)
        return path.as_uri()
    if parsed.scheme == "sqlite":
        _check_creatable(Path(parsed.path.removeprefix("/")).absolute().parent, uri)
    return uri  # databricks, postgresql...: MLflow's own URIs, checked when opened


def _checked_wandb_host(uri: str | None) -> str | None:
    if uri is not None and urlparse(uri).scheme not in ("http", "https"):
        raise UserError(f"--track-uri {uri}: W&B takes its server's http(s) address")
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return uri  # nothing leaves the machine; `wandb sync` sends it later
    host = uri or os.environ.get("WANDB_BASE_URL") or _WANDB_DEFAULT_HOST
    _check_answers(host, "W&B server", "fix the address, or track offline: WANDB_MODE=offline")
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has(uri or _WANDB_DEFAULT_HOST)):
        raise UserError(
            "W&B is not logged in: run `wandb login`, or track offline with WANDB_MODE=offline "
            "(then `wandb sync` the run later)"
        )
    return uri


def _netrc_has(host_url: str) -> bool:
    import netrc

    try:
        return netrc.netrc().authenticators(urlparse(host_url).hostname or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _check_answers(url: str, what: str, hint: str) -> None:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=_CONNECT_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UserError(f"{what} {url} does not answer ({reason}); {hint}") from None


def _check_creatable(path: Path, uri: str) -> None:
    """The store folder exists as a writable folder, or can be made in one (not made here)."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not a folder" if not existing.is_dir() else "is not writable"
        raise UserError(
            f"--track-uri {uri}: cannot keep the tracking store there ({existing} {problem}); "
            "give a folder you can write to"
        )


def resumed_tracking(run_path: Path, asked: Tracking | None) -> Tracking | None:
    """The tracking of a run continued from its folder: the tracked run it started (kept in
    tracking.yml), else what was asked now (a new tracked run from the resumed step)."""
    saved = read_saved(run_path)
    if saved is None:
        return asked
    if asked is not None and asked.kind != saved.kind:
        raise UserError(
            f"{run_path} is tracked with {saved.kind}; resume it without --track or with "
            f"--track {saved.kind}"
        )
    checked = check_tracking(saved.kind, asked.uri if asked is not None else saved.uri)
    return replace(saved, uri=checked.uri)


def read_saved(run_path: Path) -> Tracking | None:
    path = run_path / TRACKING_FILE
    if not path.is_file():
        return None
    data = read_yaml_file(path, "tracking file")
    if not isinstance(data, dict) or data.get("tracker") not in TRACKERS or not data.get("run_id"):
        raise UserError(f"{path} is not a tracking file zoo wrote; remove it to track anew")
    return Tracking(data["tracker"], data.get("uri"), data.get("group"), str(data["run_id"]))


def save_tracking(run_path: Path, tracking: Tracking) -> None:
    data = {"tracker": tracking.kind, "uri": tracking.uri, "group": tracking.group,
            "run_id": tracking.run_id}  # fmt: skip
    atomic_write_text(run_path / TRACKING_FILE, dump_yaml(data))


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """config.yml as dotted keys (policy_kwargs.net_arch), each value as text."""
    params: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            params.update(flat_params(value, f"{name}."))
        else:
            params[name] = str(value)
    return params


class TrackingFormat(KVWriter):
    """An SB3 logger output sending each dump's numbers to the tracker, at the dump's step
    (TensorBoard's step). Closing it leaves the tracked run open: training ends it, after
    sending the final files."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        metrics = {
            key: float(value)
            for key, value in key_values.items()
            if _is_number(value) and "tensorboard" not in (key_excluded.get(key) or ())
        }
        if metrics:
            self.tracker.log_metrics(metrics, step)

    def close(self) -> None:
        pass


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def track_scalars(logger: Any, values: Mapping[str, float], step: int) -> None:
    """Send scalars zoo writes to TensorBoard directly to the run's tracker, if it has one."""
    for output in getattr(logger, "output_formats", ()):
        if isinstance(output, TrackingFormat):
            output.tracker.log_metrics({k: float(v) for k, v in values.items()}, step)
