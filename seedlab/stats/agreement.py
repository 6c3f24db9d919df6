"""Instance-level agreement between runs: share of equal predictions, Cohen's kappa, the
same-seed / different-seed summaries and the flip rate between two sizes.

Predictions are class indices ``>= 0``; a negative value (a missing run, ``-1`` in
``SeedArrays.pred``) raises ValueError.
"""

from __future__ import annotations

import numpy as np


def _check_preds(preds: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(preds)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (runs, instances) array, got {arr.shape}")
    if arr.dtype.kind == "f":
        if np.isnan(arr).any() or (arr != np.round(arr)).any():
            raise ValueError(f"{name}: expected integer class indices (no NaN)")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected integer class indices, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        rows = np.unique(np.nonzero(arr < 0)[0])
        raise ValueError(
            f"{name}: negative class index (a missing run) in rows {rows[:10].tolist()};"
            " drop incomplete runs first"
        )
    return arr  # integer or bool as given: comparing int8 class indices needs no widening


def flatten_runs(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn ``(N, P, F)`` per-seed arrays into run rows.

    Returns:
      ``(runs (R, N), pretrain_index (R,), finetune_index (R,))`` with ``R = P * F``, runs
      ordered pretraining seed major (``r = p * F + f``).
    """
    arr = np.asarray(pred)
    if arr.ndim != 3:
        raise ValueError(f"flatten_runs: expected (N, P, F), got shape {arr.shape}")
    n, n_pre, n_fine = arr.shape
    runs = arr.reshape(n, n_pre * n_fine).T
    pre, fine = np.divmod(np.arange(n_pre * n_fine), n_fine)
    return runs, pre, fine


def _class_counts(preds: np.ndarray, n_classes: int) -> list[np.ndarray]:
    return [(preds == k).astype(np.float32) for k in range(n_classes)]


def agreement_matrix(preds: np.ndarray) -> np.ndarray:
    """Share of instances on which each pair of runs predicts the same label.

    Args:
      preds: predicted class indices ``(R, N)``.

    Returns:
      ``(R, R)`` float64 matrix, symmetric, ones on the diagonal; computed as a sum over
      classes of one-hot matrix products (no loop over pairs).
    """
    arr = _check_preds(preds, "agreement_matrix: preds")
    n = arr.shape[1]
    if n == 0:
        raise ValueError("agreement_matrix: preds has no instances")
    n_classes = int(arr.max()) + 1
    if n_classes <= 2:
        # Two classes: with G = X X^T over the one-hot column of class 1 and r its row
        # sums, agreements on class 0 are n - r_i - r_j + G_ij; one product instead of two.
        ones = (arr == 1).astype(np.float32)
        gram = (ones @ ones.T).astype(np.float64)  # exact: integer counts below 2^24
        rows = ones.sum(axis=1, dtype=np.float64)
        return (n - rows[:, None] - rows[None, :] + 2.0 * gram) / n
    equal = np.zeros((arr.shape[0], arr.shape[0]), dtype=np.float64)
    for onehot in _class_counts(arr, n_classes):
        equal += (onehot @ onehot.T).astype(np.float64)
    return equal / n


def kappa_matrix(preds: np.ndarray, agreement: np.ndarray | None = None) -> np.ndarray:
    """Cohen's kappa between each pair of runs.

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the agreement and
    ``p_e = sum_k share_r(k) share_s(k)``. Where ``p_e == 1`` (both runs predict one and
    the same class everywhere) kappa is undefined and set to NaN. Shares are counts over
    N, so ``1 - p_e`` is either 0 or at least ``1 / (K N)`` for K classes: NaN is set only
    where ``1 - p_e < 1 / (2 K N)``, which float rounding cannot reach, so two nearly
    constant runs keep their kappa (e.g. about 0.667 at N = 1e6 for runs that predict
    class 1 on 1 and on 2 of the instances, otherwise 0).

    Args:
      preds: predicted class indices ``(R, N)``.
      agreement: ``agreement_matrix(preds)`` when already computed (saves the products).

    Returns:
      ``(R, R)`` float64 matrix, symmetric.
    """
    arr = _check_preds(preds, "kappa_matrix: preds")
    observed = agreement_matrix(arr) if agreement is None else np.asarray(agreement)
    if observed.shape != (arr.shape[0], arr.shape[0]):
        raise ValueError(f"kappa_matrix: agreement must be ({arr.shape[0]}, {arr.shape[0]}),"
                         f" got {observed.shape}")
    n_classes = int(arr.max()) + 1
    shares = np.stack([(arr == k).mean(axis=1) for k in range(n_classes)], axis=1)  # (R, K)
    expected = shares @ shares.T
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1.0 - expected)
    kappa[1.0 - expected < 0.5 / (n_classes * arr.shape[1])] = np.nan
    return kappa


def agreement_summary(matrix: np.ndarray, pretrain_seeds: np.ndarray,
                      finetune_seeds: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Mean agreement (or kappa) over pairs of runs that share a pretraining seed and over
    pairs with different pretraining seeds.

    Args:
      matrix: ``(R, R)`` from ``agreement_matrix`` or ``kappa_matrix``.
      pretrain_seeds: ``(R,)`` pretraining seed of each run.
      finetune_seeds: ``(R,)`` fine-tuning seed of each run; when given, same-seed pairs
        must also differ in fine-tuning seed.

    Returns:
      ``{"same_seed": {"mean", "std", "pairs"}, "different_seed": {...}}`` over the pairs
      r < s (NaN entries, from undefined kappa, are left out and not counted).
    """
    mat = np.asarray(matrix, dtype=np.float64)
    pre = np.asarray(pretrain_seeds)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or pre.shape != (mat.shape[0],):
        raise ValueError(f"agreement_summary: expected (R, R) and (R,), got {mat.shape} and"
                         f" {pre.shape}")
    upper = np.triu(np.ones(mat.shape, dtype=bool), k=1)
    same = pre[:, None] == pre[None, :]
    if finetune_seeds is not None:
        fine = np.asarray(finetune_seeds)
        same_pairs = same & (fine[:, None] != fine[None, :])
    else:
        same_pairs = same
    out = {}
    for name, sel in (("same_seed", upper & same_pairs), ("different_seed", upper & ~same)):
        values = mat[sel]
        values = values[~np.isnan(values)]
        out[name] = {
            "mean": float(values.mean()) if values.size else float("nan"),
            "std": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
            "pairs": int(values.size),
        }
    return out


def flip_rate(preds_small: np.ndarray, preds_large: np.ndarray) -> np.ndarray:
    """Share of instances whose predicted label changes between two sizes, for each run.

    Args:
      preds_small, preds_large: ``(R, N)`` predictions; row r of both is the same
        (pretraining seed, fine-tuning seed).

    Returns:
      ``(R,)`` flip rate of each seed pair (average it for one number).
    """
    small = _check_preds(preds_small, "flip_rate: preds_small")
    large = _check_preds(preds_large, "flip_rate: preds_large")
    if small.shape != large.shape:
        raise ValueError(f"flip_rate: shapes differ: {small.shape} vs {large.shape}")
    return (small != large).mean(axis=1)
