"""The Runs page's views of the job queue: each job's progress, a finished run's metrics,
and what the page does to the queue (bring it up to date, launch a grid's new jobs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from seedlab.runs import catalogue, queue, slurm
from seedlab.runs.executor import default_executor
from seedlab.runs.spec import JobSpec
from seedlab.runs.worker import reap
from seedlab.store import Store

# What the queue table shows, in this order: what a job is doing first (so the progress
# bar is on screen at a laptop width), where it runs, then when it was queued and ended.
QUEUE_COLUMNS = ["id", "state", "progress", "phase", "eta_s", "task", "size",
                 "pretrain_seed", "finetune_seed", "message", "executor", "slurm_id",
                 "slurm_state", "device", "attempts", "created_at", "finished_at"]

# The size label a run of an offline catalogue model gets by default: the shipped study's
# convention, L<layers>-H<hidden>, so it sorts and reads beside the miniatures there.
OFFLINE_MODEL_SIZES = {catalogue.MINILM: "L6-H384", catalogue.TINY_BERT: "L2-H032"}

EXECUTOR_LABELS = {"local": "local workers (this machine)", "slurm": "Slurm (a job array)"}


def job_rows(jobs: pd.DataFrame) -> pd.DataFrame:
    """``queue.jobs`` rows as the page lists them (``QUEUE_COLUMNS``), with ``progress``
    in [0, 1] (step / total while running, 1 when finished, else 0); the Slurm columns are
    blank for local jobs."""
    view = jobs.copy()
    view["progress"] = [
        (s / t if t else 0.0) if state == "running" else (1.0 if state == "finished" else 0.0)
        for s, t, state in zip(jobs["step"].fillna(0), jobs["total"].fillna(0), jobs["state"])
    ]
    local = view["executor"] != "slurm"
    view.loc[local, ["slurm_id", "slurm_state"]] = None
    return view[QUEUE_COLUMNS].reset_index(drop=True)


def refresh(store: Store) -> list[str]:
    """Bring the queue up to date before it is shown, as ``seedlab runs list`` does:
    re-queue the jobs of dead local workers (``worker.reap``) and, when there are Slurm
    jobs, follow them in Slurm and register the runs they finished (``slurm.sync``).
    Returns warnings in plain words (a Slurm that does not answer); never raises for it."""
    reap(store)
    frame = queue.jobs(store)
    if not (frame["executor"] == "slurm").any():
        return []
    try:
        slurm.sync(store)
    except slurm.SlurmError as exc:
        return [f"Slurm jobs not updated: {exc}"]
    return []


def default_size(model: str, fallback: str) -> str:
    """The size a form suggests for ``model``: its label for an offline catalogue name
    (``OFFLINE_MODEL_SIZES``), else ``fallback``."""
    return OFFLINE_MODEL_SIZES.get(model.strip(), fallback)


def follow_model(models: str, sizes: str | None, suggested_before: str | None,
                 fallback: str = "base") -> tuple[str, str]:
    """The Sizes field of a form after its Model(s) field reads ``models``: ``(sizes,
    suggestion)``. The suggestion is ``default_size`` of the first model line; the field
    takes it when it is empty (first drawn) or still holds the suggestion made for the
    models before (``suggested_before``), and keeps what the user wrote otherwise."""
    lines = [line.strip() for line in models.splitlines() if line.strip()]
    suggestion = default_size(lines[0], fallback) if lines else fallback
    if sizes is None or not sizes.strip() or sizes == suggested_before:
        return suggestion, suggestion
    return sizes, suggestion


@dataclass(frozen=True)
class Launch:
    """What launching did: the new job ids, the executor, and a sentence for the page."""

    job_ids: tuple[int, ...]
    executor: str
    message: str


def launch(store: Store, specs: Sequence[JobSpec], executor: str,
           options: slurm.SlurmOptions | None = None) -> Launch:
    """Queue the jobs of ``specs`` that are new (not in the store, not queued or running,
    asked of the queue now, not when the preview was drawn) and start them: ``'local'``
    starts the background worker pool, ``'slurm'`` submits them as one job array with
    ``options`` (default ``slurm.load_config(store.home)``). Raises ``SlurmError`` (nothing
    queued) when Slurm cannot take them, ``ModelSourceError`` when a model cannot be had."""
    if executor == "slurm":
        ids = slurm.submit(store, list(specs), options or slurm.load_config(store.home))
        arrays = sorted({str(queue.get(store, i).slurm_id).split("_")[0] for i in ids})
        where = f" (array {', '.join(arrays)})" if ids else ""
        return Launch(tuple(ids), executor, f"Submitted {len(ids)} job(s) to Slurm{where}.")
    if executor != "local":
        raise ValueError(f"executor {executor!r} is not one of {', '.join(queue.EXECUTORS)}")
    ids = queue.submit(store, specs)
    workers = default_executor().start(store) if ids else pd.DataFrame()
    return Launch(tuple(ids), executor,
                  f"Queued {len(ids)} job(s); {len(workers)} worker(s) running.")


def run_metrics(run_dir: str | Path) -> pd.DataFrame | None:
    """The evaluations a finished run logged (``metrics.jsonl`` in its run folder: one
    JSON object per line: phase, epoch, step, accuracy, loss), or None without the file."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return None
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line])
