"""Masked-language-model pretraining from scratch: the ``pretrain`` job kind.

A pretraining job trains a small BERT (``BertForMaskedLM`` built from a ``BertConfig``) on
the *train* texts of a task (the eval split is never seen), with a WordPiece tokenizer
trained on the same texts (``tokenizers``; at most ``VOCAB_SIZE`` pieces, so the output
softmax stays cheap), trained once per corpus and shared by all the jobs that write their
models in the same folder. As in MultiBERTs (Sellam et al. 2021), the pretraining seed sets both
the initial weights and the data order (and the masking). The tokenizer does not depend on
the seed: all the models of a study share one vocabulary.

The architecture is read from the size name, ``L<layers>-H<hidden>`` (for example
``L2-H64``), with one attention head per ``HEAD_DIM`` hidden units and an MLP of
4 x hidden. Other settings come from the job spec: ``epochs`` (passes over the
pretraining texts, fractions allowed), ``learning_rate``, ``batch_size``,
``max_seq_length``, ``warmup``, ``weight_decay``, ``max_train_examples``.

The model folder (``spec.model``) is written under a temporary name and moved into place
with one rename; it holds the ``save_pretrained`` model and tokenizer (so a fine-tuning job
loads it as a local model directory), ``pretrain.json`` (spec, corpus, held-out MLM
accuracy, versions, seconds) and ``log.txt``. A finished folder is never trained again.

Pretraining jobs go through the same queue as fine-tuning jobs; their queue key uses
``finetune_seed = PRETRAIN_SLOT`` (-1), so they never collide with a run's key, and they
register nothing in the store (the fine-tuning runs made from them do).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seedlab.runs.device import (
    LossMeter,
    adamw,
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
    log_path,
    read_json,
)
from seedlab.runs.jobs import versions as library_versions
from seedlab.runs.spec import JobSpec
from seedlab.runs.tasks import load_task

VOCAB_SIZE = 4000
HEAD_DIM = 32
PRETRAIN_SLOT = -1
MASK_RATE = 0.15
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_SIZE = re.compile(r"^L(\d+)-H(\d+)$")


def parse_size(size: str) -> tuple[int, int]:
    """``'L2-H64'`` -> ``(2, 64)``: layers and hidden size (a positive multiple of
    ``HEAD_DIM``)."""
    m = _SIZE.match(size)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < HEAD_DIM or int(m.group(2)) % HEAD_DIM:
        raise JobFailed(f"pretraining size {size!r} is not L<layers>-H<hidden> with hidden a"
                        f" multiple of {HEAD_DIM} (for example L2-H64)")
    return int(m.group(1)), int(m.group(2))


def pretrain_spec(task: str, size: str, pretrain_seed: str | int, model_dir: str | Path, *,
                  epochs: float = 4.0, learning_rate: float = 1e-3, batch_size: int = 64,
                  max_seq_length: int = 64, warmup: float = 0.05, weight_decay: float = 0.01,
                  data: str | None = None,
                  max_train_examples: int | None = None) -> JobSpec:
    """The queue job that pretrains ``size`` with ``pretrain_seed`` into ``model_dir``."""
    parse_size(size)
    return JobSpec(task=task, model=str(model_dir), size=size, pretrain_seed=str(pretrain_seed),
                   finetune_seed=PRETRAIN_SLOT, checkpoints=(float(epochs),), epochs=float(epochs),
                   learning_rate=learning_rate, batch_size=batch_size,
                   max_seq_length=max_seq_length, warmup=warmup, weight_decay=weight_decay,
                   data=data, max_train_examples=max_train_examples, kind="pretrain")


def train_tokenizer(texts: list[str], folder: Path, vocab_size: int = VOCAB_SIZE):
    """Train a lower-cased WordPiece vocabulary (at most ``vocab_size`` pieces, special
    tokens first) on ``texts``, save it in ``folder`` and return the ``BertTokenizerFast``
    that reads it. Deterministic: the same texts give the same vocabulary."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=SPECIAL, show_progress=False)
    tokenizer = BertTokenizerFast(vocab=wordpiece.get_vocab(), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


TOKENIZER_FOLDER = ".tokenizers"  # under the models' parent folder: see shared_tokenizer


def shared_tokenizer(texts: list[str], root: Path, vocab_size: int = VOCAB_SIZE):
    """The WordPiece tokenizer of ``texts``, trained once and shared by every job whose
    model folder is under ``root`` (kept in ``root/.tokenizers/<digest>``). The trainer of
    ``tokenizers`` breaks ties between equally frequent pieces differently from process to
    process, so the vocabulary is trained once and reused rather than trained per seed."""
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    final = root / TOKENIZER_FOLDER / f"{digest}-v{vocab_size}"
    if not (final / "tokenizer.json").exists():
        # Jobs may train the same vocabulary at once: the first to finish wins, so an
        # earlier job's temporary folder is not removed here (it may still be in use).
        try:
            with atomic_folder(final, clean_stale=False) as tmp:
                train_tokenizer(texts, tmp, vocab_size)
        except OSError:
            if not (final / "tokenizer.json").exists():
                raise
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(final)


def mask_tokens(input_ids, special, vocab_size: int, generator, rate: float = MASK_RATE,
                mask_id: int = 4):
    """BERT masking of ``input_ids (B, T)``: ``rate`` of the non-special tokens are chosen
    (at least one per row where possible); of those 80% become [MASK], 10% a random token,
    10% stay. Returns ``(inputs (B, T), labels (B, T))`` with labels -100 where not chosen."""
    import torch

    probs = torch.full(input_ids.shape, rate)
    probs[special] = 0.0
    chosen = torch.bernoulli(probs, generator=generator).bool()
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    inputs = input_ids.clone()
    roll = torch.rand(input_ids.shape, generator=generator)
    inputs[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = torch.randint(len(SPECIAL), vocab_size, input_ids.shape,
                                 generator=generator)[swap]
    return inputs, labels


def _mlm_loss(model, batch: dict, labels):
    """Loss and (correct, total) of the masked positions only: the output softmax is
    computed for the chosen tokens, not all of them."""
    import torch

    hidden = model.bert(**batch).last_hidden_state
    chosen = labels != -100
    logits = model.cls(hidden[chosen])
    target = labels[chosen]
    loss = torch.nn.functional.cross_entropy(logits, target)
    correct = int((logits.argmax(-1) == target).sum())
    return loss, correct, int(target.numel())


def _encode(tokenizer, texts: list[str], max_len: int) -> dict:
    enc = tokenizer(texts, truncation=True, max_length=max_len, padding="max_length",
                    return_tensors="pt", return_special_tokens_mask=True)
    return dict(enc)


def _batch(enc: dict, idx, device: str) -> tuple[dict, object, object]:
    """Rows ``idx`` trimmed to their longest sequence: (model inputs, ids, special mask)."""
    width = int(enc["attention_mask"][idx].sum(1).max())
    batch = {k: enc[k][idx, :width].to(device) for k in ("attention_mask", "token_type_ids")}
    ids = enc["input_ids"][idx, :width]
    special = enc["special_tokens_mask"][idx, :width].bool() | (batch["attention_mask"] == 0).cpu()
    return batch, ids, special


def mlm_accuracy(model, tokenizer, texts: list[str], max_len: int, device: str,
                 batch_size: int = 128, seed: int = 0) -> float:
    """Accuracy of the masked-token predictions on ``texts`` with a fixed masking
    (``seed``), the same for every model that shares the tokenizer."""
    import torch

    enc = _encode(tokenizer, texts, max_len)
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    right = total = 0
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(texts)))
            batch, ids, special = _batch(enc, idx, device)
            inputs, labels = mask_tokens(ids, special, len(tokenizer), generator,
                                         mask_id=tokenizer.mask_token_id)
            if not (labels != -100).any():
                continue
            batch["input_ids"] = inputs.to(device)
            _, c, n = _mlm_loss(model, batch, labels.to(device))
            right, total = right + c, total + n
    return right / total if total else float("nan")


def pretrain(spec: JobSpec, out: Path, *, device: str, progress: ProgressFn,
             log: Callable[[str], None]) -> dict[str, Any]:
    """Train the tokenizer and the masked-LM of ``spec`` into folder ``out``; returns the
    summary written to ``pretrain.json``."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    layers, hidden = parse_size(spec.size)
    seed = int(spec.pretrain_seed) if str(spec.pretrain_seed).lstrip("-").isdigit() else (
        int.from_bytes(str(spec.pretrain_seed).encode(), "little") % 2**31)
    task = load_task(spec.task, spec.data, max_train=spec.max_train_examples)
    texts = [str(t) for t in task.train["text_a"].fillna("") if str(t).strip()]
    if "text_b" in task.train:
        texts += [str(t) for t in task.train["text_b"].dropna() if str(t).strip()]
    held_out = [str(t) for t in task.eval["text_a"].fillna("") if str(t).strip()]
    if len(texts) < 10:
        raise JobFailed(f"task {spec.task} has only {len(texts)} training texts to pretrain on")
    started = time.time()
    tokenizer = shared_tokenizer(texts, out.parent)
    tokenizer.save_pretrained(out)
    # The seed sets the initial weights here and the data order and masking below.
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=hidden // HEAD_DIM, intermediate_size=4 * hidden,
                        max_position_embeddings=max(64, spec.max_seq_length),
                        pad_token_id=tokenizer.pad_token_id)
    precision = precision_for(device)
    model = BertForMaskedLM(config).to(device)
    enc = _encode(tokenizer, texts, spec.max_seq_length)
    n = len(texts)
    steps_per_epoch = math.ceil(n / spec.batch_size)
    total = max(1, math.ceil(spec.epochs * steps_per_epoch))
    # The unfused AdamW: the default study (data/) was pretrained with it, and a rebuild
    # should give the same models.
    optimizer = adamw(model, spec.learning_rate, spec.weight_decay, device, fused=False)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup * total), total)
    generator = torch.Generator().manual_seed(seed)
    log(f"pretraining {spec.size} ({layers} layers x {hidden} hidden, {hidden // HEAD_DIM}"
        f" heads, vocabulary {len(tokenizer)}) seed {seed}: {n} texts, {total} steps"
        f" ({steps_per_epoch} per epoch) on {device} ({precision.dtype})")
    scaler = precision.scaler()
    meter = LossMeter("pretraining", device, decay=0.98)
    step, loss_ema, right, seen = 0, None, 0, 0
    history = []
    model.train()
    while step < total:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, spec.batch_size):
            batch, ids, special = _batch(enc, order[start:start + spec.batch_size], device)
            inputs, labels = mask_tokens(ids, special, len(tokenizer), generator,
                                         mask_id=tokenizer.mask_token_id)
            if not (labels != -100).any():
                continue
            batch["input_ids"] = inputs.to(device)
            with precision.autocast():
                loss, c, m = _mlm_loss(model, batch, labels.to(device))
            optimizer_step(model, loss, optimizer, scheduler, scaler)
            step += 1
            loss_ema = meter.add(step, loss)
            right, seen = right + c, seen + m
            if step % max(1, steps_per_epoch // 2) == 0 or step == total:
                loss_ema = meter.read()
                history.append({"step": step, "loss": round(loss_ema, 4),
                                "train_mlm_accuracy": round(right / max(seen, 1), 4)})
                log(f"pretraining: step {step}/{total} loss {loss_ema:.4f} masked-token"
                    f" accuracy {right / max(seen, 1):.4f}")
                right = seen = 0
            check_progress(progress, "pretraining", step, total, loss_ema)
            if step >= total:
                break
    loss_ema = meter.read()
    accuracy = mlm_accuracy(model, tokenizer, held_out, spec.max_seq_length, device)
    log(f"pretraining: held-out masked-token accuracy {accuracy:.4f}")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"spec": json.loads(spec.to_json()), "seed": seed, "layers": layers, "hidden": hidden,
            "heads": hidden // HEAD_DIM, "vocab_size": len(tokenizer), "n_texts": n,
            "n_held_out": len(held_out), "steps": total, "final_loss": loss_ema,
            "held_out_mlm_accuracy": accuracy, "history": history, "device": device,
            "task_source": task.source, "seconds": round(time.time() - started, 2),
            "versions": library_versions()}


def run_pretrain_job(store: Any, job_id: int, spec: JobSpec, *, progress: ProgressFn,
                     device: str | None = None) -> RunResult:
    """Run a ``pretrain`` job: write the model folder ``spec.model`` atomically.

    A folder that is already complete (an earlier attempt, or an earlier build) is kept
    as it is. ``RunResult.accuracy`` is the held-out masked-token accuracy."""
    log = Log(log_path(store, job_id))
    final = Path(spec.model).expanduser().resolve()
    run_id = f"pretrain:{spec.task}/{spec.size}/p{spec.pretrain_seed}"
    if (final / SUMMARY).exists():
        log(f"model folder {final} is already complete; keeping it")
        return RunResult(final, run_id, held_out_accuracy(final))
    if final.exists():
        raise JobFailed(f"model folder {final} exists but is not a finished pretraining run;"
                        " remove it or choose another folder")
    with atomic_folder(final) as tmp:
        log(f"job {job_id}: {spec.to_json()}")
        summary = pretrain(spec, tmp, device=device or default_device(), progress=progress,
                           log=log)
        summary["job_id"] = job_id
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=2))
        shutil.copyfile(log.path, tmp / "log.txt")
    log(f"model folder written: {final}")
    return RunResult(final, run_id, float(summary["held_out_mlm_accuracy"]))


SUMMARY = "pretrain.json"


def read_summary(model_dir: str | Path) -> dict[str, Any]:
    """The ``pretrain.json`` of a finished model folder: spec, seed, layers, hidden, heads,
    vocab_size, n_texts, steps, final_loss, held_out_mlm_accuracy, history, device,
    seconds, versions, job_id."""
    return read_json(Path(model_dir) / SUMMARY,
                     "the summary a finished pretraining job writes (held_out_mlm_accuracy, ...)")


def held_out_accuracy(model_dir: str | Path) -> float:
    """The held-out masked-token accuracy recorded in a finished model folder."""
    return float(read_summary(model_dir)["held_out_mlm_accuracy"])


__all__ = ["HEAD_DIM", "PRETRAIN_SLOT", "VOCAB_SIZE", "held_out_accuracy", "mask_tokens",
           "mlm_accuracy", "parse_size", "pretrain", "pretrain_spec", "read_summary", "run_pretrain_job",
           "shared_tokenizer", "train_tokenizer"]
