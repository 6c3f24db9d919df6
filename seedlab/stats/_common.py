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


_ONE_BITS = np.array(1.0).view(np.uint64)[()]  # the bits of 1.0 as an unsigned integer


def scores_array(x: object, name: str, ndims: tuple[int, ...], *,
                 keep_integers: bool = False) -> np.ndarray:
    """``x`` checked as scores: 0/1 correctness or probabilities in [0, 1].

    The shape must have one of ``ndims`` dimensions; NaN (a missing run) and values
    outside [0, 1] raise ValueError saying what was found. The check is one ``max`` over
    the array's bits read as unsigned integers: for float64, every value in [+0, 1] has
    bits at most those of 1.0, while negative values (sign bit set), values above 1 and
    NaN all read larger. Only then are the exact minimum and maximum taken, to tell -0.0
    (allowed) from real errors and to describe them.

    Returns:
      float64 array, or with ``keep_integers`` an integer or bool input as it is (its
      values are then in {0, 1}).
    """
    arr = np.asarray(x)
    if not (keep_integers and arr.dtype.kind in "biu"):
        arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim not in ndims:
        dims = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name}: expected a {dims} array, got shape {arr.shape}")
    if arr.size == 0 or arr.dtype.kind == "b":
        return arr
    bits = arr.view(np.uint64 if arr.dtype == np.float64 else f"u{arr.dtype.itemsize}")
    if bits.max() <= (_ONE_BITS if arr.dtype == np.float64 else 1):
        return arr
    low, high = arr.min(), arr.max()
    if np.isnan(low) or np.isnan(high):
        as_float_array(arr, name, ndims)  # raises, naming the first NaN
    if low < 0 or high > 1:
        raise ValueError(f"{name}: scores must be 0/1 correctness or probabilities in"
                         f" [0, 1]; {describe_out_of_range(arr)}")
    return arr


def describe_out_of_range(arr: np.ndarray) -> str:
    """What lies outside [0, 1] in ``arr``: the values (up to five), how many cells, the
    first index, and a guess at the cause. Only called on the failure path."""
    bad = (arr < 0) | (arr > 1)
    values, counts = np.unique(arr[bad], return_counts=True)
    shown = ", ".join(f"{v:.10g} at {c} cell{'s' if c > 1 else ''}"
                      for v, c in zip(values[:5].tolist(), counts[:5].tolist()))
    if values.size > 5:
        shown += f" and {values.size - 5} more distinct values"
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    if values.size == 1 and values[0] == -1:
        hint = "the store's code for a missing cell? select complete seeds first"
    elif np.all(values == np.round(values)) and values.min() >= 0:
        hint = "class ids passed instead of correctness or gold-label probabilities?"
    else:
        hint = "expected 0/1 correctness or gold-label probabilities"
    return f"found values {shown} (first at index {first}): {hint}"


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
