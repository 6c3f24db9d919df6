"""Cached access to the store and to ``seedlab.stats`` for the pages.

``get_store(home)`` is a ``st.cache_resource``; every query below is a ``st.cache_data``
keyed on its inputs *and* the store's ``version()``, which changes on every import, run or
annotation, so new data shows up without restarting the app. Pages use :func:`open_data`
(or :func:`current_data`) and call the methods of :class:`Data`, which pass the version
along; they hold no SQL and no statistics themselves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from seedlab.store import SeedArrays, Store, _ordered_sizes, seed_sort_key


@st.cache_resource(show_spinner=False)
def get_store(home: str | Path) -> Store:
    """One ``Store`` per seedlab home for the whole server."""
    return Store(Path(home), create=False)


def sorted_seeds(seeds: Sequence[Any]) -> list[str]:
    """Pretraining seed labels in natural order (numbers numerically)."""
    return sorted((str(s) for s in seeds), key=seed_sort_key)


def ordered_sizes(sizes: Sequence[str]) -> list[str]:
    """Sizes smallest first where known (tiny, mini, small, medium, base, large)."""
    return _ordered_sizes(sizes)


# ---------------------------------------------------------------------------------------
# Cached queries. The leading ``home`` and ``version`` arguments are the cache key of the
# data; callers go through ``Data`` which fills them in.


@st.cache_data(show_spinner=False, max_entries=64)
def _tasks(home: str, version: int) -> pd.DataFrame:
    return get_store(home).tasks()


@st.cache_data(show_spinner=False, max_entries=64)
def _info(home: str, version: int) -> dict:
    return get_store(home).info()


@st.cache_data(show_spinner=False, max_entries=64)
def _runs(home: str, version: int, task: str | None) -> pd.DataFrame:
    return get_store(home).runs(task=task)


@st.cache_data(show_spinner=False, max_entries=64)
def _run_accuracy(home: str, version: int, task: str, sizes: tuple[str, ...] | None,
                  checkpoint: Any) -> pd.DataFrame:
    return get_store(home).run_accuracy(task, size=list(sizes) if sizes else None,
                                        checkpoint=checkpoint)


@st.cache_data(show_spinner=False, max_entries=128)
def _arrays(home: str, version: int, task: str, size: str, pretrain_seeds: tuple[str, ...],
            finetune_seeds: tuple[int, ...], checkpoint: Any, split: tuple[str, ...] | None
            ) -> SeedArrays:
    return get_store(home).arrays(task, size, list(pretrain_seeds), list(finetune_seeds),
                                  checkpoint=list(checkpoint) if isinstance(checkpoint, tuple)
                                  else checkpoint, split=list(split) if split else None)


@st.cache_data(show_spinner=False, max_entries=32)
def _instances(home: str, version: int, task: str) -> pd.DataFrame:
    return get_store(home).instances(task=task)


@st.cache_data(show_spinner=False, max_entries=32)
def _annotations(home: str, version: int, task: str | None, current: bool) -> pd.DataFrame:
    return get_store(home).annotations(task=task, current=current)


@st.cache_data(show_spinner=False, max_entries=32)
def _masks(home: str, version: int, setting: str | None, task: str | None) -> pd.DataFrame:
    return get_store(home).masks(setting=setting, task=task)


@st.cache_data(show_spinner=False, max_entries=32)
def _mask_arrays(home: str, version: int, setting: str, task: str, component: str
                 ) -> tuple[np.ndarray, list[int]]:
    return get_store(home).mask_arrays(setting, task, component)


@st.cache_data(show_spinner=False, max_entries=16)
def _evaluations(home: str, version: int) -> pd.DataFrame:
    return get_store(home).evaluations()


@dataclass(frozen=True)
class Data:
    """The store of one seedlab home at one data version, with cached queries.

    Create it with :func:`open_data` on every script run: the version is read then, so the
    caches refresh when the data changes.
    """

    home: str
    version: int

    @property
    def store(self) -> Store:
        return get_store(self.home)

    def tasks(self) -> pd.DataFrame:
        """One row per task (``Store.tasks``)."""
        return _tasks(self.home, self.version)

    def task_row(self, task: str) -> dict | None:
        tasks = self.tasks()
        rows = tasks[tasks["task"] == task]
        return None if rows.empty else rows.iloc[0].to_dict()

    def info(self) -> dict:
        """``Store.info``: counts per task."""
        return _info(self.home, self.version)

    def runs(self, task: str | None = None) -> pd.DataFrame:
        """Run metadata (``Store.runs``)."""
        return _runs(self.home, self.version, task)

    def sizes(self, task: str) -> list[str]:
        """Sizes of a task with runs, smallest first."""
        runs = self.runs(task)
        return ordered_sizes(runs["size"].unique().tolist()) if len(runs) else []

    def checkpoints(self, task: str) -> list[float]:
        """All checkpoint values any run of the task has, ascending."""
        runs = self.runs(task)
        values = {float(c) for cs in runs["checkpoints"].dropna() for c in json.loads(cs)}
        return sorted(values)

    def run_accuracy(self, task: str, sizes: Sequence[str] | None = None,
                     checkpoint: Any = "last") -> pd.DataFrame:
        """Accuracy per run (``Store.run_accuracy``)."""
        return _run_accuracy(self.home, self.version, task,
                             tuple(sizes) if sizes else None, checkpoint)

    def arrays(self, task: str, size: str, pretrain_seeds: Sequence[Any],
               finetune_seeds: Sequence[int], checkpoint: Any = "last",
               split: Sequence[str] | None = None) -> SeedArrays:
        """Dense arrays (``Store.arrays``): ``correct`` etc. are (N, P, F), or (N, P, F, E)
        when ``checkpoint`` is ``'all'`` or a list."""
        ckpt = tuple(float(c) for c in checkpoint) if isinstance(checkpoint, (list, tuple)) \
            else checkpoint
        return _arrays(self.home, self.version, task, size,
                       tuple(str(s) for s in pretrain_seeds),
                       tuple(int(s) for s in finetune_seeds), ckpt,
                       tuple(split) if split else None)

    def instances(self, task: str) -> pd.DataFrame:
        """Instances of a task, with known extra fields (group, genre, ...) as columns."""
        return _instances(self.home, self.version, task)

    def annotations(self, task: str | None = None, current: bool = True) -> pd.DataFrame:
        """The annotation log; ``current`` keeps the latest verdict per annotator."""
        return _annotations(self.home, self.version, task, current)

    def masks(self, setting: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Pruning masks in long format (``Store.masks``)."""
        return _masks(self.home, self.version, setting, task)

    def mask_arrays(self, setting: str, task: str, component: str = "head"
                    ) -> tuple[np.ndarray, list[int]]:
        """Masks as ``(S, layers, heads)`` for heads or ``(S, layers)`` for MLPs."""
        return _mask_arrays(self.home, self.version, setting, task, component)

    def evaluations(self) -> pd.DataFrame:
        """Mask evaluation results (``Store.evaluations``)."""
        return _evaluations(self.home, self.version)

    def jobs(self, task: str) -> pd.DataFrame | None:
        """Queued, running and failed jobs of a task, or None without a job queue."""
        return job_table(self.store, task)

    def annotate(self, task: str, instance_id: str, annotator: str, verdict: str,
                 note: str = "") -> int:
        """Append one verdict to the annotation log (not cached; bumps the version)."""
        return self.store.annotate(task, instance_id, annotator, verdict, note)


def open_data(home: str | Path) -> Data:
    """The data of a home at its current version."""
    home = str(Path(home).resolve())
    return Data(home, get_store(home).version())


def current_data() -> Data | None:
    """The data of the home chosen in the sidebar, or None when there is no store there."""
    from seedlab.ui.state import current

    selection = current()
    if selection.task is None and not (Path(selection.home) / "catalog.sqlite").exists():
        return None
    return open_data(selection.home)


def cached(func: Any) -> Any:
    """Cache a pure computation keyed on its (hashable or array) arguments.

    Use for ``seedlab.stats`` calls on arrays from :class:`Data`: pages pass the arrays,
    the cache hashes them.
    """
    return st.cache_data(show_spinner=False, max_entries=64)(func)


# ---------------------------------------------------------------------------------------
# Summaries shared by pages


def coverage(runs: pd.DataFrame, jobs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Status of every (size, pretrain_seed, finetune_seed) in the grid a task's runs span.

    ``runs``: ``Store.runs`` rows of one task. ``jobs`` (optional): rows with ``size``,
    ``pretrain_seed``, ``finetune_seed`` and ``status`` (queued, running, failed) from the
    job queue; a finished run wins over a job. Returns size, pretrain_seed, finetune_seed,
    status (present, missing, queued, running, failed).
    """
    cols = ["size", "pretrain_seed", "finetune_seed", "status"]
    keys = runs[["size", "pretrain_seed", "finetune_seed"]].copy() if len(runs) else \
        pd.DataFrame(columns=cols[:3])
    if jobs is not None and len(jobs):
        keys = pd.concat([keys, jobs[["size", "pretrain_seed", "finetune_seed"]]])
    if keys.empty:
        return pd.DataFrame(columns=cols)
    sizes = ordered_sizes(keys["size"].astype(str).unique().tolist())
    p_seeds = sorted_seeds(keys["pretrain_seed"].unique().tolist())
    f_seeds = sorted(int(s) for s in keys["finetune_seed"].unique())
    grid = pd.MultiIndex.from_product([sizes, p_seeds, f_seeds], names=cols[:3])
    status = pd.Series("missing", index=grid, dtype=object)
    if jobs is not None and len(jobs):
        for row in jobs.itertuples(index=False):
            key = (str(row.size), str(row.pretrain_seed), int(row.finetune_seed))
            if key in status.index and str(row.status) in ("queued", "running", "failed"):
                status[key] = str(row.status)
    for row in runs.itertuples(index=False):
        status[(str(row.size), str(row.pretrain_seed), int(row.finetune_seed))] = "present"
    return status.rename("status").reset_index()


def accuracy_by_size(accuracy: pd.DataFrame, sizes: Sequence[str]) -> pd.DataFrame:
    """Mean, std (ddof 1), min, max and N (runs) of run accuracy per size, in ``sizes``
    order. ``accuracy``: one row per run with ``size`` and ``accuracy``."""
    grouped = accuracy.groupby("size")["accuracy"]
    table = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1),
                          "min": grouped.min(), "max": grouped.max(),
                          "N runs": grouped.size()})
    table = table.reindex([s for s in sizes if s in table.index])
    table.index.name = "size"
    return table.reset_index()


def job_table(store: Store, task: str) -> pd.DataFrame | None:
    """The job queue's rows of a task (size, pretrain_seed, finetune_seed, status), or None
    while the job queue is not available."""
    try:
        from seedlab.runs import queue  # written by the runs engineer
    except ImportError:
        return None
    lister = getattr(queue, "list_jobs", None) or getattr(queue, "jobs", None)
    if lister is None:
        return None
    try:
        jobs = pd.DataFrame(lister(store, task=task))
    except Exception:  # noqa: BLE001 - the queue is optional for the overview
        return None
    needed = {"size", "pretrain_seed", "finetune_seed", "status"}
    return jobs if needed <= set(jobs.columns) else None
