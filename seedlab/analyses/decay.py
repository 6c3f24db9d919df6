"""The Decaying instances page: instances a larger model gets wrong more often.

``decaying`` compares two sizes on the instances both predict, at the query's checkpoint
(each run's last, or one checkpoint value): the lower bounds of Zhong et al.
(``stats.decay_bounds``) and the Benjamini-Hochberg bound (``stats.bh_details``).
``decay_browser`` gives its instance browser: each instance's decay, BH-adjusted and raw
Fisher p-values, label-issue score (``label_issue_scores``), the annotators' majority
verdict, accuracy per size, and the instance fields.
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
    checkpoint_arg,
    require_complete,
    with_instance_fields,
)
from seedlab.annotate import instance_accuracy
from seedlab.store import SeedArrays

BROWSER_FIELDS = ("label", "split", "group", "text_a", "text_b")
TEXT_FIELDS = ("text_a", "text_b")
NOT_ANNOTATED = "not annotated"
ADJUSTED, RAW = "BH-adjusted p-value", "raw Fisher p-value"


@dataclass(frozen=True, kw_only=True)
class DecayQuery(Query):
    """``small`` and ``large``: the two sizes compared (``large`` the bigger model). The
    query's ``sizes`` are those the browser shows accuracies for; its checkpoint is one
    (``'last'``: each run's last, or a value every run of both sizes has)."""

    small: str
    large: str


@dataclass(frozen=True)
class Decaying:
    """``result``: ``stats.DecayResult`` (``diff`` per instance, the bounds, the CDFs);
    ``bh``: ``stats.bh_details`` (p-values, bound, q, the curve) on each pretraining seed's
    fine-tuning ensemble, decided by the argmax of its mean class probabilities
    (``bh_input`` says ``'class probabilities'``, or ``'gold-label probabilities'`` for a
    2-class task whose runs keep no class probabilities); ``instance_ids (N,)``: the
    instances both sizes predict, in the smaller size's order. ``baseline_seeds``: the
    pretraining seeds (labels) of the random baseline's two halves, of equal size;
    ``left_out_seed``: the seed left out of the comparison for an odd number of seeds."""

    result: stats.DecayResult
    bh: dict
    instance_ids: np.ndarray
    baseline_seeds: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    left_out_seed: str | None = None
    bh_input: str = "class probabilities"

    @property
    def bh_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """``(qs, discoveries)``: the FDR levels and the BH discoveries at each, as arrays."""
        return np.asarray(self.bh["qs"]), np.asarray(self.bh["discoveries"])


def _arrays_at_checkpoint(reader: Reader, query: DecayQuery, size: str):
    """One size's arrays at the query's (single) checkpoint, every selected run complete."""
    if isinstance(query.checkpoint, tuple):
        raise NotEnoughData("The decay analysis compares one checkpoint of each run: choose"
                            " 'last' or one checkpoint.")
    arrays = query.arrays(reader, size)
    if (not arrays.missing and query.checkpoint != "last"
            and np.isnan(arrays.correct).all(axis=0).any()):
        raise NotEnoughData(
            f"Some runs of size {size} have no predictions at checkpoint"
            f" {float(query.checkpoint):g}: choose 'last' (each run's last checkpoint) or a"
            " checkpoint every run of both sizes has in the sidebar.")
    return require_complete(arrays, "The decay analysis")


def decaying(reader: Reader, query: DecayQuery) -> Decaying:
    """Decay from ``query.small`` to ``query.large`` at the query's checkpoint; raises
    NotEnoughData when a run is missing (or lacks that checkpoint) or there are fewer than
    2 pretraining seeds."""
    small = _arrays_at_checkpoint(reader, query, query.small)
    large = _arrays_at_checkpoint(reader, query, query.large)
    if len(small.pretrain_seeds) < 2:
        raise NotEnoughData("The decay analysis needs at least 2 pretraining seeds.")
    aligned = align_instances([small, large])
    ids = aligned.instance_ids
    probs = [_class_probs(reader, query, arrays, ids) for arrays in (small, large)]
    small, large = aligned.arrays
    result = stats.decay_bounds(small.correct, large.correct)
    n_classes = len(small.label_list)
    if (aligned.labels < 0).any():
        raise NotEnoughData("The BH comparison needs every instance's gold label in the"
                            f" task's label list ({', '.join(small.label_list)}); some are"
                            " not.")
    if all(p is not None for p in probs):
        bh = stats.bh_details(probs[0], probs[1], labels=aligned.labels, n_classes=n_classes)
        bh_input = "class probabilities"
    elif n_classes <= 2:
        bh = stats.bh_details(small.p_correct, large.p_correct, n_classes=n_classes)
        bh_input = "gold-label probabilities"
    else:
        raise NotEnoughData(
            f"The BH comparison of a {n_classes}-class task decides each seed ensemble by"
            " the argmax of its mean class probabilities, and the runs of"
            f" {small.size} or {large.size} do not keep class probabilities (the gold-label"
            " probability alone cannot tell the argmax for more than 2 classes).")
    seeds = small.pretrain_seeds
    left = result.baseline_left_out
    return Decaying(result, bh, ids,
                    (tuple(seeds[i] for i in result.baseline_seeds_a),
                     tuple(seeds[i] for i in result.baseline_seeds_b)),
                    None if left is None else seeds[left], bh_input)


def _class_probs(reader: Reader, query: DecayQuery, arrays: SeedArrays, ids: np.ndarray
                 ) -> np.ndarray | None:
    """``(N, P, F, L)`` class probabilities of ``arrays``' runs at the query's checkpoint
    on ``ids`` (in that order), or None where the store keeps none."""
    store = getattr(reader, "store", reader)  # the dashboard's cached Data wraps a Store
    class_probs = getattr(store, "class_probs", None)
    if class_probs is None:
        return None
    probs = class_probs(query.task, arrays.size, arrays.pretrain_seeds, arrays.finetune_seeds,
                        checkpoint_arg(query.checkpoint))
    if probs is None or len(probs) != len(arrays.instance_ids) or np.isnan(probs).any():
        return None
    if len(ids) == len(arrays.instance_ids) and np.array_equal(ids, arrays.instance_ids):
        return probs  # already in the aligned order (the usual case): no copy
    return probs[pd.Index(arrays.instance_ids).get_indexer(ids)]


def label_issue_scores(reader: Reader, query: Query) -> pd.DataFrame:
    """``stats.label_issues`` over every selected run of every selected size (at the
    query's checkpoint, one), on the first complete size's instances: sizes with a missing
    run, a missing prediction, or without all of those instances are left out. Empty
    (columns instance_id, score) when no size is complete or a gold label is unknown."""
    complete = []
    for size in query.sizes:
        arrays = query.arrays(reader, size)
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


def blank_texts(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns (text_a, text_b) as strings, '' where an instance
    has none (a single-sentence task's text_b is None in the instance table, which a table
    would show as "None"). Changes ``frame`` in place and returns it."""
    for column in TEXT_FIELDS:
        if column in frame:
            frame[column] = frame[column].astype("string").fillna("").to_numpy(dtype=object)
    return frame


def majority_verdict(annotations: pd.DataFrame) -> pd.Series:
    """The most common current verdict per instance_id (ties: the first in sort order)."""
    if not len(annotations):
        return pd.Series(dtype=str)
    return annotations.groupby("instance_id")["verdict"].agg(
        lambda v: v.mode().iloc[0] if len(v) else "")


@dataclass(frozen=True)
class DecayBrowser:
    """``rows``: one row per instance of ``Decaying.instance_ids``, in this column order:
    instance_id, decay, BH-adjusted p-value (``stats.bh_adjust`` of the raw ones, what
    the BH bound thresholds at q), raw Fisher p-value, label-issue score (when
    computable), verdict (the majority current verdict, or 'not annotated'), accuracy per
    size (a list of floats in the query's size order), then the instance fields (label,
    split, group, text_a, text_b; a text is '' where the instance has none).
    ``splits``, ``groups``, ``verdicts``: the values the filters offer (sorted; empty
    when the instances have no such field)."""

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
                                 list(query.pretrain_seeds), list(query.finetune_seeds),
                                 query.checkpoint)
    acc = {size: (per_size[size].reindex(ids).to_numpy() if size in per_size
                  else np.full(len(ids), np.nan)) for size in query.sizes}
    raw = np.asarray(decay.bh["pvalues"], dtype=float)
    browser = pd.DataFrame({"instance_id": ids, "decay": decay.result.diff,
                            ADJUSTED: stats.bh_adjust(raw), RAW: raw})
    issues = label_issue_scores(reader, query)
    if len(issues):
        browser["label-issue score"] = issues.set_index("instance_id")["score"].reindex(
            ids).to_numpy()
    verdict = majority_verdict(reader.annotations(query.task, current=True))
    browser["verdict"] = verdict.reindex(ids).fillna(NOT_ANNOTATED).to_numpy()
    browser["accuracy per size"] = np.column_stack(
        [acc[s] for s in query.sizes]).astype(float).tolist()  # one list of floats per instance
    blank_texts(with_instance_fields(browser, reader.instances(query.task), BROWSER_FIELDS,
                                     ids=ids))
    splits = sorted(browser["split"].dropna().unique()) if "split" in browser else []
    groups = sorted(browser["group"].dropna().unique()) if "group" in browser else []
    return DecayBrowser(browser, splits, groups, sorted(browser["verdict"].unique()))
