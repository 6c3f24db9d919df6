"""A label-issue view of instances (cleanlab's self-confidence idea, no new dependency):
how much probability the runs give the gold label, which class they favour, and whether
an annotator disagreed with the gold label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ._common import scores_array

DISAGREE = {"wrong"}
AGREE = {"correct", "reasonable"}


def _verdicts(annotations: pd.DataFrame | Mapping | None, ids: list[str]) -> list:
    """Per instance: True (an annotator called the gold label wrong), False (verdicts, all
    correct or reasonable), or None (no verdict, or only 'unsure')."""
    by_id: dict[str, list[str]] = {}
    if annotations is None:
        pass
    elif isinstance(annotations, pd.DataFrame):
        for column in ("instance_id", "verdict"):
            if column not in annotations.columns:
                raise ValueError(f"label_issues: annotations frame lacks column {column!r}")
        for iid, verdict in zip(annotations["instance_id"], annotations["verdict"]):
            if isinstance(verdict, str):
                by_id.setdefault(str(iid), []).append(verdict)
    elif isinstance(annotations, Mapping):
        for iid, verdict in annotations.items():
            items = [verdict] if isinstance(verdict, str) or verdict is None else verdict
            by_id.setdefault(str(iid), []).extend(v for v in items if isinstance(v, str))
    else:
        raise ValueError("label_issues: annotations must be a DataFrame (instance_id,"
                         " verdict) or a mapping instance_id -> verdict")
    out = []
    for iid in ids:
        verdicts = {v.strip().lower() for v in by_id.get(iid, [])}
        if verdicts & DISAGREE:
            out.append(True)
        elif verdicts & AGREE:
            out.append(False)
        else:
            out.append(None)
    return out


def label_issues(p_correct: np.ndarray, pred: np.ndarray, labels: np.ndarray,
                 instance_ids: Sequence[str] | None = None,
                 annotations: pd.DataFrame | Mapping | None = None,
                 label_list: Sequence[str] | None = None) -> pd.DataFrame:
    """Label-issue view: one row per instance, most suspicious first.

    Args:
      p_correct: gold-label probability ``(N, ...)`` over all runs (and checkpoints).
      pred: predicted class indices, same shape (no negative values: drop missing runs).
      labels: ``(N,)`` gold class indices.
      instance_ids: ``(N,)`` ids (default ``"0" .. "N-1"``).
      annotations: a frame with ``instance_id`` and ``verdict`` (e.g.
        ``Store.annotations(current=True)``), or a mapping instance_id -> verdict(s).
        Verdicts: correct / reasonable / wrong / unsure, any case.
      label_list: class names, to add ``label_name`` and ``favoured_name``.

    Returns:
      DataFrame with ``instance_id``, ``label``, ``self_confidence`` (mean gold-label
      probability), ``favoured`` (the class predicted by most runs; ties go to the lower
      index), ``favoured_share``, ``favours_other`` (favoured != label),
      ``annotator_disagrees`` (True / False / None), ``score = 1 - self_confidence``
      (higher: more likely a label issue); sorted by score, highest first.
    """
    prob = scores_array(p_correct, "label_issues: p_correct", (1, 2, 3, 4))
    n = prob.shape[0]
    pr = np.asarray(pred)
    if pr.shape != prob.shape:
        raise ValueError(f"label_issues: pred has shape {pr.shape}, p_correct {prob.shape}")
    if pr.dtype.kind == "f" and np.isnan(pr).any():
        raise ValueError("label_issues: pred contains NaN")
    pr = pr.reshape(n, -1)
    if pr.dtype.kind not in "iu":  # float or bool class indices; integers are compared as is
        pr = pr.astype(np.int64)
    if pr.size and pr.min() < 0:
        raise ValueError("label_issues: pred has negative class indices (missing runs)")
    gold = np.asarray(labels).astype(np.int64)
    if gold.shape != (n,):
        raise ValueError(f"label_issues: labels must have shape ({n},), got {gold.shape}")
    ids = [str(i) for i in (range(n) if instance_ids is None else instance_ids)]
    if len(ids) != n:
        raise ValueError(f"label_issues: instance_ids has {len(ids)} entries, expected {n}")
    n_classes = int(max(pr.max(initial=0), gold.max(initial=0))) + 1
    votes = np.stack([(pr == k).sum(axis=1) for k in range(n_classes)], axis=1)  # (N, K)
    favoured = votes.argmax(axis=1)
    confidence = prob.reshape(n, -1).mean(axis=1)
    frame = pd.DataFrame({
        "instance_id": ids,
        "label": gold,
        "self_confidence": confidence,
        "favoured": favoured,
        "favoured_share": votes.max(axis=1) / pr.shape[1],
        "favours_other": favoured != gold,
        "annotator_disagrees": pd.array(_verdicts(annotations, ids), dtype="boolean"),
        "score": 1.0 - confidence,
    })
    if label_list is not None:
        names = list(label_list)
        frame.insert(2, "label_name", [names[k] if 0 <= k < len(names) else None for k in gold])
        frame["favoured_name"] = [names[k] if k < len(names) else None for k in favoured]
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
