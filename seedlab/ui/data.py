"""Streamlit caching of the store and of ``seedlab.analyses`` for the pages.

``get_store(home)`` is a ``st.cache_resource``; every query below is a ``st.cache_*``
keyed on (home, a store version, the query): ``content_version()`` (moves on every import
or finished run) for arrays and analyses, ``version()`` (also on every annotation) for
what shows annotations, so new data shows up without restarting the app and a verdict
does not recompute the statistics. :class:`Data` is the store reader the analyses get:
the store's read methods, cached. Pages call :func:`current_data` (or :func:`open_data`)
and the wrappers below with a query from ``seedlab.analyses``; the computing is there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

from seedlab import analyses
from seedlab.analyses import ordered_sizes
from seedlab.analyses.query import CompleteGrid, complete_grid
from seedlab.annotate import Queue
from seedlab.runs import queue
from seedlab.store import SeedArrays, Store
from seedlab.ui.state import Selection, current

Q = TypeVar("Q", bound=analyses.Query)


HOMES_ROOT = "SEEDLAB_HOMES_ROOT"  # environment: the folder URL homes must lie under
MAX_HOME_CHARS = 1024


def openable_home(text: str) -> tuple[Path | None, str]:
    """Whether the app may open the home ``text`` names (from the URL or the sidebar's
    text box): ``(resolved folder, "")`` when it already is a seedlab store
    (``Store.is_home``) and, where ``$SEEDLAB_HOMES_ROOT`` was set at start-up, lies under
    that root; else ``(None, why)``. Only looks: never creates or writes anything, so a
    link cannot make the app write a store, a cache or a lock anywhere."""
    if len(text) > MAX_HOME_CHARS:
        return None, f"longer than {MAX_HOME_CHARS} characters"
    if not text.strip() or any(not c.isprintable() for c in text):
        return None, "not a folder name (empty, or holds control characters)"
    try:
        home = Path(text).expanduser().resolve()
        root = os.environ.get(HOMES_ROOT)
        if root and not home.is_relative_to(Path(root).expanduser().resolve()):
            return None, f"outside the folder homes may be opened from (${HOMES_ROOT})"
        if not home.is_dir():
            return None, "no such folder" if not home.exists() else "not a folder"
        if not Store.is_home(home):
            return None, "not a seedlab store (no catalogue, no predictions or instances)"
    except (OSError, RuntimeError, ValueError) as error:
        return None, f"not a usable folder ({type(error).__name__})"
    return home, ""


@st.cache_resource(show_spinner=False)
def get_store(home: str | Path) -> Store:
    """One ``Store`` per seedlab home for the whole server."""
    return Store(Path(home), create=False)


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


@dataclass(frozen=True)
class TaskKeys:
    """What the sidebar offers for one task, from its runs: ``sizes`` smallest first,
    ``pretrain_seeds`` in natural order, ``finetune_seeds`` and ``checkpoints`` ascending,
    and ``have``, the (size, pretraining seed, fine-tuning seed) of every run."""

    sizes: tuple[str, ...]
    pretrain_seeds: tuple[str, ...]
    finetune_seeds: tuple[int, ...]
    checkpoints: tuple[float, ...]
    have: frozenset[tuple[str, str, int]]


# One small cached value per task for what every page's sidebar reads (unpickling the run
# table once for each of them cost about as much as a simple page).
@st.cache_data(show_spinner=False, max_entries=64)
def _task_keys(home: str, version: int, task: str) -> TaskKeys:
    runs = _runs(home, version, task)
    if not len(runs):
        return TaskKeys((), (), (), (), frozenset())
    return TaskKeys(
        sizes=tuple(ordered_sizes(runs["size"].unique().tolist())),
        pretrain_seeds=tuple(analyses.sorted_seeds(runs["pretrain_seed"].unique().tolist())),
        finetune_seeds=tuple(sorted(int(s) for s in runs["finetune_seed"].unique())),
        checkpoints=tuple(sorted({float(c) for cs in runs["checkpoints"].dropna()
                                  for c in json.loads(cs)})),
        have=frozenset(zip(runs["size"].astype(str), runs["pretrain_seed"].astype(str),
                           runs["finetune_seed"].astype(int), strict=True)))


@st.cache_data(show_spinner=False, max_entries=64)
def _default_grid(home: str, version: int, task: str, study: str | None
                  ) -> CompleteGrid:
    keys = _task_keys(home, version, task)
    return complete_grid(_runs(home, version, task), list(keys.sizes),
                         list(keys.pretrain_seeds), list(keys.finetune_seeds),
                         json.loads(study) if study else None)


@st.cache_data(show_spinner=False, max_entries=64)
def _run_accuracy(home: str, version: int, task: str, sizes: tuple[str, ...] | None,
                  checkpoint: Any) -> pd.DataFrame:
    return get_store(home).run_accuracy(task, size=list(sizes) if sizes else None,
                                        checkpoint=checkpoint)


def _read_only(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.flags.writeable = False


# Dense arrays are shared, not copied: st.cache_data would unpickle a fresh copy (hundreds of
# MB at the scale of the released studies) on every rerun. They are frozen so that no page
# can change what another page reads.
@st.cache_resource(show_spinner=False, max_entries=12)
def _arrays(home: str, version: int, task: str, size: str, pretrain_seeds: tuple[str, ...],
            finetune_seeds: tuple[int, ...], checkpoint: Any, split: tuple[str, ...] | None
            ) -> SeedArrays:
    arrays = get_store(home).arrays(task, size, list(pretrain_seeds), list(finetune_seeds),
                                    checkpoint=list(checkpoint) if isinstance(checkpoint, tuple)
                                    else checkpoint, split=list(split) if split else None)
    _read_only(arrays.correct, arrays.p_correct, arrays.pred, arrays.labels,
               arrays.instance_ids)
    return arrays


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
def _mask_arrays(home: str, version: int, setting: str, task: str, component: str,
                 seeds: tuple[int, ...] | None) -> tuple[np.ndarray, list[int]]:
    return get_store(home).mask_arrays(setting, task, component,
                                       seeds=list(seeds) if seeds is not None else None)


@st.cache_data(show_spinner=False, max_entries=16)
def _evaluations(home: str, version: int) -> pd.DataFrame:
    return get_store(home).evaluations()


@dataclass(frozen=True)
class Data:
    """The store of one seedlab home at one data version, with cached queries.

    Create it with :func:`open_data` on every script run: the versions are read then, so the
    caches refresh when the data changes. ``version`` is the store's ``content_version()``
    (predictions, instances, masks: the key of the arrays and statistics) and
    ``annotations_version`` its ``version()`` (which also moves on every verdict: the key
    of what shows annotations), so annotating does not recompute the statistics.
    """

    home: str
    version: int
    annotations_version: int

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

    def label_list(self, task: str) -> list[str]:
        """Class names of a task, index = predicted label."""
        return self.task_row(task)["label_list"]

    def info(self) -> dict:
        """``Store.info``: counts per task."""
        return _info(self.home, self.annotations_version)

    def runs(self, task: str | None = None) -> pd.DataFrame:
        """Run metadata (``Store.runs``)."""
        return _runs(self.home, self.version, task)

    def task_keys(self, task: str) -> TaskKeys:
        """Sizes, seeds, checkpoints and the (size, seeds) of every run of a task."""
        return _task_keys(self.home, self.version, task)

    def default_grid(self, task: str, study: dict | None = None) -> CompleteGrid:
        """``analyses.complete_grid`` of a task's runs (``study``: the published study's
        manifest when it is of this task): the sidebar's default selection."""
        return _default_grid(self.home, self.version, task,
                             json.dumps(study, sort_keys=True) if study else None)

    def sizes(self, task: str) -> list[str]:
        """Sizes of a task with runs, smallest first."""
        return list(self.task_keys(task).sizes)

    def checkpoints(self, task: str) -> list[float]:
        """All checkpoint values any run of the task has, ascending."""
        return list(self.task_keys(task).checkpoints)

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
        return _annotations(self.home, self.annotations_version, task, current)

    def masks(self, setting: str | None = None, task: str | None = None) -> pd.DataFrame:
        """Pruning masks in long format (``Store.masks``)."""
        return _masks(self.home, self.version, setting, task)

    def mask_arrays(self, setting: str, task: str, component: str = "head",
                    seeds: Sequence[int] | None = None) -> tuple[np.ndarray, list[int]]:
        """Masks as ``(S, layers, heads)`` for heads or ``(S, layers)`` for MLPs."""
        return _mask_arrays(self.home, self.version, setting, task, component,
                            tuple(int(s) for s in seeds) if seeds is not None else None)

    def evaluations(self) -> pd.DataFrame:
        """Mask evaluation results (``Store.evaluations``)."""
        return _evaluations(self.home, self.version)

    def jobs(self, task: str) -> pd.DataFrame:
        """Queued, running and failed jobs of a task (not cached: the queue moves)."""
        return job_table(self.store, task)

    def pretrain_seeds(self, task: str) -> list[str]:
        """Pretraining seeds of a task's runs, in natural order."""
        return list(self.task_keys(task).pretrain_seeds)

    def finetune_seeds(self, task: str) -> list[int]:
        """Fine-tuning seeds of a task's runs, ascending."""
        return list(self.task_keys(task).finetune_seeds)

    def annotate(self, task: str, instance_id: str, annotator: str, verdict: str,
                 note: str = "") -> int:
        """Append one verdict to the annotation log (not cached; bumps the version)."""
        return self.store.annotate(task, instance_id, annotator, verdict, note)


def open_data(home: str | Path) -> Data:
    """The data of a home at its current version."""
    home = str(Path(home).resolve())
    store = get_store(home)
    return Data(home, store.content_version(), store.version())


def current_data() -> Data | None:
    """The data of the home chosen in the sidebar, or None when there is no store there."""
    selection = current()
    if selection.task is None and not Store.is_home(selection.home):
        return None
    return open_data(selection.home)


def selected_store(message: str) -> Store:
    """The store of the sidebar's home (the Runs page, which also works on a store with no
    tasks yet); when that home holds no store, show ``message`` and stop the page, so that
    opening a page never creates one."""
    selection = current()
    if not Store.is_home(selection.home):
        st.info(message)
        st.stop()
    return get_store(selection.home)


def selected_data(message: str, need_sizes: bool = True) -> tuple[Selection, Data]:
    """The sidebar's selection and its data; when there is no store, no task, or (with
    ``need_sizes``) no size selected, show ``message`` and stop the page."""
    selection = current()
    ds = current_data()
    if ds is None or selection.task is None or (need_sizes and not selection.sizes):
        st.info(message)
        st.stop()
    return selection, ds


def query(selection: Selection, kind: type[Q] = analyses.Query, *,
          sizes: Sequence[str] | None = None, checkpoint: Any = None, **options: Any) -> Q:
    """The analysis query ``kind`` of the sidebar's selection: its task, sizes (or
    ``sizes``), seeds and checkpoint (or ``checkpoint``), plus the analysis's ``options``."""
    return kind(selection.task, tuple(selection.sizes if sizes is None else sizes),
                tuple(selection.pretrain_seeds), tuple(selection.finetune_seeds),
                selection.checkpoint_arg if checkpoint is None else checkpoint, **options)


def job_table(store: Store, task: str) -> pd.DataFrame:
    """The job queue's unfinished jobs of a task: size, pretrain_seed, finetune_seed and
    status (queued, running, failed); the latest job of each cell wins."""
    jobs = queue.jobs(store)  # newest first
    jobs = jobs[(jobs["task"] == task) & jobs["state"].isin(["queued", "running", "failed"])]
    jobs = jobs.drop_duplicates(["size", "pretrain_seed", "finetune_seed"])
    return (jobs.rename(columns={"state": "status"})
            [["size", "pretrain_seed", "finetune_seed", "status"]].reset_index(drop=True))


coverage = analyses.coverage  # the run grid's status; tests/test_runs_relaunch.py uses it


# ---------------------------------------------------------------------------------------
# The analyses, cached. Each wrapper keys on (home, version, query); the reader ``_ds`` is
# not hashed (a leading underscore), it is the Data of that version. What shows
# annotations keys on both versions.


@st.cache_data(show_spinner=False, max_entries=16)
def _decomposition(home: str, version: int, query: analyses.DecompositionQuery,
                   _ds: Data) -> analyses.Decomposition:
    return analyses.decomposition(_ds, query)


def decomposition(ds: Data, query: analyses.DecompositionQuery) -> analyses.Decomposition:
    """``analyses.decomposition`` (Bias and variance page)."""
    return _decomposition(ds.home, ds.version, query, ds)


# The aligned predictions are shared, not copied: (R, N) runs x instances at the scale of
# the released studies.
@st.cache_resource(show_spinner=False, max_entries=8)
def _run_predictions(home: str, version: int, query: analyses.Query, _ds: Data
                     ) -> analyses.RunPredictions:
    runs = analyses.run_predictions(_ds, query)
    _read_only(runs.preds, runs.instance_ids, runs.labels)
    return runs


@st.cache_resource(show_spinner=False, max_entries=8)
def _agreement(home: str, version: int, query: analyses.AgreementQuery, _ds: Data
               ) -> analyses.Agreement:
    base = analyses.Query(query.task, query.sizes, query.pretrain_seeds, query.finetune_seeds,
                          query.checkpoint)
    result = analyses.agreement(_ds, query, _run_predictions(home, version, base, _ds))
    _read_only(result.matrix)
    return result


def agreement(ds: Data, query: analyses.AgreementQuery) -> analyses.Agreement:
    """``analyses.agreement`` (Agreement page); the predictions are shared by both
    metrics."""
    return _agreement(ds.home, ds.version, query, ds)


def run_predictions(ds: Data, query: analyses.Query) -> analyses.RunPredictions:
    """``analyses.run_predictions``: every selected run on the instances all sizes share."""
    base = analyses.Query(query.task, query.sizes, query.pretrain_seeds, query.finetune_seeds,
                          query.checkpoint)
    return _run_predictions(ds.home, ds.version, base, ds)


@st.cache_data(show_spinner=False, max_entries=32)
def _decaying(home: str, version: int, query: analyses.DecayQuery, _ds: Data
              ) -> analyses.Decaying:
    return analyses.decaying(_ds, query)


def decaying(ds: Data, query: analyses.DecayQuery) -> analyses.Decaying:
    """``analyses.decaying`` (Decaying instances page)."""
    return _decaying(ds.home, ds.version, query, ds)


@st.cache_data(show_spinner=False, max_entries=16)
def _decay_browser(home: str, version: int, annotations_version: int,
                   query: analyses.DecayQuery, _ds: Data) -> analyses.DecayBrowser:
    return analyses.decay_browser(_ds, query, decaying(_ds, query))


def decay_browser(ds: Data, query: analyses.DecayQuery) -> analyses.DecayBrowser:
    """``analyses.decay_browser`` of ``decaying(ds, query)`` (shows verdicts)."""
    return _decay_browser(ds.home, ds.version, ds.annotations_version, query, ds)


@st.cache_data(show_spinner=False, max_entries=16)
def _label_issue_scores(home: str, version: int, annotations_version: int,
                        query: analyses.Query, _ds: Data) -> pd.DataFrame:
    return analyses.label_issue_scores(_ds, query)


def label_issue_scores(ds: Data, query: analyses.Query) -> pd.DataFrame:
    """``analyses.label_issue_scores`` (last checkpoints; shows verdicts)."""
    return _label_issue_scores(ds.home, ds.version, ds.annotations_version, query, ds)


@st.cache_data(show_spinner=False, max_entries=32)
def _instance_accuracy(home: str, version: int, query: analyses.AccuracyQuery, _ds: Data
                       ) -> pd.DataFrame:
    return analyses.instance_accuracy(_ds, query)


def instance_accuracy(ds: Data, query: analyses.AccuracyQuery) -> pd.DataFrame:
    """``analyses.instance_accuracy``: indexed by instance_id, one column per size."""
    return _instance_accuracy(ds.home, ds.version, query, ds)


@st.cache_data(show_spinner=False, max_entries=32)
def _annotation_queue(home: str, version: int, query: analyses.QueueQuery, _ds: Data
                      ) -> Queue:
    accuracy = None
    if query.small is not None and query.large is not None:
        accuracy = instance_accuracy(_ds, analyses.AccuracyQuery(
            query.task, query.sizes, query.pretrain_seeds, query.finetune_seeds,
            query.checkpoint, split=query.split))
    return analyses.annotation_queue(_ds, query, accuracy)


def annotation_queue(ds: Data, query: analyses.QueueQuery) -> Queue:
    """``analyses.annotation_queue`` (Annotate page). Raises what it raises."""
    return _annotation_queue(ds.home, ds.version, query, ds)


@st.cache_data(show_spinner=False, max_entries=16)
def _data_map(home: str, version: int, query: analyses.DataMapQuery, _ds: Data
              ) -> analyses.DataMap:
    return analyses.data_map(_ds, query)


def data_map(ds: Data, query: analyses.DataMapQuery) -> analyses.DataMap:
    """``analyses.data_map`` (Seed data map page)."""
    return _data_map(ds.home, ds.version, query, ds)


@st.cache_data(show_spinner=False, max_entries=16)
def _significance(home: str, version: int, query: analyses.SignificanceQuery, _ds: Data
                  ) -> analyses.Significance:
    return analyses.significance(_ds, query)


def significance(ds: Data, query: analyses.SignificanceQuery) -> analyses.Significance:
    """``analyses.significance`` (Significance page)."""
    return _significance(ds.home, ds.version, query, ds)


@st.cache_data(show_spinner=False, max_entries=16)
def _mask_choices(home: str, version: int, _ds: Data) -> analyses.MaskChoices | None:
    return analyses.mask_choices(_ds)


def mask_choices(ds: Data) -> analyses.MaskChoices | None:
    """``analyses.mask_choices``: None when the store holds no masks."""
    return _mask_choices(ds.home, ds.version, ds)


@st.cache_data(show_spinner=False, max_entries=16)
def _mask_views(home: str, version: int, query: analyses.MaskQuery, tasks: tuple[str, ...],
                _ds: Data) -> analyses.Masks:
    return analyses.masks(_ds, query, tasks)


def masks(ds: Data, query: analyses.MaskQuery, tasks: Sequence[str]) -> analyses.Masks:
    """``analyses.masks`` of ``tasks`` (Pruning masks page)."""
    return _mask_views(ds.home, ds.version, query, tuple(tasks), ds)


@st.cache_data(show_spinner=False, max_entries=16)
def _mask_evaluations(home: str, version: int, _ds: Data) -> analyses.MaskEvaluations | None:
    return analyses.mask_evaluations(_ds)


def mask_evaluations(ds: Data) -> analyses.MaskEvaluations | None:
    """``analyses.mask_evaluations``: None when the store holds no evaluations."""
    return _mask_evaluations(ds.home, ds.version, ds)


@st.cache_data(show_spinner=False, max_entries=32)
def _run_accuracy_summary(home: str, version: int, query: analyses.Query, _ds: Data
                          ) -> analyses.RunAccuracy | None:
    return analyses.run_accuracy(_ds, query)


def run_accuracy(ds: Data, query: analyses.Query) -> analyses.RunAccuracy | None:
    """``analyses.run_accuracy`` (Overview page): None when no run matches."""
    return _run_accuracy_summary(ds.home, ds.version, query, ds)
