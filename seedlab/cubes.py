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

Beside them, derived from the same data and so keyed and removed with it, a cube holds
(``counts`` and ``layout`` written with it, ``probs`` when first needed; a cube saved before
these existed gains ``counts`` when first needed and, lacking ``layout``, leaves
``Store.predictions`` to its Parquet scan until the data changes or the cache is deleted):

    counts     (2, P, F, E) int64    instances scored and instances correct per run and
                                     checkpoint (``Store.run_accuracy`` without a scan)
    layout     (P, F)       int8     each run file's row order: 1 checkpoint-major (rows by
                                     checkpoint, then instance in cube order), 2 instance-
                                     major, 0 no rows or no run, -1 anything else (duplicate
                                     or unknown rows, nulls, another order)
    probs      (P, F, N, E, L) float32  class probabilities, NaN where missing (only where
                                     every row of every served run has L values, else an
                                     empty ``probs.none``)

``layout`` and ``probs`` let ``Store.predictions`` answer a few instances from the cube with
exactly the rows, values and order of its Parquet scan.

``key`` is a digest of the runs' ids and content hashes and of the task's instance file,
so any import, replacement or finished run gives a new key: a cube is never stale, only
unused (older keys of the same task and size are removed when a new one is written). A
cube is written to a temporary folder and renamed into place, so readers see a whole
cube or none; it is derived data and can be deleted at any time.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from seedlab import atomic
from seedlab.keys import digest, seed_sort_key
from seedlab.keys import positions as key_positions

CUBE_FORMAT = 1
ARRAYS = ("correct", "p_correct", "pred", "last", "labels")


@dataclass(frozen=True)
class CubeSource:
    """What the cubes of one task are built from, handed over by the store
    (``Store.cube_source``) so that this module never reaches into it.

    ``home``: the seedlab home (run files are relative to it; cubes live under its
    ``cache/``); ``instance_file``: the task's registered instance file (part of the key);
    ``cursor()``: a DuckDB cursor (the caller closes it); ``instance_keys()``: instance_id,
    split and label of the task's instances in table order; ``label_list()``: the task's
    class names (index = pred).
    """

    home: Path
    task: str
    instance_file: str | None
    cursor: Callable[[], duckdb.DuckDBPyConnection]
    instance_keys: Callable[[], pd.DataFrame]
    label_list: Callable[[], list[str]]


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
    folder: Path | None = None
    counts: np.ndarray | None = None
    layout: np.ndarray | None = None
    probs: np.ndarray | None = None
    no_probs: bool = False
    positions: dict[str, int] | None = None


_memory: OrderedDict[str, Cube] = OrderedDict()
_memory_lock = threading.Lock()
_MEMORY_SLOTS = 16


def cube_key(runs: pd.DataFrame, instance_file: str | None) -> str:
    """Digest of what a cube is built from: the runs (ids and content) and the instances."""
    parts = [f"format={CUBE_FORMAT}", f"instances={instance_file}"]
    parts += sorted(f"{r}:{h}" for r, h in zip(runs["run_id"].tolist(),
                                                  runs["content_hash"].tolist()))
    return digest(*parts)[:20]


def load_cube(source: CubeSource, size: str, runs: pd.DataFrame) -> Cube:
    """The cube of ``source.task`` and ``size`` over ``runs`` (every run of that task and
    size, as ``Store.runs`` returns them): from memory, from disk, or built and saved."""
    cube = cached_cube(source, size, runs)
    if cube is None:
        folder = _folder(source, size, runs)
        cube = _build(source, runs)
        _save(cube, folder)
        cube.folder = folder
        _remember(cube)
    return cube


def cached_cube(source: CubeSource, size: str, runs: pd.DataFrame) -> Cube | None:
    """The cube of ``source.task`` and ``size`` over ``runs`` if it is in memory or on
    disk, else ``None`` (nothing is built)."""
    folder = _folder(source, size, runs)
    with _memory_lock:
        if str(folder) in _memory:
            _memory.move_to_end(str(folder))
            return _memory[str(folder)]
    cube = _read(folder) if (folder / "meta.json").exists() else None
    if cube is not None:
        cube.folder = folder
        _remember(cube)
    return cube


def _folder(source: CubeSource, size: str, runs: pd.DataFrame) -> Path:
    key = cube_key(runs, source.instance_file)
    return source.home / "cache" / "cubes" / f"task={source.task}" / f"size={size}" / key


def _remember(cube: Cube) -> None:
    with _memory_lock:
        _memory[str(cube.folder)] = cube
        while len(_memory) > _MEMORY_SLOTS:
            _memory.popitem(last=False)


def _read(folder: Path) -> Cube | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
    except (OSError, ValueError):
        return None  # half-deleted by a sweep: rebuild
    extra = {}
    for name in ("counts", "layout"):  # optional: cubes saved before they existed lack them
        try:
            extra[name] = np.load(folder / f"{name}.npy")
        except (OSError, ValueError):
            pass
    return Cube(
        instance_ids=np.array(meta["instance_ids"], dtype=object),
        splits=np.array(meta["splits"], dtype=object),
        pretrain_seeds=meta["pretrain_seeds"], finetune_seeds=meta["finetune_seeds"],
        checkpoints=meta["checkpoints"], **arrays, **extra,
    )


def _save(cube: Cube, folder: Path) -> None:
    """Write ``cube`` to ``folder`` atomically; skip quietly where the home is read-only
    or another process saved the same cube first."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(folder) as tmp:
            tmp.mkdir()
            for name in ARRAYS + ("counts", "layout"):
                if getattr(cube, name) is not None:
                    np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(cube, name)))
            meta = {"instance_ids": cube.instance_ids.tolist(), "splits": cube.splits.tolist(),
                    "pretrain_seeds": cube.pretrain_seeds,
                    "finetune_seeds": cube.finetune_seeds, "checkpoints": cube.checkpoints}
            (tmp / "meta.json").write_text(json.dumps(meta))
    except OSError:
        return
    for old in folder.parent.iterdir():  # cubes of earlier data of this task and size
        if old != folder and not old.name.startswith(atomic.TEMPORARY_PREFIX):
            shutil.rmtree(old, ignore_errors=True)


def _grid(runs: pd.DataFrame) -> tuple[list[str], list[int], list[float], list[float]]:
    """(pretrain seeds, fine-tuning seeds, rounded checkpoints, checkpoints as stored) of a
    cube over ``runs``, in cube order."""
    p_list = sorted(runs["pretrain_seed"].astype(str).unique(), key=seed_sort_key)
    f_list = sorted(int(s) for s in runs["finetune_seed"].unique())
    # Checkpoints as stored (e.g. 10/3), matched on 4 decimals.
    by_rounded: dict[float, float] = {}
    for cs in runs["checkpoints"]:
        for c in json.loads(cs):
            by_rounded.setdefault(round(c, 4), c)
    rounded = sorted(by_rounded)
    return p_list, f_list, rounded, [by_rounded[c] for c in rounded]


def _scan(source: CubeSource, runs: pd.DataFrame, columns: str) -> pa.Table:
    """``pretrain_seed, finetune_seed, e`` (checkpoint on 4 decimals), ``instance_id``,
    ``row`` (the row's position in its file) and ``columns`` of every file of ``runs``."""
    files = [str(source.home / f) for f in runs["file"]]
    cur = source.cursor()
    try:
        return cur.sql(
            "SELECT pretrain_seed, finetune_seed, round(checkpoint, 4) AS e, instance_id,"
            f" file_row_number::INTEGER AS row{columns}"
            " FROM read_parquet(?, file_row_number = true)", params=[files]).to_arrow_table()
    finally:
        cur.close()


def _cells(table: pa.Table, ids: np.ndarray, p_list: list[str], f_list: list[int],
           rounded: list[float]) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray,
                                          np.ndarray, np.ndarray]:
    """Where each row of ``table`` goes: ``(keep, (i, p, f, e), run, i_all, e_all)``.
    ``keep`` (rows,) marks rows whose instance, seeds and checkpoint are in the cube, the
    index arrays are those rows' cube positions, ``run`` (rows,) is each row's run as
    ``p * F + f`` (-1 unknown) and ``i_all`` / ``e_all`` (rows,) every row's instance and
    checkpoint position (-1 unknown)."""
    i_idx = key_positions(table["instance_id"], pa.array(ids.tolist(), pa.string()))
    p_idx = key_positions(table["pretrain_seed"], pa.array(p_list, pa.string()))
    f_idx = key_positions(table["finetune_seed"], pa.array(f_list, pa.int64()))
    e_idx = key_positions(table["e"], pa.array(rounded, pa.float64()))
    run = np.where((p_idx >= 0) & (f_idx >= 0), p_idx * len(f_list) + f_idx, -1)
    keep = (i_idx >= 0) & (run >= 0) & (e_idx >= 0)
    return keep, (i_idx[keep], p_idx[keep], f_idx[keep], e_idx[keep]), run, i_idx, e_idx


def _layout(table: pa.Table, keep: np.ndarray, run: np.ndarray, i_idx: np.ndarray,
            e_idx: np.ndarray, shape: tuple[int, int, int, int], runs: pd.DataFrame,
            p_list: list[str], f_list: list[int], checkpoints: list[float]) -> np.ndarray:
    """Each run's row order (see the module docstring), ``(P, F)`` int8, from the scanned
    rows (``(rows,)`` arrays from ``_cells``) in one vectorised pass: a run is checkpoint-
    major when its rows, in file order, have strictly increasing ``(e, i)``, instance-major
    when ``(i, e)`` increases; strictly, so a duplicate cell is never either."""
    n_i, n_p, n_f, n_e = shape
    runs_n = n_p * n_f
    layout = np.zeros(runs_n, dtype=np.int8)
    if table["pred"].null_count or table["correct"].null_count or (run < 0).any():
        layout[:] = -1   # a null the cube cannot hold, or rows of no known run
        return layout.reshape(n_p, n_f)

    def per_run(flags: np.ndarray, rows_run: np.ndarray) -> np.ndarray:
        return np.bincount(rows_run[flags], minlength=runs_n) > 0

    small = np.int32 if max(n_i, n_e, runs_n) * max(n_e, 1) < 2**31 else np.int64
    run, i_idx, e_idx = (a.astype(small, copy=False) for a in (run, i_idx, e_idx))

    count = np.bincount(run, minlength=runs_n)
    bad = per_run(~keep, run)                        # rows the cube drops
    later = run[1:]
    same = later == run[:-1]                         # (rows - 1,) next row in the same run
    first = np.concatenate([[True], ~same])          # (rows,) a run's stretch begins
    row = table["row"].to_numpy(zero_copy_only=False)
    bad |= np.bincount(run[first], minlength=runs_n) > 1   # a run in two stretches
    bad |= per_run(row[first] != 0, run[first])            # not from the file's start
    bad |= per_run(same & (row[1:] != row[:-1] + 1), later)  # not in file order
    key = e_idx * n_i + i_idx
    not_1 = per_run(same & (key[1:] <= key[:-1]), later)
    key = i_idx * n_e + e_idx
    not_2 = per_run(same & (key[1:] <= key[:-1]), later)
    del key
    layout[:] = np.where(not_1, np.where(not_2, -1, 2), 1)
    layout[bad] = -1
    layout[count == 0] = 0
    # A run's checkpoints must be stored exactly as the cube stores them.
    stored = set(checkpoints)
    f_pos = {f: i for i, f in enumerate(f_list)}
    p_pos = {p: i for i, p in enumerate(p_list)}
    for r in runs.itertuples(index=False):
        if not set(json.loads(r.checkpoints)) <= stored:
            layout[p_pos[str(r.pretrain_seed)] * n_f + f_pos[int(r.finetune_seed)]] = -1
    return layout.reshape(n_p, n_f)


def _counts(correct: np.ndarray) -> np.ndarray:
    """``(2, P, F, E)`` int64: instances scored and instances correct, from ``correct``
    ``(N, P, F, E)`` (1 / 0 / -1 missing)."""
    scored = (correct >= 0).sum(axis=0, dtype=np.int64)
    hits = (correct == 1).sum(axis=0, dtype=np.int64)
    return np.stack([scored, hits])


def _build(source: CubeSource, runs: pd.DataFrame) -> Cube:
    """Scan every run file of the task and size once and scatter it into dense arrays."""
    p_list, f_list, rounded, checkpoints = _grid(runs)
    table = _scan(source, runs, ", correct, p_correct, pred")

    keys = source.instance_keys()
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
    lookup = {name: i for i, name in enumerate(source.label_list())}
    labels = np.array([lookup.get(g, -1) for g in gold], dtype=np.int64)

    keep, index, run, i_all, e_all = _cells(table, ids, p_list, f_list, rounded)
    shape = (len(ids), len(p_list), len(f_list), len(checkpoints))
    correct = np.full(shape, -1, dtype=np.int8)
    p_correct = np.full(shape, np.nan, dtype=np.float32)
    pred = np.full(shape, -1, dtype=np.int32)
    correct[index] = table["correct"].to_numpy(zero_copy_only=False)[keep]
    p_correct[index] = table["p_correct"].to_numpy(zero_copy_only=False)[keep]
    pred[index] = table["pred"].to_numpy(zero_copy_only=False)[keep]
    del index  # (4, rows) positions: gone before the layout's temporaries
    layout = _layout(table, keep, run, i_all, e_all, shape, runs, p_list, f_list,
                     checkpoints)
    del table, keep, run, i_all, e_all

    last = np.full((len(p_list), len(f_list)), -1, dtype=np.int64)
    e_pos = {c: i for i, c in enumerate(rounded)}
    p_pos = {p: i for i, p in enumerate(p_list)}
    f_pos = {f: i for i, f in enumerate(f_list)}
    for r in runs.itertuples(index=False):
        cks = json.loads(r.checkpoints)
        if cks:
            last[p_pos[str(r.pretrain_seed)], f_pos[int(r.finetune_seed)]] = \
                e_pos[round(max(cks), 4)]
    return Cube(instance_ids=ids, splits=splits, pretrain_seeds=p_list, finetune_seeds=f_list,
                checkpoints=checkpoints, correct=correct, p_correct=p_correct, pred=pred,
                last=last, labels=labels, counts=_counts(correct), layout=layout)


# ---------------------------------------------------------------------------------------
# Derived arrays kept beside a cube, computed when first asked for.


def _save_extra(cube: Cube, name: str, array: np.ndarray | None) -> None:
    """Write ``<name>.npy`` (or an empty ``<name>.none`` marker for ``None``) into the
    cube's folder atomically; skip quietly where that fails (read-only home, cube removed
    by a newer one)."""
    if cube.folder is None:
        return
    target = cube.folder / (f"{name}.npy" if array is not None else f"{name}.none")
    with contextlib.suppress(OSError), atomic.replacing(target) as tmp, open(tmp, "wb") as fh:
        if array is not None:
            np.save(fh, np.ascontiguousarray(array))


def run_counts(cube: Cube) -> np.ndarray:
    """``(2, P, F, E)`` int64: per run and checkpoint, the instances scored and the
    instances correct (computed once per cube, then read)."""
    if cube.counts is None:
        cube.counts = _counts(np.asarray(cube.correct))
        _save_extra(cube, "counts", cube.counts)
    return cube.counts


def run_probs(source: CubeSource, cube: Cube, runs: pd.DataFrame) -> np.ndarray | None:
    """``(P, F, N, E, L)`` float32 class probabilities (each run's block contiguous; NaN
    where missing and for runs whose layout is -1), or ``None`` where the cube cannot hold
    them exactly (a null, lists of more than one length, no layout). ``runs``: every run of the
    cube's task and size. Built once from the runs' ``probs`` columns, then memory-mapped."""
    if cube.probs is not None or cube.no_probs:
        return cube.probs
    if cube.folder is not None:
        if (cube.folder / "probs.none").exists():
            cube.no_probs = True
            return None
        try:
            cube.probs = np.load(cube.folder / "probs.npy", mmap_mode="r")
            return cube.probs
        except (OSError, ValueError):
            pass
    try:
        cube.probs = _build_probs(source, cube, runs)
    except _Lost:
        return None
    cube.no_probs = cube.probs is None
    if cube.probs is None:
        _save_extra(cube, "probs", None)
    return cube.probs


def probs_block(probs: np.ndarray, pi: int, fi: int) -> np.ndarray:
    """``probs[pi, fi]`` (one run's ``(N, E, L)`` block of ``run_probs``) as an array in
    memory. From ``probs.npy`` it is read with one file read, not through the memory map:
    reading every run's block through the map would keep the whole file (hundreds of MB at
    QQP scale) in this process's resident memory."""
    # A map of the whole file (its base is the mmap itself), not a view into one.
    if isinstance(probs, np.memmap) and isinstance(probs.base, mmap.mmap) \
            and probs.filename and probs.flags.c_contiguous:
        shape = probs.shape[2:]
        count = int(np.prod(shape))
        start = probs.offset + (pi * probs.shape[1] + fi) * count * probs.itemsize
        with open(probs.filename, "rb") as handle:
            handle.seek(start)
            block = np.fromfile(handle, dtype=probs.dtype, count=count)
        if block.size == count:
            return block.reshape(shape)
    return np.array(probs[pi, fi])


def _build_probs(source: CubeSource, cube: Cube, runs: pd.DataFrame) -> np.ndarray | None:
    """Read the ``probs`` column of every run the cube serves (layout 1 or 2, in one scan)
    and place each row by its run's layout; write ``probs.npy`` as it is filled."""
    layout = cube.layout
    if layout is None:
        return None
    p_pos = {p: i for i, p in enumerate(cube.pretrain_seeds)}
    f_pos = {f: i for i, f in enumerate(cube.finetune_seeds)}
    served = [(p_pos[str(r.pretrain_seed)], f_pos[int(r.finetune_seed)], r)
              for r in runs.itertuples(index=False)]
    served = [(pi, fi, r) for pi, fi, r in served if layout[pi, fi] > 0]
    sizes = [int(r.n_predictions) for _, _, r in served]
    column = pa.chunked_array([], pa.list_(pa.float32()))
    if served:
        cur = source.cursor()
        try:
            table = cur.sql("SELECT file_row_number::INTEGER AS row, probs"
                            " FROM read_parquet(?, file_row_number = true)",
                            params=[[str(source.home / r.file) for _, _, r in served]]
                            ).to_arrow_table()
        finally:
            cur.close()
        column = table["probs"]
        # every file whole and in order, one after the other
        in_order = (len(column) == sum(sizes) and np.array_equal(
            table["row"].to_numpy(zero_copy_only=False),
            np.concatenate([np.arange(k, dtype=np.int32) for k in sizes])))
        del table
        if not in_order:
            return None
    if column.null_count:
        return None
    pieces, widths = [], set()
    for chunk in column.chunks:
        offsets = chunk.offsets.to_numpy()
        if len(offsets) > 1:
            steps = np.diff(offsets)
            widths.update({int(steps.min()), int(steps.max())})
        pieces.append(chunk.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]])
    if len(widths) > 1:
        return None
    width = widths.pop() if widths else len(source.label_list())
    values = (np.concatenate(pieces) if pieces else np.zeros(0, np.float32)).astype(
        np.float32, copy=False).reshape(-1, width)
    del column, pieces

    n, n_p, n_f, n_e = cube.correct.shape
    out, tmp = _new_array(cube, (n_p, n_f, n, n_e, width))
    # (P, F, N, E): one pass over the cube rather than a strided one per run
    scored = np.ascontiguousarray((np.asarray(cube.correct) >= 0).transpose(1, 2, 0, 3))
    start = 0
    done = np.zeros((n_p, n_f), dtype=bool)
    for pi, fi, r in served:
        rows = values[start:start + int(r.n_predictions)]
        start += len(rows)
        present = scored[pi, fi]                                     # (N, E)
        if len(rows) != int(present.sum()):
            del out
            _drop(tmp)
            return None
        if layout[pi, fi] == 1:   # rows by checkpoint, then instance
            if len(rows) == present.size:
                out[pi, fi] = rows.reshape(n_e, n, width).transpose(1, 0, 2)
            else:
                by_e = np.full((n_e, n, width), np.nan, dtype=np.float32)
                by_e[present.T] = rows
                out[pi, fi] = by_e.transpose(1, 0, 2)
        else:
            block = np.full((n, n_e, width), np.nan, dtype=np.float32)
            block[present] = rows
            out[pi, fi] = block
        done[pi, fi] = True
    out[~done] = np.nan
    if tmp is None:
        return out
    out.flush()
    del out
    try:
        os.replace(tmp, cube.folder / "probs.npy")
        return np.load(cube.folder / "probs.npy", mmap_mode="r")
    except OSError:  # e.g. the cube was removed meanwhile: keep this process's copy
        try:
            return np.array(np.load(tmp, mmap_mode="r"))
        except (OSError, ValueError) as exc:
            raise _Lost from exc
        finally:
            _drop(tmp)


class _Lost(Exception):
    """The probabilities were built but their file vanished (a newer cube replaced this
    one): nothing to say about whether the cube can hold them."""


def _new_array(cube: Cube, shape: tuple[int, ...]) -> tuple[np.ndarray, Path | None]:
    """A float32 array of ``shape`` written straight to a temporary ``.npy`` in the cube's
    folder (so a large one never sits on the heap), or in memory where that fails."""
    if cube.folder is not None:
        tmp = atomic.temporary_path(cube.folder / "probs.npy")
        try:
            return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                             shape=shape), tmp
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
    return np.empty(shape, dtype=np.float32), None


def _drop(tmp: Path | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            tmp.unlink()


def positions(cube: Cube) -> dict[str, int]:
    """Instance id -> position along the cube's first axis (built once per cube)."""
    if cube.positions is None:
        cube.positions = {str(i): n for n, i in enumerate(cube.instance_ids)}
    return cube.positions


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

