"""Align the dense arrays of several sizes (or checkpoints) on the instances they share.

``Store.arrays`` gives one size's ``SeedArrays`` over the instances that size predicts,
in instance-table order, with the requested pretraining and fine-tuning seeds on the
second and third axes (a seed without a run is NaN / -1 there, and listed in
``missing``). Comparing sizes needs the same instances on the first axis: that is
:func:`align_instances`, the one place where it is done. :func:`usable_runs` says which
(pretraining seed, fine-tuning seed) runs exist and predict every aligned instance.

The analyses (``seedlab.analyses``) and ``seedlab.annotate.instance_accuracy`` build on
these; none of them aligns instances by itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seedlab.store import SeedArrays


@dataclass(frozen=True)
class Aligned:
    """Arrays of several sizes on the same instances.

    ``instance_ids``: ``(N,)`` the instances every input predicts, in the first input's
    order. ``labels``: ``(N,)`` their gold label indices. ``arrays``: the inputs, in input
    order, each restricted to ``instance_ids`` (``correct`` etc. ``(N, P, F[, E])``).
    ``reordered``: False when every input already had exactly these instances in this
    order (then ``arrays`` are the inputs themselves, not copies).
    """

    instance_ids: np.ndarray
    labels: np.ndarray
    arrays: tuple[SeedArrays, ...]
    reordered: bool

    def __len__(self) -> int:
        return len(self.instance_ids)


def align_instances(per_size: Sequence[SeedArrays]) -> Aligned:
    """Restrict ``per_size`` (one ``SeedArrays`` per size or configuration, at least one)
    to the instances all of them predict, in the first one's order.

    No copy is made when every input already has the first one's instances in the same
    order (the common case: one instance table, every size predicting all of it).
    """
    if not per_size:
        raise ValueError("align_instances: no arrays to align")
    first = per_size[0]
    ids = first.instance_ids
    if all(np.array_equal(a.instance_ids, ids) for a in per_size[1:]):
        return Aligned(ids, first.labels, tuple(per_size), reordered=False)
    keep = np.ones(len(ids), dtype=bool)
    for arrays in per_size[1:]:
        keep &= pd.Index(ids).isin(arrays.instance_ids)
    ids = np.asarray(ids[keep], dtype=object)
    aligned = tuple(_restrict(arrays, ids) for arrays in per_size)
    return Aligned(ids, aligned[0].labels, aligned, reordered=True)


def _restrict(arrays: SeedArrays, ids: np.ndarray) -> SeedArrays:
    """``arrays`` on ``ids`` (each of which it predicts), in that order."""
    index = pd.Index(arrays.instance_ids).get_indexer(ids)
    return dataclasses.replace(arrays, instance_ids=ids, labels=arrays.labels[index],
                               correct=arrays.correct[index], p_correct=arrays.p_correct[index],
                               pred=arrays.pred[index])


def usable_runs(arrays: SeedArrays) -> np.ndarray:
    """``(P * F,)`` bool, run-major (pretraining seed, then fine-tuning seed): which runs
    exist and predict every instance of ``arrays`` (one checkpoint: ``pred`` is
    ``(N, P, F)``)."""
    missing = set(arrays.missing)
    present = np.array([(p, f) not in missing for p in arrays.pretrain_seeds
                        for f in arrays.finetune_seeds], dtype=bool)
    return ~(arrays.pred < 0).any(axis=0).ravel() & present
