"""Slow, straightforward reference implementations of ``seedlab.stats`` functions, for
the tests and the benchmarks (not part of the library's API).

``multibootstrap_loop`` scores each drawn run of each drawn seed of each replicate on its
resampled examples, one at a time, the way the original code does. It consumes the random
stream exactly as ``seedlab.stats.multibootstrap`` (the seeds of a block of ``SEED_BLOCK``
replicates, then each replicate's examples), so with the same seed both give equal
results, whatever ``chunk`` the fast path uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from seedlab.stats import bootstrap
from seedlab.stats._common import make_rng
from seedlab.stats.bootstrap import (
    MEAN_METRICS,
    Metric,
    _check_options,
    _design,
    _draw_seeds,
    _options,
    _point_estimate,
    _report,
    metric_values,
)


def multibootstrap_loop(preds: np.ndarray, labels: np.ndarray, seeds: Sequence[Any],
                        treatment: Any, *, paired: bool = True, nboot: int = 1000,
                        sample_seeds: bool = True, sample_examples: bool = True,
                        sample_finetune: bool = False, metric: Metric = "accuracy",
                        confidence: float = 0.95,
                        rng: int | np.random.Generator | None = None,
                        finetune_seeds: Sequence[Any] | None = None,
                        thresholds: Sequence[float] | None = None,
                        expected_sign: int = 1, missing: str = "raise") -> dict:
    """The Multi-Bootstrap one replicate, one seed and one run at a time.

    Same arguments and result as ``seedlab.stats.multibootstrap``. A run's missing cells
    (``missing="omit"``) are dropped from its drawn examples before it is scored.
    """
    _check_options(nboot, expected_sign, metric)
    design = _design(preds, labels, seeds, treatment, metric, paired, finetune_seeds, missing)
    gen, seed = make_rng(rng)
    nboot = int(nboot)
    n = design.n_examples
    arm_scores = {"base": np.empty(nboot), "expt": np.empty(nboot)}
    block = bootstrap.SEED_BLOCK  # read at call time: a test may shrink it
    for start in range(0, nboot, block):
        size = min(block, nboot - start)
        drawn = _draw_seeds(gen, design, size, sample_seeds, sample_finetune)
        for j in range(size):
            if sample_examples:
                idx = gen.integers(0, n, size=(1, n), dtype=np.int32)[0]
            else:
                idx = np.arange(n)
            for name in ("base", "expt"):
                slots, runs = drawn[name]
                seed_means = []
                for k, s in enumerate(slots[j]):
                    group = design.arms[name][s]
                    rows = group if runs is None else group[runs[j, k, :len(group)]]
                    seed_means.append(np.mean([_run_score(design, metric, r, idx)
                                               for r in rows]))
                arm_scores[name][start + j] = np.mean(seed_means)
    return _report(arm_scores["base"], arm_scores["expt"], confidence=confidence,
                   expected_sign=expected_sign, thresholds=thresholds, seed=seed,
                   design=design, estimate=_point_estimate(design, metric),
                   options=_options(paired, sample_seeds, sample_examples, sample_finetune,
                                    metric))


def _run_score(design: Any, metric: Metric, run: int, idx: np.ndarray) -> float:
    """The metric of one run on the drawn examples ``idx`` it has a prediction for."""
    if design.valid is not None:
        idx = idx[design.valid[run, idx]]
    y = design.labels[idx]
    if metric == "accuracy":
        return float(np.mean(design.preds[run, idx] == y))
    if metric in MEAN_METRICS:
        return float(np.mean(design.preds[run, idx], dtype=np.float64))
    return float(metric_values(metric, y, design.preds[run:run + 1, idx])[0])
