"""The Bias and variance page: Zhong et al.'s decomposition of each instance's loss.

``decomposition(reader, DecompositionQuery(...))`` decomposes every size of the query
(``stats.decompose``), with bootstrap CIs over instances that share one draw
(``stats.decomposition_ci_many``; each equals ``stats.decomposition_ci`` of that size
alone with the same seed), the variance binned by bias (``stats.variance_by_bias``) and
the per-instance terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seedlab import stats
from seedlab.analyses.query import NotEnoughData, Query, Reader, require_complete

SCORES = ("0/1 loss", "squared loss")  # correctness, or the gold-label probability
# What a reader calls each term, in the order the tables show them: the parts, then the
# loss they add up to (loss = bias² + the variances, Zhong et al. 2021).
TERM_LABELS = {"bias2": "bias²", "var_pretrain": "pretraining variance",
               "var_finetune": "fine-tuning variance", "var_checkpoint": "checkpoint variance",
               "loss": "expected loss"}


@dataclass(frozen=True)
class DecompositionQuery(Query):
    """``score``: one of ``SCORES``. A tuple ``checkpoint`` adds checkpoint variance (4-D).
    ``nboot`` bootstrap replicates over instances, drawn with ``seed``."""

    score: str = "0/1 loss"
    nboot: int = 500
    seed: int = 0


@dataclass(frozen=True)
class SizeDecomposition:
    """One size: the ``stats.Decomposition``, its CIs (``{term: {mean, low, high, std}}``)
    and ``instance_ids (N,)``."""

    decomposition: stats.Decomposition
    ci: dict
    instance_ids: np.ndarray


@dataclass(frozen=True)
class Decomposition:
    """``sizes``: the decomposed sizes, in query order. ``notes``: why each other size could
    not be decomposed. ``summary``: one row per (size, term) with the CI fields (mean,
    low, high, std). ``means``: sizes x terms, the mean over instances. ``by_bias``:
    ``stats.variance_by_bias`` rows with a ``size`` column. ``per_instance``: size,
    instance_id and every term, one row per (size, instance)."""

    sizes: dict[str, SizeDecomposition]
    notes: tuple[str, ...]
    summary: pd.DataFrame = field(repr=False)
    means: pd.DataFrame = field(repr=False)
    by_bias: pd.DataFrame = field(repr=False)
    per_instance: pd.DataFrame = field(repr=False)

    @property
    def table(self) -> pd.DataFrame:
        """The summary as a reader's table: one row per (size, term), sizes in query
        order and terms in ``TERM_LABELS`` order, with plain names: size, term, mean
        (over instances), 95% CI low, 95% CI high (the bootstrap percentile interval over
        instances), bootstrap std."""
        if self.summary.empty:
            return pd.DataFrame(columns=["size", "term", "mean", "95% CI low", "95% CI high",
                                         "bootstrap std"])
        order = {term: k for k, term in enumerate(TERM_LABELS)}
        rank = {size: k for k, size in enumerate(self.sizes)}
        rows = self.summary.assign(
            _size=self.summary["size"].map(rank), _term=self.summary["term"].map(order)
        ).sort_values(["_size", "_term"])
        return pd.DataFrame({
            "size": rows["size"].to_numpy(),
            "term": rows["term"].map(TERM_LABELS).to_numpy(),
            "mean": rows["mean"].to_numpy(float), "95% CI low": rows["low"].to_numpy(float),
            "95% CI high": rows["high"].to_numpy(float),
            "bootstrap std": rows["std"].to_numpy(float)})

    @property
    def instance_table(self) -> pd.DataFrame:
        """``per_instance`` with plain headers in ``TERM_LABELS`` order: size,
        instance_id, bias², pretraining variance, fine-tuning variance, (checkpoint
        variance,) expected loss."""
        if self.per_instance.empty:
            return self.per_instance
        terms = [t for t in TERM_LABELS if t in self.per_instance.columns]
        return self.per_instance[["size", "instance_id", *terms]].rename(columns=TERM_LABELS)

    @property
    def n_instances(self) -> int:
        """N of the first decomposed size (0 when none)."""
        first = next(iter(self.sizes.values()), None)
        return 0 if first is None else len(first.instance_ids)


def decompose_size(reader: Reader, query: DecompositionQuery, size: str
                   ) -> tuple[stats.Decomposition, np.ndarray]:
    """``(stats.Decomposition, instance_ids (N,))`` of one size; raises NotEnoughData."""
    arrays = require_complete(query.arrays(reader, size), "The decomposition")
    if len(query.pretrain_seeds) < 2 or len(query.finetune_seeds) < 2:
        raise NotEnoughData("The decomposition needs at least 2 pretraining seeds and 2"
                            " fine-tuning seeds.")
    x = arrays.correct if query.score == "0/1 loss" else arrays.p_correct
    if isinstance(query.checkpoint, tuple) and x.shape[-1] < 2:
        raise NotEnoughData("Checkpoint variance needs at least 2 checkpoints.")
    return stats.decompose(x), arrays.instance_ids


def decomposition(reader: Reader, query: DecompositionQuery) -> Decomposition:
    """Decompose every size of ``query`` (see the module docstring). Sizes that cannot be
    decomposed are left out, with a note each."""
    done: dict[str, tuple[stats.Decomposition, np.ndarray]] = {}
    notes: list[str] = []
    for size in query.sizes:
        try:
            done[size] = decompose_size(reader, query, size)
        except NotEnoughData as exc:
            notes.append(str(exc))
    cis = stats.decomposition_ci_many([dec for dec, _ in done.values()], nboot=query.nboot,
                                      rng=query.seed)
    sizes = {size: SizeDecomposition(dec, ci, ids)
             for (size, (dec, ids)), ci in zip(done.items(), cis)}
    summary_rows, by_bias, per_instance = [], [], []
    for size, part in sizes.items():
        for term, values in part.ci.items():
            if isinstance(values, dict):
                summary_rows.append({"size": size, "term": term, **values})
        binned = stats.variance_by_bias(part.decomposition)
        binned.insert(0, "size", size)
        by_bias.append(binned)
        per_instance.append(pd.DataFrame({"size": size, "instance_id": part.instance_ids,
                                          **part.decomposition.components()}))
    summary = pd.DataFrame(summary_rows)
    means = (summary.pivot(index="size", columns="term", values="mean").reindex(list(sizes))
             if len(summary) else pd.DataFrame())
    return Decomposition(
        sizes=sizes, notes=tuple(notes), summary=summary, means=means,
        by_bias=pd.concat(by_bias) if by_bias else pd.DataFrame(),
        per_instance=(pd.concat(per_instance, ignore_index=True) if per_instance
                      else pd.DataFrame()))
