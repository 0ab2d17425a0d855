"""Where a study lives, and how its workers share it.

A journal file (the default: nothing to install, several processes on one machine), SQLite
(one worker) or PostgreSQL (any number of workers on any machines, with heartbeats that fail
and re-queue the trials of a killed worker). Workers take trials one at a time under a lock
shared by all of them (a file lock, or a PostgreSQL advisory lock), so a study of N trials
ends with exactly N complete or pruned ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import optuna
import psutil
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from zoo.errors import UserError

JOURNAL_FILE = "journal.log"
WORKER_ATTR = "worker"
# A trial whose worker was killed runs again, at most this many times.
MAX_RETRIES = 3

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# zoo runs its own heartbeat thread around ask/tell trials (see `heartbeat`).
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


@dataclass(frozen=True)
class StudyStorage:
    storage: optuna.storages.BaseStorage
    shown: str  # for messages and the dashboard command: no password
    claim: Callable[[], contextlib.AbstractContextManager[None]]  # the workers' shared lock
    heartbeat_interval: int | None  # None: this storage has no heartbeats

    @property
    def is_journal(self) -> bool:
        return isinstance(self.storage, JournalStorage)


def open_storage(
    spec: str | None,
    study_dir: Path,
    workers: int,
    heartbeat_interval: int,
    grace_period: int,
) -> StudyStorage:
    """`spec`: None (a journal file in the study folder), a journal file path, sqlite:///FILE
    or postgresql://USER@HOST/DB."""
    if spec is None or "://" not in spec:
        path = Path(spec) if spec is not None else study_dir / JOURNAL_FILE
        return _journal(path)
    scheme = spec.split("://", 1)[0].lower()
    if scheme.startswith("sqlite"):
        if workers > 1:
            raise UserError(
                "--storage sqlite: SQLite allows one writer at a time, so parallel workers fail "
                "with 'database is locked'; use the default journal file (one machine) or "
                "postgresql://... (many machines) for --workers > 1"
            )
        storage = _rdb(spec, None, None)
        return StudyStorage(storage, spec, lambda: _file_lock(study_dir / ".claim.lock"), None)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        # The driver zoo installs (psycopg 3), whatever SQLAlchemy's default for the scheme.
        url = "postgresql+psycopg://" + spec.split("://", 1)[1]
        storage = _rdb(url, heartbeat_interval, grace_period)
        return StudyStorage(
            storage, _without_password(spec), lambda: _advisory_lock(storage), heartbeat_interval
        )
    raise UserError(
        f"--storage {_without_password(spec)}: unsupported; give a journal file path, "
        "sqlite:///FILE (one worker) or postgresql://USER@HOST:PORT/DB"
    )


def _journal(path: Path) -> StudyStorage:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
    except OSError as error:
        raise UserError(f"cannot open the study journal {path}: {error.strerror}") from None
    lock_file = path.with_name(path.name + ".claim")
    return StudyStorage(JournalStorage(backend), str(path), lambda: _file_lock(lock_file), None)


def _rdb(url: str, heartbeat_interval: int | None, grace_period: int | None) -> RDBStorage:
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES) if heartbeat_interval else None
    try:
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=retry,
            engine_kwargs={"pool_pre_ping": True},
        )
    except (SQLAlchemyError, ArgumentError, ImportError, ValueError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        first = reason[0] if reason else type(error).__name__
        raise UserError(
            f"cannot reach the study database {_without_password(url)}: {first}; check the URL "
            "and that the server is running and accepts this user"
        ) from None


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _advisory_lock(storage: RDBStorage) -> Iterator[None]:
    """A lock every worker of every machine sees; the server drops it if the worker dies."""
    from sqlalchemy import text

    key = zlib.crc32(b"zoo tune: claim a trial")
    with storage.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


def worker_identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def fail_abandoned_trials(study: optuna.Study, storage: StudyStorage) -> list[int]:
    """Mark the running trials of killed workers failed and queue them again.

    PostgreSQL: trials whose heartbeat stopped for the grace period (Optuna's own check).
    Journal and SQLite: trials started by a process of this machine that no longer exists.
    Returns the numbers of the trials failed here.
    """
    if storage.heartbeat_interval is not None:
        before = {t.number for t in study.get_trials(False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(False, states=(TrialState.RUNNING,))}
        return sorted(before - after)
    failed = []
    me = worker_identity()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR) or {}
        if worker.get("host") != me["host"] or worker.get("pid") in (None, me["pid"]):
            continue
        if psutil.pid_exists(int(worker["pid"])):
            continue
        study._storage.set_trial_user_attr(
            trial._trial_id, "abandoned", f"its worker (pid {worker['pid']}) died"
        )
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        failed.append(trial.number)
        retries = int(trial.user_attrs.get("retries", 0))
        if retries < MAX_RETRIES:
            study.enqueue_trial(
                dict(trial.params),
                user_attrs={"retry_of": trial.number, "retries": retries + 1},
            )
    return failed


def record_first_heartbeat(storage: StudyStorage, trial: optuna.Trial) -> None:
    if storage.heartbeat_interval is not None and isinstance(storage.storage, RDBStorage):
        storage.storage.record_heartbeat(trial._trial_id)


@contextlib.contextmanager
def heartbeat(storage: StudyStorage, trial: optuna.Trial) -> Iterator[None]:
    """Record the trial's heartbeat while it runs (PostgreSQL); nothing for other storages."""
    interval = storage.heartbeat_interval
    rdb = storage.storage
    if interval is None or not isinstance(rdb, RDBStorage):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is retried; the trial goes on
                rdb.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="zoo-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
