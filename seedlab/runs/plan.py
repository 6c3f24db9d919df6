"""Planners: which jobs a grid or the Overview's missing cells still need, asked of the
store and the queue. ``spec`` holds only the value types these plan with."""

from __future__ import annotations

import json
from dataclasses import replace

from seedlab.runs import queue
from seedlab.runs.spec import GridSpec, JobSpec, parse_grid
from seedlab.store import Store


def missing_jobs(store: Store, grid: GridSpec | dict) -> list[JobSpec]:
    """The jobs of ``grid`` whose predictions are not in the store yet.

    ``grid`` may be a ``GridSpec`` or a spec object (as in a spec file). Jobs already
    queued or running are not skipped here; ``queue.submit`` skips those."""
    if isinstance(grid, dict):
        grid = parse_grid(grid)
    have = store.run_keys(grid.task)
    return [job for job in grid.expand() if job.key not in have]


def relaunch_jobs(store: Store, task: str,
                  keys: list[tuple[str, str, int]]) -> tuple[list[JobSpec], list[str]]:
    """Jobs that fill the missing ``(size, pretrain_seed, finetune_seed)`` cells of a task's
    coverage grid, following the recipe of runs seedlab already made.

    A missing cell is filled from a run of the same task, size and pretraining seed that a
    seedlab job produced: its job spec (model, data, hyperparameters) with the missing
    fine-tuning seed. Cells without such a run (imported predictions carry no recipe) are
    returned as plain-words reasons instead. Returns ``(jobs, reasons)``.
    """
    runs = store.runs(task=task)
    recipes: dict[tuple[str, str], JobSpec] = {}
    for run in runs.itertuples(index=False):
        if run.source != "seedlab-run" or (run.size, run.pretrain_seed) in recipes:
            continue
        job_id = json.loads(run.provenance or "{}").get("job_id")
        if job_id is None:
            continue
        try:
            recipes[(run.size, run.pretrain_seed)] = queue.get(store, int(job_id)).spec
        except KeyError:
            continue
    jobs, reasons = [], []
    for size, pretrain_seed, finetune_seed in keys:
        recipe = recipes.get((size, str(pretrain_seed)))
        if recipe is None:
            reasons.append(f"{size} / pretraining seed {pretrain_seed} / fine-tuning seed"
                           f" {finetune_seed}: no seedlab-made run of this size and pretraining"
                           " seed to copy the model and hyperparameters from (start it from"
                           " the Runs page)")
            continue
        jobs.append(replace(recipe, finetune_seed=int(finetune_seed)))
    return jobs, reasons
