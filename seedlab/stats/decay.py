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

from ._common import require_axis, scores_array

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
      diff: ``(N,)`` observed difference ``acc_L - acc_S`` over the seeds the comparison
        uses (every seed for even P; all but ``baseline_left_out`` for odd P).
      baseline: ``(N,)`` the random-seed baseline difference ``b``.
      cdf_diff, cdf_baseline: ``(200,)`` empirical CDFs of ``diff`` and ``baseline``.
      grid: ``(200,)`` the value t at which each CDF entry is taken (bin upper edges).
      decaying_any_t, improving_any_t: the same maxima taken over every t of the grid.
      baseline_seeds_a, baseline_seeds_b: positions (along the P axis) of the pretraining
        seeds in the baseline's first half H1 and second half H2 (equal sizes).
      baseline_left_out: for odd P, the position of the seed left out of the comparison
        (of ``diff`` and ``baseline`` both), else None.
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
    baseline_seeds_a: tuple[int, ...] = ()
    baseline_seeds_b: tuple[int, ...] = ()
    baseline_left_out: int | None = None

    @property
    def n_instances(self) -> int:
        return int(self.diff.shape[0])


def _decay_iv(small: np.ndarray, large: np.ndarray, left_out: int | None, where: str
              ) -> tuple[np.ndarray, np.ndarray, list[int], int | None]:
    """Input checks of ``decay_bounds``: two (N, P, F) score arrays in [0, 1] of the same
    shape, P >= 2, and ``left_out`` a seed position (odd P only). Returns the arrays, the
    positions of the seeds used and the position left out (None for even P)."""
    s = scores_array(small, f"{where}: small", (3,))
    big = scores_array(large, f"{where}: large", (3,))
    if s.shape != big.shape:
        raise ValueError(f"{where}: small and large must have the same (N, P, F) shape and"
                         f" seeds, got {s.shape} and {big.shape}")
    require_axis(s, 1, 2, f"{where}: small", "pretraining seeds")
    n_pre = s.shape[1]
    if n_pre % 2 == 0:
        if left_out is not None:
            raise ValueError(f"{where}: left_out is for an odd number of pretraining seeds;"
                             f" P = {n_pre} splits into equal halves as it is")
        return s, big, list(range(n_pre)), None
    left = n_pre - 1 if left_out is None else int(left_out)
    if not -n_pre <= left < n_pre:
        raise ValueError(f"{where}: left_out must be a seed position in [0, {n_pre}),"
                         f" got {left_out}")
    left %= n_pre
    return s, big, [p for p in range(n_pre) if p != left], left


def empirical_cdf(values: np.ndarray) -> np.ndarray:
    """Empirical CDF ``(200,)`` of ``values (N,)`` in [-1, 1] on the decay grid.

    Bin of v: ``floor((v + 1 - 0.001) * 100)``, clipped to [0, 199] (v = -1 gives -1,
    which belongs in the first bin), counts starting from zero, cumulated and divided by N.
    """
    v = np.asarray(values, dtype=np.float64)
    bins = np.clip(np.floor((v + 1.0 - 0.001) * 100.0), 0, N_BINS - 1).astype(np.int64)
    counts = np.bincount(bins, minlength=N_BINS).astype(np.float64)
    return np.cumsum(counts) / max(v.shape[0], 1)


def decay_bounds(small: np.ndarray, large: np.ndarray, *,
                 left_out: int | None = None) -> DecayResult:
    """Lower bounds on the share of decaying and improving instances (statistics.md 5).

    Args:
      small, large: correctness ``(N, P, F)`` of the smaller and the larger size, same
        seeds in the same order; P >= 2.
      left_out: for odd P, the position of the pretraining seed left out (default: the
        last); an error for even P.

    Returns:
      ``DecayResult``. ``diff = acc_L - acc_S``; ``baseline = (mean_H2 S + mean_H2 L)/2 -
      (mean_H1 S + mean_H1 L)/2`` with H1 the first half of the seeds and H2 the second,
      by position. The halves have equal sizes, so ``b`` and ``d`` both compare two
      groups of the same number of runs, on the same grid of values: for odd P one seed
      is left out of both (``baseline_left_out``). Halves of P // 2 and P - P // 2 seeds
      put ``b`` on another grid with another variance and give a spurious bound under a
      null (about 0.07 for P = 3; docs/stats.md has the figures). ``decaying =
      max_t (CDF_d(t) - CDF_b(t))`` over the grid points t < 0 and ``improving =
      max_t (CDF_b(t) - CDF_d(t))`` over t >= 0: a decaying instance has d < 0, and
      restricting t to that side keeps the bound at 0 when d has less spread than b (the
      same runs for both sizes give exactly 0). ``decaying_any_t`` and
      ``improving_any_t`` hold the maxima over every t.
    """
    s, big, used, left = _decay_iv(small, large, left_out, "decay_bounds")
    n_fine = s.shape[2]
    n_used, half = len(used), len(used) // 2
    if list(used) == list(range(n_used)):
        # The seeds used are the first n_used (even P, or odd P leaving out the last): each
        # half is a contiguous block of every row, summed in one fast reduction.
        h1_s, h2_s = s[:, :half].sum(axis=(1, 2)), s[:, half:n_used].sum(axis=(1, 2))
        h1_l, h2_l = big[:, :half].sum(axis=(1, 2)), big[:, half:n_used].sum(axis=(1, 2))
    else:
        sum_s, sum_l = _finetune_sums(s)[:, used], _finetune_sums(big)[:, used]  # (N, P')
        h1_s, h2_s = sum_s[:, :half].sum(axis=1), sum_s[:, half:].sum(axis=1)
        h1_l, h2_l = sum_l[:, :half].sum(axis=1), sum_l[:, half:].sum(axis=1)
    diff = ((h1_l + h2_l) - (h1_s + h2_s)) / (n_used * n_fine)
    baseline = ((h2_s + h2_l) - (h1_s + h1_l)) / (2 * half * n_fine)
    cdf_d = empirical_cdf(diff)
    cdf_b = empirical_cdf(baseline)
    gap = cdf_d - cdf_b
    return DecayResult(
        decaying=float(max(0.0, gap[:ZERO_BIN].max())),
        improving=float(max(0.0, (-gap[ZERO_BIN:]).max())),
        diff=diff, baseline=baseline, cdf_diff=cdf_d, cdf_baseline=cdf_b, grid=GRID.copy(),
        decaying_any_t=float(max(0.0, gap.max())),
        improving_any_t=float(max(0.0, (-gap).max())),
        baseline_seeds_a=tuple(used[:half]), baseline_seeds_b=tuple(used[half:]),
        baseline_left_out=left,
    )


def _finetune_sums(c: np.ndarray) -> np.ndarray:
    """``(N, P)`` sums over the (short) fine-tuning axis of ``c (N, P, F)``, one slice at
    a time (numpy's reductions over a short last axis are slow)."""
    out = c[:, :, 0].copy()
    for f in range(1, c.shape[2]):
        out += c[:, :, f]
    return out


def ensemble_correct(scores: np.ndarray, labels: np.ndarray | None = None, *,
                     n_classes: int | None = None) -> np.ndarray:
    """Whether each pretraining seed's fine-tuning ensemble is correct.

    The ensemble's answer is the argmax of its class probabilities averaged over
    fine-tuning seeds (as ``dump_correctness.py`` does). Only for 2 classes is that the
    same as "mean gold-label probability > 0.5", so gold-only scores are refused for a
    task with more labels.

    Args:
      scores: either class probabilities ``(N, P, F, L)`` (L classes, each in [0, 1]) with
        ``labels (N,)`` in ``[0, L)``: correct where the argmax of the mean over F is the
        gold label (a tie goes to the lowest class id, as ``argmax``); or, for a 2-class
        task only, gold-label probabilities or 0/1 correctness ``(N, P, F)``: correct
        where the mean over F is > 0.5 (a tie is not correct).
      labels: ``(N,)`` gold class ids; needed with class probabilities. With ``(N, P, F)``
        scores, labels above 1 (a task with more than 2 labels) are refused.
      n_classes: the task's number of labels, when known; above 2 refuses ``(N, P, F)``
        scores, and with class probabilities it must equal L.

    Returns:
      ``(N, P)`` bool.
    """
    arr, gold = _ensemble_iv(scores, labels, n_classes)
    if arr.ndim == 3:
        return arr.mean(axis=2) > 0.5
    return arr.mean(axis=2).argmax(axis=2) == gold[:, None]


def _ensemble_iv(scores: np.ndarray, labels: np.ndarray | None, n_classes: int | None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Input checks of ``ensemble_correct`` (see there)."""
    where = "ensemble_correct"
    arr = scores_array(scores, f"{where}: scores", (3, 4))
    gold = None if labels is None else np.asarray(labels)
    if gold is not None:
        if gold.shape != (arr.shape[0],) or gold.dtype.kind not in "biuf":
            raise ValueError(f"{where}: labels must be ({arr.shape[0]},) class ids, got"
                             f" shape {gold.shape}")
        if gold.size and (gold.min() < 0 or np.any(gold != np.round(gold))):
            raise ValueError(f"{where}: labels must be class ids >= 0 (a -1 is a missing"
                             f" label: drop those instances first)")
        gold = gold.astype(np.int64)
    if arr.ndim == 3:
        seen = None if gold is None or not gold.size else int(gold.max()) + 1
        many = max(n_classes or 0, seen or 0)
        if many > 2:
            raise ValueError(
                f"{where}: gold-label probabilities or correctness (N, P, F) decide an"
                f" ensemble only for a 2-class task; this one has {many} labels, where the"
                " ensemble's answer is the argmax of its mean class probabilities and a"
                " mean gold probability below 0.5 can still be the argmax: pass the class"
                " probabilities (N, P, F, L) with labels")
        return arr, gold
    n_labels = arr.shape[3]
    if gold is None:
        raise ValueError(f"{where}: full class probabilities (N, P, F, L) need labels")
    if n_classes is not None and n_classes != n_labels:
        raise ValueError(f"{where}: n_classes = {n_classes} but the class probabilities"
                         f" have L = {n_labels} classes (axis 3)")
    if gold.size and gold.max() >= n_labels:
        raise ValueError(f"{where}: label {int(gold.max())} is not a class of the"
                         f" probabilities (L = {n_labels})")
    return arr, gold


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
               qs: np.ndarray | None = None, n_classes: int | None = None) -> dict:
    """The Benjamini-Hochberg comparison behind ``bh_bound`` (arguments as there).

    Returns:
      ``{"bound", "q" (the FDR level attaining it), "qs" (Q,), "discoveries" (Q,),
      "pvalues" (N,), "a" (N,), "b" (N,), "m"}``: ``a``/``b`` are the numbers of
      pretraining seeds whose fine-tuning ensemble is correct for the small / large size.
    """
    small_ok = ensemble_correct(small, labels, n_classes=n_classes)
    large_ok = ensemble_correct(large, labels, n_classes=n_classes)
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
             qs: np.ndarray | None = None, n_classes: int | None = None) -> float:
    """Benjamini-Hochberg lower bound on the share of decaying instances.

    For each instance, a one-sided Fisher exact test on ``[[a, M - a], [b, M - b]]``
    (alternative 'greater', M = P) where a and b count the pretraining seeds whose
    fine-tuning ensemble is correct for the small and the large size. For each FDR level
    q in ``qs`` (default 0.01 .. 0.99), ``k_q`` = number of step-up BH discoveries.

    Args:
      small, large: ``(N, P, F, L)`` class probabilities with ``labels (N,)``, or for a
        2-class task ``(N, P, F)`` gold-label probabilities or correctness (refused for
        more labels: see ``ensemble_correct``).
      labels: ``(N,)`` gold class ids.
      qs: FDR levels (default 0.01 .. 0.99).
      n_classes: the task's number of labels (refuses gold-only input above 2).

    Returns:
      ``max_q (k_q / N) (1 - q)``.
    """
    return bh_details(small, large, labels=labels, qs=qs, n_classes=n_classes)["bound"]


def instance_difference_correlation(acc1: np.ndarray, acc2: np.ndarray, acc3: np.ndarray,
                                    width: float = 0.1, *,
                                    checkpoint: int | None = None) -> pd.DataFrame:
    """Correlation of consecutive instance-level accuracy differences ("momentum").

    Args:
      acc1, acc2, acc3: instance accuracy ``(N,)`` of sizes s1 < s2 < s3, or correctness
        ``(N, R)`` or ``(N, P, F)`` (averaged over the axes after the first), or
        ``(N, P, F, E)`` with ``checkpoint``; all in [0, 1].
      width: bucket width of ``acc2``; buckets ``[t, t + width)`` for t = 0, width, ...
        below 1 (so ``acc2 == 1`` is in no bucket).
      checkpoint: for 4-D input, the checkpoint index to use (e.g. -1, the last);
        without it 4-D input is refused rather than averaged over checkpoints (the
        contract's accuracies are at one checkpoint).

    Returns:
      DataFrame, one row per bucket: ``bucket`` (t), ``n``, ``pearson``, ``pearson_p``,
      ``spearman``, ``spearman_p`` of ``prev = acc2 - acc1`` and ``next = acc3 - acc2``
      (NaN where a bucket has fewer than 3 instances or a constant difference).
    """
    from scipy import stats as sps

    accs = _momentum_iv(acc1, acc2, acc3, checkpoint)
    a1, a2, a3 = accs
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


def _momentum_iv(acc1: np.ndarray, acc2: np.ndarray, acc3: np.ndarray,
                 checkpoint: int | None) -> list[np.ndarray]:
    """Input checks of ``instance_difference_correlation``; the three ``(N,)`` accuracies."""
    where = "instance_difference_correlation"
    accs = []
    for name, acc in (("acc1", acc1), ("acc2", acc2), ("acc3", acc3)):
        arr = scores_array(acc, f"{where}: {name}", (1, 2, 3, 4))
        if arr.ndim == 4:
            if checkpoint is None:
                raise ValueError(
                    f"{where}: {name} is 4-D {arr.shape}, with checkpoints: pass"
                    " checkpoint= (e.g. -1, the last) instead of averaging over them")
            if not -arr.shape[3] <= checkpoint < arr.shape[3]:
                raise ValueError(f"{where}: checkpoint {checkpoint} is not an index of the"
                                 f" {arr.shape[3]} checkpoints of {name}")
            arr = arr[..., checkpoint]
        accs.append(arr.reshape(arr.shape[0], -1).mean(axis=1))
    if not accs[0].shape == accs[1].shape == accs[2].shape:
        raise ValueError(f"{where}: the three sizes must have the same instances, got"
                         f" {accs[0].shape[0]}, {accs[1].shape[0]} and {accs[2].shape[0]}")
    return accs
