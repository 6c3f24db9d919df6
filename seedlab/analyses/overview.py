"""The Overview page: run coverage of a task's grid and accuracy per size across seeds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from seedlab.analyses.query import Query, Reader

# The store's own size order (``Store.sizes``): smallest first where known, the others
# after them.
from seedlab.store import ordered_sizes, seed_sort_key


def sorted_seeds(seeds: Sequence) -> list[str]:
    """Pretraining seed labels in natural order (numbers numerically)."""
    return sorted((str(s) for s in seeds), key=seed_sort_key)


def task_table(info: dict) -> list[dict]:
    """One row per task of ``Store.info()``: task, sizes (comma separated), runs,
    instances, predictions, masks, annotations, simulated."""
    return [{"task": name, "sizes": ", ".join(t["sizes"]), "runs": t["runs"],
             "instances": t["instances"], "predictions": t["predictions"], "masks": t["masks"],
             "annotations": t["annotations"], "simulated": t["simulated"]}
            for name, t in info["tasks"].items()]


def coverage(runs: pd.DataFrame, jobs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Status of every (size, pretrain_seed, finetune_seed) in the grid a task's runs span.

    ``runs``: ``Store.runs`` rows of one task. ``jobs`` (optional): rows with ``size``,
    ``pretrain_seed``, ``finetune_seed`` and ``status`` (queued, running, failed) from the
    job queue; a finished run wins over a job. Returns size, pretrain_seed, finetune_seed,
    status (present, missing, queued, running, failed).
    """
    cols = ["size", "pretrain_seed", "finetune_seed", "status"]
    keys = runs[["size", "pretrain_seed", "finetune_seed"]].copy() if len(runs) else \
        pd.DataFrame(columns=cols[:3])
    if jobs is not None and len(jobs):
        keys = pd.concat([keys, jobs[["size", "pretrain_seed", "finetune_seed"]]])
    if keys.empty:
        return pd.DataFrame(columns=cols)
    sizes = ordered_sizes(keys["size"].astype(str).unique().tolist())
    p_seeds = sorted_seeds(keys["pretrain_seed"].unique().tolist())
    f_seeds = sorted(int(s) for s in keys["finetune_seed"].unique())
    grid = pd.MultiIndex.from_product([sizes, p_seeds, f_seeds], names=cols[:3])
    status = pd.Series("missing", index=grid, dtype=object)
    if jobs is not None and len(jobs):
        for row in jobs.itertuples(index=False):
            key = (str(row.size), str(row.pretrain_seed), int(row.finetune_seed))
            if key in status.index and str(row.status) in ("queued", "running", "failed"):
                status[key] = str(row.status)
    for row in runs.itertuples(index=False):
        status[(str(row.size), str(row.pretrain_seed), int(row.finetune_seed))] = "present"
    return status.rename("status").reset_index()


@dataclass(frozen=True)
class Coverage:
    """``grid``: one row per cell (``coverage``); ``counts``: cells per status, most
    common first."""

    grid: pd.DataFrame = field(repr=False)

    @property
    def counts(self) -> pd.Series:
        return self.grid["status"].value_counts()

    @property
    def missing(self) -> list[tuple[str, str, int]]:
        """The (size, pretrain_seed, finetune_seed) cells without a run or job."""
        rows = self.grid[self.grid["status"] == "missing"]
        return list(rows[["size", "pretrain_seed", "finetune_seed"]].itertuples(index=False,
                                                                                name=None))


def run_coverage(runs: pd.DataFrame, jobs: pd.DataFrame | None = None) -> Coverage:
    """``coverage`` of a task's runs and unfinished jobs."""
    return Coverage(coverage(runs, jobs))


def count_range(counts: Sequence[int]) -> str:
    """``2,000`` when every count is the same, else ``200 to 2,000`` (smallest to
    largest)."""
    low, high = int(min(counts)), int(max(counts))
    return f"{low:,}" if low == high else f"{low:,} to {high:,}"


def accuracy_by_size(accuracy: pd.DataFrame, sizes: Sequence[str]) -> pd.DataFrame:
    """Mean, std (ddof 1), min, max and N (runs) of run accuracy per size, in ``sizes``
    order, and the instances each run was scored on (``count_range`` of ``n``).
    ``accuracy``: one row per run with ``size``, ``accuracy`` and ``n``."""
    grouped = accuracy.groupby("size")["accuracy"]
    table = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1),
                          "min": grouped.min(), "max": grouped.max(),
                          "N runs": grouped.size(),
                          "instances per run": accuracy.groupby("size")["n"].agg(
                              lambda n: count_range(n.tolist()))})
    table = table.reindex([s for s in sizes if s in table.index])
    table.index.name = "size"
    return table.reset_index()


@dataclass(frozen=True)
class RunAccuracy:
    """``runs``: accuracy of each selected run (``Store.run_accuracy`` rows); ``table``:
    ``accuracy_by_size``; ``sizes``: the query's sizes with runs, in order;
    ``n_instances``: the most instances a run scored."""

    runs: pd.DataFrame = field(repr=False)
    table: pd.DataFrame = field(repr=False)
    sizes: list[str]

    @property
    def n_instances(self) -> int:
        return int(self.runs["n"].max())

    def n_text(self, task_instances: int | None = None) -> str:
        """How many instances each run was scored on, for a caption: ``N = 2,000
        instances per run``; ``N = 200 of 2,000 instances per run`` when the runs scored
        fewer than the task's ``task_instances``; ``N = 200 to 2,000 ...`` when runs
        differ."""
        counts = self.runs["n"].astype(int).tolist()
        text = f"N = {count_range(counts)}"
        if task_instances is not None and min(counts) < int(task_instances):
            text += f" of {int(task_instances):,}"
        return text + " instances per run"


def run_accuracy(reader: Reader, query: Query) -> RunAccuracy | None:
    """Accuracy per run and per size of the query's runs, or None when no run matches."""
    acc = reader.run_accuracy(query.task, list(query.sizes),
                              list(query.checkpoint) if isinstance(query.checkpoint, tuple)
                              else query.checkpoint)
    acc = acc[acc["pretrain_seed"].astype(str).isin(query.pretrain_seeds)
              & acc["finetune_seed"].astype(int).isin(query.finetune_seeds)]
    if acc.empty:
        return None
    present = set(acc["size"])
    return RunAccuracy(acc, accuracy_by_size(acc, query.sizes),
                       [s for s in query.sizes if s in present])
