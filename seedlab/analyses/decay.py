"""The Decaying instances page: instances a larger model gets wrong more often.

``decaying`` compares two sizes on the instances both predict (last checkpoints): the
lower bounds of Zhong et al. (``stats.decay_bounds``) and the Benjamini-Hochberg bound
(``stats.bh_details``). ``decay_browser`` gives its instance browser: each instance's
decay, p-value, accuracy per size, label-issue score (``label_issue_scores``) and the
annotators' majority verdict, with the instance fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seedlab import stats
from seedlab.align import align_instances
from seedlab.analyses.query import (
    NotEnoughData,
    Query,
    Reader,
    require_complete,
    with_instance_fields,
)
from seedlab.annotate import instance_accuracy

BROWSER_FIELDS = ("split", "group", "text_a", "text_b", "label")
NOT_ANNOTATED = "not annotated"


@dataclass(frozen=True, kw_only=True)
class DecayQuery(Query):
    """``small`` and ``large``: the two sizes compared (``large`` the bigger model). The
    query's ``sizes`` are those the browser shows accuracies for; the checkpoint is each
    run's last."""

    small: str
    large: str


@dataclass(frozen=True)
class Decaying:
    """``result``: ``stats.DecayResult`` (``diff`` per instance, the bounds, the CDFs);
    ``bh``: ``stats.bh_details`` (p-values, bound, q, the curve); ``instance_ids (N,)``:
    the instances both sizes predict, in the smaller size's order."""

    result: stats.DecayResult
    bh: dict
    instance_ids: np.ndarray

    @property
    def bh_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """``(qs, discoveries)``: the FDR levels and the BH discoveries at each, as arrays."""
        return np.asarray(self.bh["qs"]), np.asarray(self.bh["discoveries"])


def decaying(reader: Reader, query: DecayQuery) -> Decaying:
    """Decay from ``query.small`` to ``query.large``; raises NotEnoughData when a run is
    missing or there are fewer than 2 pretraining seeds."""
    small = require_complete(query.arrays(reader, query.small, "last"), "The decay analysis")
    large = require_complete(query.arrays(reader, query.large, "last"), "The decay analysis")
    if len(small.pretrain_seeds) < 2:
        raise NotEnoughData("The decay analysis needs at least 2 pretraining seeds.")
    aligned = align_instances([small, large])
    small, large = aligned.arrays
    result = stats.decay_bounds(small.correct, large.correct)
    bh = stats.bh_details(small.p_correct, large.p_correct)
    return Decaying(result, bh, aligned.instance_ids)


def label_issue_scores(reader: Reader, query: Query) -> pd.DataFrame:
    """``stats.label_issues`` over every selected run of every selected size (last
    checkpoints), on the first complete size's instances: sizes with a missing run, a
    missing prediction, or without all of those instances are left out. Empty (columns
    instance_id, score) when no size is complete or a gold label is unknown."""
    complete = []
    for size in query.sizes:
        arrays = query.arrays(reader, size, "last")
        if not (arrays.missing or np.isnan(arrays.p_correct).any()):
            complete.append(arrays)
    if complete:
        wanted = set(complete[0].instance_ids)
        complete = [a for a in complete if wanted <= set(a.instance_ids)]
    if not complete or (complete[0].labels < 0).any():
        return pd.DataFrame(columns=["instance_id", "score"])
    aligned = align_instances(complete)
    n = len(aligned)
    p_list = [a.p_correct.reshape(n, -1) for a in aligned.arrays]
    pred_list = [a.pred.reshape(n, -1) for a in aligned.arrays]
    # Class indices fit int8 for any task with fewer than 128 classes: an eighth of the
    # memory of int64 for the (N, runs) matrix.
    top = max(int(p.max()) for p in pred_list)
    pred = np.empty((n, sum(p.shape[1] for p in pred_list)),
                    dtype=np.int8 if top < 2**7 else np.int64)
    np.concatenate(pred_list, axis=1, out=pred)
    return stats.label_issues(np.concatenate(p_list, axis=1), pred, aligned.labels,
                              instance_ids=list(aligned.instance_ids),
                              annotations=reader.annotations(query.task, current=True),
                              label_list=complete[0].label_list)


def majority_verdict(annotations: pd.DataFrame) -> pd.Series:
    """The most common current verdict per instance_id (ties: the first in sort order)."""
    if not len(annotations):
        return pd.Series(dtype=str)
    return annotations.groupby("instance_id")["verdict"].agg(
        lambda v: v.mode().iloc[0] if len(v) else "")


@dataclass(frozen=True)
class DecayBrowser:
    """``rows``: one row per instance of ``Decaying.instance_ids``: instance_id, decay,
    bh p-value, the instance fields, accuracy per size (a list of floats in the query's
    size order), label-issue score (when computable) and verdict (the majority current
    verdict, or 'not annotated'). ``splits``, ``groups``, ``verdicts``: the values the
    filters offer (sorted; empty when the instances have no such field)."""

    rows: pd.DataFrame = field(repr=False)
    splits: list
    groups: list
    verdicts: list

    def view(self, splits: Sequence[str], groups: Sequence[str], verdicts: Sequence[str],
             only_decaying: bool) -> pd.DataFrame:
        """The rows in the chosen splits, groups and verdicts (only those with decay < 0
        when ``only_decaying``), most decaying first."""
        view = self.rows
        if self.splits:
            view = view[view["split"].isin(splits)]
        if self.groups:
            view = view[view["group"].isin(groups)]
        view = view[view["verdict"].isin(verdicts)]
        if only_decaying:
            view = view[view["decay"] < 0]
        return view.sort_values("decay")


def decay_browser(reader: Reader, query: DecayQuery, decay: Decaying) -> DecayBrowser:
    """The instance browser of ``decay`` (``decaying(reader, query)``)."""
    ids = decay.instance_ids
    per_size = instance_accuracy(reader, query.task, list(query.sizes),
                                 list(query.pretrain_seeds), list(query.finetune_seeds), "last")
    acc = {size: (per_size[size].reindex(ids).to_numpy() if size in per_size
                  else np.full(len(ids), np.nan)) for size in query.sizes}
    browser = pd.DataFrame({"instance_id": ids, "decay": decay.result.diff,
                            "bh p-value": decay.bh["pvalues"]})
    with_instance_fields(browser, reader.instances(query.task), BROWSER_FIELDS, ids=ids)
    browser["accuracy per size"] = np.column_stack(
        [acc[s] for s in query.sizes]).astype(float).tolist()  # one list of floats per instance
    issues = label_issue_scores(reader, query)
    if len(issues):
        browser["label-issue score"] = issues.set_index("instance_id")["score"].reindex(
            ids).to_numpy()
    verdict = majority_verdict(reader.annotations(query.task, current=True))
    browser["verdict"] = verdict.reindex(ids).fillna(NOT_ANNOTATED).to_numpy()
    splits = sorted(browser["split"].dropna().unique()) if "split" in browser else []
    groups = sorted(browser["group"].dropna().unique()) if "group" in browser else []
    return DecayBrowser(browser, splits, groups, sorted(browser["verdict"].unique()))
