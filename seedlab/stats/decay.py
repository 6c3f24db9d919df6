"""Decaying instances (Zhong et al. 2021): lower bounds on the share of instances a larger
model gets wrong more often than a smaller one, against a random-seed baseline, the
Benjamini-Hochberg comparison, and the instance-difference correlation ("momentum").

Inputs are correctness ``(N, P, F)`` at the last checkpoint, with the same seeds for both
sizes. NaN (a missing run) raises ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd

from ._common import as_float_array, require_axis

N_BINS = 200
# Grid point of bin j: its upper edge, so that CDF[j] is the share of values <= GRID[j]
# (for values on the 0.01 grid; the bin formula puts -0.99 .. 1.0 at index 0 .. 199).
GRID = np.round(-1.0 + (np.arange(N_BINS) + 1) / 100.0, 10)
ZERO_BIN = 99  # the bin that holds 0 (and (-0.01, 0))
DEFAULT_QS = np.round(np.arange(1, 100) / 100.0, 2)


@dataclass
class DecayResult:
    """Lower bounds on the share of decaying and improving instances.

    Attributes:
      decaying, improving: the two lower bounds (shares of the N instances).
      diff: ``(N,)`` observed difference ``acc_L - acc_S``.
      baseline: ``(N,)`` the random-seed baseline difference ``b``.
      cdf_diff, cdf_baseline: ``(200,)`` empirical CDFs of ``diff`` and ``baseline``.
      grid: ``(200,)`` the value t at which each CDF entry is taken (bin upper edges).
      decaying_any_t, improving_any_t: the same maxima taken over every t of the grid.
    """

    decaying: float
    improving: float
    diff: np.ndarray
    baseline: np.ndarray
    cdf_diff: np.ndarray
    cdf_baseline: np.ndarray
    grid: np.ndarray
    decaying_any_t: float
    improving_any_t: float

    @property
    def n_instances(self) -> int:
        return int(self.diff.shape[0])


def _pair(small: np.ndarray, large: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    s = as_float_array(small, f"{where}: small", (3,))
    big = as_float_array(large, f"{where}: large", (3,))
    if s.shape != big.shape:
        raise ValueError(f"{where}: small and large must have the same (N, P, F) shape and"
                         f" seeds, got {s.shape} and {big.shape}")
    return s, big


def empirical_cdf(values: np.ndarray) -> np.ndarray:
    """Empirical CDF ``(200,)`` of ``values (N,)`` in [-1, 1] on the decay grid.

    Bin of v: ``floor((v + 1 - 0.001) * 100)``, clipped to [0, 199] (v = -1 gives -1,
    which belongs in the first bin), counts starting from zero, cumulated and divided by N.
    """
    v = np.asarray(values, dtype=np.float64)
    bins = np.clip(np.floor((v + 1.0 - 0.001) * 100.0), 0, N_BINS - 1).astype(np.int64)
    counts = np.bincount(bins, minlength=N_BINS).astype(np.float64)
    return np.cumsum(counts) / max(v.shape[0], 1)


def decay_bounds(small: np.ndarray, large: np.ndarray) -> DecayResult:
    """Lower bounds on the share of decaying and improving instances (statistics.md 5).

    Args:
      small, large: correctness ``(N, P, F)`` of the smaller and the larger size, same
        seeds in the same order; P >= 2.

    Returns:
      ``DecayResult``. ``diff = acc_L - acc_S``; ``baseline = (mean_H2 S + mean_H2 L)/2 -
      (mean_H1 S + mean_H1 L)/2`` with H1 the first ``P // 2`` pretraining seeds and H2
      the rest. ``decaying = max_t (CDF_d(t) - CDF_b(t))`` over the grid points t < 0 and
      ``improving = max_t (CDF_b(t) - CDF_d(t))`` over t >= 0: a decaying instance has
      d < 0, and restricting t to that side keeps the bound at 0 when d has less spread
      than b (the same runs for both sizes give exactly 0). ``decaying_any_t`` and
      ``improving_any_t`` hold the maxima over every t.
    """
    s, big = _pair(small, large, "decay_bounds")
    require_axis(s, 1, 2, "decay_bounds: small", "pretraining seeds")
    acc_s = s.mean(axis=(1, 2))
    acc_l = big.mean(axis=(1, 2))
    diff = acc_l - acc_s
    half = s.shape[1] // 2
    first = (s[:, :half].mean(axis=(1, 2)) + big[:, :half].mean(axis=(1, 2))) / 2
    second = (s[:, half:].mean(axis=(1, 2)) + big[:, half:].mean(axis=(1, 2))) / 2
    baseline = second - first
    cdf_d = empirical_cdf(diff)
    cdf_b = empirical_cdf(baseline)
    gap = cdf_d - cdf_b
    return DecayResult(
        decaying=float(max(0.0, gap[:ZERO_BIN].max())),
        improving=float(max(0.0, (-gap[ZERO_BIN:]).max())),
        diff=diff, baseline=baseline, cdf_diff=cdf_d, cdf_baseline=cdf_b, grid=GRID.copy(),
        decaying_any_t=float(max(0.0, gap.max())),
        improving_any_t=float(max(0.0, (-gap).max())),
    )


def ensemble_correct(scores: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Whether each pretraining seed's fine-tuning ensemble is correct.

    Args:
      scores: gold-label probability or 0/1 correctness ``(N, P, F)``: the ensemble is
        correct where the mean over fine-tuning seeds is > 0.5 (a tie is not correct);
        or full class probabilities ``(N, P, F, K)`` with ``labels (N,)``: correct where
        the argmax of the mean probabilities is the gold label.

    Returns:
      ``(N, P)`` bool.
    """
    arr = as_float_array(scores, "ensemble_correct: scores", (3, 4))
    if arr.ndim == 3:
        return arr.mean(axis=2) > 0.5
    if labels is None:
        raise ValueError("ensemble_correct: full class probabilities (N, P, F, K) need labels")
    gold = np.asarray(labels)
    if gold.shape != (arr.shape[0],):
        raise ValueError(f"ensemble_correct: labels must have shape ({arr.shape[0]},)")
    return arr.mean(axis=2).argmax(axis=2) == gold[:, None]


def fisher_pvalues(a: np.ndarray, b: np.ndarray, m: int) -> np.ndarray:
    """One-sided Fisher exact p-values of ``[[a, m - a], [b, m - b]]``, alternative
    'greater', for count arrays ``a, b (N,)``; each distinct (a, b) pair is tested once.

    The p-value is the hypergeometric tail ``P(X >= a)``, ``X`` the first cell of a table
    with the same margins (as ``scipy.stats.fisher_exact``), summed in exact integer
    arithmetic and rounded once: the counts are at most the number of pretraining seeds.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    table = np.full((m + 1, m + 1), np.nan)
    for ai, bi in set(zip(a.tolist(), b.tolist())):
        table[ai, bi] = _fisher_greater(ai, bi, m)
    return table[a, b]


def _fisher_greater(a: int, b: int, m: int) -> float:
    """``P(X >= a)`` for ``X ~ Hypergeometric(2m, a + b, m)``: one-sided Fisher exact test
    of ``[[a, m - a], [b, m - b]]``, exact."""
    k = a + b  # correct in both rows together
    tail = sum(comb(m, x) * comb(m, k - x) for x in range(a, min(m, k) + 1))
    return float(Fraction(tail, comb(2 * m, k)))


def bh_adjust(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values ``(N,)`` of ``pvalues (N,)``: sorted ascending,
    ``p_(i) * N / i``, the running minimum from the largest down, clipped to 1, in the
    input order (the arithmetic of ``scipy.stats.false_discovery_control(method='bh')``)."""
    ps = np.asarray(pvalues, dtype=np.float64)
    if ps.ndim != 1:
        raise ValueError(f"bh_adjust: expected a 1-D array, got shape {ps.shape}")
    if np.isnan(ps).any() or (ps < 0).any() or (ps > 1).any():
        raise ValueError("bh_adjust: p-values must lie in [0, 1]")
    m = ps.shape[0]
    if m <= 1:
        return ps.copy()
    order = np.argsort(ps, kind="stable")
    adjusted = ps[order] * (m / np.arange(1, m + 1, dtype=np.float64))
    np.minimum.accumulate(adjusted[::-1], out=adjusted[::-1])
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return np.clip(out, 0.0, 1.0)


def bh_details(small: np.ndarray, large: np.ndarray, *, labels: np.ndarray | None = None,
               qs: np.ndarray | None = None) -> dict:
    """The Benjamini-Hochberg comparison behind ``bh_bound``.

    Returns:
      ``{"bound", "q" (the FDR level attaining it), "qs" (Q,), "discoveries" (Q,),
      "pvalues" (N,), "a" (N,), "b" (N,), "m"}``: ``a``/``b`` are the numbers of
      pretraining seeds whose fine-tuning ensemble is correct for the small / large size.
    """
    small_ok = ensemble_correct(small, labels)
    large_ok = ensemble_correct(large, labels)
    if small_ok.shape != large_ok.shape:
        raise ValueError(f"bh_bound: small and large shapes differ: {small_ok.shape} vs"
                         f" {large_ok.shape}")
    n, m = small_ok.shape
    a = small_ok.sum(axis=1)
    b = large_ok.sum(axis=1)
    pvalues = fisher_pvalues(a, b, m)
    adjusted = bh_adjust(pvalues)
    levels = DEFAULT_QS if qs is None else np.asarray(qs, dtype=np.float64)
    discoveries = (adjusted[None, :] <= levels[:, None]).sum(axis=1)
    values = discoveries / n * (1 - levels)
    best = int(np.argmax(values))
    return {"bound": float(values[best]), "q": float(levels[best]), "qs": levels,
            "discoveries": discoveries, "pvalues": pvalues, "a": a, "b": b, "m": m}


def bh_bound(small: np.ndarray, large: np.ndarray, *, labels: np.ndarray | None = None,
             qs: np.ndarray | None = None) -> float:
    """Benjamini-Hochberg lower bound on the share of decaying instances.

    For each instance, a one-sided Fisher exact test on ``[[a, M - a], [b, M - b]]``
    (alternative 'greater', M = P) where a and b count the pretraining seeds whose
    fine-tuning ensemble is correct for the small and the large size. For each FDR level
    q in ``qs`` (default 0.01 .. 0.99), ``k_q`` = number of step-up BH discoveries.

    Args:
      small, large: ``(N, P, F)`` gold-label probabilities or correctness, or
        ``(N, P, F, K)`` class probabilities with ``labels (N,)``.

    Returns:
      ``max_q (k_q / N) (1 - q)``.
    """
    return bh_details(small, large, labels=labels, qs=qs)["bound"]


def instance_difference_correlation(acc1: np.ndarray, acc2: np.ndarray, acc3: np.ndarray,
                                    width: float = 0.1) -> pd.DataFrame:
    """Correlation of consecutive instance-level accuracy differences ("momentum").

    Args:
      acc1, acc2, acc3: instance accuracy ``(N,)`` of sizes s1 < s2 < s3, or correctness
        arrays ``(N, ...)`` (averaged over all axes after the first).
      width: bucket width of ``acc2``; buckets ``[t, t + width)`` for t = 0, width, ...
        below 1 (so ``acc2 == 1`` is in no bucket).

    Returns:
      DataFrame, one row per bucket: ``bucket`` (t), ``n``, ``pearson``, ``pearson_p``,
      ``spearman``, ``spearman_p`` of ``prev = acc2 - acc1`` and ``next = acc3 - acc2``
      (NaN where a bucket has fewer than 3 instances or a constant difference).
    """
    from scipy import stats as sps

    accs = []
    for name, acc in (("acc1", acc1), ("acc2", acc2), ("acc3", acc3)):
        arr = as_float_array(acc, f"instance_difference_correlation: {name}",
                             (1, 2, 3, 4))
        accs.append(arr.reshape(arr.shape[0], -1).mean(axis=1))
    a1, a2, a3 = accs
    if not a1.shape == a2.shape == a3.shape:
        raise ValueError("instance_difference_correlation: the three sizes must have the"
                         " same instances")
    prev, nxt = a2 - a1, a3 - a2
    n_buckets = round(1.0 / width)
    bucket = np.floor(np.round(a2 / width, 9)).astype(np.int64)
    rows = []
    for k in range(n_buckets):
        sel = bucket == k
        x, y = prev[sel], nxt[sel]
        row = {"bucket": round(k * width, 10), "n": int(sel.sum()), "pearson": np.nan,
               "pearson_p": np.nan, "spearman": np.nan, "spearman_p": np.nan}
        if x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            pr = sps.pearsonr(x, y)
            sr = sps.spearmanr(x, y)
            row.update(pearson=float(pr.statistic), pearson_p=float(pr.pvalue),
                       spearman=float(sr.statistic), spearman_p=float(sr.pvalue))
        rows.append(row)
    return pd.DataFrame(rows)
