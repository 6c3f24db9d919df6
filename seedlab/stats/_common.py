"""Helpers shared by the ``seedlab.stats`` modules: input checks and random generators."""

from __future__ import annotations

import numpy as np


def as_float_array(x: object, name: str, ndims: tuple[int, ...]) -> np.ndarray:
    """``x`` as a float64 array with one of ``ndims`` dimensions and no NaN, else ValueError."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in ndims:
        dims = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name}: expected a {dims} array, got shape {arr.shape}")
    if np.isnan(arr).any():
        bad = np.argwhere(np.isnan(arr))[0]
        raise ValueError(
            f"{name}: contains NaN (missing runs?), first at index {tuple(int(i) for i in bad)};"
            " select complete seeds (SeedArrays.complete) or drop the incomplete ones"
        )
    return arr


def require_axis(arr: np.ndarray, axis: int, minimum: int, name: str, what: str) -> None:
    """Raise ValueError if ``arr.shape[axis] < minimum``."""
    if arr.shape[axis] < minimum:
        raise ValueError(
            f"{name}: needs at least {minimum} {what} (axis {axis}), got shape {arr.shape}"
        )


def make_rng(rng: int | np.random.Generator | None) -> tuple[np.random.Generator, int | None]:
    """A Generator and the seed to show beside the result.

    ``rng`` may be an int seed (returned as is), a Generator (seed unknown: None) or None
    (a fresh 32-bit seed drawn from the operating system, returned so the result can be
    reproduced by passing it back).
    """
    if isinstance(rng, np.random.Generator):
        return rng, None
    if rng is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
        return np.random.default_rng(seed), seed
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng)), int(rng)
    raise TypeError(f"rng: expected an int seed, a numpy Generator or None, got {type(rng)}")


def percentile_interval(draws: np.ndarray, confidence: float, axis: int = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval at level ``confidence`` of ``draws`` along ``axis``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a level in (0, 1), got {confidence}")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha], axis=axis)
    return low, high
