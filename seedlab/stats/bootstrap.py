"""The Multi-Bootstrap (Sellam et al. 2021), extended to nested fine-tuning seeds.

A replicate draws pretraining seeds (shared by both arms in the paired design), optionally
fine-tuning runs within each drawn seed, and N examples shared by both arms; it scores
each drawn run on the drawn examples, averages the runs of each drawn seed, then the
drawn seeds. ``multibootstrap`` draws the seeds of a block of ``SEED_BLOCK`` replicates,
then scores them a chunk at a time for metrics that are means over examples (multinomial
example counts times per-run scores, one matrix product per chunk), so its memory does not
grow with ``nboot``. The straightforward per-replicate, per-run loop lives in the tests
(``tests/stats_oracles.py``) as the reference: given the same seed both consume the random
stream identically and return equal results.

A missing prediction or label (-1 for class metrics, NaN) raises ValueError naming the
run, unless ``missing="omit"`` leaves the missing cells out of that run's score.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import make_rng, percentile_interval

MEAN_METRICS = ("accuracy", "mean")
# Replicates whose seeds are drawn together: bounds the (block, R) run weights in memory.
SEED_BLOCK = 1024
EXACT_METRICS = ("f1", "mcc", "pearson")
Metric = str | Callable[[np.ndarray, np.ndarray], float]


# ---------------------------------------------------------------------------------------
# Inputs


CLASS_METRICS = ("accuracy", "f1", "mcc")  # predictions are class ids: -1 is missing


@dataclass
class _Design:
    values: np.ndarray  # (R, N): per-example scores for mean metrics, else the predictions
    labels: np.ndarray  # (N,)
    preds: np.ndarray  # (R, N) as given (for exact metrics)
    arms: dict[str, list[np.ndarray]]  # arm -> row indices of each of its seeds, in order
    seed_names: dict[str, list[Any]]
    paired: bool
    warnings: list[str]
    valid: np.ndarray | None = None  # (R, N) bool where some prediction is missing (omit)
    missing: dict | None = None  # what was left out, for the result

    @property
    def n_examples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def used(self) -> np.ndarray:
        """Row indices of the runs either arm uses, ascending."""
        return np.unique(np.concatenate([g for name in ("base", "expt")
                                         for g in self.arms[name]]))


def _missing_cells(p: np.ndarray, y: np.ndarray, metric: Metric
                   ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(R, N)`` missing predictions and ``(N,)`` missing labels (None where nothing is
    missing): NaN, and for class metrics a negative class id (the store's -1)."""
    def missing(arr: np.ndarray) -> np.ndarray | None:
        if arr.size == 0 or arr.dtype.kind not in "if":
            return None
        low = arr.min()  # one reduction: NaN propagates, and -1 is the minimum
        class_ids = metric in CLASS_METRICS
        if not (np.isnan(low) or (class_ids and low < 0)):
            return None
        out = np.isnan(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
        if class_ids:
            out |= arr < 0
        return out

    return missing(p), (missing(y) if metric != "mean" else None)


def _handle_missing(p: np.ndarray, y: np.ndarray, seed_arr: np.ndarray, arm: np.ndarray,
                    metric: Metric, mode: str
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """Raise on missing cells (``mode="raise"``), or drop the examples without a label
    and return the mask of valid predictions (``"omit"``). Returns preds, labels, the
    ``(R, N)`` valid mask (None when nothing is missing) and the result's account."""
    bad_p, bad_y = _missing_cells(p, y, metric)
    account = {"mode": mode, "cells": 0, "runs": {}, "examples_without_label": 0}
    if bad_p is None and bad_y is None:
        return p, y, None, account
    bad_p = np.zeros(p.shape, bool) if bad_p is None else bad_p
    bad_y = np.zeros(y.shape, bool) if bad_y is None else bad_y
    if mode == "raise":
        if bad_y.any():
            where = np.flatnonzero(bad_y)
            raise ValueError(
                f"multibootstrap: labels has {where.size} missing labels (-1 or NaN), first"
                f" at example {int(where[0])}; drop those examples, or pass missing='omit'"
                " to leave them out")
        run = int(np.flatnonzero(bad_p.any(axis=1))[0])
        where = np.flatnonzero(bad_p[run])
        arm_name = "treatment" if arm[run] else "baseline"
        raise ValueError(
            f"multibootstrap: run {run} (pretraining seed {seed_arr.tolist()[run]!r},"
            f" {arm_name} arm)"
            f" has {where.size} missing predictions (-1 or NaN), first at example"
            f" {int(where[0])}; drop incomplete runs, or pass missing='omit' to leave the"
            " missing cells out of that run's score")
    keep = ~bad_y
    if not keep.any():
        raise ValueError("multibootstrap: every label is missing")
    p, bad_p = p[:, keep], bad_p[:, keep]
    y = y[keep]
    empty = np.flatnonzero(bad_p.all(axis=1))
    if empty.size:
        raise ValueError(f"multibootstrap: run {int(empty[0])} has no prediction on any"
                         " example with a label; drop it")
    per_run = bad_p.sum(axis=1)
    if per_run.any():
        # A placeholder class the weights never count (exact metrics index by class).
        p = np.where(bad_p, np.zeros((), p.dtype), p)
    account.update(cells=int(per_run.sum()), examples_without_label=int(bad_y.sum()),
                   runs={int(r): int(per_run[r]) for r in np.flatnonzero(per_run)})
    return p, y, (~bad_p if bad_p.any() else None), account


def _design(preds: np.ndarray, labels: np.ndarray, seeds: Sequence[Any], treatment: Any,
            metric: Metric, paired: bool, finetune_seeds: Sequence[Any] | None,
            missing: str = "raise") -> _Design:
    p = np.asarray(preds)
    y = np.asarray(labels)
    seed_arr = np.asarray(seeds)
    arm = np.asarray(treatment)
    if p.ndim != 2:
        raise ValueError(f"multibootstrap: preds must be (R, N), got shape {p.shape}")
    n_runs, n = p.shape
    if n == 0:
        raise ValueError("multibootstrap: preds has no examples")
    if y.shape != (n,):
        raise ValueError(f"multibootstrap: labels must have shape ({n},), got {y.shape}")
    if seed_arr.shape != (n_runs,):
        raise ValueError(f"multibootstrap: seeds must have shape ({n_runs},), got"
                         f" {seed_arr.shape}")
    if arm.shape != (n_runs,) or arm.dtype.kind not in "bui":
        raise ValueError(f"multibootstrap: treatment must be a ({n_runs},) bool array")
    arm = arm.astype(bool)
    if arm.all() or not arm.any():
        raise ValueError("multibootstrap: treatment must mark at least one run of each arm"
                         " (False = baseline, True = treatment)")
    if missing not in ("raise", "omit"):
        raise ValueError(f"multibootstrap: missing must be 'raise' or 'omit', got {missing!r}")
    p, y, valid, account = _handle_missing(p, y, seed_arr, arm, metric, missing)
    if finetune_seeds is not None:
        fine = np.asarray(finetune_seeds)
        if fine.shape != (n_runs,):
            raise ValueError(f"multibootstrap: finetune_seeds must have shape ({n_runs},)")
        keys = list(zip(arm.tolist(), seed_arr.tolist(), fine.tolist()))
        if len(set(keys)) != len(keys):
            raise ValueError("multibootstrap: a (arm, pretraining seed, fine-tuning seed)"
                             " appears twice")

    if metric == "accuracy":
        values = (p == y[None, :]).astype(np.float32)
    elif metric == "mean":
        values = p.astype(np.float64)
    else:
        values = p
    if valid is not None and metric in MEAN_METRICS:
        values = np.where(valid, values, 0).astype(values.dtype)  # left out of the sums

    order: dict[str, list[Any]] = {}
    for name, mask in (("base", ~arm), ("expt", arm)):
        seen: dict[Any, None] = {}
        for s in seed_arr[mask].tolist():
            seen.setdefault(s, None)
        order[name] = list(seen)
    notes = []
    if paired:
        expt_set = set(order["expt"])
        base_set = set(order["base"])
        shared = [s for s in order["base"] if s in expt_set]
        only = [s for s in order["base"] if s not in expt_set] + [
            s for s in order["expt"] if s not in base_set]
        if not shared:
            raise ValueError("multibootstrap: paired design but the arms share no"
                             " pretraining seed; use paired=False")
        if only:
            msg = (f"paired design: dropped pretraining seeds that only one arm has:"
                   f" {only}")
            warnings.warn(msg, stacklevel=3)
            notes.append(msg)
        order = {"base": shared, "expt": shared}
    for name, label in (("base", "baseline"), ("expt", "treatment")):
        if len(order[name]) == 1:
            notes.append(
                f"one pretraining seed in the {label} arm ({order[name][0]!r}): the interval"
                " measures example (and fine-tuning) noise only, not the variance across"
                " pretraining seeds, and is far too narrow (coverage about 0.4-0.5 of the"
                " nominal 0.95 in simulation); use more seeds")
    if account["cells"] or account["examples_without_label"]:
        notes.append(
            f"missing='omit': left out {account['cells']} missing predictions of"
            f" {len(account['runs'])} runs from those runs' scores and"
            f" {account['examples_without_label']} examples without a label")
    arms = {}
    for name, mask in (("base", ~arm), ("expt", arm)):
        arms[name] = [np.flatnonzero(mask & (seed_arr == s)) for s in order[name]]
    return _Design(values, y, p, arms, order, paired, notes, valid, account)


# ---------------------------------------------------------------------------------------
# Draws


def _draw_seeds(gen: np.random.Generator, design: _Design, nboot: int, sample_seeds: bool,
                sample_finetune: bool) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Per arm: drawn seed slots ``(nboot, S)`` (indices into the arm's seeds) and, for the
    nested design, drawn run positions ``(nboot, S, Fmax)`` within each slot's seed."""
    slots: dict[str, np.ndarray] = {}
    if not sample_seeds:
        for name in ("base", "expt"):
            n_seeds = len(design.arms[name])
            slots[name] = np.broadcast_to(np.arange(n_seeds), (nboot, n_seeds))
    elif design.paired:
        n_seeds = len(design.arms["base"])
        shared = gen.integers(0, n_seeds, size=(nboot, n_seeds))
        slots = {"base": shared, "expt": shared}
    else:
        for name in ("base", "expt"):
            n_seeds = len(design.arms[name])
            slots[name] = gen.integers(0, n_seeds, size=(nboot, n_seeds))
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name in ("base", "expt"):
        runs = None
        if sample_finetune:
            sizes = np.array([len(g) for g in design.arms[name]])
            f_max = int(sizes.max())
            highs = np.broadcast_to(sizes[slots[name]][:, :, None],
                                    (nboot, slots[name].shape[1], f_max))
            runs = gen.integers(0, highs)
        out[name] = (slots[name], runs)
    return out


def _run_weights(design: _Design, name: str, slots: np.ndarray, runs: np.ndarray | None,
                 n_runs: int) -> np.ndarray:
    """``(nboot, R)`` weight of each run in the arm's score of each replicate."""
    groups = design.arms[name]
    nboot, n_slots = slots.shape
    sizes = np.array([len(g) for g in groups])
    f_max = int(sizes.max())
    table = np.zeros((len(groups), f_max), dtype=np.int64)
    for k, g in enumerate(groups):
        table[k, :len(g)] = g
    slot_sizes = sizes[slots]  # (nboot, S)
    position = np.broadcast_to(np.arange(f_max), (nboot, n_slots, f_max))
    valid = position < slot_sizes[:, :, None]
    picked = position if runs is None else runs
    rows = table[slots[:, :, None], np.where(valid, picked, 0)]
    weight = np.where(valid, 1.0 / (n_slots * slot_sizes[:, :, None]), 0.0)
    out = np.zeros((nboot, n_runs))
    b_index = np.broadcast_to(np.arange(nboot)[:, None, None], rows.shape)
    np.add.at(out, (b_index[valid], rows[valid]), weight[valid])
    return out


def _example_counts(gen: np.random.Generator, size: int, n: int) -> np.ndarray:
    """``(size, n)`` multinomial counts: n example indices drawn per replicate."""
    idx = gen.integers(0, n, size=(size, n), dtype=np.int32)
    if size * n < 2**31:
        # One bincount over the whole block: offset each row in place (no int64 copy).
        idx += (np.arange(size, dtype=np.int32) * np.int32(n))[:, None]
        return np.bincount(idx.ravel(), minlength=size * n).reshape(size, n)
    return np.stack([np.bincount(row, minlength=n) for row in idx])


# ---------------------------------------------------------------------------------------
# Metrics on weighted examples


def _confusion(labels: np.ndarray, preds: np.ndarray, weights: np.ndarray, k: int
               ) -> np.ndarray:
    """``(R, k, k)`` weighted confusion matrices [true, predicted] for ``preds (R, N)``."""
    n_runs = preds.shape[0]
    cell = (np.arange(n_runs)[:, None] * k * k + labels[None, :] * k + preds).ravel()
    w = np.broadcast_to(weights, preds.shape).ravel()
    return np.bincount(cell, weights=w, minlength=n_runs * k * k).reshape(n_runs, k, k)


def metric_values(metric: Metric, labels: np.ndarray, preds: np.ndarray,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """The metric of each run on (weighted) examples.

    Args:
      metric: ``"accuracy"``, ``"mean"`` (mean of per-example scores, e.g. a loss),
        ``"f1"`` (binary F1 of class 1; macro F1 over the gold classes with more than two
        classes; 0 where undefined), ``"mcc"`` (Matthews correlation, multiclass form; 0
        where undefined), ``"pearson"`` (of preds and labels; NaN where undefined), or a
        callable ``metric(labels (n,), preds (n,)) -> float`` (examples repeated by
        weight).
      labels: ``(N,)``; preds: ``(R, N)``; weights: ``(N,)`` example counts (None = 1),
        or ``(R, N)`` per run (e.g. 0 where a run's prediction is missing).

    Returns:
      ``(R,)`` float64.
    """
    p = np.asarray(preds)
    y = np.asarray(labels)
    w = np.ones(y.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        return np.array([metric_values(metric, y, p[r:r + 1], w[r])[0]
                         for r in range(p.shape[0])])
    total = w.sum()
    if callable(metric):
        idx = np.repeat(np.arange(y.shape[0]), w.astype(np.int64))
        return np.array([float(metric(y[idx], row[idx])) for row in p])
    if metric == "accuracy":
        return (p == y[None, :]) @ w / total
    if metric == "mean":
        return p.astype(np.float64) @ w / total
    if metric == "pearson":
        x = p.astype(np.float64)
        z = y.astype(np.float64)
        mx = x @ w / total
        mz = z @ w / total
        dx = x - mx[:, None]
        dz = z - mz
        cov = dx * dz @ w
        with np.errstate(divide="ignore", invalid="ignore"):
            return cov / np.sqrt((dx * dx @ w) * (dz * dz @ w))
    if metric in ("f1", "mcc"):
        y_int = y.astype(np.int64)
        p_int = p.astype(np.int64)
        k = int(max(y_int.max(), p_int.max())) + 1
        conf = _confusion(y_int, p_int, w, k)
        if metric == "mcc":
            t = conf.sum(axis=2)
            q = conf.sum(axis=1)
            c = np.trace(conf, axis1=1, axis2=2)
            s = conf.sum(axis=(1, 2))
            num = c * s - (t * q).sum(axis=1)
            den = np.sqrt((s * s - (q * q).sum(axis=1)) * (s * s - (t * t).sum(axis=1)))
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        tp = np.diagonal(conf, axis1=1, axis2=2)
        fp = conf.sum(axis=1) - tp
        fn = conf.sum(axis=2) - tp
        den = 2 * tp + fp + fn
        f1 = np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)  # (R, k)
        if k <= 2:
            return f1[:, 1] if k == 2 else np.zeros(p.shape[0])
        gold_classes = np.unique(y_int)
        return f1[:, gold_classes].mean(axis=1)
    raise ValueError(f"multibootstrap: unknown metric {metric!r}; expected one of"
                     f" {MEAN_METRICS + EXACT_METRICS} or a callable")


# ---------------------------------------------------------------------------------------
# Reporting


def _report(base: np.ndarray, expt: np.ndarray, *, confidence: float, expected_sign: int,
            thresholds: Sequence[float] | None, seed: int | None, design: _Design,
            estimate: tuple[float, float], options: dict) -> dict:
    nboot = base.shape[0]
    delta = expt - base
    out: dict[str, Any] = {}
    for name, draws in (("base", base), ("expt", expt), ("delta", delta)):
        low, high = percentile_interval(draws, confidence)
        out[name] = {"mean": float(draws.mean()), "low": float(low), "high": float(high)}
    tail = (delta <= 0) if expected_sign >= 0 else (delta >= 0)
    out["delta"]["p"] = float(max(tail.mean(), 1.0 / nboot))
    if thresholds is not None:
        # As the original: P(delta >= t), or P(delta <= -t) for an expected negative
        # effect; a replicate exactly at the threshold counts.
        out["thresholds"] = {
            float(t): float((delta >= t).mean() if expected_sign >= 0 else
                            (delta <= -t).mean()) for t in thresholds}
    out["estimate"] = {"base": estimate[0], "expt": estimate[1],
                       "delta": estimate[1] - estimate[0]}
    out["draws"] = {"base": base, "expt": expt, "delta": delta}
    out["seed"] = seed
    out["nboot"] = int(nboot)
    out["confidence"] = confidence
    out["n_examples"] = design.n_examples
    out["seeds"] = {name: list(design.seed_names[name]) for name in ("base", "expt")}
    out["runs"] = {name: int(sum(len(g) for g in design.arms[name]))
                   for name in ("base", "expt")}
    out["warnings"] = list(design.warnings)
    out["missing"] = design.missing
    out.update(options)
    return out


def _check_options(nboot: int, expected_sign: int, metric: Metric, chunk: int = 1) -> None:
    if int(nboot) < 1:
        raise ValueError(f"multibootstrap: nboot must be >= 1, got {nboot}")
    if int(chunk) < 1:
        raise ValueError(f"multibootstrap: chunk must be >= 1, got {chunk}")
    if expected_sign not in (1, -1):
        raise ValueError(f"multibootstrap: expected_sign must be +1 or -1, got {expected_sign}")
    if not callable(metric) and metric not in MEAN_METRICS + EXACT_METRICS:
        raise ValueError(f"multibootstrap: unknown metric {metric!r}; expected one of"
                         f" {MEAN_METRICS + EXACT_METRICS} or a callable")


def _point_estimate(design: _Design, metric: Metric) -> tuple[float, float]:
    if metric in MEAN_METRICS:
        scores = design.values.sum(axis=1, dtype=np.float64) / (
            design.n_examples if design.valid is None else design.valid.sum(axis=1))
    else:
        scores = metric_values(metric, design.labels, design.preds,
                               None if design.valid is None else design.valid)
    out = []
    for name in ("base", "expt"):
        out.append(float(np.mean([scores[g].mean() for g in design.arms[name]])))
    return out[0], out[1]


# ---------------------------------------------------------------------------------------
# Public entry points


def multibootstrap(preds: np.ndarray, labels: np.ndarray, seeds: Sequence[Any],
                   treatment: Any, *, paired: bool = True, nboot: int = 1000,
                   sample_seeds: bool = True, sample_examples: bool = True,
                   sample_finetune: bool = False, metric: Metric = "accuracy",
                   confidence: float = 0.95, rng: int | np.random.Generator | None = None,
                   finetune_seeds: Sequence[Any] | None = None,
                   thresholds: Sequence[float] | None = None, expected_sign: int = 1,
                   chunk: int = 64, missing: str = "raise") -> dict:
    """Multi-Bootstrap comparison of a baseline and a treatment arm (statistics.md 6).

    Args:
      preds: ``(R, N)`` per-run predicted class indices (``accuracy``, ``f1``, ``mcc``),
        per-example scores (``mean``: e.g. a loss or correctness) or values (``pearson``).
      labels: ``(N,)`` gold labels.
      seeds: ``(R,)`` pretraining seed of each run.
      treatment: ``(R,)`` bool, False = baseline arm, True = treatment arm.
      paired: one seed draw shared by both arms, from the seeds both have (others are
        dropped with a warning); else each arm draws from its own seeds.
      nboot: number of replicates.
      sample_seeds / sample_examples: resample pretraining seeds / examples (else use all).
      sample_finetune: nested design, also resample runs within each drawn seed. It
        counts the fine-tuning variance once more than the truth has it: conservative
        from 5 pretraining seeds on (95% intervals covered 0.95-0.98 in simulation), still
        too narrow with 3 (0.89); docs/stats.md has the figures.
      metric: ``"accuracy"`` or ``"mean"`` (vectorised), ``"f1"``, ``"mcc"``,
        ``"pearson"`` or a callable (exact, one replicate at a time).
      confidence: level of the percentile intervals.
      rng: int seed, Generator, or None (a fresh seed, returned under ``"seed"``).
      finetune_seeds: ``(R,)`` fine-tuning seed of each run (checked for duplicates).
      thresholds: report ``P(delta >= t)`` for each t, or ``P(delta <= -t)`` with
        ``expected_sign=-1`` (a replicate exactly at the threshold counts, as in the
        original).
      expected_sign: +1: ``p = P(delta <= 0)``; -1: ``p = P(delta >= 0)``.
      chunk: replicates whose examples are drawn and scored together. Peak memory beyond
        the inputs is about ``16 x chunk x N`` bytes (the drawn example indices, int32,
        and their counts, int64 then float32; 64 x 80,000 examples: 82 MB), plus
        ``4 x R x N`` for the scored copy of ``preds``, plus ``16 x 1024 x R`` for the run
        weights of a block of 1,024 replicates whose seeds are drawn together (4 MB at
        R = 250), plus ``32 x nboot`` for the returned draws: nothing else grows with
        ``nboot``.
      missing: ``"raise"`` (default): a missing prediction (a negative class id, the
        store's -1, or NaN) or label raises ValueError naming the run; ``"omit"``: each
        run is scored on the examples it has (its missing cells get weight 0), examples
        without a label are dropped, and the result's ``"missing"`` and ``"warnings"`` say
        how many.

    Returns:
      ``{"base": {mean, low, high}, "expt": {mean, low, high}, "delta": {mean, low, high,
      p}}`` (means and percentile intervals over replicates, delta = expt - base, p never
      below 1/nboot), plus ``"thresholds"`` ({t: probability}, when given),
      ``"estimate"`` (full-data values), ``"draws"`` ((nboot,) arrays per arm and delta),
      ``"seed"``, ``"nboot"``, ``"confidence"``, ``"n_examples"``, ``"seeds"`` (per arm),
      ``"runs"``, ``"warnings"`` (seeds dropped by the paired design, one pretraining
      seed only, cells left out), ``"missing"`` (``{"mode", "cells", "runs" {row:
      count}, "examples_without_label"}``), and the sampling options.
    """
    _check_options(nboot, expected_sign, metric, chunk)
    design = _design(preds, labels, seeds, treatment, metric, paired, finetune_seeds, missing)
    gen, seed = make_rng(rng)
    nboot, chunk = int(nboot), int(chunk)
    n_runs, n = design.values.shape
    used = design.used
    base, expt = np.empty(nboot), np.empty(nboot)
    if metric in MEAN_METRICS:
        values = design.values[used]
        valid = None if design.valid is None else design.valid[used]
        # Counts are small integers and 0/1 scores sum exactly in float32 up to 2^24.
        exact32 = values.dtype == np.float32 and n < 2**24
        dtype = np.float32 if exact32 else np.float64
        mat = np.ascontiguousarray(values, dtype=dtype)  # (R_used, N)
        if valid is not None:
            has_gaps = np.flatnonzero(~valid.all(axis=1))  # rows scored on fewer examples
            gaps = np.ascontiguousarray(valid[has_gaps], dtype=dtype)
        full = None if sample_examples else (
            values.sum(axis=1, dtype=np.float64)
            / (n if valid is None else valid.sum(axis=1)))
    for block in range(0, nboot, SEED_BLOCK):
        # Seeds (and fine-tuning runs) for a block of replicates, then its examples chunk
        # by chunk: memory is bounded by the block, and for nboot <= SEED_BLOCK the random
        # stream is the one of drawing every seed first.
        block_size = min(SEED_BLOCK, nboot - block)
        drawn = _draw_seeds(gen, design, block_size, sample_seeds, sample_finetune)
        weights = {name: _run_weights(design, name, *drawn[name], n_runs)[:, used]
                   for name in ("base", "expt")}
        for offset in range(0, block_size, chunk):
            size = min(chunk, block_size - offset)
            start = block + offset
            if metric in MEAN_METRICS:
                if full is not None:
                    scores = np.broadcast_to(full, (size, used.size))
                else:
                    counts = _example_counts(gen, size, n).astype(dtype)
                    # (R_used, N) @ (N, size): BLAS is much faster in this orientation.
                    scores = (mat @ counts.T).T.astype(np.float64) / n
                    if valid is not None:
                        # A run with missing cells: its sum over the examples it has, over
                        # the number of drawn examples it has (the others count n).
                        seen = (gaps @ counts.T).T.astype(np.float64)
                        scores[:, has_gaps] *= n / np.where(seen > 0, seen, np.nan)
            else:
                scores = np.empty((size, used.size))
                for b in range(size):
                    w = _example_counts(gen, 1, n)[0] if sample_examples else np.ones(n)
                    if design.valid is not None:
                        w = w[None, :] * design.valid[used]
                    scores[b] = metric_values(metric, design.labels, design.preds[used], w)
            rows = slice(offset, offset + size)
            base[start:start + size] = np.einsum("br,br->b", weights["base"][rows], scores)
            expt[start:start + size] = np.einsum("br,br->b", weights["expt"][rows], scores)
        del drawn, weights  # before the next block's are built: one block in memory
    return _report(base, expt, confidence=confidence, expected_sign=expected_sign,
                   thresholds=thresholds, seed=seed, design=design,
                   estimate=_point_estimate(design, metric),
                   options=_options(paired, sample_seeds, sample_examples, sample_finetune,
                                    metric))


def _options(paired: bool, sample_seeds: bool, sample_examples: bool, sample_finetune: bool,
             metric: Metric) -> dict:
    return {"paired": paired, "sample_seeds": sample_seeds, "sample_examples": sample_examples,
            "sample_finetune": sample_finetune,
            "metric": metric if isinstance(metric, str) else getattr(metric, "__name__", "custom")}
