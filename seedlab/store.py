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
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
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
        existing = self.store._task_row(task) or self._tasks.get(task)
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
            self.staging.mkdir(parents=True, exist_ok=True)
            path = self.staging / f"run-{run_id}.parquet"
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

    # -- commit --------------------------------------------------------------------------
    def commit(self) -> dict[str, int]:
        store = self.store
        home = store.home
        with store._write_lock():
            catalog = store._catalog()
            try:
                existing_runs = {
                    row[0]: row
                    for row in catalog.execute("SELECT run_id, content_hash, file FROM runs")
                }
                # Validate against the store before anything moves.
                for run_id, (run, _table, digest) in self._runs.items():
                    old = existing_runs.get(run_id)
                    if old is not None and old[1] != digest and not self.replace:
                        raise DuplicateRunError(
                            f"{self.source}: the store already has a different run for task"
                            f" {run.task}, size {run.size}, pretraining seed {run.pretrain_seed},"
                            f" fine-tuning seed {run.finetune_seed}; import with --replace to"
                            " overwrite it"
                        )
                for task in {*self._instances, *(r.task for r, _, _ in self._runs.values())}:
                    if task not in self._tasks and store._task_row(task, catalog) is None:
                        raise StoreError(f"task {task!r} has no label list: call set_task first")

                self.staging.mkdir(parents=True, exist_ok=True)
                moves: list[tuple[Path, Path]] = []
                now = utc_now()
                task_rows, run_rows, instance_rows, mask_rows, eval_rows = [], [], [], [], []
                stale: list[Path] = []

                for task, meta in self._tasks.items():
                    known = store._task_row(task, catalog)
                    if (known is not None and known["label_list"] == meta["label_list"]
                            and known["simulated"] == meta["simulated"]
                            and (not meta["description"]
                                 or known["description"] == meta["description"])):
                        continue  # unchanged: re-importing must not touch the store
                    rel = f"tasks/{task}.json"
                    tmp = self.staging / f"task-{task}.json"
                    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
                    moves.append((tmp, home / rel))
                    task_rows.append(
                        (
                            task,
                            json.dumps(meta["label_list"]),
                            int(meta["simulated"]),
                            meta["source"],
                            meta["description"],
                            rel,
                        )
                    )

                for task, frame in self._instances.items():
                    old = store._instance_frame(task, catalog)
                    merged = _merge_instances(old, frame, self.source) if old is not None else frame
                    table = _instance_table(merged)
                    digest = _table_digest(table)[:16]
                    rel = f"instances/task={task}/{digest}.parquet"
                    old_file = store._instance_file(task, catalog)
                    if old_file == rel:
                        continue
                    tmp = self.staging / f"instances-{task}.parquet"
                    pq.write_table(table, tmp)
                    moves.append((tmp, home / rel))
                    instance_rows.append((task, rel, table.num_rows, now))
                    if old_file:
                        stale.append(home / old_file)
                    self.summary["instances"] += len(frame)

                for run_id, (run, table, digest) in self._runs.items():
                    old = existing_runs.get(run_id)
                    if old is not None and old[1] == digest:
                        self.summary["runs_unchanged"] += 1
                        continue
                    rel = f"predictions/task={run.task}/size={run.size}/{run_id}-{digest[:8]}.parquet"
                    tmp = self.staging / f"run-{run_id}.parquet"
                    if not isinstance(table, _SpilledRun):
                        pq.write_table(table, tmp)
                    moves.append((tmp, home / rel))
                    if old is not None:
                        stale.append(home / old[2])
                        self.summary["runs_replaced"] += 1
                    else:
                        self.summary["runs_added"] += 1
                    run_rows.append(_run_row(run, run_id, table, digest, rel, now))

                for (setting, task), frame in self._masks.items():
                    table = _mask_table(frame)
                    digest = _table_digest(table)[:16]
                    rel = f"masks/setting={setting}/task={task}/{digest}.parquet"
                    old_file = store._mask_file(setting, task, catalog)
                    self.summary["masks"] += table.num_rows
                    if old_file == rel:
                        continue
                    tmp = self.staging / f"masks-{setting}-{task}.parquet"
                    pq.write_table(table, tmp)
                    moves.append((tmp, home / rel))
                    mask_rows.append((setting, task, rel, table.num_rows, now))
                    if old_file:
                        stale.append(home / old_file)

                dropped_masks = []
                for setting, task in sorted(self._dropped_masks - set(self._masks)):
                    old_file = store._mask_file(setting, task, catalog)
                    if old_file:
                        dropped_masks.append((setting, task))
                        stale.append(home / old_file)

                dropped_runs = []
                for run_id in sorted(self._dropped_runs - set(self._runs)):
                    row = catalog.execute("SELECT file FROM runs WHERE run_id = ?",
                                          (run_id,)).fetchone()
                    if row:
                        dropped_runs.append((run_id,))
                        stale.append(home / row[0])

                if self._evaluations:
                    frame = pd.concat(self._evaluations, ignore_index=True)
                    table = pa.Table.from_pandas(frame, schema=schema.EVALUATION_SCHEMA,
                                                 preserve_index=False)
                    digest = _table_digest(table)[:16]
                    rel = f"evaluations/{digest}.parquet"
                    self.summary["evaluations"] += table.num_rows
                    known = {r[0] for r in catalog.execute("SELECT file FROM evaluation_files")}
                    if rel not in known:
                        tmp = self.staging / f"evaluations-{digest}.parquet"
                        pq.write_table(table, tmp)
                        moves.append((tmp, home / rel))
                        eval_rows.append((rel, table.num_rows, now))

                annotation_rows = self._new_annotations(catalog, now)

                # Move files into place (new names only: registered files are never
                # overwritten), then register everything in one transaction.
                for src, dst in moves:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                _fsync_dir(home)
                with catalog:
                    catalog.executemany(
                        "INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?, ?)", task_rows
                    )
                    catalog.executemany(
                        "INSERT OR REPLACE INTO instance_files VALUES (?, ?, ?, ?)", instance_rows
                    )
                    catalog.executemany(
                        f"INSERT OR REPLACE INTO runs ({', '.join(schema.RUN_COLUMNS)})"
                        f" VALUES ({', '.join('?' for _ in schema.RUN_COLUMNS)})",
                        run_rows,
                    )
                    catalog.executemany(
                        "INSERT OR REPLACE INTO mask_files VALUES (?, ?, ?, ?, ?)", mask_rows
                    )
                    catalog.executemany(
                        "INSERT OR REPLACE INTO evaluation_files VALUES (?, ?, ?)", eval_rows
                    )
                    catalog.executemany(
                        "DELETE FROM mask_files WHERE setting = ? AND task = ?", dropped_masks
                    )
                    catalog.executemany("DELETE FROM runs WHERE run_id = ?", dropped_runs)
                    catalog.executemany(
                        "INSERT INTO annotations (task, instance_id, annotator, verdict, note, at,"
                        " source) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        annotation_rows,
                    )
                    catalog.execute(
                        "INSERT INTO imports VALUES (?, ?, ?, ?, ?)",
                        (self.import_id, self.kind, self.source, now, json.dumps(self.summary)),
                    )
                    changed = bool(moves or dropped_masks or dropped_runs)
                    if changed or annotation_rows:
                        store._bump_version(catalog, content=changed)
                for path in stale:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            finally:
                catalog.close()
                shutil.rmtree(self.staging, ignore_errors=True)
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


def _positions(values: pa.ChunkedArray, keys: pa.Array) -> np.ndarray:
    """The position of each value in ``keys`` (-1 where absent), ``(len(values),)`` int64."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    found = pa.compute.index_in(values.cast(keys.type), value_set=keys)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
    missing (a fresh clone of the repository) rebuilds the catalogue from the files.
    """

    def __init__(self, home: str | Path | None = None, *, create: bool = True) -> None:
        self.home = Path(home).resolve() if home is not None else default_home()
        if not self.home.exists():
            if not create:
                raise StoreError(f"seedlab home {self.home} does not exist")
            self.home.mkdir(parents=True)
        self._duck_lock = threading.Lock()
        self._duck: duckdb.DuckDBPyConnection | None = None
        self._init_catalog()

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    @staticmethod
    def is_home(path: str | Path) -> bool:
        """Whether ``path`` holds a seedlab store: a catalogue, or the data files a
        catalogue is rebuilt from (a fresh clone of the repository's ``data/``)."""
        path = Path(path)
        return (path / "catalog.sqlite").exists() or any(
            (path / folder).is_dir() for folder in DATA_FOLDERS)

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
        fresh = not self.catalog_path.exists()
        con = self._connect()
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.executescript(CATALOG_SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('data_version', '0')")
            con.execute("INSERT OR IGNORE INTO meta VALUES ('content_version', '0')")
            con.commit()
        finally:
            con.close()
        if fresh and any((self.home / d).is_dir() for d in DATA_FOLDERS):
            self.reindex()

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Exclusive lock across processes for the file moves and catalogue commit."""
        path = self.home / ".write.lock"
        with open(path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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

    def reindex(self) -> dict[str, int]:
        """Rebuild the file index of the catalogue from the files under the home.

        Annotations, jobs and the import log are kept. Used when a home is opened without a
        catalogue (a fresh clone) and by ``seedlab reindex``.
        """
        counts = {"tasks": 0, "runs": 0, "instance_files": 0, "mask_files": 0, "evaluation_files": 0}
        with self._write_lock():
            con = self._catalog()
            try:
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
                    for table_name in ("tasks", "runs", "instance_files", "mask_files",
                                       "evaluation_files"):
                        con.execute(f"DELETE FROM {table_name}")
                    con.executemany("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?)", task_rows)
                    con.executemany(
                        f"INSERT INTO runs ({', '.join(schema.RUN_COLUMNS)})"
                        f" VALUES ({', '.join('?' for _ in schema.RUN_COLUMNS)})",
                        list(run_rows.values()),
                    )
                    con.executemany("INSERT INTO instance_files VALUES (?, ?, ?, ?)",
                                    list(instance_rows.values()))
                    con.executemany("INSERT INTO mask_files VALUES (?, ?, ?, ?, ?)",
                                    list(mask_rows.values()))
                    con.executemany("INSERT INTO evaluation_files VALUES (?, ?, ?)", eval_rows)
                    self._bump_version(con)
                counts.update(tasks=len(task_rows), runs=len(run_rows),
                              instance_files=len(instance_rows), mask_files=len(mask_rows),
                              evaluation_files=len(eval_rows))
            finally:
                con.close()
        return counts

    def sweep(self, older_than_s: float = 600.0) -> list[Path]:
        """Delete files under the home that the catalogue does not list (left by a process
        killed mid-write) and are older than ``older_than_s``. Returns what was removed."""
        removed: list[Path] = []
        with self._write_lock(), self._read() as con:
            listed = {r[0] for r in con.execute(
                "SELECT file FROM runs UNION ALL SELECT file FROM instance_files"
                " UNION ALL SELECT file FROM mask_files UNION ALL SELECT file FROM evaluation_files")}
            now = time.time()
            for pattern in ("predictions/**/*.parquet", "instances/**/*.parquet",
                            "masks/**/*.parquet", "evaluations/*.parquet"):
                for path in self.home.glob(pattern):
                    rel = str(path.relative_to(self.home))
                    if rel not in listed and now - path.stat().st_mtime > older_than_s:
                        path.unlink()
                        removed.append(path)
            staging = self.home / ".staging"
            if staging.exists():
                for path in staging.iterdir():
                    if now - path.stat().st_mtime > older_than_s:
                        shutil.rmtree(path, ignore_errors=True)
                        removed.append(path)
        return removed

    # -- small lookups -------------------------------------------------------------------
    def _task_row(self, task: str, con: sqlite3.Connection | None = None) -> dict | None:
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
        row = self._task_row(task)
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

    _CUBE_INSTANCES = 1000  # predictions(instance_id=...) from cubes up to this many ids

    def _cube_predictions(self, every: pd.DataFrame, runs: pd.DataFrame, checkpoint: Any,
                          instance_ids: list[str], columns: list[str]) -> pd.DataFrame | None:
        """``predictions`` of a few instances from the (already built) dense cubes of the
        runs' tasks and sizes, or ``None`` where the Parquet scan must answer: a cube not
        built, a run whose file the cube cannot reproduce row for row, probabilities it
        cannot hold. ``every``: all runs of the tasks and sizes; ``runs``: those selected,
        in ``runs()`` order, which is the order of the rows."""
        if len(set(instance_ids)) > self._CUBE_INSTANCES:
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
        con = self._catalog()
        try:
            with con:
                cur = con.execute(
                    "INSERT INTO annotations (task, instance_id, annotator, verdict, note, at, source)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (task, str(instance_id), annotator, verdict, note or "", utc_now(), source),
                )
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
            shutil.rmtree(self.tx.staging, ignore_errors=True)
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
