"""The prediction store: Parquet files under a seedlab home, indexed by a SQLite catalogue,
queried with DuckDB.

Concurrency model
-----------------
* Data files are immutable. A write stages new files in its own ``.staging/<id>/`` (held
  with an ``flock`` while the writer lives), then, holding an exclusive ``flock`` on
  ``.write.lock``, moves them into place under new names, appends its commit record to
  the journal (``journal/log.jsonl``) and registers the same rows in ``catalog.sqlite`` in
  one SQLite transaction. That transaction is the commit point for readers; the journal
  is what a lost catalogue is rebuilt from (every verdict included). What a killed writer
  leaves is swept by the next write. docs/store.md states the guarantees.
* ``catalog.sqlite`` runs in WAL mode with a busy timeout: the app, the CLI and background
  workers read it concurrently and take turns writing. Annotations and the job queue are
  appended there; nothing a user wrote is ever updated in place.
* DuckDB is used in-process, in memory, as SQL over the listed Parquet files; it never
  holds a database file, so there is no "database is locked" between processes.

Modules: ``tables`` (values and table builders), ``journal`` (the log beside the
catalogue), ``commit`` (``Transaction``: one function per staged kind, ``STAGES``),
``catalog`` (the catalogue, recovery, reindex, sweep, verdicts), ``reads`` (queries and
dense arrays), ``home`` (``Store``, both sides together).

Notebook API: ``Store(home)`` with ``predictions``, ``instances``, ``masks``,
``annotations``, ``runs`` (pandas DataFrames) and ``arrays`` (dense numpy arrays for
``seedlab.stats``).
"""

import sqlite3  # noqa: F401 - tests patch seedlab.store.sqlite3 (the module itself)

from seedlab.keys import KNOWN_SIZE_ORDER, ordered_sizes, seed_sort_key
from seedlab.store.catalog import CATALOG_SCHEMA
from seedlab.store.commit import Transaction
from seedlab.store.home import Store
from seedlab.store.shipped import default_home
from seedlab.store.tables import (
    DATA_FOLDERS,
    RUN_METADATA_KEY,
    RunData,
    SeedArrays,
    run_id_for,
    run_metadata,
    utc_now,
)

__all__ = [
    "CATALOG_SCHEMA", "DATA_FOLDERS", "KNOWN_SIZE_ORDER", "RUN_METADATA_KEY", "RunData",
    "SeedArrays", "Store", "Transaction", "default_home", "ordered_sizes", "run_id_for",
    "run_metadata", "seed_sort_key", "utc_now",
]
