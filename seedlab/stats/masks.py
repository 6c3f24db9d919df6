"""Pruning-mask overlap (Prasanna et al. 2020): survival, stable components, Jaccard and
its random baseline, task-by-task overlap and Fleiss' kappa across seeds.

A mask is a 0/1 array over components (``(12, 12)`` heads or ``(12,)`` MLPs for
BERT-base; any shape works). A stack of masks has the seed (or task) axes first. Values
other than 0/1, or NaN, raise ValueError.
"""

from __future__ import annotations

import numpy as np

from ._common import make_rng


def _as_masks(masks: np.ndarray, name: str, lead: int = 1) -> np.ndarray:
    """``masks`` as float64 0/1 with ``lead`` leading axes flattened components after."""
    arr = np.asarray(masks, dtype=np.float64)
    if arr.ndim < lead + 1 and not (lead == 1 and arr.ndim == 1):
        raise ValueError(f"{name}: expected {lead} leading axes and component axes, got"
                         f" shape {arr.shape}")
    if 0 in arr.shape[:lead]:
        what = "mask" if lead == 1 else "task and one seed"
        raise ValueError(f"{name}: needs at least one {what}, got an empty stack of shape"
                         f" {arr.shape}")
    if np.isnan(arr).any() or not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"{name}: masks must hold only 0 and 1 (kept / pruned)")
    return arr.reshape(arr.shape[:lead] + (-1,))


def survival(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Survival frequency of each component across seeds.

    Args:
      masks: ``(S, ...)`` 0/1 masks of S seeds.

    Returns:
      ``(mean, std)``, both in the mask shape ``(...)``; std has ddof = 1 (NaN for S = 1).
    """
    arr = np.asarray(masks, dtype=np.float64)
    _as_masks(arr, "survival: masks")
    std = arr.std(axis=0, ddof=1) if arr.shape[0] > 1 else np.full(arr.shape[1:], np.nan)
    return arr.mean(axis=0), std


def task_count(masks: np.ndarray) -> np.ndarray:
    """Mean over seeds of the number of tasks that keep each component.

    Args:
      masks: ``(T, S, ...)`` masks of T tasks and S seeds (seed s is the same seed in
        every task).

    Returns:
      ``(...)`` float array in the mask shape.
    """
    arr = np.asarray(masks, dtype=np.float64)
    _as_masks(arr, "task_count: masks", lead=2)
    return arr.sum(axis=0).mean(axis=0)


def stable_components(masks: np.ndarray, *, min_tasks: float | None = None) -> np.ndarray:
    """Components kept in more than ``min_tasks`` tasks, on average over seeds.

    Args:
      masks: ``(T, S, ...)``.
      min_tasks: the threshold on ``task_count`` (strictly above it); default ``T / 2``,
        "more than half of the tasks". The lottery paper's notebook used more than 5 of its
        9 tasks: ``min_tasks=5`` gives its 60 stable heads on the heads_mlps masks, where
        the default (above 4.5) gives 83.

    Returns:
      ``(...)`` bool: ``task_count(masks) > min_tasks``.
    """
    arr = np.asarray(masks)
    counts = task_count(arr)
    n_tasks = arr.shape[0]
    threshold = n_tasks / 2 if min_tasks is None else float(min_tasks)
    if not 0 <= threshold <= n_tasks:
        raise ValueError(f"stable_components: min_tasks must lie in [0, {n_tasks}] (the"
                         f" number of tasks), got {min_tasks}")
    return counts > threshold


def mask_jaccard(masks: np.ndarray) -> float:
    """Jaccard index across a set of masks.

    Args:
      masks: ``(S, ...)``.

    Returns:
      ``|kept by all| / |kept by any|``; 0 when no component is kept by any mask.
    """
    arr = _as_masks(masks, "mask_jaccard: masks")
    union = int(arr.max(axis=0).sum())
    if union == 0:
        return 0.0
    return float(arr.min(axis=0).sum() / union)


def pairwise_jaccard(masks: np.ndarray) -> np.ndarray:
    """Jaccard index of every pair of masks.

    Args:
      masks: ``(S, ...)``.

    Returns:
      ``(S, S)`` symmetric; 0 where neither mask keeps anything (so an empty mask has 0 on
      the diagonal, any other mask 1).
    """
    arr = _as_masks(masks, "pairwise_jaccard: masks")
    inter = arr @ arr.T
    kept = arr.sum(axis=1)
    union = kept[:, None] + kept[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def random_jaccard(masks: np.ndarray, *, draws: int = 10_000,
                   rng: int | np.random.Generator | None = 0) -> dict:
    """Expected Jaccard index of random masks with the same kept counts.

    For two masks the expectation is exact (hypergeometric intersection); for more it is
    simulated with ``draws`` random mask sets (each mask a uniformly random subset of its
    kept count).

    Args:
      masks: ``(S, ...)``, S >= 2.

    Returns:
      ``{"mean", "std" (of the Jaccard under randomness), "exact", "draws", "seed"}``.
    """
    arr = _as_masks(masks, "random_jaccard: masks")
    n_masks, n_comp = arr.shape
    if n_masks < 2:
        raise ValueError("random_jaccard: needs at least 2 masks")
    kept = arr.sum(axis=1).astype(np.int64)
    if n_masks == 2:
        from scipy import stats as sps  # imported on use: scipy.stats takes about 1 s

        k1, k2 = int(kept[0]), int(kept[1])
        inter = np.arange(max(0, k1 + k2 - n_comp), min(k1, k2) + 1)
        pmf = sps.hypergeom.pmf(inter, n_comp, k1, k2)
        union = k1 + k2 - inter
        jac = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
        mean = float((pmf * jac).sum())
        std = float(np.sqrt(max((pmf * (jac - mean) ** 2).sum(), 0.0)))
        return {"mean": mean, "std": std, "exact": True, "draws": 0, "seed": None}
    gen, seed = make_rng(rng)
    values = np.empty(draws)
    chunk = max(1, 200_000 // (n_masks * n_comp))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        ranks = gen.random((size, n_masks, n_comp)).argsort(axis=2).argsort(axis=2)
        random_masks = ranks < kept[None, :, None]
        union = random_masks.any(axis=1).sum(axis=1)
        inter = random_masks.all(axis=1).sum(axis=1)
        values[start:start + size] = np.divide(inter, union, out=np.zeros(size),
                                               where=union > 0)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "exact": False,
            "draws": int(draws), "seed": seed}


def task_overlap(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number of components kept in both of two tasks, for the same seed.

    Args:
      masks: ``(T, S, ...)`` masks of T tasks and S seeds.

    Returns:
      ``(mean, std)``, each ``(T, T)``, over seeds (std with ddof = 1, NaN for S = 1); the
      diagonal holds each task's kept count.
    """
    arr = _as_masks(masks, "task_overlap: masks", lead=2)
    both = np.einsum("tsc,usc->stu", arr, arr)  # (S, T, T)
    std = both.std(axis=0, ddof=1) if arr.shape[1] > 1 else np.full(both.shape[1:], np.nan)
    return both.mean(axis=0), std


def fleiss_kappa_counts(counts: np.ndarray) -> float:
    """Fleiss' kappa from a ``(subjects, categories)`` table of rater counts (every subject
    rated by the same number of raters). NaN where chance agreement is 1.

    Chance agreement ``p_e = sum_k p_k^2`` has ``p_k = count_k / (subjects x raters)``,
    so ``1 - p_e`` is either exactly 0 or at least ``1 / (K x subjects x raters)`` for K
    categories; kappa is undefined (NaN) only below half that bound, never merely because
    ``p_e`` is close to 1 (a nearly unanimous table at a million subjects is defined)."""
    table = np.asarray(counts, dtype=np.float64)
    n_raters = table.sum(axis=1)
    if table.ndim != 2 or not np.allclose(n_raters, n_raters[0]) or n_raters[0] < 2:
        raise ValueError("fleiss_kappa: every subject needs the same number (>= 2) of raters")
    m = n_raters[0]
    p_cat = table.sum(axis=0) / table.sum()
    p_subject = ((table * table).sum(axis=1) - m) / (m * (m - 1))
    p_bar = p_subject.mean()
    p_e = float((p_cat * p_cat).sum())
    if 1.0 - p_e < 0.5 / (table.shape[1] * table.sum()):
        return float("nan")
    return float((p_bar - p_e) / (1 - p_e))


def fleiss_kappa(masks: np.ndarray) -> float:
    """Fleiss' kappa of the seeds' kept/pruned decisions over components.

    Args:
      masks: ``(S, ...)``, seeds are the raters, components the subjects.

    Returns:
      kappa; NaN when every seed keeps (or prunes) every component.
    """
    arr = _as_masks(masks, "fleiss_kappa: masks")
    kept = arr.sum(axis=0)
    return fleiss_kappa_counts(np.stack([kept, arr.shape[0] - kept], axis=1))
