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
    NotEnoughData naming the missing runs and what to deselect (``what``: the analysis,
    for the message)."""
    if arrays.missing:
        advice = missing_runs_advice(arrays.size, arrays.pretrain_seeds,
                                     arrays.finetune_seeds, arrays.missing)
        raise NotEnoughData(f"{what} needs every selected (pretraining seed, fine-tuning"
                            f" seed) run of each size; {advice}")
    if np.isnan(arrays.correct).any():
        raise NotEnoughData(f"Some runs of size {arrays.size} lack predictions for some"
                            " instances; restrict the selection to complete runs.")
    return arrays


def missing_runs_advice(size: str, pretrain_seeds: Sequence[Any],
                        finetune_seeds: Sequence[Any],
                        missing: Sequence[tuple[Any, Any]]) -> str:
    """What to deselect when ``size`` lacks the ``missing`` (pretraining seed, fine-tuning
    seed) runs of the selected seeds: the size itself when it has runs for fewer than half
    of the selected pairs, or for none of the seeds that a complete grid could keep (a
    user's run of one new size with one seed); else the pretraining or fine-tuning seeds
    whose runs are missing, whichever loses fewer runs. One sentence ending in a period."""
    pretrain = [str(p) for p in pretrain_seeds]
    finetune = [int(f) for f in finetune_seeds]
    missing = [(str(p), int(f)) for p, f in missing]
    total = len(pretrain) * len(finetune)
    gone = set(missing)
    present = [(p, f) for p in pretrain for f in finetune if (p, f) not in gone]
    bad_p = [p for p in pretrain if any(m[0] == p for m in missing)]
    bad_f = [f for f in finetune if any(m[1] == f for m in missing)]
    if not present:
        return f"size {size} has no runs for the selected seeds: deselect size {size}."
    options = []  # (runs of each size given up, advice)
    for kind, bad, selected, other in (("pretraining", bad_p, pretrain, finetune),
                                       ("fine-tuning", bad_f, finetune, pretrain)):
        if len(bad) < len(selected):
            seeds = f"seed{'s' * (len(bad) > 1)} {_listed(bad)}"
            options.append((len(bad) * len(other), f"deselect {kind} {seeds} (or size {size})"))
    if 2 * len(present) < total or not options:
        pairs = ", ".join(f"(p{p}, f{f})" for p, f in present[:6])
        return (f"size {size} has runs for only {len(present)} of the {total} selected seed"
                f" pairs, {pairs}{' ...' if len(present) > 6 else ''}: deselect size"
                f" {size}.")
    shown = ", ".join(f"(p{p}, f{f})" for p, f in missing[:6])
    return (f"size {size} lacks {len(missing)} of the {total} selected runs ({shown}"
            f"{' ...' if len(missing) > 6 else ''}): {min(options)[1]}.")


def _listed(values: Sequence[Any]) -> str:
    values = [str(v) for v in values]
    return ", ".join(values[:8]) + (f" ... ({len(values)})" if len(values) > 8 else "")


@dataclass(frozen=True)
class CompleteGrid:
    """A selection whose every (size, pretraining seed, fine-tuning seed) run exists:
    what the sidebar opens on."""

    sizes: tuple[str, ...]
    pretrain_seeds: tuple[str, ...]
    finetune_seeds: tuple[int, ...]


def complete_grid(runs: pd.DataFrame, sizes: Sequence[str], pretrain_seeds: Sequence[str],
                  finetune_seeds: Sequence[int], study: dict | None = None) -> CompleteGrid:
    """The default selection of a task: a grid of sizes x seeds with every run.

    ``runs``: the task's runs (``size``, ``pretrain_seed``, ``finetune_seed``); ``sizes``
    and the seeds: all of the task's, in display order. ``study``: the published study's
    manifest when it is of this task (``recipe.sizes``, ``seeds.pretrain``,
    ``seeds.finetune``): its sizes and seeds, where the store has them. Otherwise the seeds
    of the size with the most runs (keeping the pretraining seeds that have every one of its
    fine-tuning seeds) and the sizes that have all of those runs, so that a small run of a
    new size or seed (a user's test) does not join the default selection. Falls back to
    everything when no grid is complete."""
    have = {(str(r.size), str(r.pretrain_seed), int(r.finetune_seed))
            for r in runs.itertuples()}
    sizes, pretrain, finetune = list(sizes), [str(p) for p in pretrain_seeds], \
        [int(f) for f in finetune_seeds]
    if study:
        recipe, seeds = study.get("recipe") or {}, study.get("seeds") or {}
        p = [x for x in pretrain if x in {str(v) for v in seeds.get("pretrain") or []}]
        f = [x for x in finetune if x in {_int(v) for v in seeds.get("finetune") or []}]
        s = [x for x in sizes if x in {str(v) for v in recipe.get("sizes") or []}]
        s = [x for x in s if all((x, a, b) in have for a in p for b in f)]
        if s and p and f:
            return CompleteGrid(tuple(s), tuple(p), tuple(f))
    counts = {size: sum(1 for h in have if h[0] == size) for size in sizes}
    if not counts or not any(counts.values()):
        return CompleteGrid(tuple(sizes), tuple(pretrain), tuple(finetune))
    reference = max(sizes, key=lambda size: counts[size])  # the first of the largest
    f = [x for x in finetune if any(h[0] == reference and h[2] == x for h in have)]
    p = [x for x in pretrain if all((reference, x, b) in have for b in f)]
    if not p:
        p = [x for x in pretrain if any(h[0] == reference and h[1] == x for h in have)]
        f = [x for x in f if all((reference, a, x) in have for a in p)]
    s = [x for x in sizes if all((x, a, b) in have for a in p for b in f)]
    if not (s and p and f):
        return CompleteGrid(tuple(sizes), tuple(pretrain), tuple(finetune))
    return CompleteGrid(tuple(s), tuple(p), tuple(f))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


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
