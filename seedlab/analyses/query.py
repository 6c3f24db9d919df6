"""What every analysis takes: a store reader and a frozen query; and what they share.

A *reader* is a ``seedlab.store.Store`` or anything with the same read methods (the
dashboard passes its cached ``seedlab.ui.data.Data``). A *query* is a frozen, hashable
value naming the data (task, sizes, seeds, checkpoint) and the analysis's options, so a
cache can key on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from seedlab.store import SeedArrays

Checkpoint = str | float | tuple[float, ...]


class NotEnoughData(Exception):
    """The selection cannot support an analysis; the message says what is missing."""


class Reader(Protocol):
    """The read methods of ``Store`` the analyses use."""

    def arrays(self, task: str, size: str, pretrain_seeds: Sequence[Any] | None = ...,
               finetune_seeds: Sequence[int] | None = ..., checkpoint: Any = ...,
               split: Any = ...) -> SeedArrays: ...

    def instances(self, task: str | None = ...) -> pd.DataFrame: ...

    def annotations(self, task: str | None = ..., current: bool = ...) -> pd.DataFrame: ...

    def run_accuracy(self, task: str, size: Any = ..., checkpoint: Any = ...
                     ) -> pd.DataFrame: ...

    def label_list(self, task: str) -> list[str]: ...

    def masks(self, setting: str | None = ..., task: str | None = ...) -> pd.DataFrame: ...

    def mask_arrays(self, setting: str, task: str, component: str = ...,
                    seeds: Sequence[int] | None = ...) -> tuple[np.ndarray, list[int]]: ...

    def evaluations(self) -> pd.DataFrame: ...


def checkpoint_key(checkpoint: Any) -> Checkpoint:
    """``checkpoint`` as a hashable value: ``'last'``, ``'all'``, a float, or a tuple of
    floats for a list of checkpoints (4-D arrays)."""
    if isinstance(checkpoint, (list, tuple)):
        return tuple(float(c) for c in checkpoint)
    return checkpoint


def checkpoint_arg(checkpoint: Checkpoint) -> Any:
    """The checkpoint as ``Store.arrays`` takes it (a list for several)."""
    return list(checkpoint) if isinstance(checkpoint, tuple) else checkpoint


@dataclass(frozen=True)
class Query:
    """The data an analysis reads: one task, sizes in order (smallest first), the
    pretraining seeds (labels) and fine-tuning seeds (integers) of the runs, and the
    checkpoint (``'last'``: each run's last; a value; or a tuple of values for 4-D
    arrays). Lists given are stored as tuples."""

    task: str
    sizes: tuple[str, ...] = ()
    pretrain_seeds: tuple[str, ...] = ()
    finetune_seeds: tuple[int, ...] = ()
    checkpoint: Checkpoint = "last"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(str(s) for s in self.sizes))
        object.__setattr__(self, "pretrain_seeds", tuple(str(p) for p in self.pretrain_seeds))
        object.__setattr__(self, "finetune_seeds", tuple(int(f) for f in self.finetune_seeds))
        object.__setattr__(self, "checkpoint", checkpoint_key(self.checkpoint))

    def arrays(self, reader: Reader, size: str, checkpoint: Any = None) -> SeedArrays:
        """``reader.arrays`` of one size with this query's seeds (and checkpoint, unless
        another is given)."""
        ckpt = self.checkpoint if checkpoint is None else checkpoint_key(checkpoint)
        return reader.arrays(self.task, size, list(self.pretrain_seeds),
                             list(self.finetune_seeds), checkpoint=checkpoint_arg(ckpt))


def require_complete(arrays: SeedArrays, what: str) -> SeedArrays:
    """``arrays`` when every selected run exists and predicts every instance; else
    NotEnoughData naming the missing runs (``what``: the analysis, for the message)."""
    if arrays.missing:
        shown = ", ".join(f"(p{p}, f{f})" for p, f in arrays.missing[:6])
        raise NotEnoughData(
            f"{what} needs every selected (pretraining seed, fine-tuning seed) run of size"
            f" {arrays.size}; missing: {shown}{' ...' if len(arrays.missing) > 6 else ''}."
            " Deselect those seeds in the sidebar.")
    if np.isnan(arrays.correct).any():
        raise NotEnoughData(f"Some runs of size {arrays.size} lack predictions for some"
                            " instances; restrict the selection to complete runs.")
    return arrays


def with_instance_fields(frame: pd.DataFrame, instances: pd.DataFrame,
                         columns: Sequence[str], ids: Sequence[Any] | None = None
                         ) -> pd.DataFrame:
    """``frame`` with the instance-table ``columns`` (those ``instances`` has) appended,
    looked up by ``ids`` (default: ``frame['instance_id']``). ``instances``: the task's
    instance table (``Store.instances``). Changes ``frame`` in place and returns it."""
    table = instances.set_index("instance_id")
    keys = frame["instance_id"] if ids is None else ids
    for column in columns:
        if column in table:
            frame[column] = table[column].reindex(keys).to_numpy()
    return frame
