"""The entry point a worker calls: ``run_job`` runs one queued job by its kind.

Kinds: ``finetune`` (sequence classification, ``runs.finetune``) and ``pretrain``
(masked-LM pretraining from scratch, ``runs.pretrain``). What the kinds share (errors,
progress, logs, atomic folders) is in ``runs.jobs``; device and precision in
``runs.device``. The names the worker, the executors, the CLI and the Runs page use are
re-exported here, so that they need to know only this module.
"""

from __future__ import annotations

from seedlab.runs.finetune import (
    MASK_SETTING_PREFIX,
    final_dir,
    mask_setting,
    register,
    run_finetune_job,
)
from seedlab.runs.jobs import (
    JobCancelled,
    JobFailed,
    Log,
    ProgressFn,
    RunResult,
    log_path,
    runs_root,
)
from seedlab.runs.pretrain import run_pretrain_job
from seedlab.runs.spec import JobSpec
from seedlab.store import Store

JOB_KINDS = ("finetune", "pretrain")


def run_job(store: Store, job_id: int, spec: JobSpec, *, progress: ProgressFn,
            device: str | None = None) -> RunResult:
    """Run job ``job_id`` end to end on ``device`` (default: a visible GPU, else the CPU).

    ``progress(phase, step, total, loss)`` is called after every step; it returns False
    to stop the job (``JobCancelled``). A fine-tuning job registers its run in the store;
    a pretraining job writes its model folder. Raises ``JobFailed`` (a plain-words
    reason), ``JobCancelled``, or lets unexpected errors through (the worker records
    them)."""
    if spec.kind == "pretrain":
        return run_pretrain_job(store, job_id, spec, progress=progress, device=device)
    if spec.kind != "finetune":
        raise JobFailed(f"job kind {spec.kind!r} is not supported (only {', '.join(JOB_KINDS)})")
    return run_finetune_job(store, job_id, spec, progress=progress, device=device)


__all__ = ["JOB_KINDS", "MASK_SETTING_PREFIX", "JobCancelled", "JobFailed", "Log", "ProgressFn",
           "RunResult", "final_dir", "log_path", "mask_setting", "register", "run_job",
           "runs_root"]
