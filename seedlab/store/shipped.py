"""Where a user's work lives: the shipped study stays as shipped, the user's home beside it.

A checkout of seedlab carries a published study in ``data/`` (git-tracked, changed only by
a deliberate ``seedlab demo --publish-only``). Everything a user does (runs, imports,
annotations, reports) goes to their own home, ``home/`` beside it (git-ignored), which
starts as a copy of the shipped study and is an ordinary seedlab store from then on::

    data/    the shipped study: read, never written by the app or the CLI's defaults
    home/    the user's home: the shipped study's files, plus everything the user adds

The copy is written through the store's own transaction, like an import, so it is checked,
journalled and atomic. ``home/.shipped.json`` records the content hashes of the shipped
files and which runs and mask settings came from them, so when ``git pull`` brings a new
publish, the next open takes it in and drops the shipped runs the new publish no longer
has, leaving the user's own runs, imports, verdicts and jobs alone.

``$SEEDLAB_HOME`` (or ``--home``) names any other home; it is used as it is, with no
shipped study layered into it. This module takes stores as arguments and imports no
``Store``: ``Store.__init__`` calls :func:`open_user_home` when it opens the user home.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from seedlab import atomic
from seedlab.store.tables import RUN_METADATA_KEY, RunData

# The checkout this package was imported from (an editable install or a plain clone).
REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "data"
USER_HOME = REPO / "home"
# What a published study consists of (the folders the catalogue is rebuilt from, and the
# demo's manifest, which names the study the app opens on).
SHIPPED_FOLDERS = ("predictions", "instances", "masks", "evaluations", "tasks")
SHIPPED_FILES = ("demo_manifest.json",)
STATE_FILE = ".shipped.json"
_SYNCED: set[Path] = set()


@dataclass(frozen=True)
class SyncResult:
    """What a sync of the shipped study into a user home did: the run ids it added to the
    home and those it removed (the runs a new publish no longer has)."""

    home: Path
    synced: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def default_home() -> Path:
    """The home a command or the app opens when none is named.

    ``$SEEDLAB_HOME`` when set; else, in a checkout that ships a study in ``data/``, the
    user home ``home/`` beside it (``Store`` brings the shipped study into it when it is
    opened: :func:`open_user_home`); else ``./data`` under the current directory.
    """
    named = os.environ.get("SEEDLAB_HOME")
    if named:
        return Path(named).expanduser().resolve()
    if is_published(SHIPPED):
        return USER_HOME
    return Path("data").resolve()


def is_user_home(path: Path) -> bool:
    """Whether ``path`` is this checkout's user home (and the checkout ships a study)."""
    return Path(path).resolve() == USER_HOME and is_published(SHIPPED)


def open_user_home(user: Any, open_store: Callable[[Path], Any]) -> None:
    """Bring the shipped study into the user home's store ``user`` once a process (a new
    publish arrives with the next start). ``open_store(path)`` opens a store (``Store``)."""
    if user.home in _SYNCED:
        return
    _SYNCED.add(user.home)
    try:
        sync_shipped(open_store(SHIPPED), user)
    except BaseException:
        _SYNCED.discard(user.home)
        raise


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


def sync_shipped(source: Any, dest: Any) -> SyncResult:
    """Bring the shipped study in store ``source`` into the user home's store ``dest``.

    The shipped study's tasks, instances, runs and masks are written into ``dest`` through
    the store's own transaction (checked, journalled and atomic like any import); runs and
    mask settings that the previous sync brought in and the shipped study no longer has
    are removed; what the user's own writes made (runs of their own, imports, verdicts,
    jobs, reports) is never touched. Nothing is done when the shipped files are the ones
    the previous sync saw. Safe against concurrent callers (a lock file in the home) and
    against a kill at any point: the record of what was shipped is written after the
    commit, so an interrupted sync is redone.
    """
    shipped, home = Path(source.home), Path(dest.home)
    if shipped == home:
        raise ValueError(f"the user home and the shipped study are the same folder: {home}")
    current = shipped_listing(shipped)
    with _lock(home):
        state = _read_state(home)
        if state.get("files") == current:
            return SyncResult(home, synced=False)
        before = {str(k) for k in dest.runs()["run_id"]}
        runs, masks = _copy_study(source, dest, state)
        after = {str(k) for k in dest.runs()["run_id"]}
        for name in SHIPPED_FILES:
            if (shipped / name).is_file():
                _place(shipped / name, home / name)
        _write_state(home, {"files": current, "runs": sorted(runs), "masks": sorted(masks)})
    return SyncResult(home, True, tuple(sorted(after - before)), tuple(sorted(before - after)))


def _copy_study(source: Any, dest: Any, state: dict) -> tuple[set[str], set[str]]:
    """One transaction writing every task, instance, run and mask of ``source`` into
    ``dest``, and removing the runs and mask settings ``state`` says an earlier sync
    brought in that ``source`` no longer has. Returns the run ids and ``setting/task``
    keys of masks now shipped."""
    runs = source.runs()
    masks = source.masks()
    shipped_runs = {str(r) for r in runs["run_id"]}
    shipped_masks = {f"{s}/{t}" for s, t in masks[["setting", "task"]].drop_duplicates()
                     .itertuples(index=False)}
    with dest.transaction("import", f"shipped study {source.home}", replace=True) as tx:
        for row in source.tasks().itertuples():
            tx.set_task(str(row.task), source.label_list(str(row.task)),
                        simulated=bool(row.simulated), source=str(row.source or ""),
                        description=str(row.description or ""))
            instances = source.instances(task=str(row.task))
            if len(instances):
                tx.add_instances(str(row.task), instances.drop(columns=["task"]))
        for path in runs["file"]:
            file = pq.ParquetFile(source.home / str(path))
            meta = json.loads(file.schema_arrow.metadata[RUN_METADATA_KEY])
            tx.add_run(RunData(task=meta["task"], size=meta["size"],
                               pretrain_seed=meta["pretrain_seed"],
                               finetune_seed=meta["finetune_seed"], table=file.read(),
                               source=meta.get("source", ""), model=meta.get("model", ""),
                               hyperparameters=meta.get("hyperparameters", {}),
                               provenance=meta.get("provenance", {})))
        for (setting, task), frame in masks.groupby(["setting", "task"], sort=True):
            tx.add_masks(str(setting), str(task), frame.drop(columns=["setting", "task"]))
        old_runs = dest.runs()
        gone = set(state.get("runs", [])) - shipped_runs
        for row in old_runs[old_runs["run_id"].astype(str).isin(gone)].itertuples():
            tx.remove_run(str(row.task), str(row.size), str(row.pretrain_seed),
                          int(row.finetune_seed))
        for key in sorted(set(state.get("masks", [])) - shipped_masks):
            setting, task = key.split("/", 1)
            tx.remove_masks(setting, task)
    return shipped_runs, shipped_masks


def _place(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically (``atomic.replacing``)."""
    with atomic.replacing(target) as tmp:
        shutil.copyfile(source, tmp)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_state(home: Path) -> dict:
    """What the last sync brought in: ``files`` (path -> sha256), ``runs``, ``masks``."""
    try:
        state = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(home: Path, state: dict) -> None:
    with atomic.replacing(home / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def _lock(home: Path) -> Iterator[None]:
    with open(home / ".shipped.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
