"""The seed data map: dataset cartography (Swayamdipta et al. 2020) with seeds and
checkpoints in place of training epochs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import scores_array

REGIONS = ("easy", "ambiguous", "hard")


def seed_data_map(p_correct: np.ndarray, correct: np.ndarray | None = None, *,
                  variability_threshold: float = 0.2,
                  confidence_threshold: float = 0.5) -> pd.DataFrame:
    """Per-instance confidence, variability, correctness and region.

    Args:
      p_correct: gold-label probability ``(N, ...)`` over runs (``(N, P, F)`` or
        ``(N, P, F, E)``: every trailing entry is one run/checkpoint); no NaN.
      correct: 0/1 correctness of the same shape; None: ``p_correct > 0.5``.
      variability_threshold, confidence_threshold: region boundaries.

    Returns:
      DataFrame with N rows: ``confidence`` (mean of p_correct), ``variability`` (its
      standard deviation, ddof = 0 as in cartography), ``correctness`` (mean
      correctness), ``region``: ``ambiguous`` where variability >= variability_threshold,
      else ``easy`` where confidence >= confidence_threshold, else ``hard``.
    """
    prob = scores_array(p_correct, "seed_data_map: p_correct", (1, 2, 3, 4))
    flat = prob.reshape(prob.shape[0], -1)
    if correct is None:
        hits = flat > 0.5
    else:
        corr = scores_array(correct, "seed_data_map: correct", (1, 2, 3, 4))
        if corr.shape != prob.shape:
            raise ValueError(f"seed_data_map: correct has shape {corr.shape}, p_correct"
                             f" {prob.shape}")
        hits = corr.reshape(corr.shape[0], -1)
    confidence = flat.mean(axis=1)
    variability = flat.std(axis=1)
    region = np.where(variability >= variability_threshold, "ambiguous",
                      np.where(confidence >= confidence_threshold, "easy", "hard"))
    return pd.DataFrame({"confidence": confidence, "variability": variability,
                         "correctness": hits.mean(axis=1), "region": region})
