"""Cached access to the store and to ``seedlab.stats`` for the pages.

``get_store(home)`` is a ``st.cache_resource``; every query below is a ``st.cache_data``
keyed on its inputs *and* a store version: ``content_version()`` (moves on every import or
finished run) for arrays and statistics, ``version()`` (also on every annotation) for what
shows annotations, so new data shows up without restarting the app and a verdict does not
recompute the statistics. Pages use :func:`open_data` (or :func:`current_data`) and call the
methods of :class:`Data`, which pass the versions along; they hold no SQL and no
statistics themselves.
"""

from __future__ import annotations

import itertools
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
def _mask_arrays(home: str, version: int, setting: str, task: str, component: str
                 ) -> tuple[np.ndarray, list[int]]:
    return get_store(home).mask_arrays(setting, task, component)


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

    def info(self) -> dict:
        """``Store.info``: counts per task."""
        return _info(self.home, self.annotations_version)

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
        return _annotations(self.home, self.annotations_version, task, current)

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

    def jobs(self, task: str) -> pd.DataFrame:
        """Queued, running and failed jobs of a task (not cached: the queue moves)."""
        return job_table(self.store, task)

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
    from seedlab.ui.state import current

    selection = current()
    if selection.task is None and not Store.is_home(selection.home):
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


def job_table(store: Store, task: str) -> pd.DataFrame:
    """The job queue's unfinished jobs of a task: size, pretrain_seed, finetune_seed and
    status (queued, running, failed); the latest job of each cell wins."""
    from seedlab.runs import queue

    jobs = queue.jobs(store)  # newest first
    jobs = jobs[(jobs["task"] == task) & jobs["state"].isin(["queued", "running", "failed"])]
    jobs = jobs.drop_duplicates(["size", "pretrain_seed", "finetune_seed"])
    return (jobs.rename(columns={"state": "status"})
            [["size", "pretrain_seed", "finetune_seed", "status"]].reset_index(drop=True))


# ---------------------------------------------------------------------------------------
# Cached statistics (seedlab.stats) keyed on the data they come from


class NotEnoughData(Exception):
    """The selection cannot support a computation; the message says what is missing."""


def _complete(arrays: SeedArrays, what: str) -> SeedArrays:
    if arrays.missing:
        shown = ", ".join(f"(p{p}, f{f})" for p, f in arrays.missing[:6])
        raise NotEnoughData(
            f"{what} needs every selected (pretraining seed, fine-tuning seed) run of size"
            f" {arrays.size}; missing: {shown}{' ...' if len(arrays.missing) > 6 else ''}."
            " Deselect those seeds in the sidebar.")
    if np.isnan(arrays.correct).any():
        raise NotEnoughData(f"Some runs of size {arrays.size} lack predictions for some"
                            " instances; restrict the selection to complete runs.")
    return arrays


def _decompose_size(home: str, version: int, task: str, size: str, pretrain: tuple[str, ...],
                    finetune: tuple[int, ...], checkpoint: Any, score: str
                    ) -> tuple[Any, np.ndarray]:
    """``(Decomposition, instance_ids (N,))`` of one size; raises NotEnoughData."""
    from seedlab import stats

    arrays = _complete(_arrays(home, version, task, size, pretrain, finetune, checkpoint, None),
                       "The decomposition")
    if len(pretrain) < 2 or len(finetune) < 2:
        raise NotEnoughData("The decomposition needs at least 2 pretraining seeds and 2"
                            " fine-tuning seeds.")
    x = arrays.correct if score == "0/1 loss" else arrays.p_correct
    if isinstance(checkpoint, tuple) and x.shape[-1] < 2:
        raise NotEnoughData("Checkpoint variance needs at least 2 checkpoints.")
    return stats.decompose(x), arrays.instance_ids


@st.cache_data(show_spinner=False, max_entries=16)
def _decompositions(home: str, version: int, task: str, sizes: tuple[str, ...],
                    pretrain: tuple[str, ...], finetune: tuple[int, ...], checkpoint: Any,
                    score: str, nboot: int, seed: int) -> dict[str, Any]:
    """Per size ``(Decomposition, CI, instance_ids)`` or the ``NotEnoughData`` message.

    The bootstrap CIs of all sizes come from one draw (``stats.decomposition_ci_many``):
    each equals ``decomposition_ci`` of that size alone with the same seed.
    """
    from seedlab import stats

    out: dict[str, Any] = {}
    for size in sizes:
        try:
            out[size] = _decompose_size(home, version, task, size, pretrain, finetune,
                                        checkpoint, score)
        except NotEnoughData as exc:
            out[size] = str(exc)
    done = [size for size in sizes if not isinstance(out[size], str)]
    cis = stats.decomposition_ci_many([out[size][0] for size in done], nboot=nboot, rng=seed)
    for size, ci in zip(done, cis):
        dec, ids = out[size]
        out[size] = (dec, ci, ids)
    return out


@st.cache_resource(show_spinner=False, max_entries=8)
def _run_rows(home: str, version: int, task: str, sizes: tuple[str, ...],
              pretrain: tuple[str, ...], finetune: tuple[int, ...], checkpoint: Any
              ) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    """Predictions of every selected run on the instances all sizes share.

    Returns ``preds (R, N)`` (the smallest integer type that holds the labels: int8 for
    any task with fewer than 128 classes), a run table (size, pretrain_seed, finetune_seed;
    R rows, ordered by size, pretraining seed, fine-tuning seed), ``instance_ids (N,)``
    and ``labels (N,)``.
    """
    per_size = [_arrays(home, version, task, s, pretrain, finetune, checkpoint, None)
                for s in sizes]
    ids = per_size[0].instance_ids
    shared = all(np.array_equal(a.instance_ids, ids) for a in per_size[1:])
    if not shared:  # the instances every size predicts, in the first size's order
        keep = np.ones(len(ids), dtype=bool)
        for arrays in per_size[1:]:
            keep &= pd.Index(ids).isin(arrays.instance_ids)
        ids = np.asarray(ids[keep], dtype=object)
    blocks, meta = [], []
    labels = np.array([], dtype=np.int64)
    for arrays in per_size:
        index = None if shared else pd.Index(arrays.instance_ids).get_indexer(ids)
        labels = arrays.labels if index is None else arrays.labels[index]
        pred = arrays.pred if index is None else arrays.pred[index]  # (N, P, F)
        # (P * F,) run-major: runs that exist and predict every instance
        usable = ~(pred < 0).any(axis=0).ravel() & _present(arrays)
        meta += [(arrays.size, p, f) for (p, f), ok in
                 zip(itertools.product(arrays.pretrain_seeds, arrays.finetune_seeds), usable)
                 if ok]
        # (runs, N), runs ordered by pretraining seed, then fine-tuning seed
        blocks.append(pred.reshape(len(ids), -1).T[usable])
    top = max((int(b.max()) for b in blocks if b.size), default=0)
    dtype = np.int8 if top < 2**7 else np.int16 if top < 2**15 else np.int64
    preds = np.empty((sum(len(b) for b in blocks), len(ids)), dtype=dtype)
    row = 0
    for block in blocks:
        preds[row:row + len(block)] = block
        row += len(block)
    table = pd.DataFrame(meta, columns=["size", "pretrain_seed", "finetune_seed"])
    _read_only(preds, ids, labels)
    return preds, table, ids, labels


def _present(arrays: SeedArrays) -> np.ndarray:
    """``(P * F,)`` bool: which (pretraining, fine-tuning) seed runs exist, run-major."""
    missing = set(arrays.missing)
    return np.array([(p, f) not in missing for p in arrays.pretrain_seeds
                     for f in arrays.finetune_seeds], dtype=bool)


@st.cache_data(show_spinner=False, max_entries=32)
def _agreement(home: str, version: int, task: str, sizes: tuple[str, ...],
               pretrain: tuple[str, ...], finetune: tuple[int, ...], checkpoint: Any,
               metric: str) -> np.ndarray:
    from seedlab import stats

    preds = _run_rows(home, version, task, sizes, pretrain, finetune, checkpoint)[0]
    return stats.kappa_matrix(preds) if metric == "kappa" else stats.agreement_matrix(preds)


@st.cache_data(show_spinner=False, max_entries=32)
def _decay(home: str, version: int, task: str, small: str, large: str,
           pretrain: tuple[str, ...], finetune: tuple[int, ...]) -> dict:
    from seedlab import stats

    s = _complete(_arrays(home, version, task, small, pretrain, finetune, "last", None),
                  "The decay analysis")
    lg = _complete(_arrays(home, version, task, large, pretrain, finetune, "last", None),
                   "The decay analysis")
    if len(s.pretrain_seeds) < 2:
        raise NotEnoughData("The decay analysis needs at least 2 pretraining seeds.")
    if np.array_equal(s.instance_ids, lg.instance_ids):  # the common case: no copies
        ids = s.instance_ids
        small_c, large_c, small_p, large_p = s.correct, lg.correct, s.p_correct, lg.p_correct
    else:  # the instances both sizes predict, in the smaller size's order
        ids = np.asarray(s.instance_ids[pd.Index(s.instance_ids).isin(lg.instance_ids)],
                         dtype=object)
        si = pd.Index(s.instance_ids).get_indexer(ids)
        li = pd.Index(lg.instance_ids).get_indexer(ids)
        small_c, large_c = s.correct[si], lg.correct[li]
        small_p, large_p = s.p_correct[si], lg.p_correct[li]
    result = stats.decay_bounds(small_c, large_c)
    bh = stats.bh_details(small_p, large_p)
    return {"result": result, "bh": bh, "instance_ids": ids}


@st.cache_data(show_spinner=False, max_entries=16)
def _label_issues(home: str, version: int, annotations_version: int, task: str,
                  sizes: tuple[str, ...], pretrain: tuple[str, ...], finetune: tuple[int, ...]
                  ) -> pd.DataFrame:
    """Label-issue scores over every selected run of every selected size."""
    from seedlab import stats

    p_list, pred_list, ids, labels, label_list = [], [], None, None, []
    for size in sizes:
        arrays = _arrays(home, version, task, size, pretrain, finetune, "last", None)
        if arrays.missing or np.isnan(arrays.p_correct).any():
            continue
        if ids is None:
            ids, labels, label_list = arrays.instance_ids, arrays.labels, arrays.label_list
        n = len(ids)
        if np.array_equal(arrays.instance_ids, ids):  # the common case: no reordering copy
            p_list.append(arrays.p_correct.reshape(n, -1))
            pred_list.append(arrays.pred.reshape(n, -1))
            continue
        index = pd.Index(arrays.instance_ids).get_indexer(ids)
        if (index < 0).any():
            continue
        p_list.append(arrays.p_correct[index].reshape(n, -1))
        pred_list.append(arrays.pred[index].reshape(n, -1))
    if ids is None or (labels < 0).any():
        return pd.DataFrame(columns=["instance_id", "score"])
    # Class indices fit int8 for any task with fewer than 128 classes: an eighth of the
    # memory of int64 for the (N, runs) matrix.
    top = max(int(p.max()) for p in pred_list)
    pred = np.empty((len(ids), sum(p.shape[1] for p in pred_list)),
                    dtype=np.int8 if top < 2**7 else np.int64)
    np.concatenate(pred_list, axis=1, out=pred)
    annotations = _annotations(home, annotations_version, task, True)
    return stats.label_issues(np.concatenate(p_list, axis=1), pred, labels,
                              instance_ids=list(ids), annotations=annotations,
                              label_list=label_list)


@st.cache_data(show_spinner=False, max_entries=16)
def _datamap(home: str, version: int, task: str, size: str, pretrain: tuple[str, ...],
             finetune: tuple[int, ...], checkpoint: Any, variability: float,
             confidence: float) -> pd.DataFrame:
    from seedlab import stats

    arrays = _complete(_arrays(home, version, task, size, pretrain, finetune, checkpoint,
                               None), "The data map")
    frame = stats.seed_data_map(arrays.p_correct, arrays.correct,
                                variability_threshold=variability,
                                confidence_threshold=confidence)
    frame.insert(0, "instance_id", arrays.instance_ids)
    return frame


@st.cache_data(show_spinner=False, max_entries=16)
def _multibootstrap(home: str, version: int, task: str, arms: tuple[tuple, tuple],
                    pretrain: tuple[str, ...], finetune: tuple[int, ...], options: tuple
                    ) -> dict:
    """``arms``: ((size, checkpoint), (size, checkpoint)) for the baseline and treatment."""
    from seedlab import stats

    loaded = [_arrays(home, version, task, size, pretrain, finetune, ckpt, None)
              for size, ckpt in arms]
    treatment_ids = set(loaded[1].instance_ids)  # built once, not once per instance
    common = [i for i in loaded[0].instance_ids if i in treatment_ids]
    if not common:
        raise NotEnoughData("The two configurations share no instances.")
    rows, seeds, fseeds, treat = [], [], [], []
    labels = None
    for arm, arrays in enumerate(loaded):
        index = pd.Index(arrays.instance_ids).get_indexer(common)
        labels = arrays.labels[index]
        for p_i, p in enumerate(arrays.pretrain_seeds):
            for f_i, f in enumerate(arrays.finetune_seeds):
                pred = arrays.pred[index, p_i, f_i]
                if (p, f) in arrays.missing or (pred < 0).any():
                    continue
                rows.append(pred)
                seeds.append(p)
                fseeds.append(f)
                treat.append(arm == 1)
    if sum(treat) == 0 or sum(treat) == len(treat):
        raise NotEnoughData("Each configuration needs at least one complete run.")
    opts = dict(options)
    return stats.multibootstrap(np.vstack(rows), labels, seeds, np.array(treat),
                                finetune_seeds=fseeds, **opts)


def _ckpt_key(checkpoint: Any) -> Any:
    return tuple(float(c) for c in checkpoint) if isinstance(checkpoint, (list, tuple)) \
        else checkpoint


def decomposition(ds: Data, task: str, size: str, pretrain_seeds: Sequence[str],
                  finetune_seeds: Sequence[int], checkpoint: Any, score: str,
                  nboot: int = 500, seed: int = 0) -> tuple[Any, dict, np.ndarray]:
    """``(Decomposition, decomposition_ci, instance_ids (N,))`` of one size; ``score``:
    '0/1 loss' (correctness) or 'squared loss' (gold-label probability). Raises
    NotEnoughData."""
    return decompositions(ds, task, [size], pretrain_seeds, finetune_seeds, checkpoint, score,
                          nboot, seed)[size]


def decompositions(ds: Data, task: str, sizes: Sequence[str], pretrain_seeds: Sequence[str],
                   finetune_seeds: Sequence[int], checkpoint: Any, score: str,
                   nboot: int = 500, seed: int = 0) -> dict[str, tuple[Any, dict, np.ndarray]]:
    """``decomposition`` of every size in ``sizes`` (cached as one computation; the CIs share
    one bootstrap draw, each equal to its size's alone). Raises NotEnoughData for the first
    size that cannot be decomposed; use :func:`decompositions_or_notes` to get the others."""
    results, notes = decompositions_or_notes(ds, task, sizes, pretrain_seeds, finetune_seeds,
                                             checkpoint, score, nboot, seed)
    if notes:
        raise NotEnoughData(notes[0])
    return results


def decompositions_or_notes(ds: Data, task: str, sizes: Sequence[str],
                            pretrain_seeds: Sequence[str], finetune_seeds: Sequence[int],
                            checkpoint: Any, score: str, nboot: int = 500, seed: int = 0
                            ) -> tuple[dict[str, tuple[Any, dict, np.ndarray]], list[str]]:
    """``({size: (Decomposition, CI, instance_ids)}, notes)``: the sizes that could be
    decomposed, in ``sizes`` order, and a NotEnoughData message for each that could not."""
    out = _decompositions(ds.home, ds.version, task, tuple(sizes), tuple(pretrain_seeds),
                          tuple(int(f) for f in finetune_seeds), _ckpt_key(checkpoint), score,
                          nboot, seed)
    results = {size: value for size, value in out.items() if not isinstance(value, str)}
    return results, [value for value in out.values() if isinstance(value, str)]


def run_rows(ds: Data, task: str, sizes: Sequence[str], pretrain_seeds: Sequence[str],
             finetune_seeds: Sequence[int], checkpoint: Any
             ) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]:
    """``preds (R, N)``, run table, ``instance_ids (N,)``, ``labels (N,)`` of all runs."""
    preds, table, ids, labels = _run_rows(ds.home, ds.version, task, tuple(sizes),
                                          tuple(pretrain_seeds),
                                          tuple(int(f) for f in finetune_seeds),
                                          _ckpt_key(checkpoint))
    return preds, table.copy(), ids, labels  # the small run table is the caller's to change


def agreement(ds: Data, task: str, sizes: Sequence[str], pretrain_seeds: Sequence[str],
              finetune_seeds: Sequence[int], checkpoint: Any, metric: str) -> np.ndarray:
    """``(R, R)`` agreement or kappa (``metric='kappa'``) between the runs of ``run_rows``."""
    return _agreement(ds.home, ds.version, task, tuple(sizes), tuple(pretrain_seeds),
                      tuple(int(f) for f in finetune_seeds), _ckpt_key(checkpoint), metric)


def decay(ds: Data, task: str, small: str, large: str, pretrain_seeds: Sequence[str],
          finetune_seeds: Sequence[int]) -> dict:
    """``{"result": DecayResult, "bh": bh_details, "instance_ids"}`` (last checkpoint)."""
    return _decay(ds.home, ds.version, task, small, large, tuple(pretrain_seeds),
                  tuple(int(f) for f in finetune_seeds))


@st.cache_data(show_spinner=False, max_entries=64)
def _within_across(home: str, version: int, task: str, size: str, pretrain: tuple[str, ...],
                   finetune: tuple[int, ...], checkpoint: Any) -> tuple[float, float]:
    from seedlab import stats

    arrays = _arrays(home, version, task, size, pretrain, finetune, checkpoint, None)
    return stats.within_across(arrays.correct)


def within_across(ds: Data, task: str, size: str, pretrain_seeds: Sequence[str],
                  finetune_seeds: Sequence[int], checkpoint: Any) -> tuple[float, float]:
    """``stats.within_across`` of one size (cached)."""
    return _within_across(ds.home, ds.version, task, size, tuple(str(p) for p in pretrain_seeds),
                          tuple(int(f) for f in finetune_seeds), _ckpt_key(checkpoint))


@st.cache_data(show_spinner=False, max_entries=32)
def _instance_accuracy(home: str, version: int, task: str, sizes: tuple[str, ...],
                       pretrain: tuple[str, ...], finetune: tuple[int, ...], checkpoint: Any,
                       split: tuple[str, ...] | None) -> pd.DataFrame:
    from seedlab.annotate import instance_accuracy as accuracy_per_size

    return accuracy_per_size(open_data(home), task, list(sizes), list(pretrain), list(finetune),
                             checkpoint, list(split) if split else None)


def instance_accuracy(ds: Data, task: str, sizes: Sequence[str], pretrain_seeds: Sequence[str],
                      finetune_seeds: Sequence[int], checkpoint: Any = "last",
                      split: Sequence[str] | None = None) -> pd.DataFrame:
    """Each instance's accuracy per size (``seedlab.annotate.instance_accuracy``, cached):
    indexed by instance_id, one column per size."""
    return _instance_accuracy(ds.home, ds.version, task, tuple(sizes),
                              tuple(str(p) for p in pretrain_seeds),
                              tuple(int(f) for f in finetune_seeds), _ckpt_key(checkpoint),
                              tuple(split) if split else None)


@st.cache_data(show_spinner=False, max_entries=32)
def _annotation_queue(home: str, version: int, task: str, sizes: tuple[str, ...],
                      pretrain: tuple[str, ...], finetune: tuple[int, ...], checkpoint: Any,
                      split: tuple[str, ...] | None, small: str | None, large: str | None,
                      min_drop: float, blind: bool, control_ratio: float, seed: int) -> Any:
    from seedlab import annotate as an

    instances = _instances(home, version, task)
    pool = instances if split is None else instances[instances["split"].isin(split)]
    if small is None or large is None:
        return an.build_queue(pool, blind=blind, control_ratio=control_ratio, seed=seed)
    accuracy = _instance_accuracy(home, version, task, sizes, pretrain, finetune, checkpoint,
                                  split)
    decay = an.decay_table(accuracy, small, large)["decay"]
    return an.build_queue(pool, decay=decay, min_drop=min_drop, blind=blind,
                          control_ratio=control_ratio, seed=seed)


def annotation_queue(ds: Data, task: str, sizes: Sequence[str], pretrain_seeds: Sequence[str],
                     finetune_seeds: Sequence[int], checkpoint: Any,
                     split: Sequence[str] | None, small: str | None, large: str | None,
                     min_drop: float = 0.0, blind: bool = False, control_ratio: float = 1.0,
                     seed: int = 0) -> Any:
    """``seedlab.annotate.build_queue`` over the task's instances (restricted to ``split``),
    cached: with ``small`` and ``large``, the instances whose accuracy (``instance_accuracy``
    with these seeds and ``checkpoint``) drops by more than ``min_drop`` from ``small`` to
    ``large``; without, the imported treatment group. Raises what ``build_queue`` and
    ``decay_table`` raise (StoreError, KeyError)."""
    return _annotation_queue(ds.home, ds.version, task, tuple(sizes),
                             tuple(str(p) for p in pretrain_seeds),
                             tuple(int(f) for f in finetune_seeds), _ckpt_key(checkpoint),
                             tuple(split) if split else None, small, large, float(min_drop),
                             bool(blind), float(control_ratio), int(seed))


def label_issue_scores(ds: Data, task: str, sizes: Sequence[str],
                       pretrain_seeds: Sequence[str], finetune_seeds: Sequence[int]
                       ) -> pd.DataFrame:
    """``stats.label_issues`` over every selected run (last checkpoints)."""
    return _label_issues(ds.home, ds.version, ds.annotations_version, task, tuple(sizes),
                         tuple(pretrain_seeds),
                         tuple(int(f) for f in finetune_seeds))


def data_map(ds: Data, task: str, size: str, pretrain_seeds: Sequence[str],
             finetune_seeds: Sequence[int], checkpoint: Any, variability: float = 0.2,
             confidence: float = 0.5) -> pd.DataFrame:
    """``stats.seed_data_map`` of one size with an ``instance_id`` column."""
    return _datamap(ds.home, ds.version, task, size, tuple(pretrain_seeds),
                    tuple(int(f) for f in finetune_seeds), _ckpt_key(checkpoint),
                    variability, confidence)


def multibootstrap(ds: Data, task: str, baseline: tuple[str, Any], treatment: tuple[str, Any],
                   pretrain_seeds: Sequence[str], finetune_seeds: Sequence[int],
                   **options: Any) -> dict:
    """``stats.multibootstrap`` between two (size, checkpoint) configurations."""
    arms = ((baseline[0], _ckpt_key(baseline[1])), (treatment[0], _ckpt_key(treatment[1])))
    return _multibootstrap(ds.home, ds.version, task, arms, tuple(pretrain_seeds),
                           tuple(int(f) for f in finetune_seeds),
                           tuple(sorted(options.items())))


def block_mean(matrix: np.ndarray, groups: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """Average an ``(R, R)`` matrix over blocks of runs sharing a group label (the diagonal
    of each run with itself left out). Returns ``(G, G)`` and the group labels in order."""
    order = list(dict.fromkeys(groups))
    index = np.array([order.index(g) for g in groups])
    out = np.full((len(order), len(order)), np.nan)
    off_diagonal = ~np.eye(len(groups), dtype=bool)
    for a in range(len(order)):
        for b in range(len(order)):
            cells = matrix[np.ix_(index == a, index == b)]
            mask = off_diagonal[np.ix_(index == a, index == b)]
            values = cells[mask] if mask.any() else cells.ravel()
            values = values[~np.isnan(values)]
            out[a, b] = values.mean() if len(values) else np.nan
    return out, order
