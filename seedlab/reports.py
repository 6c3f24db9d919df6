"""Reports kept in the user's home: pinned figures, tables and summary sentences, by name.

A report is what a user collects from the pages for a meeting. It lives beside the data it
was made from, so it survives a reload of the tab and a restart of the server::

    <home>/reports/
        .current                 the name of the report pins go to (plain text)
        .lock                    serialises writers (two tabs pinning at once)
        <name>/report.json       the manifest: title, times, the items in order
        <name>/items/<id>.json   one item's content: a plotly figure, a table or a text

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so a reader sees the old file or the new one, never half of one; the
manifest is replaced last, so an item is listed only once its content is on disk (a kill in
between leaves an unlisted file, never a listed item without content).

Report names are folder names: 1 to 64 letters, digits, spaces and ``_ - . , ( ) +``,
starting with a letter or digit (:data:`NAME_PATTERN`). A name never contains a path
separator or ``..``, and the folder it names is checked to lie inside ``<home>/reports``,
so a name from a URL or a text box cannot reach outside the home.

This module needs no Streamlit (``seedlab.ui.figure`` is the app's side of it)::

    from seedlab.reports import ReportItem, ReportStore
    store = ReportStore(home)
    store.create("group meeting")
    store.add("group meeting", ReportItem.of_text("Finding", "mini is better (p < 0.001)."))
    store.items("group meeting")   # -> [ReportItem(kind='text', ...)]
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seedlab.errors import SeedlabError

FORMAT = "seedlab-report/1"
KINDS = ("figure", "table", "text")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.,()+-]{0,63}")
DEFAULT_NAME = "report"
MANIFEST = "report.json"
CURRENT = ".current"
# A pinned table is for reading in a meeting, not a data export: bound what one pin writes.
MAX_TABLE_CELLS = 200_000


class ReportError(SeedlabError, ValueError):
    """A report name, file or operation that cannot be used; the message says which and why.
    Nothing on disk was changed by the operation that raised it."""


def now_text() -> str:
    """The local time as items and manifests record it (``2026-12-01 21:40:17``)."""
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def check_name(name: Any) -> str:
    """``name`` if it is a valid report name, else :class:`ReportError` saying why."""
    if not isinstance(name, str):
        raise ReportError(f"a report name must be text, not {type(name).__name__}")
    if not NAME_PATTERN.fullmatch(name) or name.endswith((" ", ".")) or ".." in name:
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise ReportError(
            f"report name {shown!r} is not allowed: use 1 to 64 letters, digits, spaces and"
            " _ - . , ( ) +, starting with a letter or digit and not ending in a space or"
            " a dot")
    return name


# ---------------------------------------------------------------------------------------
# Items


def _cell(value: Any) -> Any:
    """One table cell as a JSON value: numbers stay numbers, missing values are null, and
    anything else is its text."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    try:
        if pd.isna(value):  # NaT, pd.NA
            return None
    except (TypeError, ValueError):  # a list or array in a cell: shown as its text
        pass
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    return str(value)


def _table_payload(frame: pd.DataFrame) -> dict[str, Any]:
    if not isinstance(frame, pd.DataFrame):
        raise ReportError(f"a pinned table must be a pandas DataFrame, not {type(frame).__name__}")
    if not isinstance(frame.index, pd.RangeIndex):  # a meaningful index is a column to show
        frame = frame.reset_index()
    cells = frame.shape[0] * frame.shape[1]
    if cells > MAX_TABLE_CELLS:
        raise ReportError(f"the table has {cells:,} cells; a report holds tables of at most"
                          f" {MAX_TABLE_CELLS:,} cells (pin a summary of it)")
    columns = [str(c) for c in frame.columns]
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return {"columns": columns, "rows": rows}


@dataclass(frozen=True, eq=False)
class ReportItem:
    """One pinned thing: a figure (plotly JSON), a table or a text, with its title, caption,
    the page it came from and the time it was pinned.

    The positional fields are those of a pinned figure (the order earlier code used);
    make tables and texts with :meth:`of_table` and :meth:`of_text`.
    """

    figure_json: str | None
    caption: str
    page: str
    at: str
    title: str = ""
    kind: str = "figure"
    table: pd.DataFrame | None = None
    text: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def of_figure(cls, figure: Any, caption: str = "", page: str = "",
                  title: str | None = None) -> ReportItem:
        """A figure item from a ``go.Figure`` (its title unless ``title`` is given)."""
        if title is None:
            title = figure.layout.title.text or ""
        return cls(figure.to_json(), str(caption), str(page), now_text(), str(title))

    @classmethod
    def of_table(cls, title: str, frame: pd.DataFrame, caption: str = "",
                 page: str = "") -> ReportItem:
        """A table item: ``frame`` as it is now (a copy; a non-default index becomes
        columns)."""
        payload = _table_payload(frame)
        table = pd.DataFrame(payload["rows"], columns=payload["columns"])
        return cls(None, str(caption), str(page), now_text(), str(title), kind="table",
                   table=table)

    @classmethod
    def of_text(cls, title: str, text: str, page: str = "", caption: str = "") -> ReportItem:
        """A text item, e.g. a page's summary sentence."""
        return cls(None, str(caption), str(page), now_text(), str(title), kind="text",
                   text=str(text))

    def figure(self) -> Any:
        """The pinned ``go.Figure`` (figure items only)."""
        import plotly.io as pio

        if self.figure_json is None:
            raise ReportError(f"report item {self.id} is a {self.kind}, not a figure")
        return pio.from_json(self.figure_json)

    def _entry(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title,
                "caption": self.caption, "page": self.page, "at": self.at}

    def _payload(self) -> dict[str, Any]:
        if self.kind == "figure":
            if self.figure_json is None:
                raise ReportError("a figure item needs its figure")
            return {"figure": json.loads(self.figure_json)}
        if self.kind == "table":
            if self.table is None:
                raise ReportError("a table item needs its table")
            return _table_payload(self.table)
        if self.kind == "text":
            return {"text": self.text}
        raise ReportError(f"unknown report item kind {self.kind!r}; expected one of {KINDS}")


@dataclass(frozen=True)
class ReportInfo:
    """A report's manifest without its items' content."""

    name: str
    title: str
    created: str
    updated: str
    n_items: int


# ---------------------------------------------------------------------------------------
# Files


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and
    ``os.replace``: readers see the old content or the new, never part of it."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as sink:
            sink.write(text)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: the {what} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: the {what} is not valid JSON ({exc})") from None


class ReportStore:
    """The reports of one seedlab home (``<home>/reports/``).

    ``home`` must be an existing folder: the report store never creates a home (a home
    named in a URL that does not exist is refused, not made). The ``reports`` folder is
    made on the first write.
    """

    def __init__(self, home: str | Path) -> None:
        home = Path(home)
        if not home.is_dir():
            raise ReportError(f"{home}: no such seedlab home (a folder) to keep reports in")
        self.home = home.resolve()
        self.root = self.home / "reports"
        if self.root.is_symlink() or (self.root.exists() and not self.root.is_dir()):
            raise ReportError(f"{self.root}: expected a folder of reports inside the home")

    # -- paths --------------------------------------------------------------------------
    def _folder(self, name: str) -> Path:
        folder = self.root / check_name(name)
        # The pattern already excludes separators and '..'; also refuse a folder that is a
        # link, so that nothing under the home leads a write outside it.
        if folder.is_symlink() or folder.resolve().parent != self.root.resolve():
            raise ReportError(f"{folder}: a report folder must be a plain folder in {self.root}")
        return folder

    def _existing(self, name: str) -> Path:
        folder = self._folder(name)
        if not (folder / MANIFEST).is_file():
            raise ReportError(f"no report named {name!r} in {self.root}")
        return folder

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(exist_ok=True)
        with open(self.root / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _manifest(self, folder: Path) -> dict[str, Any]:
        path = folder / MANIFEST
        manifest = _read_json(path, "report manifest")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ReportError(f"{path}: not a seedlab report manifest (expected format {FORMAT!r})")
        items = manifest.get("items")
        if not isinstance(items, list) or not all(
                isinstance(e, dict) and isinstance(e.get("id"), str)
                and re.fullmatch(r"[0-9a-f]{12}", e["id"]) and e.get("kind") in KINDS
                for e in items):
            raise ReportError(f"{path}: field 'items' must be a list of items, each with a"
                              f" 12-hex-digit 'id' and a 'kind' among {KINDS}")
        return manifest

    def _save(self, folder: Path, manifest: dict[str, Any]) -> None:
        manifest["updated"] = now_text()
        _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))

    # -- reports ------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The names of the reports in this home, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if NAME_PATTERN.fullmatch(p.name) and not p.is_symlink()
                      and (p / MANIFEST).is_file())

    def exists(self, name: str) -> bool:
        return (self._folder(name) / MANIFEST).is_file()

    def info(self, name: str) -> ReportInfo:
        manifest = self._manifest(self._existing(name))
        return ReportInfo(name, str(manifest.get("title", name)), str(manifest.get("created", "")),
                          str(manifest.get("updated", "")), len(manifest["items"]))

    def create(self, name: str, title: str | None = None) -> ReportInfo:
        """A new, empty report; :class:`ReportError` if one of that name exists."""
        with self._locked():
            folder = self._folder(name)
            if folder.exists():
                raise ReportError(f"a report named {name!r} already exists in {self.root}")
            (folder / "items").mkdir(parents=True)
            self._save(folder, {"format": FORMAT, "title": title or name,
                                "created": now_text(), "items": []})
        return self.info(name)

    def rename(self, old: str, new: str) -> ReportInfo:
        """Rename report ``old`` to ``new`` (the current report follows it)."""
        with self._locked():
            source, target = self._existing(old), self._folder(new)
            if target.exists():
                raise ReportError(f"a report named {new!r} already exists in {self.root}")
            os.rename(source, target)
            if self._current_name() == old:
                _write_atomic(self.root / CURRENT, new)
        return self.info(new)

    def delete(self, name: str) -> None:
        """Delete report ``name`` and everything pinned to it."""
        with self._locked():
            folder = self._existing(name)
            # Move it aside first, so that the report disappears at once even if the
            # removal of its files is interrupted.
            trash = self.root / f".deleted-{uuid.uuid4().hex[:8]}"
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
            if self._current_name() == name:
                (self.root / CURRENT).unlink(missing_ok=True)

    def set_title(self, name: str, title: str) -> None:
        with self._locked():
            folder = self._existing(name)
            manifest = self._manifest(folder)
            manifest["title"] = str(title)
            self._save(folder, manifest)

    # -- the current report -------------------------------------------------------------
    def _current_name(self) -> str | None:
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return name if NAME_PATTERN.fullmatch(name) else None

    def current(self) -> str | None:
        """The report pins go to, if it still exists."""
        name = self._current_name()
        return name if name is not None and self.exists(name) else None

    def set_current(self, name: str) -> None:
        """Make report ``name`` (which must exist) the one pins go to."""
        with self._locked():
            self._existing(name)
            _write_atomic(self.root / CURRENT, name)

    def current_or_create(self, default: str = DEFAULT_NAME) -> str:
        """The current report; when there is none, the first existing report or a new one
        named ``default``, which becomes current."""
        name = self.current()
        if name is not None:
            return name
        with self._locked():
            existing = self.names()
            name = existing[0] if existing else check_name(default)
            if not existing:
                folder = self._folder(name)
                (folder / "items").mkdir(parents=True, exist_ok=True)
                self._save(folder, {"format": FORMAT, "title": name, "created": now_text(),
                                    "items": []})
            _write_atomic(self.root / CURRENT, name)
        return name

    # -- items --------------------------------------------------------------------------
    def add(self, name: str, item: ReportItem) -> ReportItem:
        """Append ``item`` to report ``name``; returns it as stored."""
        payload = json.dumps(item._payload(), ensure_ascii=False, allow_nan=False)
        with self._locked():
            folder = self._existing(name)
            manifest = self._manifest(folder)
            if any(e["id"] == item.id for e in manifest["items"]):
                item = replace(item, id=uuid.uuid4().hex[:12])
            (folder / "items").mkdir(exist_ok=True)
            _write_atomic(folder / "items" / f"{item.id}.json", payload)
            manifest["items"].append(item._entry())
            self._save(folder, manifest)
        return item

    def _load(self, folder: Path, entry: dict[str, Any]) -> ReportItem:
        path = folder / "items" / f"{entry['id']}.json"
        payload = _read_json(path, f"content of {entry['kind']} item {entry['id']}")
        common = {"caption": str(entry.get("caption", "")), "page": str(entry.get("page", "")),
                  "at": str(entry.get("at", "")), "title": str(entry.get("title", "")),
                  "kind": entry["kind"], "id": entry["id"]}
        try:
            if entry["kind"] == "figure":
                return ReportItem(json.dumps(payload["figure"]), **common)
            if entry["kind"] == "table":
                columns, rows = payload["columns"], payload["rows"]
                if not isinstance(columns, list) or not isinstance(rows, list):
                    raise TypeError("columns and rows must be lists")
                return ReportItem(None, table=pd.DataFrame(rows, columns=columns), **common)
            return ReportItem(None, text=str(payload["text"]), **common)
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"{path}: not a {entry['kind']} item ({exc})") from None

    def items(self, name: str) -> list[ReportItem]:
        """The items of report ``name``, in order."""
        folder = self._existing(name)
        return [self._load(folder, e) for e in self._manifest(folder)["items"]]

    def _edit(self, name: str, item_id: str, how: str, offset: int = 0) -> None:
        with self._locked():
            folder = self._existing(name)
            manifest = self._manifest(folder)
            ids = [e["id"] for e in manifest["items"]]
            if item_id not in ids:
                raise ReportError(f"report {name!r} has no item {item_id!r}")
            at = ids.index(item_id)
            entries = manifest["items"]
            if how == "remove":
                entries.pop(at)
            else:
                to = min(max(at + offset, 0), len(entries) - 1)
                entries.insert(to, entries.pop(at))
            self._save(folder, manifest)
            if how == "remove":  # listed no more: its content can go
                (folder / "items" / f"{item_id}.json").unlink(missing_ok=True)

    def remove(self, name: str, item_id: str) -> None:
        """Remove one item from report ``name``."""
        self._edit(name, item_id, "remove")

    def move(self, name: str, item_id: str, offset: int) -> None:
        """Move an item ``offset`` places (negative: towards the top), within the report."""
        self._edit(name, item_id, "move", offset)

    def reorder(self, name: str, item_ids: Sequence[str]) -> None:
        """Put the items of report ``name`` in the order of ``item_ids`` (all of them)."""
        with self._locked():
            folder = self._existing(name)
            manifest = self._manifest(folder)
            by_id = {e["id"]: e for e in manifest["items"]}
            if sorted(item_ids) != sorted(by_id):
                raise ReportError(f"a new order of report {name!r} must list each of its"
                                  f" {len(by_id)} items once")
            manifest["items"] = [by_id[i] for i in item_ids]
            self._save(folder, manifest)
