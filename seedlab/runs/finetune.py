"""The ``finetune`` job: train a sequence classifier, score the eval split at each
checkpoint, write the run folder atomically, register its predictions in the store.

Layout under ``<home>/runs/``::

    .tmp-job<id>-<token>/      a run being written (never read; removed on failure)
    job-<id>-<task>-<size>-p<pretrain_seed>-f<finetune_seed>/
        config.json            the resolved spec, model path, device, precision, versions
        log.txt                the job's log
        metrics.jsonl          one line per evaluation (phase, epoch, step, accuracy, loss)
        predictions.parquet    checkpoint, instance_id, pred, correct, p_correct, probs
        instances.parquet      the eval instances the predictions refer to
        masks.parquet          pruning masks (pruning jobs only)
    logs/job-<id>.log          the live log, appended across attempts

A finished folder appears with one ``os.replace``: a crash leaves either no folder or a
whole one. Registration reads only that folder, so it can be redone from it.

Speed (docs/runs.md, ``benchmarks/trainer_bench.py``): each split is tokenized once per
job; a training batch is padded to its own longest sequence; evaluation runs in batches
sorted by length and puts the predictions back in instance order; on CUDA the loop runs
under bf16 (or fp16) autocast with TF32 matmuls and pinned, non-blocking transfers
(``runs.device``). The fine-tuning seed sets the classifier's initial weights, the data
order and dropout, so the same spec gives the same predictions on the same device.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from seedlab.runs.catalogue import resolve_model
from seedlab.runs.device import (
    LossMeter,
    Precision,
    adamw,
    batches_of,
    default_device,
    optimizer_step,
    precision_for,
)
from seedlab.runs.jobs import (
    JobFailed,
    Log,
    ProgressFn,
    RunResult,
    atomic_folder,
    check_progress,
    label,
    log_path,
    read_json,
    runs_root,
    versions,
)
from seedlab.runs.spec import JobSpec
from seedlab.runs.tasks import TaskData, load_task
from seedlab.store import RunData, Store

MASK_SETTING_PREFIX = "seedlab-heads_mlps"


def final_dir(store: Store, job_id: int, spec: JobSpec) -> Path:
    """The run folder job ``job_id`` writes."""
    name = (f"job-{job_id}-{spec.task}-{spec.size}-p{label(spec.pretrain_seed)}"
            f"-f{spec.finetune_seed}")
    return runs_root(store) / name


def mask_setting(spec: JobSpec) -> str:
    """Mask setting of a pruning job: one per (size, pretraining seed); seeds in it are the
    fine-tuning seeds."""
    return f"{MASK_SETTING_PREFIX}-{spec.size}-p{label(spec.pretrain_seed)}"


# ---------------------------------------------------------------------------------------
# Inputs: tokenized once, padded per batch


@dataclass
class Encoded:
    """One split tokenized once.

    ``tensors``: ``input_ids``, ``attention_mask`` and (BERT) ``token_type_ids``, each
    ``(N, T)`` int64, right-padded to the longest sequence of the split (``T`` at most the
    job's ``max_seq_length``); ``lengths``: ``(N,)`` real tokens of each instance."""

    tensors: dict[str, Any]
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, rows: Any) -> dict[str, Any]:
        """Rows ``rows`` (an int64 tensor of indices) padded to their own longest
        sequence: ``(B, T_batch)`` tensors on the CPU."""
        width = max(1, int(self.lengths[rows.numpy()].max()))
        return {k: v[rows, :width] for k, v in self.tensors.items()}


def _texts(column: pd.Series) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            for v in column]


def encode(tokenizer: Any, frame: pd.DataFrame, max_len: int) -> Encoded:
    """Tokenize ``frame``'s ``text_a`` (and ``text_b`` where any is given), truncated to
    ``max_len`` tokens; see ``Encoded``."""
    first = _texts(frame["text_a"])
    second = None
    if "text_b" in frame and frame["text_b"].notna().any():
        second = _texts(frame["text_b"])
    if not first:
        import torch

        empty = torch.zeros((0, 1), dtype=torch.long)
        return Encoded({"input_ids": empty, "attention_mask": empty}, np.zeros(0, np.int64))
    enc = tokenizer(first, second, truncation=True, max_length=max_len, padding="longest",
                    return_tensors="pt")
    tensors = {k: v for k, v in enc.items()
               if k in ("input_ids", "attention_mask", "token_type_ids")}
    return Encoded(tensors, tensors["attention_mask"].sum(1).numpy().astype(np.int64))


def eval_batches(encoded: Encoded, batch_size: int) -> Iterator[np.ndarray]:
    """Row indices of ``encoded`` in batches of similar length (longest first), so that
    evaluation pads little; ties keep instance order."""
    order = np.argsort(-encoded.lengths, kind="stable")
    yield from batches_of(order, batch_size)


def predict(model: Any, encoded: Encoded, batch_size: int, precision: Precision) -> np.ndarray:
    """Class probabilities ``(N, C)`` float32 of ``model`` on ``encoded``, in instance
    order (computed in length-sorted batches)."""
    import torch

    model.eval()
    rows_seen, chunks = [], []
    with torch.no_grad():
        for rows in eval_batches(encoded, batch_size):
            batch = precision.to_device(encoded.batch(torch.from_numpy(rows)))
            with precision.autocast():
                logits = model(**batch).logits
            chunks.append(torch.softmax(logits.float(), dim=-1))
            rows_seen.append(rows)
    if not chunks:
        return np.zeros((0, 0), np.float32)
    probs = np.empty((len(encoded), chunks[0].shape[1]), np.float32)
    probs[np.concatenate(rows_seen)] = torch.cat(chunks).cpu().numpy()
    return probs


# ---------------------------------------------------------------------------------------
# Training


@dataclass
class Finetuned:
    """A fine-tuned classifier: ``evals`` maps each checkpoint (epochs) to the eval
    probabilities ``(N_eval, C)``; ``eval_inputs`` is the encoded eval split."""

    model: Any
    tokenizer: Any
    evals: dict[float, np.ndarray]
    eval_inputs: Encoded


def eval_steps(checkpoints: tuple[float, ...], steps_per_epoch: int,
               total: int) -> dict[int, list[float]]:
    """Optimizer step at which each checkpoint (in epochs) is scored: the nearest step,
    at least 1 and at most ``total``."""
    at: dict[int, list[float]] = {}
    for c in checkpoints:
        at.setdefault(min(total, max(1, round(c * steps_per_epoch))), []).append(c)
    return at


def finetune(spec: JobSpec, model_path: Path, task: TaskData, *, phase: str,
             precision: Precision, progress: ProgressFn, log: Callable[[str], None],
             checkpoints: tuple[float, ...] | None = None) -> Finetuned:
    """Fine-tune a sequence classifier from ``model_path`` on ``task.train`` with the
    settings of ``spec``; ``checkpoints=None`` scores only the end."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    # The fine-tuning seed sets the classifier's initial weights and dropout (global
    # generators) and the data order (its own generator, below).
    torch.manual_seed(spec.finetune_seed)
    np.random.seed(spec.finetune_seed % 2**32)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=len(task.label_list), ignore_mismatched_sizes=True)
    except (OSError, ValueError) as exc:
        raise JobFailed(f"could not load model {spec.model} from {model_path}: {exc}") from exc
    device = precision.device
    model.to(device)
    train = encode(tokenizer, task.train, spec.max_seq_length)
    labels = torch.tensor(task.label_ids(task.train), dtype=torch.long)
    evaluation = encode(tokenizer, task.eval, spec.max_seq_length)
    gold = np.array(task.label_ids(task.eval))
    n_train = len(train)
    if n_train == 0:
        raise JobFailed(f"{phase}: task {task.name} has no training examples")
    steps_per_epoch = math.ceil(n_train / spec.batch_size)
    total = max(1, math.ceil(spec.epochs * steps_per_epoch))
    eval_at = eval_steps(checkpoints or (spec.epochs,), steps_per_epoch, total)
    optimizer = adamw(model, spec.learning_rate, spec.weight_decay, device)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup * total), total)
    scaler = precision.scaler()
    meter = LossMeter(phase, device)
    generator = torch.Generator().manual_seed(spec.finetune_seed)
    log(f"{phase}: {n_train} train / {len(evaluation)} eval examples, {total} steps"
        f" ({steps_per_epoch} per epoch), evaluating at steps {sorted(eval_at)} on {device}"
        f" ({precision.dtype})")
    evals: dict[float, np.ndarray] = {}
    step = 0
    model.train()
    while step < total:
        order = torch.randperm(n_train, generator=generator)
        for rows in batches_of(order, spec.batch_size):
            batch = train.batch(rows)
            batch["labels"] = labels[rows]
            batch = precision.to_device(batch)
            with precision.autocast():
                loss = model(**batch).loss
            optimizer_step(model, loss, optimizer, scheduler, scaler)
            step += 1
            check_progress(progress, phase, step, total, meter.add(step, loss))
            if step in eval_at:
                loss_value = meter.read()
                probs = predict(model, evaluation, spec.batch_size * 2, precision)
                model.train()
                acc = float(np.mean(probs.argmax(1) == gold)) if len(gold) else float("nan")
                for c in eval_at[step]:
                    evals[c] = probs
                    log(f"{phase}: epoch {c:g} (step {step}) eval accuracy {acc:.4f}"
                        f" loss {loss_value:.4f}")
            if step >= total:
                break
    meter.read()
    return Finetuned(model, tokenizer, evals, evaluation)


# ---------------------------------------------------------------------------------------
# The run folder


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


def instances_frame(task: TaskData) -> pd.DataFrame:
    """The eval instances as ``instances.parquet`` holds them (split, guid and text_b
    always present)."""
    frame = task.eval.copy()
    for col in ("split", "guid", "text_b"):
        if col not in frame:
            frame[col] = None
    return frame


def run_finetune_job(store: Store, job_id: int, spec: JobSpec, *, progress: ProgressFn,
                     device: str | None = None) -> RunResult:
    """Run one fine-tuning job end to end and register its predictions; returns the run
    folder. A folder already complete (an earlier attempt) is registered as it is.

    Raises ``JobFailed`` (plain-words reason), ``JobCancelled``, or lets unexpected errors
    through (the worker records them)."""
    log = Log(log_path(store, job_id))
    final = final_dir(store, job_id, spec)
    if (final / "predictions.parquet").exists():
        log(f"run folder {final} is already complete (an earlier attempt); registering it")
        return register(store, final)
    with atomic_folder(final, f".tmp-job{job_id}-") as tmp:
        write_run(job_id, spec, tmp, log, progress, device or default_device())
        shutil.copyfile(log.path, tmp / "log.txt")
    log(f"run folder written: {final}")
    result = register(store, final)
    log(f"registered run {result.run_id} in the store (accuracy {result.accuracy:.4f})")
    return result


def write_run(job_id: int, spec: JobSpec, folder: Path, log: Callable[[str], None],
              progress: ProgressFn, device: str) -> None:
    """Train (the intermediate task first, for STILTs), then write config.json,
    metrics.jsonl, predictions.parquet, instances.parquet and masks.parquet (pruning)
    into ``folder``."""
    log(f"job {job_id}: {spec.to_json()}")
    precision = precision_for(device)
    task = load_task(spec.task, spec.data, max_train=spec.max_train_examples,
                     max_eval=spec.max_eval_examples)
    model_path = resolve_model(spec.model)
    log(f"model {spec.model} -> {model_path}")
    metrics: list[dict] = []
    started = time.time()
    start_from = model_path
    if spec.intermediate_task:
        start_from = _intermediate(spec, model_path, folder, precision, progress, log, metrics)
    run = finetune(spec, start_from, task, phase="target", precision=precision,
                   progress=progress, log=log, checkpoints=spec.checkpoints)
    gold = np.array(task.label_ids(task.eval))
    for c in sorted(run.evals):
        metrics.append({"phase": "target", "task": task.name, "epoch": c,
                        "accuracy": float(np.mean(run.evals[c].argmax(1) == gold))})
    pq.write_table(prediction_table(task, run.evals), folder / "predictions.parquet")
    instances_frame(task).to_parquet(folder / "instances.parquet", index=False)
    if spec.prune:
        masks = _prune(spec, run, task, precision, progress, log, metrics)
        masks.to_parquet(folder / "masks.parquet", index=False)
    shutil.rmtree(folder / "intermediate-encoder", ignore_errors=True)
    with (folder / "metrics.jsonl").open("w") as fh:
        for row in metrics:
            fh.write(json.dumps(row) + "\n")
    config = {"job_id": job_id, "spec": json.loads(spec.to_json()),
              "model_path": str(model_path), "device": device,
              "precision": precision.dtype, "label_list": task.label_list,
              "task_source": task.source, "n_train": len(task.train), "n_eval": len(task.eval),
              "seconds": round(time.time() - started, 2), "versions": versions()}
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def _intermediate(spec: JobSpec, model_path: Path, folder: Path, precision: Precision,
                  progress: ProgressFn, log: Callable[[str], None],
                  metrics: list[dict]) -> Path:
    """STILTs: fine-tune on the intermediate task, keep its encoder (not its classifier)
    in ``folder/intermediate-encoder``; returns that folder."""
    inter = load_task(spec.intermediate_task, spec.intermediate_data,
                      max_train=spec.max_train_examples, max_eval=spec.max_eval_examples)
    run = finetune(spec, model_path, inter, phase="intermediate", precision=precision,
                   progress=progress, log=log)
    probs = run.evals[max(run.evals)]
    acc = float(np.mean(probs.argmax(1) == np.array(inter.label_ids(inter.eval))))
    metrics.append({"phase": "intermediate", "task": inter.name, "epoch": spec.epochs,
                    "accuracy": acc})
    encoder_dir = folder / "intermediate-encoder"
    run.model.base_model.save_pretrained(encoder_dir)
    run.tokenizer.save_pretrained(encoder_dir)
    log(f"intermediate task {inter.name}: accuracy {acc:.4f}; encoder saved, classifier"
        " dropped")
    return encoder_dir


def _prune(spec: JobSpec, run: Finetuned, task: TaskData, precision: Precision,
           progress: ProgressFn, log: Callable[[str], None],
           metrics: list[dict]) -> pd.DataFrame:
    import torch

    from seedlab.runs.pruning import prune

    gold = np.array(task.label_ids(task.eval))
    labels = torch.tensor(gold, dtype=torch.long)
    batch_size = spec.batch_size * 2
    batches = []
    for rows in eval_batches(run.eval_inputs, batch_size):
        index = torch.from_numpy(rows)
        batch = run.eval_inputs.batch(index)
        batch["labels"] = labels[index]
        batches.append(precision.to_device(batch))
    step = [0]

    def score() -> float:
        step[0] += 1
        check_progress(progress, "pruning", step[0], 0, None)
        probs = predict(run.model, run.eval_inputs, batch_size, precision)
        return float(np.mean(probs.argmax(1) == gold))

    result = prune(run.model, batches, score, threshold=spec.prune["threshold"],
                   step=spec.prune["step"], log=log)
    for row in result.history:
        metrics.append({"phase": "pruning", **row})
    return result.frame(spec.finetune_seed)


# ---------------------------------------------------------------------------------------
# Registration


@contextlib.contextmanager
def _register_lock(store: Store) -> Iterator[None]:
    path = runs_root(store) / ".register.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


RUN_CONFIG = "a run folder's config.json (job_id, spec, device, label_list, versions)"


def register(store: Store, run_dir: Path) -> RunResult:
    """Register a finished run folder's predictions (and masks) in the store, in one
    transaction. Safe to repeat: the same predictions leave the store unchanged."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", RUN_CONFIG)
    spec = JobSpec.from_json(json.dumps(config["spec"]))
    table = pq.read_table(run_dir / "predictions.parquet")
    instances = pd.read_parquet(run_dir / "instances.parquet")
    provenance = {"job_id": config["job_id"], "run_dir": str(run_dir), "device": config["device"],
                  **config["versions"]}
    if "precision" in config:
        provenance["precision"] = config["precision"]
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
    last = table.filter(pc.equal(table["checkpoint"], max(table["checkpoint"].to_pylist())))
    accuracy = float(np.mean(last["correct"].to_numpy(zero_copy_only=False)))
    return RunResult(run_dir, run_id, accuracy)


__all__ = ["MASK_SETTING_PREFIX", "Encoded", "Finetuned", "encode", "eval_batches",
           "eval_steps", "final_dir", "finetune", "instances_frame", "mask_setting",
           "predict", "prediction_table", "register", "run_finetune_job", "write_run"]
