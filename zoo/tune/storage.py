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
import json
import os
import socket
import threading
import time
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

from zoo.core.errors import UserError

JOURNAL_FILE = "journal.log"
# Bytes of a journal's first line read to tell a journal from another file.
JOURNAL_LINE_LIMIT = 1 << 20
SCHEMA_LOCK_KEY = zlib.crc32(b"zoo tune: create the study tables")
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


def open_storage(
    spec: str | None,
    study_dir: Path,
    workers: int,
    heartbeat_interval: int,
    grace_period: int,
) -> StudyStorage:
    """`spec`: None (a journal file in the study folder), a journal file path, sqlite:///FILE
    or postgresql://USER@HOST/DB."""
    journal = journal_path(spec, study_dir)
    if journal is not None:
        return _journal(journal)
    assert spec is not None
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
        _check_postgres_url(spec)
        # The driver zoo installs (psycopg 3), whatever SQLAlchemy's default for the scheme.
        url = "postgresql+psycopg://" + spec.split("://", 1)[1]
        # Optuna creates its tables on first use; workers started together on a new database
        # would race to create them, so one at a time does.
        with _advisory_lock_on(url, SCHEMA_LOCK_KEY):
            storage = _rdb(url, heartbeat_interval, grace_period)
        return StudyStorage(
            storage, _without_password(spec), lambda: _advisory_lock(storage), heartbeat_interval
        )
    raise UserError(
        f"--storage {_without_password(spec)}: unsupported; give a journal file path, "
        "sqlite:///FILE (one worker) or postgresql://USER@HOST:PORT/DB"
    )


def journal_path(spec: str | None, study_dir: Path) -> Path | None:
    """The journal file a --storage value names (None: the default one); None for a URL."""
    if spec is None:
        return study_dir / JOURNAL_FILE
    if not spec.strip():
        raise UserError(
            "--storage '': give a journal file path, sqlite:///FILE or postgresql://USER@HOST/DB"
        )
    return Path(spec) if "://" not in spec else None


def _journal(path: Path) -> StudyStorage:
    if path.is_dir():
        raise UserError(
            f"--storage {path}: that is a folder; give a journal file such as {path / JOURNAL_FILE}"
        )
    _check_is_journal(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
    except OSError as error:
        raise UserError(f"cannot open the study journal {path}: {error.strerror}") from None
    try:
        storage = JournalStorage(backend)  # replays the whole journal
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        if isinstance(error, KeyError):
            reason = f"a record lacks {reason}"
        raise UserError(
            f"{path}: the study journal is damaged ({reason}); keep it aside and start the "
            "study again with another --study or --storage"
        ) from None
    lock_file = path.with_name(path.name + ".claim")
    return StudyStorage(storage, str(path), lambda: _file_lock(lock_file), None)


def _check_is_journal(path: Path) -> None:
    """Refuse a file that is not an Optuna journal before Optuna appends a record to it."""
    for _ in range(10):
        try:
            with open(path, "rb") as file:
                first = file.readline(JOURNAL_LINE_LIMIT)
        except FileNotFoundError:
            return  # a new journal
        except OSError as error:
            raise UserError(f"cannot read the study journal {path}: {error.strerror}") from None
        if not first or first.endswith(b"\n"):
            break
        time.sleep(0.1)  # a worker started at the same moment may be writing the first record
    if not first:
        return  # empty: Optuna starts the journal here
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not {"op_code", "worker_id"} <= record.keys():
        raise UserError(
            f"--storage {path}: this file is not an Optuna study journal; it is left as it is. "
            "Give a new file name, an existing journal or a database URL"
        )


def _check_postgres_url(spec: str) -> None:
    """A URL missing its host or database would quietly use a local database named after the
    user; refuse it. A Unix socket folder may come as ?host=/path."""
    parts = urlsplit(spec)
    host = parts.hostname or "host=" in parts.query
    if not host or not parts.path.strip("/"):
        raise UserError(
            f"--storage {_without_password(spec)}: name the server and the database, "
            "postgresql://USER@HOST:PORT/DB"
        )


def _rdb(url: str, heartbeat_interval: int | None, grace_period: int | None) -> RDBStorage:
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES) if heartbeat_interval else None
    with _database_errors(url):
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=retry,
            engine_kwargs={"pool_pre_ping": True},
        )


@contextlib.contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """A database that cannot be reached or used becomes one line."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, ArgumentError, ImportError, ValueError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        first = reason[0] if reason else type(error).__name__
        raise UserError(
            f"cannot reach the study database {_without_password(url)}: {first}; check the URL "
            "and that the server is running and accepts this user"
        ) from None


@contextlib.contextmanager
def _advisory_lock_on(url: str, key: int) -> Iterator[None]:
    """A PostgreSQL advisory lock held on a connection of its own while the block runs."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    with _database_errors(url):
        engine = create_engine(url, poolclass=NullPool)
        connection = engine.connect()
    try:
        with _database_errors(url):
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
        yield
    finally:
        # Closing the connection ends its session, which releases the lock.
        connection.close()
        engine.dispose()


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
