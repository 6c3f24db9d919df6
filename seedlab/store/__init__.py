"""The prediction store: Parquet files under a seedlab home, indexed by a SQLite catalogue,
queried with DuckDB.

Concurrency model
-----------------
* Parquet files are immutable. A write stages new files under ``.staging/``, then, holding
  an exclusive ``flock`` on ``.write.lock``, moves them into place (``os.replace``) and
  registers them in ``catalog.sqlite`` in one SQLite transaction. That transaction is the
  commit point: readers only ever see files the catalogue lists, so a process killed mid-
  write leaves the store exactly as it was (plus unlisted files that the next write sweeps).
* ``catalog.sqlite`` runs in WAL mode with a busy timeout: the app, the CLI and background
  workers read it concurrently and take turns writing. Annotations and the job queue are
  appended there; nothing a user wrote is ever updated in place.
* DuckDB is used in-process, in memory, as SQL over the listed Parquet files; it never
  holds a database file, so there is no "database is locked" between processes.

Notebook API: ``Store(home)`` with ``predictions``, ``instances``, ``masks``,
``annotations``, ``runs`` (pandas DataFrames) and ``arrays`` (dense numpy arrays for
``seedlab.stats``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import math
import os
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seedlab import cubes, schema
from seedlab.errors import DuplicateRunError, InputError, StoreError
from seedlab.store.journal import Journal, fsync_dir, fsync_file

CATALOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task TEXT PRIMARY KEY,
    label_list TEXT NOT NULL,          -- JSON list of class names, index = pred
    simulated INTEGER NOT NULL DEFAULT 0,
    source TEXT,
    description TEXT,
    file TEXT NOT NULL                 -- tasks/<task>.json
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    size TEXT NOT NULL,
    pretrain_seed TEXT NOT NULL,
    finetune_seed INTEGER NOT NULL,
    source TEXT,
    model TEXT,
    hyperparameters TEXT,
    provenance TEXT,
    checkpoints TEXT,
    n_instances INTEGER,
    n_predictions INTEGER,
    accuracy REAL,
    content_hash TEXT NOT NULL,
    file TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (task, size, pretrain_seed, finetune_seed)
);
CREATE TABLE IF NOT EXISTS instance_files (
    task TEXT PRIMARY KEY, file TEXT NOT NULL, n_instances INTEGER NOT NULL, updated_at TEXT
);
CREATE TABLE IF NOT EXISTS mask_files (
    setting TEXT NOT NULL, task TEXT NOT NULL, file TEXT NOT NULL, n_rows INTEGER NOT NULL,
    updated_at TEXT, PRIMARY KEY (setting, task)
);
CREATE TABLE IF NOT EXISTS evaluation_files (
    file TEXT PRIMARY KEY, n_rows INTEGER NOT NULL, updated_at TEXT
);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    annotator TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('correct', 'reasonable', 'wrong', 'unsure')),
    note TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'app'
);
CREATE INDEX IF NOT EXISTS annotations_key ON annotations (task, instance_id, annotator, id);
CREATE TRIGGER IF NOT EXISTS annotations_no_update BEFORE UPDATE ON annotations
BEGIN SELECT RAISE(ABORT, 'the annotation log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS annotations_no_delete BEFORE DELETE ON annotations
BEGIN SELECT RAISE(ABORT, 'the annotation log is append-only'); END;
CREATE TABLE IF NOT EXISTS imports (
    import_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT,
    at TEXT NOT NULL,
    summary TEXT
);
"""

RUN_METADATA_KEY = b"seedlab.run"
# The folders of a home that hold data; the catalogue is rebuilt from them when missing.
DATA_FOLDERS = ("predictions", "instances", "masks", "evaluations", "tasks")


def default_home() -> Path:
    """``$SEEDLAB_HOME`` if set, else ``data/`` under the current directory."""
    return Path(os.environ.get("SEEDLAB_HOME") or "data").resolve()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def run_id_for(task: str, size: str, pretrain_seed: str, finetune_seed: int) -> str:
    """The stable id of a run: a digest of its key, so the same run always has the same id."""
    return _digest(task, size, str(pretrain_seed), str(int(finetune_seed)))[:16]


def _table_digest(table: pa.Table) -> str:
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(None), sink, compression="none")
    return _digest(sink.getvalue())


def _as_list(value: Any) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, int, float, np.integer, np.floating)):
        return [value]
    return list(value)


def _in_clause(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    return f"{column} IN ({', '.join('?' for _ in values)})", list(values)


def seed_sort_key(label: Any) -> tuple:
    """Natural order for seed labels: numbers numerically, then text."""
    text = str(label)
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


# ---------------------------------------------------------------------------------------
# Dense arrays for seedlab.stats


@dataclass
class SeedArrays:
    """Dense per-instance scores of one task and size, ready for ``seedlab.stats``.

    Shapes: ``correct``, ``p_correct`` and ``pred`` are ``(N, P, F)`` for one checkpoint or
    ``(N, P, F, E)`` for several. Missing runs are NaN in the float arrays and -1 in
    ``pred``; ``missing`` lists the ``(pretrain_seed, finetune_seed)`` pairs with no run.
    """

    task: str
    size: str
    instance_ids: np.ndarray
    labels: np.ndarray  # (N,) gold label index into label_list (-1 where not in it)
    label_list: list[str]
    pretrain_seeds: list[str]
    finetune_seeds: list[int]
    checkpoints: list[float]
    correct: np.ndarray
    p_correct: np.ndarray
    pred: np.ndarray
    missing: list[tuple[str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not np.isnan(self.correct).any()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.correct.shape


# ---------------------------------------------------------------------------------------
# Staged writes


@dataclass
class RunData:
    """One run's predictions, ready to be written.

    ``table`` has the columns ``checkpoint, instance_id, pred, correct, p_correct, probs``
    (one row per checkpoint and instance).
    """

    task: str
    size: str
    pretrain_seed: str
    finetune_seed: int
    table: pa.Table
    source: str = ""
    model: str = ""
    hyperparameters: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


class Transaction:
    """Collects the writes of one import; nothing is visible until ``commit``.

    Use through ``Store.transaction`` as a context manager: leaving the block normally
    commits, an exception discards everything staged.
    """

    def __init__(self, store: Store, kind: str, source: str, replace: bool = False) -> None:
        self.store = store
        self.kind = kind
        self.source = source
        self.replace = replace
        self.import_id = uuid.uuid4().hex[:12]
        self.staging = store.home / ".staging" / self.import_id
        self._tasks: dict[str, dict] = {}
        self._instances: dict[str, pd.DataFrame] = {}
        self._runs: dict[str, tuple[RunData, pa.Table, str]] = {}
        self._masks: dict[tuple[str, str], pd.DataFrame] = {}
        self._dropped_masks: set[tuple[str, str]] = set()
        self._dropped_runs: set[str] = set()
        self._evaluations: list[pd.DataFrame] = []
        self._annotations: list[pd.DataFrame] = []
        self._staging_lock: io.TextIOWrapper | None = None
        self.summary: dict[str, int] = {
            "runs_added": 0,
            "runs_unchanged": 0,
            "runs_replaced": 0,
            "instances": 0,
            "masks": 0,
            "evaluations": 0,
            "annotations_added": 0,
            "annotations_unchanged": 0,
        }

    # -- staging -------------------------------------------------------------------------
    def set_task(
        self,
        task: str,
        label_list: Sequence[str],
        *,
        simulated: bool = False,
        source: str = "",
        description: str = "",
    ) -> None:
        schema.check_name("task", task)
        labels = [str(x) for x in label_list]
        existing = self.store.task_row(task) or self._tasks.get(task)
        if existing is not None:
            old = existing["label_list"]
            old = json.loads(old) if isinstance(old, str) else old
            if old and labels and old != labels:
                raise InputError(
                    self.source,
                    f"task {task!r} is already in the store with labels {old}, this import"
                    f" has {labels}",
                    field="label_list",
                    expected="the same label list for every import of a task",
                )
            if not labels:
                labels = old
        self._tasks[task] = {
            "task": task,
            "label_list": labels,
            "simulated": bool(simulated),
            "source": source or self.source,
            "description": description,
        }

    def add_instances(self, task: str, frame: pd.DataFrame) -> None:
        """Stage instances of ``task``. Columns: instance_id, split, guid, text_a, text_b,
        label, and any extra fields (stored in ``extra``)."""
        schema.check_name("task", task)
        frame = frame.copy()
        if "instance_id" not in frame:
            raise StoreError("instances need an instance_id column")
        frame["instance_id"] = frame["instance_id"].astype(str)
        dup = frame["instance_id"].duplicated()
        if dup.any():
            raise InputError(
                self.source,
                f"instance id {frame['instance_id'][dup].iloc[0]!r} appears twice in task {task!r}",
                field="instance_id",
                expected="unique instance ids within a task",
            )
        if task in self._instances:
            frame = _merge_instances(self._instances[task], frame, self.source)
        self._instances[task] = frame

    def add_run(self, run: RunData, *, spill: bool = False) -> str:
        """Validate and stage one run; returns its run id.

        ``spill=True`` writes the run's Parquet file to the staging folder at once and keeps
        only its metadata in memory, so a transaction of many large runs stays bounded.
        """
        schema.check_name("task", run.task)
        schema.check_name("size", run.size)
        run_id = run_id_for(run.task, run.size, run.pretrain_seed, run.finetune_seed)
        if run_id in self._runs:
            other = self._runs[run_id][0]
            raise DuplicateRunError(
                f"{self.source}: two inputs give the same run (task {run.task}, size {run.size},"
                f" pretraining seed {run.pretrain_seed}, fine-tuning seed {run.finetune_seed}):"
                f" {other.provenance.get('file', '?')} and {run.provenance.get('file', '?')}"
            )
        table = _prediction_table(run, run_id)
        digest = _table_digest(table)
        if spill:
            path = self._staging_dir() / f"run-{run_id}.parquet"
            pq.write_table(table, path)
            stats = _SpilledRun(path, _run_stats(table))
            run = dataclasses.replace(run, table=table.schema.empty_table())
            self._runs[run_id] = (run, stats, digest)
        else:
            self._runs[run_id] = (run, table, digest)
        return run_id

    def add_masks(self, setting: str, task: str, frame: pd.DataFrame) -> None:
        """Stage masks. Columns: seed, component, layer, head, kept, importance."""
        schema.check_name("setting", setting)
        schema.check_name("task", task)
        key = (setting, task)
        if key in self._masks:
            frame = pd.concat([self._masks[key], frame], ignore_index=True)
        self._masks[key] = frame

    def remove_masks(self, setting: str, task: str) -> None:
        """Stage the removal of the masks of ``(setting, task)`` (a re-published study that
        names its settings differently). Masks staged for the same key win."""
        self._dropped_masks.add((setting, task))

    def remove_run(self, task: str, size: str, pretrain_seed: str, finetune_seed: int) -> None:
        """Stage the removal of a run (a re-published study without that size or seed).
        A run staged with the same key in this transaction wins."""
        self._dropped_runs.add(run_id_for(task, size, str(pretrain_seed), int(finetune_seed)))

    def add_evaluations(self, frame: pd.DataFrame) -> None:
        """Stage mask evaluation results (experiment, variant, task, metric, mean, std)."""
        self._evaluations.append(frame[schema.EVALUATION_COLUMNS].copy())

    def add_annotations(self, frame: pd.DataFrame) -> None:
        """Stage annotations (task, instance_id, annotator, verdict, note[, at])."""
        frame = frame.copy()
        bad = ~frame["verdict"].isin(schema.VERDICTS)
        if bad.any():
            raise InputError(
                self.source,
                f"verdict {frame['verdict'][bad].iloc[0]!r} is not known",
                field="verdict",
                expected=" | ".join(schema.VERDICTS),
            )
        if "note" not in frame:
            frame["note"] = ""
        frame["note"] = frame["note"].fillna("").astype(str)
        self._annotations.append(frame)

    # -- staging folder ------------------------------------------------------------------
    def _staging_dir(self) -> Path:
        """This writer's staging folder, created on first use with its flock held (see
        ``staging_is_abandoned``): a sweep never removes a live writer's files."""
        if self._staging_lock is None:
            root = self.store.home / ".staging"
            root.mkdir(parents=True, exist_ok=True)
            # Locked under a temporary name first, then renamed: a sweep only ever sees a
            # lock file that its writer already holds.
            tmp = root / f".{self.import_id}.lock-new"
            handle = open(tmp, "a+")  # noqa: SIM115 - held until the transaction ends
            fcntl.flock(handle, fcntl.LOCK_EX)
            os.replace(tmp, root / f"{self.import_id}.lock")
            self._staging_lock = handle
            self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging

    def discard(self) -> None:
        """Remove this transaction's staged files and release its staging lock."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._staging_lock is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.staging.parent / f"{self.import_id}.lock").unlink()
            self._staging_lock.close()
            self._staging_lock = None

    # -- commit --------------------------------------------------------------------------
    def commit(self) -> dict[str, int]:
        """Validate against the store, then make every staged write visible at once.

        Order: stage files (fsynced) -> move them into place under new names -> append the
        commit record to the journal -> one SQLite transaction -> delete replaced files ->
        sweep what killed writers left. A process killed before the SQLite commit leaves
        the store as it was; its journal record is marked aborted by the next writer, and
        its files are swept. ``seedlab reindex`` rebuilds only what the journal says was
        committed."""
        store = self.store
        with store._write_lock():
            catalog = store._catalog()
            try:
                store._recover(catalog)
                _validate(self, catalog)
                plan = _Plan(now=utc_now())
                for stage in STAGES:
                    stage(self, catalog, plan)
                annotation_rows = self._new_annotations(catalog, plan.now)
                changed = plan.changed()
                if not changed and not annotation_rows:
                    return dict(self.summary)  # a repeated import: nothing is written
                store._ensure_journal(catalog)
                for src, _dst in plan.moves:
                    fsync_file(src)
                    _step("staged")
                # New names only: registered files are never overwritten.
                for src, dst in plan.moves:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                    _step("moved")
                for folder in sorted({dst.parent for _, dst in plan.moves}):
                    fsync_dir(folder)
                record = {
                    "type": "commit", "tx": self.import_id, "at": plan.now,
                    "tables": plan.rows, "drop": plan.drops,
                    "annotations": [list(r) for r in annotation_rows],
                    "import": [self.import_id, self.kind, self.source, plan.now,
                               json.dumps(self.summary)],
                }
                end = store.journal.append(record)
                _step("journaled")
                with catalog:
                    apply_record(catalog, record)
                    _set_journal_offset(catalog, end)
                    store._bump_version(catalog, content=changed)
                _step("catalogued")
                for path in plan.stale:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    _step("unlinked")
                self.discard()
                store._sweep(catalog)
            finally:
                catalog.close()
                self.discard()
        return dict(self.summary)

    def _new_annotations(self, catalog: sqlite3.Connection, now: str) -> list[tuple]:
        if not self._annotations:
            return []
        frame = pd.concat(self._annotations, ignore_index=True)
        seen = {
            tuple(r)
            for r in catalog.execute(
                "SELECT task, instance_id, annotator, verdict, note, source FROM annotations"
                " WHERE source = ?",
                (self.kind,),
            )
        }
        rows = []
        for rec in frame.itertuples(index=False):
            key = (rec.task, str(rec.instance_id), rec.annotator, rec.verdict, rec.note, self.kind)
            if key in seen:
                self.summary["annotations_unchanged"] += 1
                continue
            seen.add(key)
            at = getattr(rec, "at", None) or now
            rows.append((rec.task, str(rec.instance_id), rec.annotator, rec.verdict, rec.note,
                         at, self.kind))
        self.summary["annotations_added"] += len(rows)
        return rows


# ---------------------------------------------------------------------------------------
# The staged kinds of a commit: each compares what is staged with the catalogue and adds
# its files to move, its catalogue rows and the files it replaces to one plan.

# Set by tests to stop a commit at a named step (``"staged"``, ``"moved"``, ``"journaled"``,
# ``"catalogued"``, ``"unlinked"``): called once per step, e.g. to kill the process.
STEP_HOOK: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if STEP_HOOK is not None:
        STEP_HOOK(name)


@dataclass
class _Plan:
    """What one commit writes: files to move into place, rows per catalogue table (keyed
    as ``CATALOG_UPSERTS``), rows to delete (``CATALOG_DELETES``), files it replaces."""

    now: str
    moves: list[tuple[Path, Path]] = field(default_factory=list)
    rows: dict[str, list[list]] = field(default_factory=dict)
    drops: dict[str, list[list]] = field(default_factory=dict)
    stale: list[Path] = field(default_factory=list)

    def add(self, table: str, row: Sequence[Any], tmp: Path, target: Path) -> None:
        self.moves.append((tmp, target))
        self.rows.setdefault(table, []).append(list(row))

    def drop(self, table: str, key: Sequence[Any], old_file: Path) -> None:
        self.drops.setdefault(table, []).append(list(key))
        self.stale.append(old_file)

    def changed(self) -> bool:
        return bool(self.moves or self.drops)


def _validate(tx: Transaction, catalog: sqlite3.Connection) -> None:
    """Refuse a commit that would change a stored run without ``replace`` or that names a
    task with no label list, before anything moves."""
    known = {r[0]: r[1] for r in catalog.execute("SELECT run_id, content_hash FROM runs")}
    for run_id, (run, _table, digest) in tx._runs.items():
        old = known.get(run_id)
        if old is not None and old != digest and not tx.replace:
            raise DuplicateRunError(
                f"{tx.source}: the store already has a different run for task"
                f" {run.task}, size {run.size}, pretraining seed {run.pretrain_seed},"
                f" fine-tuning seed {run.finetune_seed}; import with --replace to"
                " overwrite it"
            )
    for task in {*tx._instances, *(r.task for r, _, _ in tx._runs.values())}:
        if task not in tx._tasks and tx.store.task_row(task, catalog) is None:
            raise StoreError(f"task {task!r} has no label list: call set_task first")


def _stage_tasks(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    for task, meta in tx._tasks.items():
        known = tx.store.task_row(task, catalog)
        if (known is not None and known["label_list"] == meta["label_list"]
                and known["simulated"] == meta["simulated"]
                and (not meta["description"] or known["description"] == meta["description"])):
            continue  # unchanged: re-importing must not touch the store
        rel = f"tasks/{task}.json"
        tmp = tx._staging_dir() / f"task-{task}.json"
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        plan.add("tasks", (task, json.dumps(meta["label_list"]), int(meta["simulated"]),
                           meta["source"], meta["description"], rel), tmp, tx.store.home / rel)


def _stage_instances(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    store = tx.store
    for task, frame in tx._instances.items():
        old = store._instance_frame(task, catalog)
        merged = _merge_instances(old, frame, tx.source) if old is not None else frame
        table = _instance_table(merged)
        rel = f"instances/task={task}/{_table_digest(table)[:16]}.parquet"
        old_file = store._instance_file(task, catalog)
        if old_file == rel:
            continue
        tmp = tx._staging_dir() / f"instances-{task}.parquet"
        pq.write_table(table, tmp)
        plan.add("instance_files", (task, rel, table.num_rows, plan.now), tmp, store.home / rel)
        if old_file:
            plan.stale.append(store.home / old_file)
        tx.summary["instances"] += len(frame)


def _stage_runs(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    store = tx.store
    known = {r[0]: (r[1], r[2]) for r in catalog.execute(
        "SELECT run_id, content_hash, file FROM runs")}
    for run_id, (run, table, digest) in tx._runs.items():
        old = known.get(run_id)
        if old is not None and old[0] == digest:
            tx.summary["runs_unchanged"] += 1
            continue
        rel = f"predictions/task={run.task}/size={run.size}/{run_id}-{digest[:8]}.parquet"
        tmp = tx._staging_dir() / f"run-{run_id}.parquet"
        if not isinstance(table, _SpilledRun):
            pq.write_table(table, tmp)
        plan.add("runs", _run_row(run, run_id, table, digest, rel, plan.now), tmp,
                 store.home / rel)
        if old is not None:
            plan.stale.append(store.home / old[1])
            tx.summary["runs_replaced"] += 1
        else:
            tx.summary["runs_added"] += 1


def _stage_masks(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    store = tx.store
    for (setting, task), frame in tx._masks.items():
        table = _mask_table(frame)
        rel = f"masks/setting={setting}/task={task}/{_table_digest(table)[:16]}.parquet"
        old_file = store._mask_file(setting, task, catalog)
        tx.summary["masks"] += table.num_rows
        if old_file == rel:
            continue
        tmp = tx._staging_dir() / f"masks-{setting}-{task}.parquet"
        pq.write_table(table, tmp)
        plan.add("mask_files", (setting, task, rel, table.num_rows, plan.now), tmp,
                 store.home / rel)
        if old_file:
            plan.stale.append(store.home / old_file)


def _drop_masks(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    for setting, task in sorted(tx._dropped_masks - set(tx._masks)):
        old_file = tx.store._mask_file(setting, task, catalog)
        if old_file:
            plan.drop("mask_files", (setting, task), tx.store.home / old_file)


def _drop_runs(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    for run_id in sorted(tx._dropped_runs - set(tx._runs)):
        row = catalog.execute("SELECT file FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row:
            plan.drop("runs", (run_id,), tx.store.home / row[0])


def _stage_evaluations(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    if not tx._evaluations:
        return
    frame = pd.concat(tx._evaluations, ignore_index=True)
    table = pa.Table.from_pandas(frame, schema=schema.EVALUATION_SCHEMA, preserve_index=False)
    digest = _table_digest(table)[:16]
    rel = f"evaluations/{digest}.parquet"
    tx.summary["evaluations"] += table.num_rows
    known = {r[0] for r in catalog.execute("SELECT file FROM evaluation_files")}
    if rel not in known:
        tmp = tx._staging_dir() / f"evaluations-{digest}.parquet"
        pq.write_table(table, tmp)
        plan.add("evaluation_files", (rel, table.num_rows, plan.now), tmp, tx.store.home / rel)


# Every staged kind, in commit order: the one place a new kind is registered.
STAGES: tuple[Callable[[Transaction, sqlite3.Connection, _Plan], None], ...] = (
    _stage_tasks, _stage_instances, _stage_runs, _stage_masks, _drop_masks, _drop_runs,
    _stage_evaluations,
)

# How a commit record's rows reach the catalogue (commit, roll-forward and rebuild alike).
CATALOG_UPSERTS = {
    "tasks": "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?)",
    "instance_files": "INSERT OR REPLACE INTO instance_files VALUES (?, ?, ?, ?)",
    "runs": (f"INSERT OR REPLACE INTO runs ({', '.join(schema.RUN_COLUMNS)})"
             f" VALUES ({', '.join('?' for _ in schema.RUN_COLUMNS)})"),
    "mask_files": "INSERT OR REPLACE INTO mask_files VALUES (?, ?, ?, ?, ?)",
    "evaluation_files": "INSERT OR REPLACE INTO evaluation_files VALUES (?, ?, ?)",
}
CATALOG_DELETES = {
    "mask_files": "DELETE FROM mask_files WHERE setting = ? AND task = ?",
    "runs": "DELETE FROM runs WHERE run_id = ?",
}
INSERT_ANNOTATION = ("INSERT INTO annotations (task, instance_id, annotator, verdict, note, at,"
                     " source) VALUES (?, ?, ?, ?, ?, ?, ?)")
FILE_TABLES = ("tasks", "runs", "instance_files", "mask_files", "evaluation_files")


def apply_record(con: sqlite3.Connection, record: dict[str, Any],
                 known_annotations: Counter | None = None) -> None:
    """Write one journal record's rows into the catalogue (inside the caller's SQLite
    transaction). ``known_annotations``: verdicts already in the catalogue, as a multiset
    of rows, which a rebuild must not add twice."""
    kind = record["type"]
    if kind == "baseline":
        for table in FILE_TABLES:
            con.execute(f"DELETE FROM {table}")
    for table, rows in record.get("tables", {}).items():
        con.executemany(CATALOG_UPSERTS[table], [tuple(r) for r in rows])
    for table, keys in record.get("drop", {}).items():
        con.executemany(CATALOG_DELETES[table], [tuple(k) for k in keys])
    verdicts = record.get("annotations", [])
    if kind == "annotation":
        verdicts = [record["row"]]
    fresh = []
    for row in verdicts:
        row = tuple(row)
        if known_annotations is not None and known_annotations[row] > 0:
            known_annotations[row] -= 1
            continue
        fresh.append(row)
    con.executemany(INSERT_ANNOTATION, fresh)
    imports = record.get("imports", [])
    if "import" in record:
        imports = [record["import"]]
    con.executemany("INSERT OR IGNORE INTO imports VALUES (?, ?, ?, ?, ?)",
                    [tuple(r) for r in imports])


def _journal_offset(con: sqlite3.Connection) -> int | None:
    row = con.execute("SELECT value FROM meta WHERE key = 'journal_offset'").fetchone()
    return int(row[0]) if row else None


def _set_journal_offset(con: sqlite3.Connection, end: int) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES ('journal_offset', ?)", (str(int(end)),))


def staging_is_abandoned(lock: Path) -> bool:
    """Whether the writer that holds ``lock`` (``.staging/<id>.lock``) is gone: its flock
    is released when its process ends, however it ended."""
    try:
        handle = open(lock, "a+")  # noqa: SIM115
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True

def _positions(values: pa.ChunkedArray, keys: pa.Array) -> np.ndarray:
    """The position of each value in ``keys`` (-1 where absent), ``(len(values),)`` int64."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    found = pa.compute.index_in(values.cast(keys.type), value_set=keys)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _prediction_table(run: RunData, run_id: str) -> pa.Table:
    t = run.table
    required = ["checkpoint", "instance_id", "pred", "correct", "p_correct", "probs"]
    missing = [c for c in required if c not in t.column_names]
    if missing:
        raise StoreError(f"run table lacks columns {missing}")
    n = t.num_rows
    table = pa.table(
        {
            # Constant columns without Python lists of n values (318k per run at QQP scale).
            "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
            "pretrain_seed": pa.repeat(pa.scalar(str(run.pretrain_seed), pa.string()), n),
            "finetune_seed": pa.repeat(pa.scalar(int(run.finetune_seed), pa.int64()), n),
            "checkpoint": t["checkpoint"].cast(pa.float64()),
            "instance_id": t["instance_id"].cast(pa.string()),
            "pred": t["pred"].cast(pa.int32()),
            "correct": t["correct"].cast(pa.bool_()),
            "p_correct": t["p_correct"].cast(pa.float32()),
            "probs": t["probs"].cast(pa.list_(pa.float32())),
        },
        schema=schema.PREDICTION_FILE_SCHEMA,
    )
    meta = {
        "run_id": run_id,
        "task": run.task,
        "size": run.size,
        "pretrain_seed": str(run.pretrain_seed),
        "finetune_seed": int(run.finetune_seed),
        "source": run.source,
        "model": run.model,
        "hyperparameters": run.hyperparameters,
        "provenance": run.provenance,
    }
    return table.replace_schema_metadata({RUN_METADATA_KEY: json.dumps(meta, default=str)})


@dataclass
class _SpilledRun:
    """A staged run whose table is already written to ``path`` (``add_run(spill=True)``)."""

    path: Path
    stats: tuple[list[float], int, float | None, int]


def _run_stats(table: pa.Table) -> tuple[list[float], int, float | None, int]:
    """(checkpoints, n_instances, accuracy at the last checkpoint, n_rows) of a run table."""
    checkpoints = sorted(pa.compute.unique(table["checkpoint"]).to_pylist())
    n_instances = len(pa.compute.unique(table["instance_id"])) if table.num_rows else 0
    last = table.filter(pa.compute.equal(table["checkpoint"], checkpoints[-1])) if checkpoints else table
    accuracy = float(np.mean(last["correct"].to_numpy(zero_copy_only=False))) if last.num_rows else None
    return checkpoints, n_instances, accuracy, table.num_rows


def _run_row(run: RunData, run_id: str, table: pa.Table | _SpilledRun, digest: str, rel: str,
             now: str) -> tuple:
    stats = table.stats if isinstance(table, _SpilledRun) else _run_stats(table)
    checkpoints, n_instances, accuracy, n_rows = stats
    values = {
        "run_id": run_id,
        "task": run.task,
        "size": run.size,
        "pretrain_seed": str(run.pretrain_seed),
        "finetune_seed": int(run.finetune_seed),
        "source": run.source,
        "model": run.model,
        "hyperparameters": json.dumps(run.hyperparameters, default=str),
        "provenance": json.dumps(run.provenance, default=str),
        "checkpoints": json.dumps(checkpoints),
        "n_instances": n_instances,
        "n_predictions": n_rows,
        "accuracy": accuracy,
        "content_hash": digest,
        "file": rel,
        "created_at": now,
    }
    return tuple(values[c] for c in schema.RUN_COLUMNS)


def _instance_table(frame: pd.DataFrame) -> pa.Table:
    core = ["instance_id", "split", "guid", "text_a", "text_b", "label"]
    extras = [c for c in frame.columns if c not in core and c not in ("task", "extra")]
    out = pd.DataFrame({c: frame.get(c) for c in core})
    for c in core:
        out[c] = out[c].map(lambda v: None if _is_missing(v) else str(v)).astype(object)
    base_extra = frame["extra"] if "extra" in frame else pd.Series([None] * len(frame), index=frame.index)
    extra_json = []
    # Column-wise records, not iterrows: each value keeps its column's type, and 80k rows
    # take a second, not twenty.
    records = frame[extras].to_dict("records") if extras else [{}] * len(frame)
    for raw, record in zip(base_extra.tolist(), records):
        payload = json.loads(raw) if isinstance(raw, str) and raw else {}
        for c, v in record.items():
            if not _is_missing(v):
                payload[c] = v.item() if isinstance(v, np.generic) else v
        extra_json.append(json.dumps(payload, sort_keys=True, default=str) if payload else None)
    out["extra"] = extra_json
    return pa.Table.from_pandas(out, schema=schema.INSTANCE_FILE_SCHEMA, preserve_index=False)


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return v is pd.NA


def _merge_instances(old: pd.DataFrame, new: pd.DataFrame, source: str) -> pd.DataFrame:
    """Union of two instance frames keyed by instance_id: new ids are appended, known ids
    keep their fields and gain the new ones; a different gold label is an error."""
    old = _flatten_extra(old)
    new = _flatten_extra(new)
    old_idx = old.set_index("instance_id")
    new_idx = new.set_index("instance_id")
    common = old_idx.index.intersection(new_idx.index)
    if len(common) and "label" in new_idx and "label" in old_idx:
        a = old_idx.loc[common, "label"].astype(str)
        b = new_idx.loc[common, "label"].astype(str)
        clash = (a != b) & new_idx.loc[common, "label"].notna() & old_idx.loc[common, "label"].notna()
        if clash.any():
            iid = clash[clash].index[0]
            raise InputError(
                source,
                f"instance {iid!r} has gold label {b[iid]!r} here but {a[iid]!r} in the store",
                field="label",
                expected="the same gold label for an instance in every import",
            )
    merged = new_idx.combine_first(old_idx)  # new values win, old fill the gaps
    order = list(old_idx.index) + [i for i in new_idx.index if i not in old_idx.index]
    merged = merged.loc[order].reset_index()
    return merged


def _flatten_extra(frame: pd.DataFrame) -> pd.DataFrame:
    if "extra" not in frame:
        return frame
    frame = frame.copy()
    extras = frame.pop("extra")
    parsed = [json.loads(x) if isinstance(x, str) and x else {} for x in extras]
    keys = sorted({k for d in parsed for k in d})
    for k in keys:
        if k not in frame:
            frame[k] = [d.get(k) for d in parsed]
    return frame


def _mask_table(frame: pd.DataFrame) -> pa.Table:
    frame = frame.copy()
    if "importance" not in frame:
        frame["importance"] = np.nan
    bad = ~frame["component"].isin(schema.MASK_COMPONENTS)
    if bad.any():
        raise StoreError(f"mask component {frame['component'][bad].iloc[0]!r} is not head or mlp")
    frame = frame.sort_values(["seed", "component", "layer", "head"], kind="stable")
    return pa.Table.from_pandas(
        frame[["seed", "component", "layer", "head", "kept", "importance"]],
        schema=schema.MASK_FILE_SCHEMA,
        preserve_index=False,
    )


# ---------------------------------------------------------------------------------------


class Store:
    """A seedlab home: predictions, instances, masks, annotations and runs.

    ``home`` defaults to ``$SEEDLAB_HOME`` or ``data/``. Opening a home whose catalogue is
    missing (a fresh clone of the repository) or unreadable rebuilds the catalogue: from
    the journal where the home has one, else from the files. ``create=False`` refuses a
    home that does not exist instead of creating it.
    """

    # ``predictions(instance_id=...)`` answers from the dense cubes up to this many ids;
    # -1 always takes the Parquet scan (tests compare the two paths with it).
    cube_instance_limit: int = 1000

    def __init__(self, home: str | Path | None = None, *, create: bool = True) -> None:
        self.home = Path(home).resolve() if home is not None else default_home()
        if not self.home.exists():
            if not create:
                raise StoreError(f"seedlab home {self.home} does not exist")
            self.home.mkdir(parents=True)
        elif not self.home.is_dir():
            raise StoreError(f"seedlab home {self.home} is not a folder")
        self._duck_lock = threading.Lock()
        self._duck: duckdb.DuckDBPyConnection | None = None
        self.journal = Journal(self.home)
        self._init_catalog()

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    @staticmethod
    def is_home(path: str | Path) -> bool:
        """Whether ``path`` holds a seedlab store: a catalogue, or the data files a
        catalogue is rebuilt from (a fresh clone of the repository's ``data/``)."""
        path = Path(path)
        return (path / "catalog.sqlite").exists() or any(
            (path / folder).is_dir() for folder in (*DATA_FOLDERS, "journal"))

    # -- catalogue -----------------------------------------------------------------------
    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.sqlite"

    def _catalog(self) -> sqlite3.Connection:
        if not self.catalog_path.exists():  # deleted under a running process: rebuild it
            self._init_catalog()
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.catalog_path, timeout=60, isolation_level="DEFERRED")
        con.execute("PRAGMA busy_timeout = 60000")
        con.execute("PRAGMA foreign_keys = ON")
        return con

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        con = self._catalog()
        try:
            yield con
        finally:
            con.close()

    def _init_catalog(self) -> None:
        try:
            fresh, offset = self._create_tables()
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            aside = self._set_catalog_aside(str(exc))
            print(f"seedlab: warning: {self.catalog_path} could not be read ({exc}); it is"
                  f" kept as {aside} and rebuilt", file=sys.stderr)
            fresh, offset = self._create_tables()
        journaled = self.journal.exists()
        if (fresh or offset is None) and journaled:
            self.reindex(announce=True)
        elif fresh and any((self.home / d).is_dir() for d in DATA_FOLDERS):
            lost = (self.home / ".write.lock").exists()  # this home was written before
            self.reindex()
            if lost:
                print(f"seedlab: warning: {self.catalog_path} was missing and this home has"
                      " no journal: the data files were indexed again, but verdicts, the"
                      " import log and the job queue lived only in the catalogue",
                      file=sys.stderr)
        elif journaled and offset != self.journal.size():
            # A writer died between its journal record and its SQLite commit (or is in that
            # window now: then the lock is busy and it resolves itself).
            with self._write_lock(blocking=False) as held:
                if held:
                    con = self._connect()
                    try:
                        self._recover(con)
                    finally:
                        con.close()

    def _create_tables(self) -> tuple[bool, int | None]:
        """Create the catalogue's tables where missing; returns (whether it held no store
        before, the journal offset it has applied)."""
        con = self._connect()
        try:
            had = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                              " name = 'meta'").fetchone()
            fresh = not had or con.execute(
                "SELECT 1 FROM meta WHERE key = 'data_version'").fetchone() is None
            con.execute("PRAGMA journal_mode = WAL")
            con.executescript(CATALOG_SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('data_version', '0')")
            con.execute("INSERT OR IGNORE INTO meta VALUES ('content_version', '0')")
            con.commit()
            return fresh, _journal_offset(con)
        finally:
            con.close()

    def _set_catalog_aside(self, reason: str) -> Path:
        n = 1
        while (aside := self.home / f"catalog.sqlite.unreadable-{n}").exists():
            n += 1
        os.replace(self.catalog_path, aside)
        for suffix in ("-wal", "-shm"):
            side = self.home / f"catalog.sqlite{suffix}"
            if side.exists():
                os.replace(side, self.home / f"{aside.name}{suffix}")
        return aside

    @contextlib.contextmanager
    def _write_lock(self, *, blocking: bool = True) -> Iterator[bool]:
        """Exclusive lock across processes for the file moves and catalogue commit.
        Yields whether it is held (always, unless ``blocking=False`` found it busy)."""
        path = self.home / ".write.lock"
        try:
            handle = open(path, "a+")  # noqa: SIM115
        except OSError:
            if blocking:
                raise
            yield False  # a read-only home: nobody can be writing through this process
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- the journal (under the write lock) ----------------------------------------------
    def _recover(self, con: sqlite3.Connection) -> None:
        """Bring the catalogue and the journal into agreement before a write: records past
        the catalogue's offset belong to writers that died before their SQLite commit and
        are marked aborted (all or nothing of each); a journal shorter than the catalogue
        says (deleted or cut) is set aside and started again at the next write."""
        if not self.journal.exists():
            return
        offset = _journal_offset(con)
        size = self.journal.size()
        if offset is None:  # a catalogue rebuilt or restored without it: the journal wins
            self._replay_journal(con, announce=False)
            return
        if offset > size:
            self.journal.set_aside(f"{self.journal.path} does not match {self.catalog_path}"
                                   f" (it has {size} bytes, the catalogue applied {offset})")
            with con:
                con.execute("DELETE FROM meta WHERE key = 'journal_offset'")
            return
        if offset == size:
            return
        pending = self.journal.read(offset)
        aborts = [{"type": "abort", "tx": e.record.get("tx"), "at": utc_now()}
                  for e in pending if e.record.get("type") in ("commit", "annotation")]
        end = self.journal.append(*aborts) if aborts else self.journal.size()
        with con:
            _set_journal_offset(con, end)

    def _ensure_journal(self, con: sqlite3.Connection) -> None:
        """Start the journal with a baseline of the catalogue where it has none (a home
        written before journals, or one whose journal was set aside)."""
        if self.journal.exists():
            return
        tables = {t: [list(r) for r in con.execute(f"SELECT * FROM {t}")] for t in FILE_TABLES}
        tables["runs"] = [list(r) for r in con.execute(
            f"SELECT {', '.join(schema.RUN_COLUMNS)} FROM runs")]
        verdicts = [list(r) for r in con.execute(
            "SELECT task, instance_id, annotator, verdict, note, at, source FROM annotations"
            " ORDER BY id")]
        imports = [list(r) for r in con.execute("SELECT * FROM imports ORDER BY at")]
        end = self.journal.append({"type": "baseline", "tx": uuid.uuid4().hex[:12],
                                   "at": utc_now(), "tables": tables,
                                   "annotations": verdicts, "imports": imports})
        with con:
            _set_journal_offset(con, end)

    def _bump_version(self, con: sqlite3.Connection, *, content: bool = True) -> None:
        """Advance ``version()``; with ``content``, also ``content_version()`` (everything
        but annotations changed)."""
        keys = ("data_version", "content_version") if content else ("data_version",)
        con.executemany(
            "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = ?",
            [(k,) for k in keys],
        )

    def _meta_int(self, key: str) -> int:
        with self._read() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def version(self) -> int:
        """A number that changes whenever the data changes (imports, runs, annotations)."""
        return self._meta_int("data_version")

    def content_version(self) -> int:
        """A number that changes when predictions, instances, masks, tasks or evaluations
        change, but not on annotations: caches of arrays and statistics key on it, so a
        verdict recorded on the Annotate page does not recompute them."""
        return self._meta_int("content_version")

    def transaction(self, kind: str, source: str = "", *, replace: bool = False) -> _TxContext:
        """Stage writes, then commit them atomically: ``with store.transaction('zhong', path)
        as tx: tx.add_run(...)``. ``replace=True`` lets a run with the same key but different
        predictions replace the stored one."""
        return _TxContext(Transaction(self, kind, str(source), replace=replace))

    def reindex(self, *, announce: bool = False) -> dict[str, int]:
        """Rebuild the file index of the catalogue.

        Where the home has a journal, only what it records as committed is registered
        (files a killed writer left are ignored, and swept by the next write), and the
        verdicts and import log it holds are restored where the catalogue lacks them.
        A home without a journal (written before journals existed, or a fresh clone of
        ``data/``) is indexed from the files found. Annotations, jobs and the import log
        already in the catalogue are kept. ``announce``: say on stderr what was rebuilt
        and what could not be (the catalogue was lost).
        """
        with self._write_lock():
            con = self._catalog()
            try:
                if self.journal.exists() and _journal_offset(con) is not None:
                    self._recover(con)
                if self.journal.exists():
                    counts = self._replay_journal(con, announce)
                else:
                    counts = self._index_files(con)
            finally:
                con.close()
        return counts

    def _replay_journal(self, con: sqlite3.Connection, announce: bool) -> dict[str, int]:
        entries = self.journal.read()
        aborted = {e.record.get("tx") for e in entries if e.record.get("type") == "abort"}
        known = Counter(tuple(r) for r in con.execute(
            "SELECT task, instance_id, annotator, verdict, note, at, source FROM annotations"))
        n_verdicts = len(known)
        end = entries[-1].end if entries else 0
        with con:
            for table in FILE_TABLES:
                con.execute(f"DELETE FROM {table}")
            for entry in entries:
                if entry.record.get("type") != "abort" and entry.record.get("tx") not in aborted:
                    apply_record(con, entry.record, known)
            missing = self._drop_missing_files(con)
            _set_journal_offset(con, end)
            self._bump_version(con)
        self._sweep(con)  # what was never committed, or replaced by what was
        counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in FILE_TABLES}
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                              else "")
            print(f"seedlab: warning: the journal lists {len(missing)} files that are missing"
                  f" from {self.home}; they were not registered: {shown}", file=sys.stderr)
        if announce:
            verdicts = con.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]
            imports = con.execute("SELECT COUNT(*) FROM imports").fetchone()[0]
            print(f"seedlab: {self.catalog_path} was missing or unreadable and was rebuilt from"
                  f" {self.journal.path}: {counts['runs']} runs, {counts['tasks']} tasks,"
                  f" {verdicts - n_verdicts} verdicts, {imports} import-log entries. Not"
                  " recoverable: the job queue (jobs, their events and the worker registry"
                  " live only in the catalogue); submit the runs again if they are needed.",
                  file=sys.stderr)
        return counts

    def _drop_missing_files(self, con: sqlite3.Connection) -> list[str]:
        """Delete catalogue rows whose file is not under the home; returns those files."""
        keys = {"tasks": "task", "runs": "run_id", "instance_files": "task",
                "mask_files": "setting, task", "evaluation_files": "file"}
        missing = []
        for table, key in keys.items():
            for row in con.execute(f"SELECT file, {key} FROM {table}").fetchall():
                if not (self.home / row[0]).exists():
                    missing.append(row[0])
                    where = " AND ".join(f"{k.strip()} = ?" for k in key.split(","))
                    con.execute(f"DELETE FROM {table} WHERE {where}", row[1:])
        return missing

    def _index_files(self, con: sqlite3.Connection) -> dict[str, int]:
        """The index of a home without a journal: every data file found is registered."""
        task_rows = []
        for path in sorted((self.home / "tasks").glob("*.json")):
            meta = json.loads(path.read_text())
            task_rows.append(
                (meta["task"], json.dumps(meta["label_list"]), int(meta.get("simulated", False)),
                 meta.get("source", ""), meta.get("description", ""),
                 str(path.relative_to(self.home)))
            )
        run_rows: dict[str, tuple] = {}
        run_mtime: dict[str, float] = {}
        for path in sorted((self.home / "predictions").glob("task=*/size=*/*.parquet")):
            pf = pq.ParquetFile(path)
            raw = (pf.schema_arrow.metadata or {}).get(RUN_METADATA_KEY)
            if raw is None:
                continue
            meta = json.loads(raw)
            table = pf.read()
            mtime = path.stat().st_mtime
            if meta["run_id"] in run_rows and run_mtime[meta["run_id"]] >= mtime:
                continue
            run = RunData(
                task=meta["task"], size=meta["size"], pretrain_seed=meta["pretrain_seed"],
                finetune_seed=meta["finetune_seed"], table=table, source=meta.get("source", ""),
                model=meta.get("model", ""), hyperparameters=meta.get("hyperparameters", {}),
                provenance=meta.get("provenance", {}),
            )
            digest = _table_digest(table)
            run_rows[meta["run_id"]] = _run_row(
                run, meta["run_id"], table, digest, str(path.relative_to(self.home)),
                datetime.fromtimestamp(mtime, UTC).isoformat(),
            )
            run_mtime[meta["run_id"]] = mtime
        instance_rows = {}
        for path in sorted((self.home / "instances").glob("task=*/*.parquet"),
                           key=lambda p: p.stat().st_mtime):
            task = path.parent.name.split("=", 1)[1]
            instance_rows[task] = (task, str(path.relative_to(self.home)),
                                   pq.ParquetFile(path).metadata.num_rows, utc_now())
        mask_rows = {}
        for path in sorted((self.home / "masks").glob("setting=*/task=*/*.parquet"),
                           key=lambda p: p.stat().st_mtime):
            setting = path.parent.parent.name.split("=", 1)[1]
            task = path.parent.name.split("=", 1)[1]
            mask_rows[(setting, task)] = (setting, task, str(path.relative_to(self.home)),
                                          pq.ParquetFile(path).metadata.num_rows, utc_now())
        eval_rows = [
            (str(p.relative_to(self.home)), pq.ParquetFile(p).metadata.num_rows, utc_now())
            for p in sorted((self.home / "evaluations").glob("*.parquet"))
        ]
        with con:
            for table_name in FILE_TABLES:
                con.execute(f"DELETE FROM {table_name}")
            apply_record(con, {"type": "index", "tables": {
                "tasks": task_rows, "runs": list(run_rows.values()),
                "instance_files": list(instance_rows.values()),
                "mask_files": list(mask_rows.values()), "evaluation_files": eval_rows}})
            self._bump_version(con)
        return {"tasks": len(task_rows), "runs": len(run_rows),
                "instance_files": len(instance_rows), "mask_files": len(mask_rows),
                "evaluation_files": len(eval_rows)}

    def sweep(self, older_than_s: float = 600.0) -> list[Path]:
        """Delete what killed writers left: data files the catalogue does not list and
        staging folders whose writer is gone. Writes call this themselves; a live writer's
        staging folder is never touched (its flock is held). ``older_than_s`` applies only
        to staging folders without a lock (left by versions before staging locks)."""
        with self._write_lock():
            con = self._catalog()
            try:
                self._recover(con)
                return self._sweep(con, older_than_s)
            finally:
                con.close()

    def _sweep(self, con: sqlite3.Connection, older_than_s: float = 600.0) -> list[Path]:
        """``sweep`` under the write lock, after ``_recover``: every file a committed
        transaction wrote is listed, so an unlisted data file is a dead writer's."""
        removed: list[Path] = []
        listed = {r[0] for r in con.execute(
            "SELECT file FROM runs UNION ALL SELECT file FROM instance_files"
            " UNION ALL SELECT file FROM mask_files UNION ALL SELECT file FROM evaluation_files"
            " UNION ALL SELECT file FROM tasks")}
        for pattern in ("predictions/*/*/*.parquet", "instances/*/*.parquet",
                        "masks/*/*/*.parquet", "evaluations/*.parquet", "tasks/*.json"):
            for path in self.home.glob(pattern):
                if str(path.relative_to(self.home)) not in listed:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(path)
        staging = self.home / ".staging"
        if staging.is_dir():
            now = time.time()
            for path in sorted(staging.iterdir()):
                if path.suffix == ".lock":
                    if staging_is_abandoned(path):
                        shutil.rmtree(path.with_suffix(""), ignore_errors=True)
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
                        removed.append(path.with_suffix(""))
                elif (path.is_dir() and not path.with_name(f"{path.name}.lock").exists()
                      and now - path.stat().st_mtime > older_than_s):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        return removed

    # -- small lookups -------------------------------------------------------------------
    def task_row(self, task: str, con: sqlite3.Connection | None = None) -> dict | None:
        """The catalogue's row of ``task`` (task, label_list, simulated, source,
        description), or ``None`` where the store has no such task."""
        def q(c: sqlite3.Connection) -> dict | None:
            row = c.execute(
                "SELECT task, label_list, simulated, source, description FROM tasks WHERE task = ?",
                (task,),
            ).fetchone()
            if row is None:
                return None
            return {"task": row[0], "label_list": json.loads(row[1]), "simulated": bool(row[2]),
                    "source": row[3], "description": row[4]}

        if con is not None:
            return q(con)
        with self._read() as c:
            return q(c)

    _task_row = task_row  # the importers' name until they call task_row

    def _instance_file(self, task: str, con: sqlite3.Connection) -> str | None:
        row = con.execute("SELECT file FROM instance_files WHERE task = ?", (task,)).fetchone()
        return row[0] if row else None

    def _mask_file(self, setting: str, task: str, con: sqlite3.Connection) -> str | None:
        row = con.execute(
            "SELECT file FROM mask_files WHERE setting = ? AND task = ?", (setting, task)
        ).fetchone()
        return row[0] if row else None

    def _instance_frame(self, task: str, con: sqlite3.Connection) -> pd.DataFrame | None:
        rel = self._instance_file(task, con)
        if rel is None:
            return None
        return pq.read_table(self.home / rel).to_pandas()

    def label_list(self, task: str) -> list[str]:
        row = self.task_row(task)
        if row is None:
            raise StoreError(f"task {task!r} is not in the store at {self.home}")
        return row["label_list"]

    # -- DuckDB --------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._duck_lock:
            if self._duck is None:
                self._duck = duckdb.connect(":memory:")
            return self._duck.cursor()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a DuckDB query (values bound as parameters) and return a DataFrame."""
        cur = self._cursor()
        try:
            return cur.execute(query, list(params or [])).df()
        finally:
            cur.close()

    # -- queries -------------------------------------------------------------------------
    def tasks(self) -> pd.DataFrame:
        """One row per task: label_list, simulated, source, description, n_instances, n_runs."""
        with self._read() as con:
            frame = pd.read_sql_query(
                "SELECT t.task, t.label_list, t.simulated, t.source, t.description,"
                " COALESCE(i.n_instances, 0) AS n_instances,"
                " (SELECT COUNT(*) FROM runs r WHERE r.task = t.task) AS n_runs"
                " FROM tasks t LEFT JOIN instance_files i ON i.task = t.task ORDER BY t.task",
                con,
            )
        frame["label_list"] = frame["label_list"].map(json.loads)
        frame["simulated"] = frame["simulated"].astype(bool)
        return frame

    def runs(
        self,
        task: str | Sequence[str] | None = None,
        size: str | Sequence[str] | None = None,
        pretrain_seed: Any = None,
        finetune_seed: Any = None,
    ) -> pd.DataFrame:
        """Run metadata, one row per run (columns ``schema.RUN_COLUMNS``)."""
        where, params = [], []
        for column, value in (("task", task), ("size", size), ("pretrain_seed", pretrain_seed),
                              ("finetune_seed", finetune_seed)):
            values = _as_list(value)
            if values is not None:
                if column == "pretrain_seed":
                    values = [str(v) for v in values]
                if column == "finetune_seed":
                    values = [int(v) for v in values]
                clause, p = _in_clause(column, values)
                where.append(clause)
                params += p
        query = f"SELECT {', '.join(schema.RUN_COLUMNS)} FROM runs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY task, size, pretrain_seed, finetune_seed"
        with self._read() as con:
            frame = pd.read_sql_query(query, con, params=params)
        return frame

    def sizes(self, task: str) -> list[str]:
        """Sizes of a task in the order of their mean number of parameters where known,
        else by name."""
        runs = self.runs(task=task)
        return _ordered_sizes(runs["size"].unique().tolist())

    def predictions(
        self,
        task: str | Sequence[str] | None = None,
        size: str | Sequence[str] | None = None,
        pretrain_seed: Any = None,
        finetune_seed: Any = None,
        checkpoint: Any = None,
        instance_id: Any = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Predictions in long format (``schema.PREDICTION_COLUMNS``), filtered.

        Each filter takes one value or a list. ``checkpoint='last'`` keeps each run's last
        checkpoint. Rows come run by run (task, size, pretrain seed, fine-tuning seed), each
        run's rows in file order (with ``checkpoint='last'`` the Parquet scan fixes no
        order). A few instances (``instance_id``) are read from the dense cubes where those
        are built and hold the runs exactly, with the same result.
        """
        columns = list(columns or schema.PREDICTION_COLUMNS)
        unknown = set(columns) - set(schema.PREDICTION_COLUMNS) - {"run_id"}
        if unknown:
            raise ValueError(f"unknown prediction columns {sorted(unknown)}")
        every = self.runs(task=task, size=size)
        runs = every
        if pretrain_seed is not None:
            runs = runs[runs["pretrain_seed"].isin([str(v) for v in _as_list(pretrain_seed)])]
        if finetune_seed is not None:
            runs = runs[runs["finetune_seed"].isin([int(v) for v in _as_list(finetune_seed)])]
        if runs.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        if instance_id is not None:
            fast = self._cube_predictions(every, runs, checkpoint,
                                          [str(i) for i in _as_list(instance_id)], columns)
            if fast is not None:
                return fast
        files = [str(self.home / f) for f in runs["file"]]
        where, params = [], [files]
        if checkpoint is not None and not (isinstance(checkpoint, str) and checkpoint == "last"):
            clause, p = _in_clause("round(checkpoint, 4)",
                                   [round(float(c), 4) for c in _as_list(checkpoint)])
            where.append(clause)
            params += p
        if instance_id is not None:
            clause, p = _in_clause("instance_id", [str(i) for i in _as_list(instance_id)])
            where.append(clause)
            params += p
        base = ("SELECT * FROM read_parquet(?, hive_partitioning = true,"
                " hive_types = {'task': VARCHAR, 'size': VARCHAR})")
        if checkpoint == "last":
            base = (f"SELECT * EXCLUDE (is_last) FROM (SELECT *, checkpoint = max(checkpoint)"
                    f" OVER (PARTITION BY run_id) AS is_last FROM ({base})) WHERE is_last")
        query = f"SELECT {', '.join(columns)} FROM ({base})"
        if where:
            query += " WHERE " + " AND ".join(where)
        return self.sql(query, params)

    def _cube_predictions(self, every: pd.DataFrame, runs: pd.DataFrame, checkpoint: Any,
                          instance_ids: list[str], columns: list[str]) -> pd.DataFrame | None:
        """``predictions`` of a few instances from the (already built) dense cubes of the
        runs' tasks and sizes, or ``None`` where the Parquet scan must answer: a cube not
        built, a run whose file the cube cannot reproduce row for row, probabilities it
        cannot hold. ``every``: all runs of the tasks and sizes; ``runs``: those selected,
        in ``runs()`` order, which is the order of the rows."""
        if len(set(instance_ids)) > self.cube_instance_limit:
            return None
        last = isinstance(checkpoint, str) and checkpoint == "last"
        wanted = (None if checkpoint is None or last
                  else {round(float(c), 4) for c in _as_list(checkpoint)})
        with self._read() as con:
            instance_files = {t: self._instance_file(t, con) for t in runs["task"].unique()}
        parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
        # ``every`` is sorted by task and size: each (task, size) is one slice of it.
        keys = list(zip(every["task"].tolist(), every["size"].tolist()))
        starts = {k: keys.index(k) for k in dict.fromkeys(keys)}
        chosen = set(runs.index)
        for task, size in dict.fromkeys(zip(runs["task"].tolist(), runs["size"].tolist())):
            start = starts[task, size]
            pool = every.iloc[start:start + keys.count((task, size))]
            group = pool if chosen.issuperset(pool.index) else pool[pool.index.isin(chosen)]
            cube = cubes.cached_cube(self, task, size, pool, instance_files[task])
            if cube is None:
                return None
            layout = cube.layout                                      # (P, F)
            if layout is None:  # a cube saved before layouts existed
                return None
            probs = cubes.run_probs(self, cube, pool) if "probs" in columns else None
            if "probs" in columns and probs is None:
                return None
            p_pos = {p: i for i, p in enumerate(cube.pretrain_seeds)}
            f_pos = {f: i for i, f in enumerate(cube.finetune_seeds)}
            seeds_p = group["pretrain_seed"].astype(str).to_numpy(dtype=object)
            seeds_f = group["finetune_seed"].to_numpy(dtype=np.int64)
            pi = np.array([p_pos[p] for p in seeds_p], dtype=np.int64)
            fi = np.array([f_pos[int(f)] for f in seeds_f], dtype=np.int64)
            order = layout[pi, fi]                                     # (R,)
            if (order < 0).any():
                return None
            where = cubes.positions(cube)
            rows = np.array(sorted({where[i] for i in instance_ids if i in where}),
                            dtype=np.int64)                            # (K,) cube order
            n_e = len(cube.checkpoints)
            if last:
                use = np.arange(n_e)[None, :] == cube.last[pi, fi][:, None]   # (R, E)
            elif wanted is not None:
                hit = np.array([round(c, 4) in wanted for c in cube.checkpoints], dtype=bool)
                use = np.broadcast_to(hit, (len(pi), n_e))
            else:
                use = np.ones((len(pi), n_e), dtype=bool)
            correct = np.asarray(cube.correct[rows])[:, pi, fi]         # (K, R, E)
            k_i, r_i, e_i = np.nonzero((correct >= 0) & use[None])
            # A file's rows: by checkpoint then instance (layout 1) or the other way round.
            major = np.where(order[r_i] == 1, e_i, k_i)
            minor = np.where(order[r_i] == 1, k_i, e_i)
            pick = np.lexsort((minor, major, r_i))
            k_i, r_i, e_i = k_i[pick], r_i[pick], e_i[pick]
            n_i, p_i, f_i = rows[k_i], pi[r_i], fi[r_i]
            values = {
                "task": np.full(len(n_i), task, dtype=object),
                "size": np.full(len(n_i), size, dtype=object),
                "run_id": group["run_id"].to_numpy(dtype=object)[r_i],
                "pretrain_seed": seeds_p[r_i],
                "finetune_seed": seeds_f[r_i],
                "checkpoint": np.array(cube.checkpoints, dtype=np.float64)[e_i],
                "instance_id": cube.instance_ids[n_i],
            }
            for name in ("pred", "correct", "p_correct"):
                if name in columns:
                    values[name] = np.asarray(getattr(cube, name)[n_i, p_i, f_i, e_i])
            if probs is not None:
                values["probs"] = np.asarray(probs[p_i, f_i, n_i, e_i])  # (rows, L)
            for c in columns:
                parts[c].append(values[c])
        # DuckDB's dtypes: strings as ``str``, or ``object`` when no row came back.
        text = "str" if any(len(v) for v in parts[columns[0]]) else object
        dtypes = {"task": text, "size": text, "run_id": text, "pretrain_seed": text,
                  "instance_id": text, "finetune_seed": np.int64, "checkpoint": np.float64,
                  "pred": np.int32, "correct": bool, "p_correct": np.float32}
        frame = {}
        for c in columns:
            joined = np.concatenate(parts[c]) if parts[c] else None
            if c == "probs":
                width = joined.shape[1] if joined is not None else 0
                joined = joined if joined is not None else np.zeros((0, width), np.float32)
                frame[c] = pd.Series(list(joined), dtype=object)
            else:
                frame[c] = pd.Series(joined if joined is not None else [], dtype=dtypes[c])
        return pd.DataFrame(frame)

    def instances(
        self,
        task: str | Sequence[str] | None = None,
        split: str | Sequence[str] | None = None,
        instance_id: Any = None,
    ) -> pd.DataFrame:
        """Instances (``schema.INSTANCE_COLUMNS``) with their extra fields as columns."""
        with self._read() as con:
            files = pd.read_sql_query("SELECT task, file FROM instance_files ORDER BY task", con)
        tasks = _as_list(task)
        if tasks is not None:
            files = files[files["task"].isin(tasks)]
        frames = []
        for rec in files.itertuples(index=False):
            frame = pq.read_table(self.home / rec.file).to_pandas()
            frame.insert(0, "task", rec.task)
            frames.append(frame)
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in schema.INSTANCE_COLUMNS})
        frame = pd.concat(frames, ignore_index=True)
        if split is not None:
            frame = frame[frame["split"].isin(_as_list(split))]
        if instance_id is not None:
            frame = frame[frame["instance_id"].isin([str(i) for i in _as_list(instance_id)])]
        frame = _flatten_extra(frame)
        return frame.reset_index(drop=True)

    def masks(
        self,
        setting: str | Sequence[str] | None = None,
        task: str | Sequence[str] | None = None,
        seed: Any = None,
        component: str | None = None,
    ) -> pd.DataFrame:
        """Pruning masks in long format (``schema.MASK_COLUMNS``)."""
        with self._read() as con:
            files = pd.read_sql_query("SELECT setting, task, file FROM mask_files", con)
        for column, value in (("setting", setting), ("task", task)):
            values = _as_list(value)
            if values is not None:
                files = files[files[column].isin(values)]
        if files.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in schema.MASK_COLUMNS})
        where, params = [], [[str(self.home / f) for f in files["file"]]]
        if seed is not None:
            clause, p = _in_clause("seed", [int(s) for s in _as_list(seed)])
            where.append(clause)
            params += p
        if component is not None:
            clause, p = _in_clause("component", _as_list(component))
            where.append(clause)
            params += p
        query = (
            f"SELECT {', '.join(schema.MASK_COLUMNS)} FROM read_parquet(?, hive_partitioning = true,"
            " hive_types = {'setting': VARCHAR, 'task': VARCHAR})"
        )
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY setting, task, seed, component, layer, head"
        return self.sql(query, params)

    def mask_arrays(self, setting: str, task: str, component: str = "head",
                    seeds: Sequence[int] | None = None) -> tuple[np.ndarray, list[int]]:
        """Masks of one setting and task as a dense ``(S, layers, heads)`` array for heads or
        ``(S, layers)`` for MLPs, with the seeds in order."""
        frame = self.masks(setting=setting, task=task, component=component, seed=seeds)
        if frame.empty:
            return np.zeros((0,)), []
        seed_list = sorted(frame["seed"].unique().tolist())
        s_idx = {s: i for i, s in enumerate(seed_list)}
        layers = int(frame["layer"].max()) + 1
        if component == "head":
            heads = int(frame["head"].max()) + 1
            out = np.zeros((len(seed_list), layers, heads))
            out[frame["seed"].map(s_idx).to_numpy(), frame["layer"].to_numpy(),
                frame["head"].to_numpy()] = frame["kept"].to_numpy(dtype=float)
        else:
            out = np.zeros((len(seed_list), layers))
            out[frame["seed"].map(s_idx).to_numpy(), frame["layer"].to_numpy()] = frame["kept"].to_numpy(dtype=float)
        return out, [int(s) for s in seed_list]

    def evaluations(self, experiment: str | Sequence[str] | None = None,
                    task: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Mask evaluation results (``schema.EVALUATION_COLUMNS``)."""
        with self._read() as con:
            files = [str(self.home / r[0]) for r in con.execute("SELECT file FROM evaluation_files")]
        if not files:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in schema.EVALUATION_COLUMNS})
        where, params = [], [files]
        for column, value in (("experiment", experiment), ("task", task)):
            values = _as_list(value)
            if values is not None:
                clause, p = _in_clause(column, values)
                where.append(clause)
                params += p
        query = f"SELECT DISTINCT {', '.join(schema.EVALUATION_COLUMNS)} FROM read_parquet(?)"
        if where:
            query += " WHERE " + " AND ".join(where)
        return self.sql(query + " ORDER BY experiment, variant, task, metric", params)

    # -- annotations ---------------------------------------------------------------------
    def annotate(self, task: str, instance_id: str, annotator: str, verdict: str,
                 note: str = "", *, source: str = "app") -> int:
        """Append one verdict to the log; returns its row id. Never overwrites."""
        verdict = verdict.lower()
        if verdict not in schema.VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(schema.VERDICTS)}, not {verdict!r}")
        annotator = annotator.strip()
        if not annotator:
            raise ValueError("an annotation needs the annotator's name")
        row = (task, str(instance_id), annotator, verdict, note or "", utc_now(), source)
        with self._write_lock():
            con = self._catalog()
            try:
                self._recover(con)
                self._ensure_journal(con)
                # The journal first: a verdict is the one thing here a person made by hand,
                # and it must survive the loss of catalog.sqlite.
                end = self.journal.append({"type": "annotation", "tx": uuid.uuid4().hex[:12],
                                           "row": list(row)})
                with con:
                    cur = con.execute(INSERT_ANNOTATION, row)
                    _set_journal_offset(con, end)
                    self._bump_version(con, content=False)
                    return int(cur.lastrowid)
            finally:
                con.close()

    def annotations(self, task: str | Sequence[str] | None = None,
                    annotator: str | Sequence[str] | None = None,
                    *, current: bool = False) -> pd.DataFrame:
        """The annotation log (``schema.ANNOTATION_COLUMNS`` plus ``id`` and ``source``).

        ``current=True`` keeps only the latest verdict per (task, instance_id, annotator).
        """
        where, params = [], []
        for column, value in (("task", task), ("annotator", annotator)):
            values = _as_list(value)
            if values is not None:
                clause, p = _in_clause(column, values)
                where.append(clause)
                params += p
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        if current:
            query = (
                "SELECT id, task, instance_id, annotator, verdict, note, at, source FROM ("
                " SELECT *, ROW_NUMBER() OVER (PARTITION BY task, instance_id, annotator"
                f" ORDER BY id DESC) AS rn FROM annotations{cond}) WHERE rn = 1 ORDER BY id"
            )
        else:
            query = ("SELECT id, task, instance_id, annotator, verdict, note, at, source"
                     f" FROM annotations{cond} ORDER BY id")
        with self._read() as con:
            return pd.read_sql_query(query, con, params=params)

    # -- dense arrays --------------------------------------------------------------------
    def arrays(
        self,
        task: str,
        size: str,
        pretrain_seeds: Sequence[Any] | None = None,
        finetune_seeds: Sequence[int] | None = None,
        checkpoint: Any = "last",
        split: str | Sequence[str] | None = None,
        instance_ids: Sequence[str] | None = None,
    ) -> SeedArrays:
        """Dense arrays of one task and size for ``seedlab.stats``.

        ``checkpoint``: ``'last'`` (each run's last, 3-D arrays), one value (3-D), a list or
        ``'all'`` (4-D, ``(N, P, F, E)``). Instances are those of the task's instance table
        (restricted to ``split`` / ``instance_ids``) that have predictions, in table order.
        """
        every_run = self.runs(task=task, size=size)
        runs = every_run
        if pretrain_seeds is not None:
            runs = runs[runs["pretrain_seed"].isin([str(s) for s in pretrain_seeds])]
        if finetune_seeds is not None:
            runs = runs[runs["finetune_seed"].isin([int(s) for s in finetune_seeds])]
        if runs.empty:
            raise StoreError(f"no runs for task {task!r}, size {size!r} with those seeds")
        p_list = ([str(s) for s in pretrain_seeds] if pretrain_seeds is not None
                  else sorted(runs["pretrain_seed"].unique(), key=seed_sort_key))
        f_list = ([int(s) for s in finetune_seeds] if finetune_seeds is not None
                  else sorted(int(s) for s in runs["finetune_seed"].unique()))
        present = set(zip(runs["pretrain_seed"], runs["finetune_seed"].astype(int)))
        missing = [(p, f) for p in p_list for f in f_list if (p, f) not in present]

        all_ckpts = sorted({c for cs in runs["checkpoints"] for c in json.loads(cs)})
        cube = cubes.load_cube(self, task, size, every_run)
        rows = None
        if split is not None or instance_ids is not None:
            keep = np.ones(len(cube.instance_ids), dtype=bool)
            if split is not None:
                keep &= np.isin(cube.splits.astype(str), [str(s) for s in _as_list(split)])
            if instance_ids is not None:
                keep &= np.isin(cube.instance_ids.astype(str), [str(i) for i in instance_ids])
            rows = np.flatnonzero(keep)
        wanted = all_ckpts if checkpoint == "all" else checkpoint
        correct, p_correct, pred, used = cubes.select(cube, p_list, f_list, wanted, rows)
        ids = cube.instance_ids if rows is None else cube.instance_ids[rows]
        labels = np.asarray(cube.labels if rows is None else cube.labels[rows], dtype=np.int64)
        return SeedArrays(
            task=task, size=size, instance_ids=ids, labels=labels,
            label_list=self.label_list(task), pretrain_seeds=p_list, finetune_seeds=f_list,
            checkpoints=used, correct=correct, p_correct=p_correct, pred=pred, missing=missing,
        )

    def _instance_keys(self, task: str) -> pd.DataFrame:
        """instance_id, split and label of a task's instances, in table order (only the
        columns ``arrays`` needs: no text, no extra fields to parse)."""
        with self._read() as con:
            rel = self._instance_file(task, con)
        columns = ["instance_id", "split", "label"]
        if rel is None:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        return pq.read_table(self.home / rel, columns=columns).to_pandas()

    # -- summaries -----------------------------------------------------------------------
    def run_accuracy(self, task: str, size: str | Sequence[str] | None = None,
                     checkpoint: Any = "last") -> pd.DataFrame:
        """Accuracy of each run: task, size, pretrain_seed, finetune_seed, checkpoint,
        accuracy, n (instances scored). ``checkpoint``: ``'last'`` (each run's last), one
        value, or ``None`` / ``'all'`` (a row per checkpoint)."""
        cols = ["task", "size", "pretrain_seed", "finetune_seed", "checkpoint", "accuracy", "n"]
        runs = self.runs(task=task, size=size)
        with self._read() as con:
            instance_file = self._instance_file(task, con)
        frames = []
        for size_name in _ordered_sizes(runs["size"].unique().tolist()):
            cube = cubes.load_cube(self, task, size_name, runs[runs["size"] == size_name],
                                   instance_file)
            if checkpoint == "last":
                wanted = np.unique(cube.last[cube.last >= 0])
            elif checkpoint in (None, "all"):
                wanted = np.arange(len(cube.checkpoints))
            else:
                wanted = np.array([i for i, c in enumerate(cube.checkpoints)
                                   if round(c, 4) == round(float(checkpoint), 4)], dtype=int)
            # Counts per run and checkpoint, kept beside the cube; only those asked for.
            counts = cubes.run_counts(cube)                       # (2, P, F, E)
            asked = np.zeros(len(cube.checkpoints), dtype=bool)
            asked[wanted] = True
            n = np.where(asked, counts[0], 0)
            hits = np.where(asked, counts[1], 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                accuracy = hits / n
            p_idx, f_idx, e_idx = np.nonzero(n > 0)
            if checkpoint == "last":
                on_last = cube.last[p_idx, f_idx] == e_idx
                p_idx, f_idx, e_idx = p_idx[on_last], f_idx[on_last], e_idx[on_last]
            frames.append(pd.DataFrame({
                "task": task, "size": size_name,
                "pretrain_seed": np.array(cube.pretrain_seeds, dtype=object)[p_idx],
                "finetune_seed": np.array(cube.finetune_seeds, dtype=np.int64)[f_idx],
                "checkpoint": np.array(cube.checkpoints, dtype=np.float64)[e_idx],
                "accuracy": accuracy[p_idx, f_idx, e_idx],
                "n": n[p_idx, f_idx, e_idx].astype(np.int64),
            }))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        # Sizes in size order; within a size the cube's (seed, seed, checkpoint) order.
        return pd.concat(frames, ignore_index=True)[cols]

    def info(self) -> dict[str, Any]:
        """Counts of what the store holds, per task."""
        with self._read() as con:
            def per_task(query: str) -> dict[str, int]:
                return {r[0]: int(r[1]) for r in con.execute(query)}

            runs = per_task("SELECT task, COUNT(*) FROM runs GROUP BY task")
            preds = per_task("SELECT task, COALESCE(SUM(n_predictions), 0) FROM runs GROUP BY task")
            inst = per_task("SELECT task, n_instances FROM instance_files")
            masks = per_task("SELECT task, SUM(n_rows) FROM mask_files GROUP BY task")
            ann = per_task("SELECT task, COUNT(*) FROM annotations GROUP BY task")
            tasks_meta = {r[0]: {"simulated": bool(r[1]), "labels": json.loads(r[2])}
                          for r in con.execute("SELECT task, simulated, label_list FROM tasks")}
            sizes: dict[str, list[str]] = {}
            for t, s in con.execute("SELECT DISTINCT task, size FROM runs"):
                sizes.setdefault(t, []).append(s)
        names = sorted({*runs, *inst, *masks, *ann, *tasks_meta})
        per = {
            t: {
                "instances": inst.get(t, 0),
                "runs": runs.get(t, 0),
                "predictions": preds.get(t, 0),
                "masks": masks.get(t, 0),
                "annotations": ann.get(t, 0),
                "sizes": _ordered_sizes(sizes.get(t, [])),
                "simulated": tasks_meta.get(t, {}).get("simulated", False),
            }
            for t in names
        }
        total = {k: sum(v[k] for v in per.values())
                 for k in ("instances", "runs", "predictions", "masks", "annotations")}
        return {"home": str(self.home), "version": self.version(), "totals": total, "tasks": per}


class _TxContext:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.summary: dict[str, int] = {}

    def __enter__(self) -> Transaction:
        return self.tx

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.summary = self.tx.commit()
            self.tx.summary = self.summary
        else:
            self.tx.discard()
        return False


# Sizes the seed studies used, smallest first; anything else sorts after by name.
KNOWN_SIZE_ORDER = ["tiny", "mini", "small", "medium", "base", "large"]


def _ordered_sizes(sizes: Iterable[str]) -> list[str]:
    def key(s: str) -> tuple:
        lowered = s.lower()
        for i, name in enumerate(KNOWN_SIZE_ORDER):
            if lowered == name:
                return (0, i, 0.0, s)
        return (1, 0, *seed_sort_key(s)[1:])
    return sorted(set(sizes), key=key)
