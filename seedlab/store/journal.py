"""The store's journal: an append-only log of every change, kept outside ``catalog.sqlite``.

``<home>/journal/log.jsonl`` holds one JSON record a line, appended and fsynced under the
store's write lock:

* ``baseline``: the catalogue's rows when the journal was started (tables, verdicts,
  import log), so the journal alone describes the store;
* ``intent``: the files a transaction is about to move into place (before any moves), so
  that a rebuild or a sweep can tell a killed writer's files from files the store never
  wrote;
* ``commit``: one transaction's catalogue rows (added and removed files, verdicts, its
  import-log entry, the files it replaced), written after its files are in place and
  before the SQLite commit;
* ``annotation``: one verdict from ``Store.annotate``;
* ``abort``: an intent, commit or verdict whose SQLite commit never happened (the writer died in
  between); a rebuild skips it.

The catalogue stores the byte offset of the journal it has applied (``meta.journal_offset``)
in the same SQLite transaction as the rows, so "records past the offset" are exactly the
prepared-but-uncommitted ones. A torn last line (a writer killed mid-append) has no newline
and is ignored, then cut off by the next append.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_FILE = Path("journal") / "log.jsonl"


@dataclass(frozen=True)
class Entry:
    """One record of the journal and the byte offset just after its line."""

    record: dict[str, Any]
    end: int


class Journal:
    """The append-only log of one home (see the module docstring)."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / JOURNAL_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def size(self) -> int:
        """Bytes in the log (0 when there is none)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    @staticmethod
    def encode(record: dict[str, Any]) -> bytes:
        """One record as its journal line (raises ``TypeError`` for a value JSON cannot
        hold, before anything is written)."""
        return json.dumps(record, separators=(",", ":"), sort_keys=True).encode() + b"\n"

    def append(self, *records: dict[str, Any] | bytes) -> int:
        """Append ``records`` (dicts, or lines from ``encode``) and fsync; returns the
        offset after the last one. Call only under the store's write lock."""
        payload = b"".join(r if isinstance(r, bytes) else self.encode(r) for r in records)
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            end = handle.seek(0, os.SEEK_END)
            whole = _last_line_end(handle.fileno(), end)
            if whole != end:  # a torn line from a writer killed mid-append: never committed
                os.ftruncate(handle.fileno(), whole)
            handle.seek(0, os.SEEK_END)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
            end = handle.tell()
        if created:
            fsync_dir(self.path.parent)
            fsync_dir(self.path.parent.parent)
        return end

    def read(self, start: int = 0) -> list[Entry]:
        """Every whole record from byte ``start`` on, in order. An unreadable line (a disk
        error) is reported on stderr and skipped."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(start)
                data = handle.read()
        except FileNotFoundError:
            return []
        entries = []
        offset = start
        lines = data.split(b"\n")
        for n, line in enumerate(lines[:-1]):  # the last piece has no newline: torn or empty
            offset += len(line) + 1
            try:
                record = json.loads(line)
            except ValueError:
                print(f"seedlab: warning: {self.path} line {n + 1} (byte {offset}) is not"
                      " readable JSON and was skipped", file=sys.stderr)
                continue
            entries.append(Entry(record, offset))
        return entries

    def set_aside(self, reason: str) -> Path | None:
        """Rename the log to ``superseded-<n>.jsonl`` (kept, never deleted) so that a new
        one is started from the catalogue; returns the new name."""
        if not self.path.exists():
            return None
        n = 1
        while (target := self.path.with_name(f"superseded-{n}.jsonl")).exists():
            n += 1
        os.replace(self.path, target)
        print(f"seedlab: warning: {reason}; the old journal is kept as {target} and a new"
              " one is started from the catalogue", file=sys.stderr)
        return target


def _last_line_end(fd: int, end: int) -> int:
    """The offset just after the last newline in the first ``end`` bytes of ``fd``."""
    block = 1 << 16
    pos = end
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to disk (a staged file, before it is moved into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
