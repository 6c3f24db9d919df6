"""Bias-variance decomposition across pretraining seeds, fine-tuning seeds and checkpoints
(Zhong et al. 2021), variance conditioned on bias, and the within/across seed difference.

Notation: ``c[i, p, f]`` (or ``c[i, p, f, e]``) is the score of instance ``i`` for the run
with pretraining seed ``p`` and fine-tuning seed ``f`` (at checkpoint ``e``): 0/1
correctness (0/1 loss) or the gold-label probability (squared loss). ``s2`` is the sample
variance with ddof = 1.

NaN (a missing run) raises ValueError: every estimator here needs the full seed grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._common import make_rng, percentile_interval, require_axis, scores_array

COMPONENTS = ("loss", "bias2", "var_pretrain", "var_finetune", "var_checkpoint")


@dataclass
class Decomposition:
    """Per-instance terms of the decomposition; every array has shape ``(N,)``.

    ``loss == bias2 + var_pretrain + var_finetune (+ var_checkpoint)`` for every instance.
    The unbiased variance terms can be negative for a single instance; they are reported
    as they are. ``var_checkpoint`` is None for 3-D input.
    """

    loss: np.ndarray
    bias2: np.ndarray
    var_pretrain: np.ndarray
    var_finetune: np.ndarray
    var_checkpoint: np.ndarray | None
    n_pretrain: int
    n_finetune: int
    n_checkpoint: int | None = None

    @property
    def n_instances(self) -> int:
        return int(self.loss.shape[0])

    def components(self) -> dict[str, np.ndarray]:
        """The present per-instance arrays by name (``var_checkpoint`` only for 4-D input)."""
        out = {name: getattr(self, name) for name in COMPONENTS}
        if out["var_checkpoint"] is None:
            del out["var_checkpoint"]
        return out

    def summary(self) -> dict[str, float | None]:
        """Means over instances: ``loss``, ``bias2``, ``var_pretrain``, ``var_finetune``,
        ``var_checkpoint`` (None for 3-D input)."""
        out: dict[str, float | None] = {
            name: float(np.mean(arr)) for name, arr in self.components().items()
        }
        out.setdefault("var_checkpoint", None)
        return {name: out[name] for name in COMPONENTS}


def decompose(x: np.ndarray) -> Decomposition:
    """Bias-variance decomposition of each instance's loss ``(1 - c)^2``.

    Args:
      x: scores ``(N, P, F)`` or ``(N, P, F, E)`` (instances x pretraining seeds x
        fine-tuning seeds [x checkpoints]); needs P >= 2, F >= 2 (and E >= 2), no NaN.

    Returns:
      A ``Decomposition`` of ``(N,)`` arrays, following statistics.md section 1:
      3-D: ``var_finetune = mean_p s2_f``, ``var_pretrain = s2_p(cbar_p) - var_finetune/F``;
      4-D: ``var_checkpoint = mean_{p,f} s2_e``, ``vf_p = s2_f(cbar_pf) - mean_f s2_e / E``,
      ``var_finetune = mean_p vf_p``,
      ``var_pretrain = s2_p(cbar_p) - mean_p[mean_f s2_e / (E F) + vf_p / F]``;
      ``bias2 = loss`` minus the variance terms.
    """
    c = _decompose_iv(x)
    n_pre, n_fine = c.shape[1], c.shape[2]
    if c.ndim == 3:
        # Sums and sums of squares over fine-tuning seeds are the only passes over the input.
        sum_f, sumsq_f = _last_axis_sums(c)  # (N, P), float64
        loss = 1.0 + (sumsq_f - 2.0 * sum_f).mean(axis=1) / n_fine
        s2_f = np.maximum(sumsq_f - sum_f * sum_f / n_fine, 0.0) / (n_fine - 1)  # (N, P)
        var_finetune = s2_f.mean(axis=1)
        cbar_p = sum_f / n_fine
        var_pretrain = np.var(cbar_p, axis=1, ddof=1) - var_finetune / n_fine
        bias2 = loss - var_pretrain - var_finetune
        return Decomposition(loss, bias2, var_pretrain, var_finetune, None, n_pre, n_fine)

    n_ckpt = c.shape[3]
    # Sums and sums of squares over checkpoints are the only passes over the full array.
    sum_e, sumsq_e = _last_axis_sums(c)  # (N, P, F), float64
    loss = 1.0 + (sumsq_e - 2.0 * sum_e).mean(axis=(1, 2)) / n_ckpt
    s2_e = np.maximum(sumsq_e - sum_e * sum_e / n_ckpt, 0.0) / (n_ckpt - 1)  # (N, P, F)
    var_checkpoint = s2_e.mean(axis=(1, 2))
    cbar_pf = sum_e / n_ckpt  # (N, P, F)
    vf_p = np.var(cbar_pf, axis=2, ddof=1) - s2_e.mean(axis=2) / n_ckpt  # (N, P)
    var_finetune = vf_p.mean(axis=1)
    cbar_p = cbar_pf.mean(axis=2)  # (N, P)
    leak = (s2_e.mean(axis=2) / (n_ckpt * n_fine) + vf_p / n_fine).mean(axis=1)
    var_pretrain = np.var(cbar_p, axis=1, ddof=1) - leak
    bias2 = loss - var_pretrain - var_finetune - var_checkpoint
    return Decomposition(loss, bias2, var_pretrain, var_finetune, var_checkpoint,
                         n_pre, n_fine, n_ckpt)


def _decompose_iv(x: np.ndarray) -> np.ndarray:
    """Input checks of ``decompose``: 3-D or 4-D scores in [0, 1], no NaN, at least two
    seeds (and checkpoints) on each axis. Integer and bool scores are kept as they are
    (then 0/1: the sums over the last axis need no squares)."""
    c = scores_array(x, "decompose: x", (3, 4), keep_integers=True)
    require_axis(c, 1, 2, "decompose: x", "pretraining seeds")
    require_axis(c, 2, 2, "decompose: x", "fine-tuning seeds")
    if c.ndim == 4:
        require_axis(c, 3, 2, "decompose: x", "checkpoints")
    return c


def _last_axis_sums(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squares over the (short) last axis, as float64 ``c.shape[:-1]``.

    One strided slice at a time: numpy's reductions over a short last axis are slow. For
    0/1 scores the sum of squares is the sum.
    """
    sums = np.zeros(c.shape[:-1])
    binary = c.dtype.kind in "biu"  # integer scores passed the check: they are 0/1
    sumsq = None if binary else np.zeros(c.shape[:-1])
    for e in range(c.shape[-1]):
        part = c[..., e]
        sums += part
        if sumsq is not None:
            sumsq += np.square(part, dtype=np.float64)
    return sums, (sums if sumsq is None else sumsq)


def decomposition_ci(dec: Decomposition, nboot: int = 1000, confidence: float = 0.95,
                     rng: int | np.random.Generator | None = None,
                     chunk: int = 100) -> dict:
    """Bootstrap over instances for the means in ``dec.summary()``.

    Each replicate resamples the N instances with replacement (multinomial counts, matrix
    products in chunks of ``chunk`` replicates).

    Returns:
      ``{name: {"mean", "low", "high", "std"}}`` for each present component (``mean`` is
      the full-data mean, ``low``/``high`` the percentile interval, ``std`` the bootstrap
      standard error), plus ``"seed"`` (the seed used, None for a passed Generator),
      ``"nboot"`` and ``"n_instances"``.
    """
    return decomposition_ci_many([dec], nboot=nboot, confidence=confidence, rng=rng,
                                 chunk=chunk)[0]


def decomposition_ci_many(decs: Sequence[Decomposition], nboot: int = 1000,
                          confidence: float = 0.95,
                          rng: int | np.random.Generator | None = None,
                          chunk: int = 100) -> list[dict]:
    """``decomposition_ci`` of several decompositions (e.g. one per model size) from one
    draw of the bootstrap replicates.

    Decompositions with the same number of instances N share the resampled instances of
    each replicate: the draw, the dominant cost, is made once for all of them. With an int
    seed (or None, which draws one), result ``k`` equals
    ``decomposition_ci(decs[k], nboot, confidence, seed, chunk)`` (to float rounding of the
    matrix products): every group of equal N starts from ``default_rng(seed)``, as each
    separate call would. A passed Generator is drawn from once per group of equal N, in the
    order the groups first appear.

    Returns:
      One dict per decomposition, in order, as ``decomposition_ci`` returns it.
    """
    if nboot < 1:
        raise ValueError(f"decomposition_ci: nboot must be >= 1, got {nboot}")
    if chunk < 1:
        raise ValueError(f"decomposition_ci: chunk must be >= 1, got {chunk}")
    shared = isinstance(rng, np.random.Generator)
    gen, seed = make_rng(rng)
    names = [list(dec.components()) for dec in decs]
    columns = [np.stack([dec.components()[n] for n in ns], axis=1) for dec, ns in
               zip(decs, names)]  # (N_k, K_k) each
    out: list[dict | None] = [None] * len(decs)
    for n in dict.fromkeys(c.shape[0] for c in columns):
        members = [k for k, c in enumerate(columns) if c.shape[0] == n]
        values = np.hstack([columns[k] for k in members])  # (N, sum K)
        group_gen = gen if shared else np.random.default_rng(seed)
        draws = _bootstrap_means(values, nboot, group_gen, chunk)  # (nboot, sum K)
        low, high = percentile_interval(draws, confidence)
        start = 0
        for k in members:
            stop = start + columns[k].shape[1]
            result: dict = {
                name: {"mean": float(values[:, j].mean()), "low": float(low[j]),
                       "high": float(high[j]),
                       "std": float(draws[:, j].std(ddof=1)) if nboot > 1 else float("nan")}
                for name, j in zip(names[k], range(start, stop))
            }
            result.update(seed=seed, nboot=int(nboot), n_instances=int(n),
                          confidence=confidence)
            out[k] = result
            start = stop
    return out  # type: ignore[return-value]


# Rows of multinomial counts turned into means at a time: (block, N) float64 counts stay
# in cache (about 6 MB at N = 80k) instead of a (chunk, N) matrix in main memory.
_COUNT_BLOCK = 8


def _bootstrap_means(values: np.ndarray, nboot: int, gen: np.random.Generator,
                     chunk: int) -> np.ndarray:
    """``(nboot, K)`` means of ``values (N, K)`` over resampled instances: each replicate
    draws N instance indices with replacement; ``chunk`` replicates are drawn per call of
    the generator, and their counts are formed ``_COUNT_BLOCK`` rows at a time."""
    n = values.shape[0]
    draws = np.empty((nboot, values.shape[1]))
    for start in range(0, nboot, chunk):
        size = min(chunk, nboot - start)
        idx = gen.integers(0, n, size=(size, n))
        for row in range(0, size, _COUNT_BLOCK):
            block = idx[row:row + _COUNT_BLOCK]
            counts = _row_bincount(block, n)
            draws[start + row:start + row + len(block)] = counts @ values / n
    return draws


def _row_bincount(idx: np.ndarray, n: int) -> np.ndarray:
    """Counts ``(B, n)`` of each value in each row of ``idx (B, m)`` (float64)."""
    rows = idx.shape[0]
    flat = idx + (np.arange(rows, dtype=idx.dtype) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def variance_by_bias(dec: Decomposition, width: float = 0.025) -> pd.DataFrame:
    """Mean variance terms of instances grouped by ``bias2`` (statistics.md section 2).

    Bins of ``width`` over [0, 1]; values below 0 go into the first bin, above 1 into the
    last. Empty bins are left out.

    Returns:
      DataFrame with one row per non-empty bin: ``bin`` (the bin's lower edge), mean
      ``bias2``, mean ``var_pretrain``, mean ``var_finetune`` and ``count``.
    """
    if not 0 < width <= 1:
        raise ValueError(f"variance_by_bias: width must be in (0, 1], got {width}")
    n_bins = round(1.0 / width)
    # The small tolerance keeps values on a bin edge (0.075 / 0.025 = 2.9999...) in the
    # bin that edge opens.
    index = np.clip(np.floor(dec.bias2 / width + 1e-9), 0, n_bins - 1).astype(np.int64)
    frame = pd.DataFrame({"index": index, "bias2": dec.bias2,
                          "var_pretrain": dec.var_pretrain, "var_finetune": dec.var_finetune})
    grouped = frame.groupby("index", sort=True)
    out = grouped[["bias2", "var_pretrain", "var_finetune"]].mean()
    out["count"] = grouped.size().astype(np.int64)
    out = out.reset_index()
    out.insert(0, "bin", np.round(out.pop("index").to_numpy() * width, 10))
    return out[["bin", "bias2", "var_pretrain", "var_finetune", "count"]]


def within_across(c: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference between runs with the same and with different pretraining
    seeds (statistics.md section 3).

    Args:
      c: correctness ``(N, P, F)`` (0/1; probabilities in [0, 1] are accepted too);
        needs P >= 2, F >= 2, no NaN.

    Returns:
      ``(within, across)``: within = mean over p and fine-tuning pairs a < b of
      ``mean_i |c[i,p,a] - c[i,p,b]|``; across = mean over pretraining pairs a < b and all
      fine-tuning seeds (d, e) of ``mean_i |c[i,a,d] - c[i,b,e]|``.
    """
    arr = _within_across_iv(c)
    n, n_pre, n_fine = arr.shape
    dist = _mean_abs_distance(arr.reshape(n, n_pre * n_fine)).reshape(n_pre, n_fine,
                                                                      n_pre, n_fine)
    same = np.eye(n_pre, dtype=bool)[:, None, :, None] & ~np.eye(n_fine, dtype=bool)[None, :,
                                                                                       None, :]
    other = ~np.eye(n_pre, dtype=bool)[:, None, :, None] & np.ones((1, n_fine, 1, n_fine), bool)
    # Both sets are symmetric, so the mean over ordered pairs equals that over a < b.
    return float(dist[same].mean()), float(dist[other].mean())


def _within_across_iv(c: np.ndarray) -> np.ndarray:
    """Input checks of ``within_across``: 3-D scores in [0, 1], P >= 2, F >= 2."""
    arr = scores_array(c, "within_across: c", (3,))
    require_axis(arr, 1, 2, "within_across: c", "pretraining seeds")
    require_axis(arr, 2, 2, "within_across: c", "fine-tuning seeds")
    return arr


def _mean_abs_distance(x: np.ndarray) -> np.ndarray:
    """``(R, R)`` matrix of ``mean_i |x[i, r] - x[i, s]|`` for ``x (N, R)``."""
    n = x.shape[0]
    if np.isin(x, (0.0, 1.0)).all():
        # 0/1 scores: |a - b| = a (1 - b) + (1 - a) b, two matrix products.
        ones = x.T @ (1.0 - x)
        return (ones + ones.T) / n
    from scipy.spatial.distance import cdist

    return cdist(x.T, x.T, metric="cityblock") / n
