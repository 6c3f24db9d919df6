"""Staged writes and their commit: ``Transaction`` collects one import, ``commit`` makes
it visible at once (see docs/store.md for the steps and what a crash leaves)."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import json
import math
import os
import shutil
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seedlab import schema
from seedlab.errors import DuplicateRunError, InputError, StoreError
from seedlab.store.journal import fsync_dir, fsync_file
from seedlab.store.tables import (
    RunData,
    SpilledRun,
    instance_table,
    mask_table,
    merge_instances,
    prediction_table,
    run_id_for,
    run_row,
    run_stats,
    table_digest,
    utc_now,
)

if TYPE_CHECKING:
    from seedlab.store.home import Store


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
        self._dropped_tasks: set[str] = set()
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
            frame = merge_instances(self._instances[task], frame, self.source)
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
        table = prediction_table(run, run_id)
        digest = table_digest(table)
        if spill:
            path = self._staging_dir() / f"run-{run_id}.parquet"
            pq.write_table(table, path)
            stats = SpilledRun(path, run_stats(table))
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

    def remove_task(self, task: str) -> None:
        """Stage the removal of a task's row and instance file (a task renamed to its
        canonical name: ``seedlab.store.migrate``). Its runs and masks are removed with
        ``remove_run`` / ``remove_masks``; a task staged with ``set_task`` here wins."""
        self._dropped_tasks.add(task)

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

        Order: stage files (fsynced) -> journal an intent naming them -> move them into
        place under new names -> append the commit record to the journal -> one SQLite
        transaction -> delete replaced files -> sweep what killed writers left. A process killed before the SQLite commit leaves
        the store as it was; its journal record is marked aborted by the next writer, and
        its files are swept. ``seedlab reindex`` rebuilds only what the journal says was
        committed."""
        store = self.store
        with store.writer() as writer:
            catalog = writer.con
            try:
                writer.recover()
                _validate(self, catalog)
                plan = _Plan(now=utc_now())
                for stage in STAGES:
                    stage(self, catalog, plan)
                annotation_rows = self._new_annotations(catalog, plan.now)
                changed = plan.changed()
                if not changed and not annotation_rows:
                    return dict(self.summary)  # a repeated import: nothing is written
                record = {
                    "type": "commit", "tx": self.import_id, "at": plan.now,
                    "tables": plan.rows, "drop": plan.drops,
                    "annotations": [list(r) for r in annotation_rows],
                    "import": [self.import_id, self.kind, self.source, plan.now,
                               json.dumps(self.summary)],
                    "stale": [str(p.relative_to(store.home)) for p in plan.stale],
                }
                line = store.journal.encode(record)
                writer.ensure_journal()
                # Which files this transaction puts in place, before any is: a rebuild never
                # registers them unless its commit record follows, and a sweep removes them.
                store.journal.append({"type": "intent", "tx": self.import_id, "files": [
                    str(dst.relative_to(store.home)) for _, dst in plan.moves]})
                _step("intended")
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
                end = store.journal.append(line)
                _step("journaled")
                with catalog:
                    apply_record(catalog, record)
                    set_journal_offset(catalog, end)
                    writer.bump_version(content=changed)
                _step("catalogued")
                for path in plan.stale:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    _step("unlinked")
                self.discard()
                writer.sweep()
            finally:
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
            at = getattr(rec, "at", None)
            if at is None or at is pd.NaT or (isinstance(at, float) and math.isnan(at)) \
                    or at == "":
                at = now
            elif isinstance(at, datetime):  # as sqlite3 stored a datetime before
                at = at.isoformat(" ")
            else:
                at = str(at)
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
        old = store.instance_frame(task, catalog)
        merged = merge_instances(old, frame, tx.source) if old is not None else frame
        table = instance_table(merged)
        rel = f"instances/task={task}/{table_digest(table)[:16]}.parquet"
        old_file = store.instance_file(task, catalog)
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
        if not isinstance(table, SpilledRun):
            pq.write_table(table, tmp)
        plan.add("runs", run_row(run, run_id, table, digest, rel, plan.now), tmp,
                 store.home / rel)
        if old is not None:
            plan.stale.append(store.home / old[1])
            tx.summary["runs_replaced"] += 1
        else:
            tx.summary["runs_added"] += 1


def _stage_masks(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    store = tx.store
    for (setting, task), frame in tx._masks.items():
        table = mask_table(frame)
        rel = f"masks/setting={setting}/task={task}/{table_digest(table)[:16]}.parquet"
        old_file = store.mask_file(setting, task, catalog)
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
        old_file = tx.store.mask_file(setting, task, catalog)
        if old_file:
            plan.drop("mask_files", (setting, task), tx.store.home / old_file)


def _drop_runs(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    for run_id in sorted(tx._dropped_runs - set(tx._runs)):
        row = catalog.execute("SELECT file FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row:
            plan.drop("runs", (run_id,), tx.store.home / row[0])


def _drop_tasks(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    for task in sorted(tx._dropped_tasks - set(tx._tasks)):
        if tx.store.task_row(task, catalog) is not None:
            plan.drop("tasks", (task,), tx.store.home / f"tasks/{task}.json")
        old_file = tx.store.instance_file(task, catalog)
        if old_file and task not in tx._instances:
            plan.drop("instance_files", (task,), tx.store.home / old_file)


def _stage_evaluations(tx: Transaction, catalog: sqlite3.Connection, plan: _Plan) -> None:
    if not tx._evaluations:
        return
    frame = pd.concat(tx._evaluations, ignore_index=True)
    table = pa.Table.from_pandas(frame, schema=schema.EVALUATION_SCHEMA, preserve_index=False)
    digest = table_digest(table)[:16]
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
    _drop_tasks, _stage_evaluations,
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
    "tasks": "DELETE FROM tasks WHERE task = ?",
    "instance_files": "DELETE FROM instance_files WHERE task = ?",
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


def journal_offset(con: sqlite3.Connection) -> int | None:
    row = con.execute("SELECT value FROM meta WHERE key = 'journal_offset'").fetchone()
    return int(row[0]) if row else None


def set_journal_offset(con: sqlite3.Connection, end: int) -> None:
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

class TransactionContext:
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


