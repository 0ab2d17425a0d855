"""The tracked run of a run folder, in MLflow or W&B: opened (or continued) when training starts,
told the metrics while it trains, given the final files and ended when it stops.

The libraries are imported here, when a run is tracked, so zoo runs without them. A tracker
that fails mid-run (a server gone away) is told once as a warning and then left alone: the run
folder keeps everything, and training goes on.
"""

from __future__ import annotations

import importlib
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.core.errors import UserError, one_line
from zoo.runs.tracking import Tracking, flat_params, resumed_tracking, save_tracking

_MLFLOW_STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
_MLFLOW_BATCH = 100  # MLflow takes at most 100 params per call
_MLFLOW_PARAM_CHARS = 6000
_EXPERIMENT = "zoo"


class Tracker:
    """Calls into a tracking library; after its first failure it only warns, once."""

    def __init__(self, tracking: Tracking, warn: Callable[[str], None]) -> None:
        self.tracking = tracking
        self.warn = warn
        self.broken = False

    def _safely(self, action: Callable[[], object]) -> None:
        if self.broken:
            return
        try:
            action()
        except Exception as error:  # any library error: tracking must not end the training
            self.broken = True
            self.warn(one_line(
                f"warning: {self.tracking.kind} tracking stopped ({type(error).__name__}: "
                f"{error}); training goes on, the run folder keeps every metric and file"
            ))  # fmt: skip

    def log_params(self, params: Mapping[str, str]) -> None:
        self._safely(lambda: self._log_params(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._safely(lambda: self._log_metrics(metrics, step))

    def log_files(self, paths: Sequence[Path]) -> None:
        self._safely(lambda: self._log_files([p for p in paths if p.exists()]))

    def finish(self, status: str) -> None:
        self._safely(lambda: self._finish(status))

    def _log_params(self, params: Mapping[str, str]) -> None:
        raise NotImplementedError

    def _log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        raise NotImplementedError

    def _log_files(self, paths: Sequence[Path]) -> None:
        raise NotImplementedError

    def _finish(self, status: str) -> None:
        raise NotImplementedError


class MlflowTracker(Tracker):
    def __init__(self, tracking: Tracking, name: str, folder: Path, warn: Callable[[str], None]):
        super().__init__(tracking, warn)
        self.entities = importlib.import_module("mlflow.entities")
        self.client = _mlflow_client(tracking)
        if tracking.run_id is not None:
            self.client.get_run(tracking.run_id)  # still there?
            self.client.update_run(tracking.run_id, status="RUNNING")
            self.run_id = tracking.run_id
            return
        experiment_id = _experiment_id(self.client, tracking.group or _EXPERIMENT)
        run = self.client.create_run(
            experiment_id, run_name=name, tags={"zoo.run_dir": str(folder.absolute())}
        )
        self.run_id = str(run.info.run_id)

    def _log_params(self, params: Mapping[str, str]) -> None:
        items = [
            self.entities.Param(_mlflow_key(key), value[:_MLFLOW_PARAM_CHARS])
            for key, value in params.items()
        ]
        for start in range(0, len(items), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + _MLFLOW_BATCH])

    def _log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        items = [self.entities.Metric(_mlflow_key(k), v, now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=items)

    def _log_files(self, paths: Sequence[Path]) -> None:
        for path in paths:
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), path.name)
            else:
                self.client.log_artifact(self.run_id, str(path))

    def _finish(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=_MLFLOW_STATUS.get(status, "FINISHED"))


def _mlflow_client(tracking: Tracking) -> Any:
    if tracking.uri is not None and tracking.uri.startswith("file:"):
        # MLflow 3 refuses its file store unless told to allow it; it is the store zoo uses.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return importlib.import_module("mlflow.tracking").MlflowClient(tracking_uri=tracking.uri)


def _experiment_id(client: Any, name: str) -> str:
    """The experiment's id, created if new. Runs that start side by side could both find it
    missing and create two of one name; `create_tracking_group` makes it before they start,
    and a run that loses a race all the same reads the winner's."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name))
    except importlib.import_module("mlflow.exceptions").MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def create_tracking_group(tracking: Tracking | None) -> None:
    """Create the group of runs that will start side by side (a study's trials and seed runs,
    a grid's cells) once, before they start: MLflow's experiment (W&B groups need nothing)."""
    if tracking is None or tracking.kind != "mlflow":
        return
    try:
        _experiment_id(_mlflow_client(tracking), tracking.group or _EXPERIMENT)
    except Exception as error:  # the library's own errors, as open_tracker says them
        raise UserError(one_line(
            f"cannot open the mlflow store ({type(error).__name__}: {error}); "
            "check --track-uri, or run without --track"
        )) from None  # fmt: skip


def _mlflow_key(key: str) -> str:
    # MLflow names: letters, digits, _ - . / and spaces.
    return re.sub(r"[^\w\-./ ]", "_", key)


class WandbTracker(Tracker):
    def __init__(
        self,
        tracking: Tracking,
        name: str,
        folder: Path,
        config: Mapping[str, Any],
        warn: Callable[[str], None],
    ):
        super().__init__(tracking, warn)
        self.wandb = importlib.import_module("wandb")
        settings: dict[str, Any] = {"console": "off", "silent": True}
        if tracking.uri is not None:
            settings["base_url"] = tracking.uri
        self.run = self.wandb.init(
            project=_EXPERIMENT,
            group=tracking.group,
            name=name,
            id=tracking.run_id,  # None: W&B makes one
            resume="allow",
            config={**config, "run_dir": str(folder.absolute())},
            settings=self.wandb.Settings(**settings),
            reinit="finish_previous",
        )
        # Metrics are plotted against zoo's global step, not W&B's own counter, which a
        # resumed run (going back to its checkpoint's step) could not reuse.
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")
        self.run_id = str(self.run.id)

    def _log_params(self, params: Mapping[str, str]) -> None:
        pass  # config.yml went in as the run's config when it was opened

    def _log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log({**metrics, "global_step": step})

    def _log_files(self, paths: Sequence[Path]) -> None:
        artifact = self.wandb.Artifact(f"run-{self.run_id}", type="run")
        for path in paths:
            if path.is_dir():
                artifact.add_dir(str(path), name=path.name)
            else:
                artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def _finish(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)


def open_tracker(
    asked: Tracking | None,
    run_path: Path,
    name: str,
    config: Mapping[str, Any],
    resumed: bool,
    warn: Callable[[str], None],
) -> Tracker | None:
    """The run's tracker: the tracked run of tracking.yml for a resumed run, a new one where
    tracking is asked for, else None. A tracked run that cannot be opened is a UserError."""
    tracking = resumed_tracking(run_path, asked) if resumed else asked
    if tracking is None:
        return None
    try:
        tracker: Tracker
        if tracking.kind == "mlflow":
            tracker = MlflowTracker(tracking, name, run_path, warn)
        else:
            tracker = WandbTracker(tracking, name, run_path, config, warn)
    except UserError:
        raise
    except Exception as error:  # the library's own errors: a store it refuses, a lost run
        raise UserError(one_line(
            f"cannot open the {tracking.kind} run ({type(error).__name__}: {error}); "
            "check --track-uri, or train without --track"
        )) from None  # fmt: skip
    if tracking.run_id is None:
        save_tracking(run_path, Tracking(tracking.kind, tracking.uri, tracking.group,
                                         tracker.run_id))  # fmt: skip
        tracker.log_params(flat_params(config))
    return tracker
