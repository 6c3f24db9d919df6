"""The Agreement page: how often runs predict the same label, within and across sizes.

``run_predictions`` lines up every selected run of every selected size on the instances
all sizes share; ``agreement`` adds the (R, R) agreement or kappa matrix between them,
its per-size summary over same- and different-pretraining-seed pairs, and the within /
across pretraining-seed gap of each size (``stats.within_across``).
:func:`block_mean` and :func:`disagreements` serve the heatmap's block view and its
pair table.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seedlab import stats
from seedlab.align import align_instances, usable_runs
from seedlab.analyses.decay import blank_texts
from seedlab.analyses.query import Query, Reader, with_instance_fields

METRICS = ("agreement", "kappa")


@dataclass(frozen=True)
class RunPredictions:
    """``preds (R, N)`` (the smallest integer type that holds the labels: int8 for any
    task with fewer than 128 classes), ``runs``: size, pretrain_seed, finetune_seed (R
    rows, by size, pretraining seed, fine-tuning seed; the runs that exist and predict
    every shared instance), ``instance_ids (N,)`` and ``labels (N,)``. ``left_out``: the
    selected runs not in ``runs``, each as ``(name, why)`` (no such run, or how many of
    the N shared instances it predicts), in the same order."""

    preds: np.ndarray
    runs: pd.DataFrame = field(repr=False)
    instance_ids: np.ndarray
    labels: np.ndarray
    left_out: tuple[tuple[str, str], ...] = ()

    @property
    def names(self) -> list[str]:
        """``size/p<pretrain_seed>/f<finetune_seed>`` of each run."""
        return [f"{r.size}/p{r.pretrain_seed}/f{r.finetune_seed}"
                for r in self.runs.itertuples()]


def run_predictions(reader: Reader, query: Query) -> RunPredictions:
    """Predictions of every selected run on the instances all ``query.sizes`` share."""
    aligned = align_instances([query.arrays(reader, size) for size in query.sizes])
    n = len(aligned)
    blocks, meta, left_out = [], [], []
    for arrays in aligned.arrays:
        usable = usable_runs(arrays)  # (P * F,) run-major
        seeds = list(itertools.product(arrays.pretrain_seeds, arrays.finetune_seeds))
        meta += [(arrays.size, p, f) for (p, f), ok in zip(seeds, usable) if ok]
        predicted = (arrays.pred >= 0).reshape(n, -1).sum(axis=0)  # (P * F,)
        missing = set(arrays.missing)
        left_out += [(f"{arrays.size}/p{p}/f{f}",
                      "no such run" if (p, f) in missing
                      else f"predicts {int(k)} of the {n} shared instances")
                     for (p, f), ok, k in zip(seeds, usable, predicted) if not ok]
        # (runs, N), runs ordered by pretraining seed, then fine-tuning seed
        blocks.append(arrays.pred.reshape(n, -1).T[usable])
    top = max((int(b.max()) for b in blocks if b.size), default=0)
    dtype = np.int8 if top < 2**7 else np.int16 if top < 2**15 else np.int64
    preds = np.empty((sum(len(b) for b in blocks), n), dtype=dtype)
    row = 0
    for block in blocks:
        preds[row:row + len(block)] = block
        row += len(block)
    table = pd.DataFrame(meta, columns=["size", "pretrain_seed", "finetune_seed"])
    return RunPredictions(preds, table, aligned.instance_ids, aligned.labels,
                          tuple(left_out))


@dataclass(frozen=True, kw_only=True)
class AgreementQuery(Query):
    """``metric``: ``'agreement'`` (share of equal predictions) or ``'kappa'`` (Cohen's)."""

    metric: str = "agreement"


@dataclass(frozen=True)
class Agreement:
    """``runs``: the aligned predictions. ``matrix``: ``(R, R)`` agreement or kappa.
    ``summary``: one row per size with two or more runs: mean, std and pairs over the
    pairs sharing a pretraining seed and over those that do not. ``within_across``: per
    size with complete runs and at least 2 x 2 seeds, the mean absolute difference in
    correctness within and across pretraining seeds, their gap and N; ``not_within_across``:
    the other sizes."""

    runs: RunPredictions
    matrix: np.ndarray
    summary: pd.DataFrame = field(repr=False)
    within_across: pd.DataFrame = field(repr=False)
    not_within_across: tuple[str, ...]

    def blocks(self) -> tuple[np.ndarray, list[str]]:
        """The matrix averaged over size x pretraining-seed blocks (see block_mean)."""
        groups = [f"{r.size}/p{r.pretrain_seed}" for r in self.runs.runs.itertuples()]
        return block_mean(self.matrix, groups)


def agreement_matrix(runs: RunPredictions, metric: str) -> np.ndarray:
    """``(R, R)`` agreement (or kappa, ``metric='kappa'``) between the runs."""
    preds = runs.preds
    return stats.kappa_matrix(preds) if metric == "kappa" else stats.agreement_matrix(preds)


def agreement(reader: Reader, query: AgreementQuery, runs: RunPredictions | None = None
              ) -> Agreement:
    """Agreement between every pair of selected runs (see the module docstring).
    ``runs``, when given, is ``run_predictions`` of this query computed before (a cache
    shares it between the two metrics)."""
    runs = run_predictions(reader, query) if runs is None else runs
    matrix = agreement_matrix(runs, query.metric)
    rows = []
    for size in query.sizes:
        in_size = (runs.runs["size"] == size).to_numpy()
        if in_size.sum() < 2:
            continue
        sub = matrix[np.ix_(in_size, in_size)]
        summary = stats.agreement_summary(sub, runs.runs["pretrain_seed"].to_numpy()[in_size],
                                          runs.runs["finetune_seed"].to_numpy()[in_size])
        row: dict[str, Any] = {"size": size}
        for key, label in (("same_seed", "same pretraining seed"),
                           ("different_seed", "different pretraining seed")):
            part = summary[key]
            row[f"{label}: mean"] = part["mean"]
            row[f"{label}: std"] = part["std"]
            row[f"{label}: pairs"] = part["pairs"]
        rows.append(row)
    wa_rows, wa_notes = [], []
    for size in query.sizes:
        arrays = query.arrays(reader, size)
        # an incomplete run (one that misses some instances) has NaN cells too
        if (not arrays.complete or len(arrays.pretrain_seeds) < 2
                or len(arrays.finetune_seeds) < 2):
            wa_notes.append(size)
            continue
        within, across = stats.within_across(arrays.correct)
        wa_rows.append({"size": size, "within (same pretraining seed)": within,
                        "across (different pretraining seeds)": across,
                        "across - within": across - within, "N": arrays.shape[0]})
    return Agreement(runs, matrix, pd.DataFrame(rows), pd.DataFrame(wa_rows), tuple(wa_notes))


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


@dataclass(frozen=True)
class Disagreements:
    """The instances runs ``a`` and ``b`` predict differently: ``table`` (instance_id,
    gold, each run's label, texts), ``count`` of ``total`` instances, and the pair's
    ``value`` in the agreement matrix."""

    table: pd.DataFrame = field(repr=False)
    count: int
    total: int
    value: float


def disagreements(result: Agreement, instances: pd.DataFrame, label_list: Sequence[str],
                  a: str, b: str) -> Disagreements:
    """Where runs ``a`` and ``b`` (names from ``RunPredictions.names``) disagree.
    ``instances``: the task's instance table, for the texts."""
    runs = result.runs
    names = runs.names
    ia, ib = names.index(a), names.index(b)
    differ = runs.preds[ia] != runs.preds[ib]
    labels = runs.labels
    table = pd.DataFrame({
        "instance_id": runs.instance_ids[differ],
        "gold": [label_list[g] if 0 <= g < len(label_list) else "?" for g in labels[differ]],
        f"A: {a}": [label_list[p] for p in runs.preds[ia][differ]],
        f"B: {b}": [label_list[p] for p in runs.preds[ib][differ]],
    })
    table = blank_texts(with_instance_fields(table, instances, ("text_a", "text_b")))
    return Disagreements(table, int(differ.sum()), len(runs.instance_ids),
                         float(result.matrix[ia, ib]))
