"""Orderings and digests shared by the store and the cube cache (and the pages' sizes).

Small pure functions with no dependency on the store, so that every layer may import them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute

# Sizes the seed studies used, smallest first; anything else sorts after by name.
KNOWN_SIZE_ORDER = ["tiny", "mini", "small", "medium", "base", "large"]


def digest(*parts: bytes | str) -> str:
    """SHA-256 hex digest of ``parts``, each followed by a NUL (so ``("ab", "c")`` and
    ``("a", "bc")`` differ)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def seed_sort_key(label: Any) -> tuple:
    """Natural order for seed labels: numbers numerically, then text."""
    text = str(label)
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def ordered_sizes(sizes: Iterable[str]) -> list[str]:
    """Distinct model sizes, the known names (``KNOWN_SIZE_ORDER``) first in that order,
    then the others in natural order (numbers numerically)."""
    def key(s: str) -> tuple:
        lowered = s.lower()
        for i, name in enumerate(KNOWN_SIZE_ORDER):
            if lowered == name:
                return (0, i, 0.0, s)
        return (1, 0, *seed_sort_key(s)[1:])
    return sorted(set(sizes), key=key)


def positions(values: pa.ChunkedArray, keys: pa.Array) -> np.ndarray:
    """The position of each value in ``keys`` (-1 where absent), ``(len(values),)`` int64."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    found = pa.compute.index_in(values.cast(keys.type), value_set=keys)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
