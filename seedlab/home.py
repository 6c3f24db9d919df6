"""Where a user's work lives: the shipped study stays as shipped, the user's home beside it.

A checkout of seedlab carries a published study in ``data/`` (git-tracked, changed only by
a deliberate ``seedlab demo --publish-only``). Everything a user does (runs, imports,
annotations, reports) goes to their own home, ``home/`` beside it (git-ignored), which
starts as a copy of the shipped study and is an ordinary seedlab store from then on::

    data/    the shipped study: read, never written by the app or the CLI's defaults
    home/    the user's home: the shipped study's files, plus everything the user adds

The copy is made of hard links where the file system allows (the store's data files are
immutable, so a link is as good as a copy and costs no space) and of copies elsewhere.
``home/.shipped.json`` records which files came from ``data/`` and their content hashes, so
when ``git pull`` brings a new publish, the next open takes the new files in and drops the
shipped files the new publish no longer has, leaving the user's own files and the
catalogue's verdicts and jobs alone.

``$SEEDLAB_HOME`` (or ``--home``) names any other home; it is used as it is, with no
shipped study layered into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The checkout this package was imported from (an editable install or a plain clone).
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data"
USER_HOME = REPO / "home"
# What a published study consists of (the folders the catalogue is rebuilt from, and the
# demo's manifest, which names the study the app opens on).
SHIPPED_FOLDERS = ("predictions", "instances", "masks", "evaluations", "tasks")
SHIPPED_FILES = ("demo_manifest.json",)
STATE_FILE = ".shipped.json"


@dataclass(frozen=True)
class SyncResult:
    """What a sync of the shipped study into a user home did (paths relative to the home)."""

    home: Path
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def default_home() -> Path:
    """The home a command or the app opens when none is named.

    ``$SEEDLAB_HOME`` when set; else, in a checkout that ships a study in ``data/``, the
    user home ``home/`` beside it (made and kept in step with ``data/`` by
    :func:`sync_shipped`); else ``./data`` under the current directory.
    """
    named = os.environ.get("SEEDLAB_HOME")
    if named:
        return Path(named).expanduser().resolve()
    if is_published(SHIPPED):
        sync_shipped(SHIPPED, USER_HOME)
        return USER_HOME
    return Path("data").resolve()


def is_published(path: Path) -> bool:
    """Whether ``path`` holds a shipped study's data files."""
    return any((Path(path) / folder).is_dir() for folder in SHIPPED_FOLDERS)


def shipped_listing(shipped: Path) -> dict[str, str]:
    """Every file of the study in ``shipped``: relative path -> sha256 of its content."""
    shipped = Path(shipped)
    listing: dict[str, str] = {}
    candidates = [shipped / name for name in SHIPPED_FILES]
    for folder in SHIPPED_FOLDERS:
        if (shipped / folder).is_dir():
            candidates.extend(p for p in (shipped / folder).rglob("*") if p.is_file())
    for path in sorted(candidates):
        if path.is_file() and not path.is_symlink():
            listing[str(path.relative_to(shipped))] = _sha256(path)
    return listing


def sync_shipped(shipped: Path, home: Path) -> SyncResult:
    """Bring the shipped study in ``shipped`` into the user home ``home``.

    Makes ``home`` on first use. Files the previous sync brought in and the shipped study
    no longer has are removed; files the user's own writes made are never touched. When
    anything changed in a home that already has a catalogue, its file index is rebuilt
    (verdicts, jobs and the import log are kept). Safe against concurrent callers (a lock
    file in the home) and against a kill at any point (each file lands by ``os.replace``;
    the record of what was shipped is written last, so an interrupted sync is redone).
    """
    shipped, home = Path(shipped).resolve(), Path(home).resolve()
    if shipped == home:
        raise ValueError(f"the user home and the shipped study are the same folder: {home}")
    home.mkdir(parents=True, exist_ok=True)
    current = shipped_listing(shipped)
    with _lock(home):
        previous = _read_state(home)
        if previous == current and all((home / rel).exists() for rel in current):
            return SyncResult(home, (), (), ())
        added, updated, removed = [], [], []
        for rel, digest in current.items():
            target = home / rel
            if target.exists() and previous.get(rel) == digest:
                continue  # unchanged since the last sync (or rewritten by the user's store)
            (updated if target.exists() else added).append(rel)
            _place(shipped / rel, target)
        for rel in sorted(set(previous) - set(current)):
            target = home / rel
            if target.exists():
                target.unlink()
                removed.append(rel)
        catalogued = (home / "catalog.sqlite").exists()
        if catalogued and (added or updated or removed):
            from seedlab.store import Store

            Store(home).reindex()
        _write_state(home, current)
    return SyncResult(home, tuple(added), tuple(updated), tuple(removed))


def _place(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically: a hard link where possible, else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.sync")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_state(home: Path) -> dict[str, str]:
    try:
        state = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    files = state.get("files") if isinstance(state, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _write_state(home: Path, listing: dict[str, str]) -> None:
    tmp = home / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps({"files": listing}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, home / STATE_FILE)


@contextlib.contextmanager
def _lock(home: Path) -> Iterator[None]:
    with open(home / ".shipped.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
