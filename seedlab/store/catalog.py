"""The catalogue: ``catalog.sqlite`` (its tables, connections, the write lock, version
numbers), its agreement with the journal, ``reindex``, ``sweep``, verdicts and small
lookups. ``Catalog`` is the part of ``Store`` that writes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seedlab import schema
from seedlab.errors import StoreError
from seedlab.store.commit import (
    CATALOG_UPSERTS,
    FILE_TABLES,
    INSERT_ANNOTATION,
    Transaction,
    TransactionContext,
    apply_record,
    journal_offset,
    set_journal_offset,
    staging_is_abandoned,
)
from seedlab.store.journal import Entry
from seedlab.store.tables import (
    DATA_FOLDERS,
    RUN_METADATA_KEY,
    RunData,
    run_row,
    table_digest,
    utc_now,
)

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

# The homes whose write lock this thread holds (flock is per open file: a second lock
# of the same home from the same thread would wait for itself).
_LOCKS_HELD = threading.local()

# Where a home's data files live (what ``reindex`` reads and ``sweep`` may remove).
DATA_PATTERNS = ("predictions/*/*/*.parquet", "instances/*/*.parquet", "masks/*/*/*.parquet",
                 "evaluations/*.parquet", "tasks/*.json")


def _own_leftovers(entries: list[Entry]) -> tuple[set[str], set[str]]:
    """From the journal: (files the store moved into place for transactions that never
    committed, files that committed transactions replaced), relative to the home."""
    aborted = {e.record.get("tx") for e in entries if e.record.get("type") == "abort"}
    committed = {e.record.get("tx") for e in entries
                 if e.record.get("type") == "commit" and e.record.get("tx") not in aborted}
    uncommitted: set[str] = set()
    replaced: set[str] = set()
    for e in entries:
        if e.record.get("type") == "intent" and e.record.get("tx") not in committed:
            uncommitted.update(e.record.get("files", []))
        elif e.record.get("type") == "commit" and e.record.get("tx") in committed:
            replaced.update(e.record.get("stale", []))
    return uncommitted, replaced


class CatalogWriter:
    """The catalogue as one transaction writes it (``Transaction.commit``): ``con``, a
    connection opened under the store's write lock, and the upkeep a commit does around
    its own change (see ``Catalog.writer``)."""

    def __init__(self, store: Catalog, con: sqlite3.Connection) -> None:
        self.store, self.con = store, con

    def recover(self) -> None:
        """Bring the catalogue in step with the journal (what a killed writer left)."""
        self.store._recover(self.con)

    def ensure_journal(self) -> None:
        """Start the journal where the store has none yet."""
        self.store._ensure_journal(self.con)

    def bump_version(self, *, content: bool = True) -> None:
        """Count a change (``content``: of predictions, not only of verdicts)."""
        self.store._bump_version(self.con, content=content)

    def sweep(self) -> list[Path]:
        """Remove what killed writers left behind; returns the paths removed."""
        return self.store._sweep(self.con)


class Catalog:
    """The catalogue side of ``Store`` (see the module docstring)."""

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
    def writer(self) -> Iterator[CatalogWriter]:
        """The write lock held and the catalogue open for one transaction, closed after
        (what ``Transaction.commit`` writes through; not needed in a notebook)."""
        with self._write_lock():
            con = self._catalog()
            try:
                yield CatalogWriter(self, con)
            finally:
                con.close()

    @contextlib.contextmanager
    def _read(self, con: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """A catalogue connection for a read: ``con`` when the caller holds one (left open),
        else a fresh one, closed after."""
        if con is not None:
            yield con
            return
        con = self._catalog()
        try:
            yield con
        finally:
            con.close()

    def _init_catalog(self) -> None:
        try:
            fresh, offset = self._create_tables()
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            aside = self._set_catalog_aside()
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
            return fresh, journal_offset(con)
        finally:
            con.close()

    def _set_catalog_aside(self) -> Path:
        """Rename an unreadable catalogue (and its WAL files) aside, never deleting it."""
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
        Yields whether it is held (always, unless ``blocking=False`` found it busy).
        Re-entrant within a thread: a write that finds the catalogue deleted rebuilds it
        under the lock it already holds."""
        held = _LOCKS_HELD.__dict__.setdefault("homes", set())
        if self.home in held:
            yield True
            return
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
            held.add(self.home)
            try:
                yield True
            finally:
                held.discard(self.home)
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- the journal (under the write lock) ----------------------------------------------
    def _recover(self, con: sqlite3.Connection) -> None:
        """Bring the catalogue and the journal into agreement before a write: records past
        the catalogue's offset belong to writers that died before their SQLite commit and
        are marked aborted (all or nothing of each); a journal shorter than the catalogue
        says (deleted or cut) is set aside and started again at the next write."""
        if not self.journal.exists():
            return
        offset = journal_offset(con)
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
        dead = dict.fromkeys(e.record.get("tx") for e in pending
                             if e.record.get("type") in ("intent", "commit", "annotation"))
        aborts = [{"type": "abort", "tx": tx, "at": utc_now()} for tx in dead]
        end = self.journal.append(*aborts) if aborts else self.journal.size()
        with con:
            set_journal_offset(con, end)

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
            set_journal_offset(con, end)

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

    def transaction(self, kind: str, source: str = "", *, replace: bool = False) -> TransactionContext:
        """Stage writes, then commit them atomically: ``with store.transaction('zhong', path)
        as tx: tx.add_run(...)``. ``replace=True`` lets a run with the same key but different
        predictions replace the stored one."""
        return TransactionContext(Transaction(self, kind, str(source), replace=replace))

    def reindex(self, *, announce: bool = False) -> dict[str, int]:
        """Rebuild the file index of the catalogue.

        Where the home has a journal, what it records as committed is registered (files a
        killed writer left are ignored, and swept), plus files the store never wrote (a
        `git pull` of data/) where their key is free; the verdicts and import log it holds
        are restored where the catalogue lacks them.
        A home without a journal (written before journals existed, or a fresh clone of
        ``data/``) is indexed from the files found. Annotations, jobs and the import log
        already in the catalogue are kept. ``announce``: say on stderr what was rebuilt
        and what could not be (the catalogue was lost).
        """
        with self._write_lock():
            con = self._catalog()
            try:
                if self.journal.exists() and journal_offset(con) is not None:
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
            # Files the store never wrote (a `git pull` of data/, a copy by hand) are
            # registered from their contents where their key is free; the store's own
            # uncommitted or replaced files are not.
            listed = self._listed_files(con)
            uncommitted, replaced = _own_leftovers(entries)
            foreign = self._file_rows(skip=listed | uncommitted | replaced)
            for table, rows in foreign.items():
                con.executemany(CATALOG_UPSERTS[table].replace("OR REPLACE", "OR IGNORE"),
                                [tuple(r) for r in rows])
            set_journal_offset(con, end)
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

    def _listed_files(self, con: sqlite3.Connection) -> set[str]:
        """Every data file the catalogue lists, relative to the home."""
        return {r[0] for r in con.execute(
            "SELECT file FROM runs UNION ALL SELECT file FROM instance_files"
            " UNION ALL SELECT file FROM mask_files UNION ALL SELECT file FROM evaluation_files"
            " UNION ALL SELECT file FROM tasks")}

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
        rows = self._file_rows(skip=set())
        with con:
            for table_name in FILE_TABLES:
                con.execute(f"DELETE FROM {table_name}")
            apply_record(con, {"type": "index", "tables": rows})
            self._bump_version(con)
        return {table: len(rows[table]) for table in FILE_TABLES}

    def _file_rows(self, skip: set[str]) -> dict[str, list]:
        """Catalogue rows of the data files under the home, read from the files themselves
        (all but the relative paths in ``skip``); of two files of one run, the newer."""
        def wanted(paths: Iterable[Path]) -> list[Path]:
            return [p for p in paths if str(p.relative_to(self.home)) not in skip]

        task_rows = []
        for path in wanted(sorted((self.home / "tasks").glob("*.json"))):
            meta = json.loads(path.read_text())
            task_rows.append(
                (meta["task"], json.dumps(meta["label_list"]), int(meta.get("simulated", False)),
                 meta.get("source", ""), meta.get("description", ""),
                 str(path.relative_to(self.home)))
            )
        run_rows: dict[str, tuple] = {}
        run_mtime: dict[str, float] = {}
        for path in wanted(sorted((self.home / "predictions").glob("task=*/size=*/*.parquet"))):
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
            # In the schema it was written with (Parquet reads lists back as
            # ``list<element>``), so that the same run imported again is unchanged.
            with contextlib.suppress(pa.ArrowInvalid, ValueError):
                table = table.cast(schema.PREDICTION_FILE_SCHEMA.with_metadata(
                    table.schema.metadata))
            digest = table_digest(table)
            run_rows[meta["run_id"]] = run_row(
                run, meta["run_id"], table, digest, str(path.relative_to(self.home)),
                datetime.fromtimestamp(mtime, UTC).isoformat(),
            )
            run_mtime[meta["run_id"]] = mtime
        instance_rows = {}
        for path in wanted(sorted((self.home / "instances").glob("task=*/*.parquet"),
                                  key=lambda p: p.stat().st_mtime)):
            task = path.parent.name.split("=", 1)[1]
            instance_rows[task] = (task, str(path.relative_to(self.home)),
                                   pq.ParquetFile(path).metadata.num_rows, utc_now())
        mask_rows = {}
        for path in wanted(sorted((self.home / "masks").glob("setting=*/task=*/*.parquet"),
                                  key=lambda p: p.stat().st_mtime)):
            setting = path.parent.parent.name.split("=", 1)[1]
            task = path.parent.name.split("=", 1)[1]
            mask_rows[(setting, task)] = (setting, task, str(path.relative_to(self.home)),
                                          pq.ParquetFile(path).metadata.num_rows, utc_now())
        eval_rows = [
            (str(p.relative_to(self.home)), pq.ParquetFile(p).metadata.num_rows, utc_now())
            for p in wanted(sorted((self.home / "evaluations").glob("*.parquet")))
        ]
        return {"tasks": task_rows, "runs": list(run_rows.values()),
                "instance_files": list(instance_rows.values()),
                "mask_files": list(mask_rows.values()), "evaluation_files": eval_rows}

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
        listed = self._listed_files(con)
        unlisted = [path for pattern in DATA_PATTERNS for path in self.home.glob(pattern)
                    if str(path.relative_to(self.home)) not in listed]
        if unlisted:  # only the store's own: a file it never wrote is not touched
            uncommitted, replaced = _own_leftovers(self.journal.read())
            for path in unlisted:
                if str(path.relative_to(self.home)) in uncommitted | replaced:
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
                elif path.name.endswith(".lock-new"):  # killed before its rename
                    if staging_is_abandoned(path):
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
                            removed.append(path)
                elif (path.is_dir() and not path.with_name(f"{path.name}.lock").exists()
                      and now - path.stat().st_mtime > older_than_s):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        return removed

    # -- small lookups -------------------------------------------------------------------
    def task_row(self, task: str, con: sqlite3.Connection | None = None) -> dict | None:
        """The catalogue's row of ``task`` (task, label_list, simulated, source,
        description), or ``None`` where the store has no such task."""
        with self._read(con) as c:
            row = c.execute(
                "SELECT task, label_list, simulated, source, description FROM tasks WHERE task = ?",
                (task,),
            ).fetchone()
        if row is None:
            return None
        return {"task": row[0], "label_list": json.loads(row[1]), "simulated": bool(row[2]),
                "source": row[3], "description": row[4]}

    def instance_file(self, task: str, con: sqlite3.Connection | None = None) -> str | None:
        """The registered instance file of ``task`` (relative to the home), or ``None``."""
        with self._read(con) as c:
            row = c.execute("SELECT file FROM instance_files WHERE task = ?", (task,)).fetchone()
        return row[0] if row else None

    def mask_file(self, setting: str, task: str, con: sqlite3.Connection | None = None
                  ) -> str | None:
        """The registered mask file of ``setting`` and ``task`` (relative), or ``None``."""
        with self._read(con) as c:
            row = c.execute("SELECT file FROM mask_files WHERE setting = ? AND task = ?",
                            (setting, task)).fetchone()
        return row[0] if row else None

    def instance_frame(self, task: str, con: sqlite3.Connection | None = None
                       ) -> pd.DataFrame | None:
        """The registered instance table of ``task`` as stored (every column), or ``None``."""
        rel = self.instance_file(task, con)
        if rel is None:
            return None
        return pq.read_table(self.home / rel).to_pandas()

    def label_list(self, task: str) -> list[str]:
        row = self.task_row(task)
        if row is None:
            raise StoreError(f"task {task!r} is not in the store at {self.home}")
        return row["label_list"]

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
                    set_journal_offset(con, end)
                    self._bump_version(con, content=False)
                    return int(cur.lastrowid)
            finally:
                con.close()

