"""The persistent job queue, in the store's SQLite catalogue (``jobs`` table).

Jobs are never deleted, they only change state::

    queued -> running -> finished | failed | cancelled
    running -> queued            (the worker stopped answering: re-queued by ``reap_stale``)
    failed | cancelled -> queued (``retry``)

Every state change is also appended to ``job_events`` (an audit log). A claim is atomic
(``BEGIN IMMEDIATE`` + a guarded ``UPDATE``); a running job carries its worker's id and a
heartbeat, and every later write by a worker is guarded by ``worker = ?`` and
``state = 'running'``, so a job that was re-queued or cancelled can never be finished by
the worker that lost it: no job runs (or lands) twice.

A job's ``executor`` says who runs it. ``local`` jobs are claimed by ``worker.Worker``
processes; ``slurm`` jobs are never claimed: ``runs.slurm`` submits each to Slurm, records
its Slurm id here (as the job's worker, ``slurm:<id>``), and moves it through the same
states from what Slurm and the job's files say (``external_update``), on the head side
only, since compute nodes never open this catalogue.

The ``workers`` table (``record_worker``, ``live_workers``) is how an executor finds its
local worker processes again after a restart.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from seedlab.runs.spec import JobSpec
from seedlab.store import Store, utc_now

STATES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
EXECUTORS = ("local", "slurm")

JOBS_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec TEXT NOT NULL,
    task TEXT NOT NULL,
    size TEXT NOT NULL,
    pretrain_seed TEXT NOT NULL,
    finetune_seed INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'finished', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    device TEXT,
    heartbeat REAL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    phase TEXT,
    step INTEGER,
    total INTEGER,
    loss REAL,
    eta_s REAL,
    message TEXT,
    run_dir TEXT,
    run_id TEXT,
    executor TEXT NOT NULL DEFAULT 'local',
    slurm_id TEXT,
    slurm_state TEXT,
    slurm_options TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
CREATE TRIGGER IF NOT EXISTS jobs_no_delete BEFORE DELETE ON jobs
BEGIN SELECT RAISE(ABORT, 'jobs are never deleted, only change state'); END;
CREATE TABLE IF NOT EXISTS job_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    worker TEXT,
    message TEXT
);
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    device TEXT,
    started_at TEXT NOT NULL,
    heartbeat REAL,
    state TEXT NOT NULL,
    job_id INTEGER
);
"""

JOB_COLUMNS = ["id", "task", "size", "pretrain_seed", "finetune_seed", "state", "attempts",
               "worker", "device", "heartbeat", "created_at", "started_at", "finished_at",
               "phase", "step", "total", "loss", "eta_s", "message", "run_dir", "run_id",
               "executor", "slurm_id", "slurm_state", "spec"]
# Columns added after the first release of the jobs table: added to older catalogues.
_ADDED_COLUMNS = {"executor": "TEXT NOT NULL DEFAULT 'local'", "slurm_id": "TEXT",
                  "slurm_state": "TEXT", "slurm_options": "TEXT"}


@dataclass
class Job:
    """One row of the ``jobs`` table, with its spec parsed."""

    id: int
    spec: JobSpec
    state: str
    attempts: int
    worker: str | None
    run_dir: str | None
    message: str | None
    executor: str = "local"
    slurm_id: str | None = None
    slurm_state: str | None = None
    slurm_options: str | None = None


@contextlib.contextmanager
def connect(store: Store) -> Iterator[sqlite3.Connection]:
    """A short-lived autocommit connection to the catalogue with the jobs tables in place."""
    con = sqlite3.connect(store.catalog_path, timeout=60, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout = 60000")
        con.executescript(JOBS_SCHEMA)
        have = {row[1] for row in con.execute("PRAGMA table_info(jobs)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in have:
                with contextlib.suppress(sqlite3.OperationalError):  # another process won
                    con.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def _immediate(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _event(con: sqlite3.Connection, job_id: int, state: str, worker: str | None,
           message: str | None) -> None:
    con.execute("INSERT INTO job_events (job_id, at, state, worker, message) VALUES (?, ?, ?, ?, ?)",
                (job_id, utc_now(), state, worker, message))


def _job(row: tuple) -> Job:
    job_id, spec, *rest = row
    return Job(job_id, JobSpec.from_json(spec), *rest)


_JOB_SELECT = ("SELECT id, spec, state, attempts, worker, run_dir, message, executor, slurm_id,"
               " slurm_state, slurm_options FROM jobs")


def new_worker_id(device: str = "cpu") -> str:
    """A worker id that names its host and process: ``host:pid:device``."""
    return f"{socket.gethostname()}:{os.getpid()}:{device}:{time.monotonic_ns() % 100000}"


# -- submitting ------------------------------------------------------------------------
def active_keys(store: Store) -> set[tuple[str, str, str, int]]:
    """Keys of the jobs that are queued or running."""
    with connect(store) as con:
        rows = con.execute("SELECT task, size, pretrain_seed, finetune_seed FROM jobs"
                           " WHERE state IN (?, ?)", ACTIVE).fetchall()
    return {(t, s, p, int(f)) for t, s, p, f in rows}


def submit(store: Store, specs: Iterable[JobSpec], *, skip_existing: bool = True,
           executor: str = "local") -> list[int]:
    """Queue jobs for ``executor`` (``'local'`` workers or ``'slurm'``); returns the new
    job ids.

    With ``skip_existing`` (the default) a job is skipped when its run is already in the
    store or a job for the same run is queued or running."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    specs = list(specs)
    skip: set = set()
    if skip_existing:
        skip = active_keys(store)
        for task in {s.task for s in specs}:
            skip |= store.run_keys(task)
    ids = []
    now = utc_now()
    with connect(store) as con, _immediate(con):
        for spec in specs:
            if spec.key in skip:
                continue
            skip.add(spec.key)
            cur = con.execute(
                "INSERT INTO jobs (spec, task, size, pretrain_seed, finetune_seed, state,"
                " created_at, executor) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                (spec.to_json(), spec.task, spec.size, spec.pretrain_seed, spec.finetune_seed, now,
                 executor))
            ids.append(int(cur.lastrowid))
            _event(con, ids[-1], "queued", None, "submitted")
    return ids


# -- workers' side ---------------------------------------------------------------------
def claim(store: Store, worker: str, device: str = "cpu") -> Job | None:
    """Atomically take the oldest queued local job for ``worker``; None when there is none
    (jobs for Slurm are never claimed by a local worker)."""
    with connect(store) as con, _immediate(con):
        row = con.execute(_JOB_SELECT + " WHERE state = 'queued' AND executor = 'local'"
                          " ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        cur = con.execute(
            "UPDATE jobs SET state = 'running', worker = ?, device = ?, heartbeat = ?,"
            " started_at = ?, finished_at = NULL, attempts = attempts + 1, step = 0, total = NULL,"
            " loss = NULL, eta_s = NULL, phase = 'starting', message = NULL"
            " WHERE id = ? AND state = 'queued'",
            (worker, device, time.time(), utc_now(), row[0]))
        if cur.rowcount != 1:
            return None
        _event(con, row[0], "running", worker, f"claimed on {device}")
    job = _job(row)
    job.state, job.worker, job.attempts = "running", worker, job.attempts + 1
    return job


def heartbeat(store: Store, job_id: int, worker: str) -> bool:
    """Refresh a running job's heartbeat; False when the job is no longer this worker's
    (cancelled or re-queued): the worker must stop it."""
    with connect(store) as con:
        cur = con.execute("UPDATE jobs SET heartbeat = ? WHERE id = ? AND worker = ?"
                          " AND state = 'running'", (time.time(), job_id, worker))
        return cur.rowcount == 1


def progress(store: Store, job_id: int, worker: str, *, phase: str, step: int, total: int,
             loss: float | None, eta_s: float | None, run_dir: str | None = None) -> bool:
    """Record progress of a running job; False when the job is no longer this worker's."""
    with connect(store) as con:
        cur = con.execute(
            "UPDATE jobs SET phase = ?, step = ?, total = ?, loss = ?, eta_s = ?, heartbeat = ?,"
            " run_dir = COALESCE(?, run_dir) WHERE id = ? AND worker = ? AND state = 'running'",
            (phase, step, total, loss, eta_s, time.time(), run_dir, job_id, worker))
        return cur.rowcount == 1


def finish(store: Store, job_id: int, worker: str, *, run_dir: str, run_id: str,
           message: str = "") -> bool:
    """Mark a job finished (only if it is still this worker's running job)."""
    with connect(store) as con, _immediate(con):
        cur = con.execute(
            "UPDATE jobs SET state = 'finished', finished_at = ?, run_dir = ?, run_id = ?,"
            " message = ?, phase = 'done', eta_s = 0 WHERE id = ? AND worker = ?"
            " AND state = 'running'", (utc_now(), run_dir, run_id, message, job_id, worker))
        if cur.rowcount == 1:
            _event(con, job_id, "finished", worker, message)
        return cur.rowcount == 1


def fail(store: Store, job_id: int, worker: str, reason: str) -> bool:
    """Mark a job failed with ``reason`` in plain words."""
    with connect(store) as con, _immediate(con):
        cur = con.execute(
            "UPDATE jobs SET state = 'failed', finished_at = ?, message = ? WHERE id = ?"
            " AND worker = ? AND state = 'running'", (utc_now(), reason, job_id, worker))
        if cur.rowcount == 1:
            _event(con, job_id, "failed", worker, reason)
        return cur.rowcount == 1


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _worker_gone(worker: str | None) -> bool:
    """True when ``worker`` ran on this host and its process no longer exists."""
    if not worker:
        return False
    parts = worker.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    return not pid_alive(int(parts[1]))


def reap_stale(store: Store, timeout_s: float = 120.0, max_attempts: int = 3) -> list[tuple[int, str]]:
    """Find running jobs whose worker stopped answering and re-queue them (or fail them
    after ``max_attempts``). A worker is gone when its heartbeat is older than
    ``timeout_s``, or when it ran on this host and its process has exited. Only local jobs:
    a Slurm job's liveness is Slurm's to say (``runs.slurm.sync``).

    Returns ``(job id, new state)`` for each job changed."""
    changed = []
    now = time.time()
    with connect(store) as con, _immediate(con):
        rows = con.execute("SELECT id, worker, heartbeat, attempts FROM jobs"
                           " WHERE state = 'running' AND executor = 'local'").fetchall()
        for job_id, worker, beat, attempts in rows:
            age = now - (beat or 0)
            if age <= timeout_s and not _worker_gone(worker):
                continue
            why = (f"worker {worker} stopped answering (last heartbeat {age:.0f} s ago)"
                   if age > timeout_s else f"worker {worker} exited while running the job")
            if attempts >= max_attempts:
                state, message = "failed", f"{why}; gave up after {attempts} attempts"
            else:
                state, message = "queued", f"{why}; re-queued"
            cur = con.execute(
                "UPDATE jobs SET state = ?, message = ?, worker = NULL, phase = NULL,"
                " finished_at = CASE WHEN ? = 'failed' THEN ? ELSE NULL END"
                " WHERE id = ? AND state = 'running' AND worker IS ?",
                (state, message, state, utc_now(), job_id, worker))
            if cur.rowcount == 1:
                _event(con, job_id, state, worker, message)
                changed.append((job_id, state))
    return changed


# -- external executors (Slurm): the head side moves the job ---------------------------
def set_external(store: Store, job_id: int, *, slurm_id: str, options: str) -> bool:
    """Record that queued job ``job_id`` was submitted to Slurm as ``slurm_id`` with
    ``options`` (JSON); its worker becomes ``slurm:<slurm_id>``. False when the job is no
    longer queued (cancelled meanwhile): the caller must cancel the Slurm job."""
    worker = f"slurm:{slurm_id}"
    message = f"submitted to Slurm as {slurm_id}"
    with connect(store) as con, _immediate(con):
        cur = con.execute(
            "UPDATE jobs SET slurm_id = ?, slurm_options = ?, slurm_state = 'SUBMITTED',"
            " worker = ?, attempts = attempts + 1, message = ? WHERE id = ? AND state = 'queued'"
            " AND executor = 'slurm'", (slurm_id, options, worker, message, job_id))
        if cur.rowcount == 1:
            _event(con, job_id, "queued", worker, message)
        return cur.rowcount == 1


def external_update(store: Store, job_id: int, worker: str | None, *, state: str,
                    slurm_state: str | None = None, message: str | None = None,
                    device: str | None = None, phase: str | None = None,
                    step: int | None = None, total: int | None = None,
                    loss: float | None = None, eta_s: float | None = None,
                    run_dir: str | None = None, run_id: str | None = None) -> bool:
    """Move an externally run job (its worker is ``worker``) to ``state`` with what its
    executor reports. Only a queued or running job with that worker changes, so a job that
    was cancelled or resubmitted meanwhile is left alone; returns whether it changed.
    A change of state is logged in ``job_events``."""
    if state not in STATES:
        raise ValueError(f"state {state!r} is not one of {', '.join(STATES)}")
    now = utc_now()
    ended = state not in ACTIVE
    with connect(store) as con, _immediate(con):
        row = con.execute("SELECT state FROM jobs WHERE id = ? AND worker IS ? AND state IN"
                          " (?, ?)", (job_id, worker, *ACTIVE)).fetchone()
        if row is None:
            return False
        con.execute(
            "UPDATE jobs SET state = ?, slurm_state = COALESCE(?, slurm_state),"
            " message = COALESCE(?, message), device = COALESCE(?, device),"
            " phase = COALESCE(?, phase), step = COALESCE(?, step), total = COALESCE(?, total),"
            " loss = COALESCE(?, loss), eta_s = COALESCE(?, eta_s),"
            " run_dir = COALESCE(?, run_dir), run_id = COALESCE(?, run_id), heartbeat = ?,"
            " started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ?"
            " ELSE started_at END,"
            " finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE id = ?",
            (state, slurm_state, message, device, phase, step, total, loss, eta_s, run_dir,
             run_id, time.time(), state, now, ended, now, job_id))
        if row[0] != state:
            _event(con, job_id, state, worker, message)
    return True


def set_slurm_state(store: Store, job_id: int, slurm_id: str, slurm_state: str) -> bool:
    """Record what Slurm now says of a job's Slurm attempt ``slurm_id`` (a job that has
    ended for seedlab can still be completing in Slurm); the job's state is unchanged."""
    with connect(store) as con:
        cur = con.execute("UPDATE jobs SET slurm_state = ? WHERE id = ? AND slurm_id = ?",
                          (slurm_state, job_id, slurm_id))
        return cur.rowcount == 1


# -- the workers table ------------------------------------------------------------------
def record_worker(store: Store, worker_id: str, pid: int, device: str, state: str,
                  job_id: int | None = None) -> None:
    """Insert or update a row of the ``workers`` table (the pool is found again from it)."""
    host = socket.gethostname()
    with connect(store) as con:
        con.execute(
            "INSERT INTO workers (worker_id, pid, host, device, started_at, heartbeat, state,"
            " job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET"
            " heartbeat = excluded.heartbeat, state = excluded.state, job_id = excluded.job_id",
            (worker_id, pid, host, device, utc_now(), time.time(), state, job_id))


def live_workers(store: Store) -> pd.DataFrame:
    """Workers that have not exited (on this host: whose process still exists)."""
    with connect(store) as con:
        rows = con.execute("SELECT worker_id, pid, host, device, started_at, heartbeat, state,"
                           " job_id FROM workers WHERE state != 'exited' ORDER BY started_at"
                           ).fetchall()
    frame = pd.DataFrame(rows, columns=["worker_id", "pid", "host", "device", "started_at",
                                        "heartbeat", "state", "job_id"])
    here = socket.gethostname()
    alive = [h != here or pid_alive(int(p)) for h, p in zip(frame["host"], frame["pid"])]
    return frame.loc[pd.Series(alive, index=frame.index, dtype=bool)].reset_index(drop=True)


# -- users' side -----------------------------------------------------------------------
def cancel(store: Store, job_id: int) -> str:
    """Cancel a queued or running job (a running job's worker stops at its next heartbeat).
    Returns the job's state after the call."""
    with connect(store) as con, _immediate(con):
        row = con.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id}")
        if row[0] not in ACTIVE:
            return row[0]
        con.execute("UPDATE jobs SET state = 'cancelled', finished_at = ?, message = ?"
                    " WHERE id = ?", (utc_now(), f"cancelled while {row[0]}", job_id))
        _event(con, job_id, "cancelled", None, f"cancelled while {row[0]}")
    return "cancelled"


def retry(store: Store, job_id: int) -> str:
    """Queue a failed or cancelled job again. Returns the job's state after the call."""
    with connect(store) as con, _immediate(con):
        row = con.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id}")
        if row[0] not in ("failed", "cancelled"):
            return row[0]
        con.execute("UPDATE jobs SET state = 'queued', worker = NULL, finished_at = NULL,"
                    " attempts = 0, slurm_state = NULL, phase = NULL, message = ? WHERE id = ?",
                    (f"retried after {row[0]}", job_id))
        _event(con, job_id, "queued", None, f"retried after {row[0]}")
    return "queued"


def get(store: Store, job_id: int) -> Job:
    with connect(store) as con:
        row = con.execute(_JOB_SELECT + " WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise KeyError(f"no job {job_id}")
    return _job(row)


def jobs(store: Store, state: str | Iterable[str] | None = None) -> pd.DataFrame:
    """The jobs table (``JOB_COLUMNS``), newest first."""
    query = f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs"
    params: list[Any] = []
    if state is not None:
        states = [state] if isinstance(state, str) else list(state)
        query += f" WHERE state IN ({', '.join('?' for _ in states)})"
        params = states
    with connect(store) as con:
        rows = con.execute(query + " ORDER BY id DESC", params).fetchall()
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def events(store: Store, job_id: int) -> pd.DataFrame:
    """The state history of one job."""
    with connect(store) as con:
        rows = con.execute("SELECT at, state, worker, message FROM job_events WHERE job_id = ?"
                           " ORDER BY id", (job_id,)).fetchall()
    return pd.DataFrame(rows, columns=["at", "state", "worker", "message"])


def counts(store: Store) -> dict[str, int]:
    """Number of jobs per state."""
    with connect(store) as con:
        rows = con.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
    return {s: 0 for s in STATES} | {s: int(n) for s, n in rows}


def preview(store: Store, specs: Iterable[JobSpec]) -> pd.DataFrame:
    """What submitting ``specs`` would do: one row per job with its key, model and
    ``status`` ('in store', 'queued or running', 'new')."""
    specs = list(specs)
    active = active_keys(store)
    have: set = set()
    for task in {s.task for s in specs}:
        have |= store.run_keys(task)
    rows = [{"task": s.task, "size": s.size, "pretrain_seed": s.pretrain_seed,
             "finetune_seed": s.finetune_seed, "model": s.model,
             "status": "in store" if s.key in have else
             "queued or running" if s.key in active else "new"} for s in specs]
    return pd.DataFrame(rows, columns=["task", "size", "pretrain_seed", "finetune_seed",
                                       "model", "status"])
