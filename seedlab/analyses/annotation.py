"""The Annotate page's queue: the instances to read, from the decay between two sizes or
from the imported treatment / control groups (``seedlab.annotate.build_queue``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from seedlab import annotate
from seedlab.analyses.query import Query, Reader


@dataclass(frozen=True, kw_only=True)
class AccuracyQuery(Query):
    """``split``: the splits whose instances count (None: all)."""

    split: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split is not None:
            object.__setattr__(self, "split", tuple(str(s) for s in self.split) or None)


def instance_accuracy(reader: Reader, query: AccuracyQuery) -> pd.DataFrame:
    """Each instance's accuracy per size (``seedlab.annotate.instance_accuracy``): indexed
    by instance_id, one column per size with runs."""
    return annotate.instance_accuracy(reader, query.task, list(query.sizes),
                                      list(query.pretrain_seeds), list(query.finetune_seeds),
                                      list(query.checkpoint)
                                      if isinstance(query.checkpoint, tuple)
                                      else query.checkpoint,
                                      list(query.split) if query.split else None)


@dataclass(frozen=True, kw_only=True)
class QueueQuery(AccuracyQuery):
    """With ``small`` and ``large``: the instances whose accuracy drops by more than
    ``min_drop`` from ``small`` to ``large``; without: the imported treatment group.
    ``blind``: mix in ``control_ratio`` controls per focus instance and shuffle with
    ``seed``."""

    small: str | None = None
    large: str | None = None
    min_drop: float = 0.0
    blind: bool = False
    control_ratio: float = 1.0
    seed: int = 0


def annotation_queue(reader: Reader, query: QueueQuery,
                     accuracy: pd.DataFrame | None = None) -> annotate.Queue:
    """The queue over the task's instances (restricted to ``query.split``). ``accuracy``:
    ``instance_accuracy`` of this query when already computed. Raises what
    ``build_queue`` and ``decay_table`` raise (StoreError, KeyError)."""
    instances = reader.instances(query.task)
    pool = instances if query.split is None else instances[instances["split"].isin(query.split)]
    if query.small is None or query.large is None:
        return annotate.build_queue(pool, blind=query.blind, control_ratio=query.control_ratio,
                                    seed=query.seed)
    if accuracy is None:
        accuracy = instance_accuracy(reader, query)
    decay = annotate.decay_table(accuracy, query.small, query.large)["decay"]
    return annotate.build_queue(pool, decay=decay, min_drop=query.min_drop, blind=query.blind,
                                control_ratio=query.control_ratio, seed=query.seed)
