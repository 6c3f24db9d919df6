"""The Runs page's views of the job queue: each job's progress, a finished run's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

HIDDEN = ["spec", "heartbeat", "worker", "run_dir", "run_id"]  # internal columns


def job_rows(jobs: pd.DataFrame) -> pd.DataFrame:
    """``queue.jobs`` rows as the page lists them: without the internal columns, with
    ``progress`` in [0, 1] (step / total while running, 1 when finished, else 0)."""
    view = jobs.drop(columns=HIDDEN)
    view["progress"] = [
        (s / t if t else 0.0) if state == "running" else (1.0 if state == "finished" else 0.0)
        for s, t, state in zip(jobs["step"].fillna(0), jobs["total"].fillna(0), jobs["state"])
    ]
    return view


def run_metrics(run_dir: str | Path) -> pd.DataFrame | None:
    """The evaluations a finished run logged (``metrics.jsonl`` in its run folder: one
    JSON object per line: phase, epoch, step, accuracy, loss), or None without the file."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return None
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line])
