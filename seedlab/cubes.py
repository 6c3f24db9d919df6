"""Dense per-(task, size) arrays of every run, cached on disk beside the store.

Every analysis reads the same thing: for one task and size, the score of each instance
under each (pretraining seed, fine-tuning seed, checkpoint). The long Parquet layout is
right for imports and ad-hoc queries, but rebuilding the dense array from it costs a scan
of every run file and a string lookup per row. A *cube* is that dense array, built once
from the runs' files and kept under ``<home>/cache/cubes/task=<t>/size=<s>/<key>/`` as
``.npy`` files that are memory-mapped on use:

    correct    (N, P, F, E) int8     1 / 0, -1 where the run or checkpoint is missing
    p_correct  (N, P, F, E) float32  NaN where missing
    pred       (N, P, F, E) int32    -1 where missing
    last       (P, F)       int64    index of each run's last checkpoint, -1 if no run
    labels     (N,)         int64    gold label index, -1 where not in the label list
    meta.json                        instance ids and splits, seeds, checkpoints

``key`` is a digest of the runs' ids and content hashes and of the task's instance file,
so any import, replacement or finished run gives a new key: a cube is never stale, only
unused (older keys of the same task and size are removed when a new one is written). A
cube is written to a temporary folder and renamed into place, so readers see a whole
cube or none; it is derived data and can be deleted at any time.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    from seedlab.store import Store

CUBE_FORMAT = 1
ARRAYS = ("correct", "p_correct", "pred", "last", "labels")


@dataclass
class Cube:
    """The dense arrays of one task and size (see the module docstring for shapes)."""

    instance_ids: np.ndarray
    splits: np.ndarray
    pretrain_seeds: list[str]
    finetune_seeds: list[int]
    checkpoints: list[float]
    correct: np.ndarray
    p_correct: np.ndarray
    pred: np.ndarray
    last: np.ndarray
    labels: np.ndarray


_memory: OrderedDict[str, Cube] = OrderedDict()
_memory_lock = threading.Lock()
_MEMORY_SLOTS = 16


def cube_key(runs: pd.DataFrame, instance_file: str | None) -> str:
    """Digest of what a cube is built from: the runs (ids and content) and the instances."""
    from seedlab.store import _digest

    parts = [f"format={CUBE_FORMAT}", f"instances={instance_file}"]
    parts += sorted(f"{r}:{h}" for r, h in zip(runs["run_id"], runs["content_hash"]))
    return _digest(*parts)[:20]


def load_cube(store: Store, task: str, size: str, runs: pd.DataFrame,
              instance_file: str | None = None) -> Cube:
    """The cube of ``task`` and ``size`` over ``runs`` (every run of that task and size, as
    ``Store.runs`` returns them): from memory, from disk, or built and saved.
    ``instance_file``: the task's registered instance file, when the caller has it."""
    if instance_file is None:
        with store._read() as con:
            instance_file = store._instance_file(task, con)
    key = cube_key(runs, instance_file)
    folder = store.home / "cache" / "cubes" / f"task={task}" / f"size={size}" / key
    memo = str(folder)
    with _memory_lock:
        if memo in _memory:
            _memory.move_to_end(memo)
            return _memory[memo]
    cube = _read(folder) if (folder / "meta.json").exists() else None
    if cube is None:
        cube = _build(store, task, runs)
        _save(cube, folder)
    with _memory_lock:
        _memory[memo] = cube
        while len(_memory) > _MEMORY_SLOTS:
            _memory.popitem(last=False)
    return cube


def _read(folder: Path) -> Cube | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
    except (OSError, ValueError):
        return None  # half-deleted by a sweep: rebuild
    return Cube(
        instance_ids=np.array(meta["instance_ids"], dtype=object),
        splits=np.array(meta["splits"], dtype=object),
        pretrain_seeds=meta["pretrain_seeds"], finetune_seeds=meta["finetune_seeds"],
        checkpoints=meta["checkpoints"], **arrays,
    )


def _save(cube: Cube, folder: Path) -> None:
    """Write ``cube`` to ``folder`` atomically; skip quietly where the home is read-only."""
    tmp = folder.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        tmp.mkdir(parents=True)
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(cube, name)))
        meta = {"instance_ids": cube.instance_ids.tolist(), "splits": cube.splits.tolist(),
                "pretrain_seeds": cube.pretrain_seeds, "finetune_seeds": cube.finetune_seeds,
                "checkpoints": cube.checkpoints}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process saved the same cube first
            shutil.rmtree(tmp, ignore_errors=True)
            return
        for old in folder.parent.iterdir():  # cubes of earlier data of this task and size
            if old != folder and not old.name.startswith(".tmp-"):
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(store: Store, task: str, runs: pd.DataFrame) -> Cube:
    """Scan every run file of the task and size once and scatter it into dense arrays."""
    from seedlab.store import _positions, seed_sort_key

    p_list = sorted(runs["pretrain_seed"].astype(str).unique(), key=seed_sort_key)
    f_list = sorted(int(s) for s in runs["finetune_seed"].unique())
    # Checkpoints as stored (e.g. 10/3), matched on 4 decimals.
    by_rounded: dict[float, float] = {}
    for cs in runs["checkpoints"]:
        for c in json.loads(cs):
            by_rounded.setdefault(round(c, 4), c)
    rounded = sorted(by_rounded)
    checkpoints = [by_rounded[c] for c in rounded]
    files = [str(store.home / f) for f in runs["file"]]
    cur = store._cursor()
    try:
        table = cur.sql(
            "SELECT pretrain_seed, finetune_seed, round(checkpoint, 4) AS e, instance_id,"
            " correct, p_correct, pred FROM read_parquet(?)", params=[files]).to_arrow_table()
    finally:
        cur.close()

    keys = store._instance_keys(task)
    seen = pa.compute.unique(table["instance_id"])
    if len(keys):
        ordered = pa.array(keys["instance_id"].astype(str).tolist(), pa.string())
        has = pa.compute.is_in(ordered, value_set=seen).to_numpy(zero_copy_only=False)
        ids = keys["instance_id"].astype(str).to_numpy(dtype=object)[has]
        splits = keys["split"].to_numpy(dtype=object)[has]
        gold = keys["label"].astype(str).to_numpy(dtype=object)[has]
    else:
        ids = np.array(sorted(seen.to_pylist(), key=seed_sort_key), dtype=object)
        splits = np.full(len(ids), None, dtype=object)
        gold = np.full(len(ids), None, dtype=object)
    lookup = {name: i for i, name in enumerate(store.label_list(task))}
    labels = np.array([lookup.get(g, -1) for g in gold], dtype=np.int64)

    i_idx = _positions(table["instance_id"], pa.array(ids.tolist(), pa.string()))
    p_idx = _positions(table["pretrain_seed"], pa.array(p_list, pa.string()))
    f_idx = _positions(table["finetune_seed"], pa.array(f_list, pa.int64()))
    e_idx = _positions(table["e"], pa.array(rounded, pa.float64()))
    keep = (i_idx >= 0) & (p_idx >= 0) & (f_idx >= 0) & (e_idx >= 0)
    index = (i_idx[keep], p_idx[keep], f_idx[keep], e_idx[keep])
    shape = (len(ids), len(p_list), len(f_list), len(checkpoints))
    correct = np.full(shape, -1, dtype=np.int8)
    p_correct = np.full(shape, np.nan, dtype=np.float32)
    pred = np.full(shape, -1, dtype=np.int32)
    correct[index] = table["correct"].to_numpy(zero_copy_only=False)[keep]
    p_correct[index] = table["p_correct"].to_numpy(zero_copy_only=False)[keep]
    pred[index] = table["pred"].to_numpy(zero_copy_only=False)[keep]

    last = np.full((len(p_list), len(f_list)), -1, dtype=np.int64)
    e_pos = {c: i for i, c in enumerate(rounded)}
    p_pos = {p: i for i, p in enumerate(p_list)}
    f_pos = {f: i for i, f in enumerate(f_list)}
    for run in runs.itertuples(index=False):
        cks = json.loads(run.checkpoints)
        if cks:
            last[p_pos[str(run.pretrain_seed)], f_pos[int(run.finetune_seed)]] = \
                e_pos[round(max(cks), 4)]
    return Cube(instance_ids=ids, splits=splits, pretrain_seeds=p_list, finetune_seeds=f_list,
                checkpoints=checkpoints, correct=correct, p_correct=p_correct, pred=pred,
                last=last, labels=labels)


def select(cube: Cube, pretrain_seeds: list[str], finetune_seeds: list[int], checkpoint: Any,
           rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """``(correct, p_correct, pred, checkpoints)`` for the given seeds (in that order; a seed
    the cube lacks gives missing values) and ``checkpoint`` (``'last'``, a value, a list or
    ``'all'``), as float64 / float64 / int64 with NaN / -1 where missing. ``rows`` selects
    instances (positions); 3-D for ``'last'`` or one value, 4-D otherwise."""
    p_pos = {p: i for i, p in enumerate(cube.pretrain_seeds)}
    f_pos = {f: i for i, f in enumerate(cube.finetune_seeds)}
    pi = np.array([p_pos.get(str(p), -1) for p in pretrain_seeds], dtype=np.int64)
    fi = np.array([f_pos.get(int(f), -1) for f in finetune_seeds], dtype=np.int64)
    n = len(cube.instance_ids) if rows is None else len(rows)
    run_ok = (pi[:, None] >= 0) & (fi[None, :] >= 0)  # (P', F')

    identity = (np.array_equal(pi, np.arange(len(cube.pretrain_seeds)))
                and np.array_equal(fi, np.arange(len(cube.finetune_seeds))))

    def gather(source: np.ndarray) -> np.ndarray:
        view = source if rows is None else source[rows]
        if identity:
            return view
        return view[:, np.maximum(pi, 0)][:, :, np.maximum(fi, 0)]

    correct, p_correct, pred = (gather(a) for a in (cube.correct, cube.p_correct, cube.pred))
    if checkpoint == "last":
        last = cube.last[np.ix_(np.maximum(pi, 0), np.maximum(fi, 0))]
        last = np.where(run_ok, last, -1)
        common = np.unique(last[last >= 0])
        if len(common) == 1 and (last >= 0).all():
            e = int(common[0])
            correct, p_correct, pred = correct[..., e], p_correct[..., e], pred[..., e]
        else:
            idx = np.maximum(last, 0)[None, :, :, None]
            correct = np.take_along_axis(correct, idx, axis=3)[..., 0]
            p_correct = np.take_along_axis(p_correct, idx, axis=3)[..., 0]
            pred = np.take_along_axis(pred, idx, axis=3)[..., 0]
            run_ok = run_ok & (last >= 0)
        used = [max(cube.checkpoints)] if cube.checkpoints else []
        mask = run_ok[None, :, :]
    else:
        wanted = (cube.checkpoints if checkpoint == "all" else
                  [float(c) for c in checkpoint] if isinstance(checkpoint, (list, tuple))
                  else [float(checkpoint)])
        e_pos = {round(c, 4): i for i, c in enumerate(cube.checkpoints)}
        ei = np.array([e_pos.get(round(c, 4), -1) for c in wanted], dtype=np.int64)
        correct, p_correct, pred = (a[..., np.maximum(ei, 0)] for a in (correct, p_correct, pred))
        mask = run_ok[None, :, :, None] & (ei >= 0)[None, None, None, :]
        used = list(wanted)
        if not isinstance(checkpoint, (list, tuple)) and checkpoint != "all":
            correct, p_correct, pred = correct[..., 0], p_correct[..., 0], pred[..., 0]
            mask = mask[..., 0]
    scored = np.asarray(correct) >= 0
    if mask.all() and scored.all():  # the common case: a complete grid, no NaN to place
        return (np.asarray(correct, dtype=np.float64), np.asarray(p_correct, dtype=np.float64),
                np.asarray(pred, dtype=np.int64), used)
    valid = np.broadcast_to(mask, (n, *mask.shape[1:])) & scored
    out_correct = np.where(valid, correct, np.nan).astype(np.float64, copy=False)
    out_p = np.where(valid, p_correct, np.nan).astype(np.float64, copy=False)
    out_pred = np.where(valid, pred, -1).astype(np.int64, copy=False)
    return out_correct, out_p, out_pred, used


def clear_memory() -> None:
    """Forget the cubes held in this process (tests, benchmarks of cold reads)."""
    with _memory_lock:
        _memory.clear()

