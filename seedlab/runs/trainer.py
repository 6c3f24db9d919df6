"""Fine-tuning one job: train, score the eval split at each checkpoint, write the run
folder atomically, register its predictions in the store.

Layout under ``<home>/runs/``::

    .tmp-job<id>-<token>/      a run being written (never read; removed on failure)
    job-<id>-<task>-<size>-p<pretrain_seed>-f<finetune_seed>/
        config.json            the resolved spec, model path, device, versions
        log.txt                the job's log
        metrics.jsonl          one line per evaluation (phase, epoch, step, accuracy, loss)
        predictions.parquet    checkpoint, instance_id, pred, correct, p_correct, probs
        instances.parquet      the eval instances the predictions refer to
        masks.parquet          pruning masks (pruning jobs only)
    logs/job-<id>.log          the live log, appended across attempts

A finished folder appears with one ``os.replace``: a crash leaves either no folder or a
whole one. Registration reads only that folder, so it can be redone from it.

Job kinds: ``finetune`` (sequence classification). ``run_job`` dispatches on
``spec.kind`` so a masked-LM pretraining kind can be added beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seedlab.errors import SeedlabError
from seedlab.runs.catalogue import resolve_model
from seedlab.runs.spec import JobSpec
from seedlab.runs.tasks import TaskData, load_task
from seedlab.store import RunData, Store

MASK_SETTING_PREFIX = "seedlab-heads_mlps"


class JobCancelled(SeedlabError):
    """The job was cancelled (or taken away from this worker) while it ran."""


class JobFailed(SeedlabError):
    """A job that cannot run; the message says why in plain words."""


# progress(phase, step, total, loss) -> False to stop the job
ProgressFn = Callable[[str, int, int, float | None], bool]


@dataclass
class RunResult:
    run_dir: Path
    run_id: str
    accuracy: float


def runs_root(store: Store) -> Path:
    return store.home / "runs"


def log_path(store: Store, job_id: int) -> Path:
    return runs_root(store) / "logs" / f"job-{job_id}.log"


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(text))


def final_dir(store: Store, job_id: int, spec: JobSpec) -> Path:
    name = (f"job-{job_id}-{spec.task}-{spec.size}-p{_label(spec.pretrain_seed)}"
            f"-f{spec.finetune_seed}")
    return runs_root(store) / name


def mask_setting(spec: JobSpec) -> str:
    """Mask setting of a pruning job: one per (size, pretraining seed); seeds in it are the
    fine-tuning seeds."""
    return f"{MASK_SETTING_PREFIX}-{spec.size}-p{_label(spec.pretrain_seed)}"


def optimizer_step(model: Any, loss: Any, optimizer: Any, scheduler: Any, step: int,
                   phase: str) -> float:
    """Backpropagate ``loss``, clip the gradient norm to 1, step the optimizer and the
    learning-rate schedule; returns the loss value. A loss that is not finite fails the
    job with the advice to lower the learning rate (``step`` and ``phase`` name where)."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    value = float(loss.detach())
    if not math.isfinite(value):
        raise JobFailed(f"{phase}: the loss became {value} at step {step}; lower the"
                        " learning rate")
    return value


class Log:
    """Appends timestamped lines to the job's live log."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def __call__(self, message: str) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def versions() -> dict[str, str]:
    import torch
    import transformers

    import seedlab

    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True, text=True,
                                cwd=Path(seedlab.__file__).parent, timeout=5).stdout.strip()
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "seedlab": getattr(seedlab, "__version__", ""), "git_commit": commit}


# ---------------------------------------------------------------------------------------
# Training


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _encode(tokenizer, frame: pd.DataFrame, max_len: int) -> dict[str, Any]:
    a = frame["text_a"].fillna("").astype(str).tolist()
    b = frame["text_b"].tolist() if "text_b" in frame else None
    if b is not None and all(x is None or (isinstance(x, float) and math.isnan(x)) for x in b):
        b = None
    elif b is not None:
        b = ["" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x) for x in b]
    return tokenizer(a, b, truncation=True, max_length=max_len, padding="max_length",
                     return_tensors="pt")


def _batches(encoded: dict, labels, order, batch_size: int, device: str) -> list[dict]:
    import torch

    out = []
    for start in range(0, len(order), batch_size):
        idx = torch.as_tensor(order[start:start + batch_size])
        batch = {k: v[idx].to(device) for k, v in encoded.items()}
        batch["labels"] = labels[idx].to(device)
        out.append(batch)
    return out


def predict(model, encoded: dict, batch_size: int, device: str) -> np.ndarray:
    """Class probabilities ``(N, C)`` (float32) of ``model`` on encoded inputs."""
    import torch

    model.eval()
    n = encoded["input_ids"].shape[0]
    probs = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = {k: v[start:start + batch_size].to(device) for k, v in encoded.items()}
            logits = model(**batch).logits
            probs.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(probs).astype(np.float32) if probs else np.zeros((0, 0), np.float32)


def finetune(spec: JobSpec, model_path: Path, task: TaskData, *, phase: str, device: str,
             progress: ProgressFn, log: Callable[[str], None],
             checkpoints: tuple[float, ...] | None = None):
    """Fine-tune a sequence classifier on ``task.train``.

    Returns ``(model, tokenizer, evals)`` where ``evals`` maps each checkpoint (in epochs)
    to eval probabilities ``(N_eval, C)``; ``checkpoints=None`` scores only the end."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(spec.finetune_seed)
    np.random.seed(spec.finetune_seed % 2**32)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=len(task.label_list), ignore_mismatched_sizes=True)
    except (OSError, ValueError) as exc:
        raise JobFailed(f"could not load model {spec.model} from {model_path}: {exc}") from exc
    model.to(device)
    train_enc = _encode(tokenizer, task.train, spec.max_seq_length)
    train_labels = torch.tensor(task.label_ids(task.train))
    eval_enc = _encode(tokenizer, task.eval, spec.max_seq_length)
    n_train = len(task.train)
    steps_per_epoch = math.ceil(n_train / spec.batch_size)
    total = max(1, math.ceil(spec.epochs * steps_per_epoch))
    eval_at = {}
    for c in checkpoints or (spec.epochs,):
        eval_at.setdefault(min(total, max(1, round(c * steps_per_epoch))), []).append(c)
    decay = [p for n, p in model.named_parameters() if not n.endswith(("bias", "LayerNorm.weight"))]
    no_decay = [p for n, p in model.named_parameters() if n.endswith(("bias", "LayerNorm.weight"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup * total), total)
    generator = torch.Generator().manual_seed(spec.finetune_seed)
    log(f"{phase}: {n_train} train / {len(task.eval)} eval examples, {total} steps"
        f" ({steps_per_epoch} per epoch), evaluating at steps {sorted(eval_at)} on {device}")
    evals: dict[float, np.ndarray] = {}
    step, loss_ema = 0, None
    while step < total:
        order = torch.randperm(n_train, generator=generator).tolist()
        for batch in _batches(train_enc, train_labels, order, spec.batch_size, device):
            model.train()
            loss = model(**batch).loss
            step += 1
            value = optimizer_step(model, loss, optimizer, scheduler, step, phase)
            loss_ema = value if loss_ema is None else 0.9 * loss_ema + 0.1 * value
            if not progress(phase, step, total, loss_ema):
                raise JobCancelled("cancelled")
            if step in eval_at:
                probs = predict(model, eval_enc, spec.batch_size * 2, device)
                acc = float(np.mean(probs.argmax(1) == np.array(task.label_ids(task.eval))))
                for c in eval_at[step]:
                    evals[c] = probs
                    log(f"{phase}: epoch {c:g} (step {step}) eval accuracy {acc:.4f}"
                        f" loss {loss_ema:.4f}")
            if step >= total:
                break
    return model, tokenizer, evals, eval_enc


def prediction_table(task: TaskData, evals: dict[float, np.ndarray]) -> pa.Table:
    """One row per checkpoint x eval instance: checkpoint, instance_id, pred, correct,
    p_correct, probs."""
    gold = np.array(task.label_ids(task.eval))
    parts = []
    for c in sorted(evals):
        probs = evals[c]
        pred = probs.argmax(1)
        parts.append(pa.table({
            "checkpoint": pa.array(np.full(len(gold), c, dtype=np.float64)),
            "instance_id": pa.array(task.eval["instance_id"].astype(str).tolist(), pa.string()),
            "pred": pa.array(pred.astype(np.int32)),
            "correct": pa.array(pred == gold),
            "p_correct": pa.array(probs[np.arange(len(gold)), gold].astype(np.float32)),
            "probs": pa.array(list(probs), pa.list_(pa.float32())),
        }))
    return pa.concat_tables(parts)


def _instances_frame(task: TaskData) -> pd.DataFrame:
    frame = task.eval.copy()
    for col in ("split", "guid", "text_b"):
        if col not in frame:
            frame[col] = None
    return frame


def run_job(store: Store, job_id: int, spec: JobSpec, *, progress: ProgressFn,
            device: str | None = None) -> RunResult:
    """Run one job end to end and register its predictions; returns the run folder.

    Raises ``JobFailed`` (plain-words reason), ``JobCancelled``, or lets unexpected errors
    through (the worker records them)."""
    if spec.kind == "pretrain":
        from seedlab.runs.pretrain import run_pretrain_job

        return run_pretrain_job(store, job_id, spec, progress=progress, device=device)
    if spec.kind != "finetune":
        raise JobFailed(f"job kind {spec.kind!r} is not supported")
    log = Log(log_path(store, job_id))
    final = final_dir(store, job_id, spec)
    if (final / "predictions.parquet").exists():
        log(f"run folder {final} is already complete (an earlier attempt); registering it")
        return register(store, final)
    root = runs_root(store)
    for stale in root.glob(f".tmp-job{job_id}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-job{job_id}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        _train_into(store, job_id, spec, tmp, log, progress, device or _device())
        shutil.copyfile(log.path, tmp / "log.txt")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"run folder written: {final}")
    result = register(store, final)
    log(f"registered run {result.run_id} in the store (accuracy {result.accuracy:.4f})")
    return result


def _train_into(store: Store, job_id: int, spec: JobSpec, tmp: Path, log: Log,
                progress: ProgressFn, device: str) -> None:
    log(f"job {job_id}: {spec.to_json()}")
    task = load_task(spec.task, spec.data, max_train=spec.max_train_examples,
                     max_eval=spec.max_eval_examples)
    model_path = resolve_model(spec.model)
    log(f"model {spec.model} -> {model_path}")
    metrics: list[dict] = []
    started = time.time()
    if spec.intermediate_task:
        inter = load_task(spec.intermediate_task, spec.intermediate_data,
                          max_train=spec.max_train_examples, max_eval=spec.max_eval_examples)
        model, tokenizer, evals, _ = finetune(spec, model_path, inter, phase="intermediate",
                                              device=device, progress=progress, log=log)
        probs = evals[max(evals)]
        acc = float(np.mean(probs.argmax(1) == np.array(inter.label_ids(inter.eval))))
        metrics.append({"phase": "intermediate", "task": inter.name, "epoch": spec.epochs,
                        "accuracy": acc})
        # STILTs: keep the encoder, drop the intermediate classifier.
        encoder_dir = tmp / "intermediate-encoder"
        model.base_model.save_pretrained(encoder_dir)
        tokenizer.save_pretrained(encoder_dir)
        del model
        model_path = encoder_dir
        log(f"intermediate task {inter.name}: accuracy {acc:.4f}; encoder saved, classifier"
            " dropped")
    model, tokenizer, evals, eval_enc = finetune(spec, model_path, task, phase="target",
                                                 device=device, progress=progress, log=log,
                                                 checkpoints=spec.checkpoints)
    gold = np.array(task.label_ids(task.eval))
    for c in sorted(evals):
        metrics.append({"phase": "target", "task": task.name, "epoch": c,
                        "accuracy": float(np.mean(evals[c].argmax(1) == gold))})
    pq.write_table(prediction_table(task, evals), tmp / "predictions.parquet")
    instances = _instances_frame(task)
    instances.to_parquet(tmp / "instances.parquet", index=False)
    if spec.prune:
        masks = _prune(spec, model, task, eval_enc, device, progress, log, metrics)
        masks.to_parquet(tmp / "masks.parquet", index=False)
    shutil.rmtree(tmp / "intermediate-encoder", ignore_errors=True)
    with (tmp / "metrics.jsonl").open("w") as fh:
        for row in metrics:
            fh.write(json.dumps(row) + "\n")
    config = {"job_id": job_id, "spec": json.loads(spec.to_json()),
              "model_path": str(resolve_model(spec.model)),
              "device": device, "label_list": task.label_list, "task_source": task.source,
              "n_train": len(task.train), "n_eval": len(task.eval),
              "seconds": round(time.time() - started, 2), "versions": versions()}
    (tmp / "config.json").write_text(json.dumps(config, indent=2))


def _prune(spec: JobSpec, model, task: TaskData, eval_enc: dict, device: str,
           progress: ProgressFn, log: Callable[[str], None], metrics: list[dict]) -> pd.DataFrame:
    import torch

    from seedlab.runs.pruning import prune

    labels = torch.tensor(task.label_ids(task.eval))
    order = list(range(len(task.eval)))
    batches = _batches(eval_enc, labels, order, spec.batch_size * 2, device)
    step = [0]

    def score() -> float:
        step[0] += 1
        if not progress("pruning", step[0], 0, None):
            raise JobCancelled("cancelled")
        probs = predict(model, eval_enc, spec.batch_size * 2, device)
        return float(np.mean(probs.argmax(1) == labels.numpy()))

    result = prune(model, batches, score, threshold=spec.prune["threshold"],
                   step=spec.prune["step"], log=log)
    for row in result.history:
        metrics.append({"phase": "pruning", **row})
    return result.frame(spec.finetune_seed)


# ---------------------------------------------------------------------------------------
# Registration


@contextlib.contextmanager
def _register_lock(store: Store):
    path = runs_root(store) / ".register.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def register(store: Store, run_dir: Path) -> RunResult:
    """Register a finished run folder's predictions (and masks) in the store, in one
    transaction. Safe to repeat: the same predictions leave the store unchanged."""
    config = json.loads((run_dir / "config.json").read_text())
    spec = JobSpec.from_json(json.dumps(config["spec"]))
    table = pq.read_table(run_dir / "predictions.parquet")
    instances = pd.read_parquet(run_dir / "instances.parquet")
    provenance = {"job_id": config["job_id"], "run_dir": str(run_dir), "device": config["device"],
                  **config["versions"]}
    with _register_lock(store), store.transaction("run", str(run_dir), replace=True) as tx:
        tx.set_task(spec.task, config["label_list"], source="seedlab-run")
        tx.add_instances(spec.task, instances)
        run_id = tx.add_run(RunData(spec.task, spec.size, spec.pretrain_seed,
                                    spec.finetune_seed, table, source="seedlab-run",
                                    model=spec.model, hyperparameters=spec.hyperparameters(),
                                    provenance=provenance))
        if (run_dir / "masks.parquet").exists():
            setting = mask_setting(spec)
            new = pd.read_parquet(run_dir / "masks.parquet")
            old = store.masks(setting=setting, task=spec.task)
            old = old[old["seed"] != spec.finetune_seed] if len(old) else old
            keep = ["seed", "component", "layer", "head", "kept", "importance"]
            tx.add_masks(setting, spec.task, pd.concat([old[keep], new[keep]]
                                                       if len(old) else [new[keep]]))
    last = table.filter(pa.compute.equal(table["checkpoint"], max(table["checkpoint"].to_pylist())))
    accuracy = float(np.mean(last["correct"].to_numpy(zero_copy_only=False)))
    return RunResult(run_dir, run_id, accuracy)
