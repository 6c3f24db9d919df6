"""``seedlab demo``: the default study, a miniature MultiBERTs on Rotten Tomatoes, made by
seedlab's own runner.

The study, end to end, through the job queue and ``seedlab worker --once``:

1. pretraining jobs (``seedlab.runs.pretrain``): for each size and pretraining seed, a
   small BERT is pretrained from scratch with masked-LM on the task's train texts, with a
   WordPiece vocabulary trained on them (the eval split is never seen);
2. fine-tuning jobs (``seedlab.runs.trainer``): each pretrained model is fine-tuned on
   ``rotten_tomatoes`` (fresh vs rotten) with every fine-tuning seed, scoring the fixed
   eval split at several checkpoints; the models of one fine-tuning seed are also pruned
   (head and MLP importance masks, ``seedlab.runs.pruning``).

Everything is built in a work home first (resumable: finished model folders and runs are
kept), then, only when every job has finished, published into the destination home in one
store transaction together with ``demo_manifest.json`` (the exact command, seeds, package
versions, git commit, time taken, accuracy of each size). A half-built study never reaches
the destination.

    seedlab demo                 # the full study into ./data (about 40-60 min on 2 CPU cores)
    seedlab demo --quick --out /tmp/demo   # a minutes-long miniature
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seedlab import atomic
from seedlab.errors import SeedlabError
from seedlab.store import RunData, Store, utc_now

TASK = "rotten_tomatoes"
MANIFEST = "demo_manifest.json"
# The published study's WordPiece vocabulary. The trainer of ``tokenizers`` breaks ties
# between equally frequent pieces differently in every process, so a rebuild that trained
# its own vocabulary would give other token ids, hence other models; a rebuild into a home
# that holds the study's vocabulary reuses it and reproduces the models.
VOCABULARIES = "tokenizers"
PACKAGES = ["seedlab", "torch", "transformers", "tokenizers", "numpy", "pandas", "pyarrow",
            "duckdb", "scattertext"]


class DemoError(SeedlabError):
    """A demo build that did not complete (a job failed); the message says which."""


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a study. Sizes are ``L<layers>-H<hidden>`` (hidden written
    with three digits so that names sort by size); ``prune_seed`` is the fine-tuning seed
    whose models are also pruned; ``max_*`` limit the examples (None: all)."""

    name: str
    sizes: tuple[str, ...]
    pretrain_seeds: tuple[int, ...]
    finetune_seeds: tuple[int, ...]
    checkpoints: tuple[float, ...]
    pretrain_epochs: float
    pretrain_learning_rate: float
    pretrain_batch_size: int
    finetune_epochs: float
    finetune_learning_rate: float
    finetune_batch_size: int
    max_seq_length: int
    max_pretrain_examples: int | None
    max_train_examples: int | None
    max_eval_examples: int | None
    prune_seed: int
    prune_step: float = 0.1
    workers: int = 2


FULL = Recipe(
    # One layer and 64 units, then twice the width, then twice the depth: L2-H064 and
    # L2-H128 fine-tuned to the same accuracy (0.7229 and 0.7227), see docs/demo.md.
    name="full", sizes=("L1-H064", "L2-H128", "L4-H128"), pretrain_seeds=(0, 1, 2, 3, 4),
    finetune_seeds=(1, 2, 3, 4, 5), checkpoints=(2 / 3, 4 / 3, 2.0),
    # Fine-tuning at 1e-3 for one epoch left about one run in twelve at the majority
    # class; 5e-4 for two epochs trained every run tried (docs/demo.md, "Recipe").
    # Longer pretraining raised masked-token accuracy but not fine-tuned accuracy.
    pretrain_epochs=3.0, pretrain_learning_rate=1e-3, pretrain_batch_size=64,
    finetune_epochs=2.0, finetune_learning_rate=5e-4, finetune_batch_size=32,
    max_seq_length=32, max_pretrain_examples=None, max_train_examples=None,
    max_eval_examples=None, prune_seed=1, prune_step=0.25, workers=2)

QUICK = Recipe(
    name="quick", sizes=("L1-H064", "L2-H064"), pretrain_seeds=(0, 1), finetune_seeds=(1, 2),
    checkpoints=(0.5, 1.0), pretrain_epochs=1.0, pretrain_learning_rate=1e-3,
    pretrain_batch_size=32, finetune_epochs=1.0, finetune_learning_rate=1e-3,
    finetune_batch_size=32, max_seq_length=32, max_pretrain_examples=320,
    max_train_examples=320, max_eval_examples=120, prune_seed=1, workers=1)


def model_dir(work: Path, size: str, pretrain_seed: int) -> Path:
    """Where the pretrained model of ``size`` and ``pretrain_seed`` is kept."""
    return work / "models" / f"{TASK}-{size}-p{pretrain_seed}"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the study depends on (and Python's)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str:
    """The commit of the seedlab checkout ('' outside a git checkout), with '+dirty' when
    seedlab's own files have uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "seedlab"], cwd=root,
                               capture_output=True, text=True, timeout=10,
                               check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if head and dirty else "")


def run_workers(home: Path, n: int, log: Callable[[str], None]) -> None:
    """Run ``seedlab worker --once`` until the queue is empty: one process (which starts
    one worker per GPU) where there is a GPU, else ``n`` single-threaded CPU workers
    (small models run faster on one thread each than on several)."""
    from seedlab.runs.executor import local_gpus

    gpus = local_gpus()
    count = 1 if gpus else max(1, n)
    env = dict(os.environ)
    if not gpus:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    logs = home / "runs" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children = []
    for i in range(count):
        command = [sys.executable, "-m", "seedlab", "--home", str(home), "worker", "--once"]
        out = (logs / f"demo-worker-{i}.log").open("a")
        children.append((subprocess.Popen(command, env=env, stdout=out,
                                          stderr=subprocess.STDOUT), out))
        time.sleep(1.0)
    log(f"{count} worker(s) started ({'GPU ' + ','.join(gpus) if gpus else 'CPU'})")
    for child, out in children:
        child.wait()
        out.close()


def _failures(store: Store) -> str:
    from seedlab.runs import queue

    frame = queue.jobs(store, state=["failed", "cancelled"])
    return "\n".join(f"job {r.id} ({r.size}, p{r.pretrain_seed}, f{r.finetune_seed}): {r.state}"
                     f" {r.message or ''}" for r in frame.itertuples())


def _run_queue(store: Store, recipe: Recipe, log: Callable[[str], None]) -> None:
    """Run workers while jobs are queued (also those an interrupted build left)."""
    from seedlab.runs import queue

    queue.reap_stale(store)
    if queue.counts(store)["queued"]:
        run_workers(store.home, recipe.workers, log)


def build(work: Path, recipe: Recipe, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the study of ``recipe`` in the seedlab home ``work`` through the queue and
    workers; returns the summary (accuracies, seeds, timings) for the manifest. Jobs whose
    output already exists in ``work`` are skipped, so an interrupted build resumes."""
    from seedlab.runs import plan, queue
    from seedlab.runs.pretrain import pretrain_spec

    work = Path(work)
    store = Store(work)
    started = time.time()
    pre = [pretrain_spec(TASK, size, p, model_dir(work, size, p), epochs=recipe.pretrain_epochs,
                         learning_rate=recipe.pretrain_learning_rate,
                         batch_size=recipe.pretrain_batch_size,
                         max_seq_length=recipe.max_seq_length,
                         max_train_examples=recipe.max_pretrain_examples)
           for size in reversed(recipe.sizes) for p in recipe.pretrain_seeds]
    # (largest first, as for fine-tuning below, so the workers finish together)
    pre = [s for s in pre if not (Path(s.model) / "pretrain.json").exists()]
    ids = queue.submit(store, pre)
    log(f"pretraining: {len(ids)} job(s) queued")
    _run_queue(store, recipe, log)
    missing = [f"{s}-p{p}" for s in recipe.sizes for p in recipe.pretrain_seeds
               if not (model_dir(work, s, p) / "pretrain.json").exists()]
    if missing:
        raise DemoError(f"pretraining did not finish for {', '.join(missing)}:\n"
                        + _failures(store))
    pretrain_seconds = time.time() - started

    # Largest models first: the longest jobs start early, so the workers finish together.
    grid = {"task": TASK, "size": list(reversed(recipe.sizes)),
            "model": {s: str(work / "models" / f"{TASK}-{s}-p{{pretrain_seed}}")
                      for s in recipe.sizes},
            "pretrain_seed": [str(p) for p in recipe.pretrain_seeds],
            "checkpoints": list(recipe.checkpoints), "epochs": recipe.finetune_epochs,
            "learning_rate": recipe.finetune_learning_rate,
            "batch_size": recipe.finetune_batch_size, "max_seq_length": recipe.max_seq_length,
            "max_train_examples": recipe.max_train_examples,
            "max_eval_examples": recipe.max_eval_examples}
    pruned = {**grid, "finetune_seeds": [recipe.prune_seed],
              "prune": {"threshold": 0.9, "step": recipe.prune_step}}
    rest = {**grid, "finetune_seeds": [f for f in recipe.finetune_seeds if f != recipe.prune_seed]}
    jobs = plan.missing_jobs(store, pruned) + (plan.missing_jobs(store, rest)
                                               if rest["finetune_seeds"] else [])
    ids = queue.submit(store, jobs)
    log(f"fine-tuning: {len(ids)} job(s) queued")
    _run_queue(store, recipe, log)
    missing = plan.missing_jobs(store, pruned) + (plan.missing_jobs(store, rest)
                                                  if rest["finetune_seeds"] else [])
    if missing:
        raise DemoError(f"{len(missing)} fine-tuning runs are missing:\n" + _failures(store))
    return summarize(work, recipe, seconds=time.time() - started,
                     pretrain_seconds=pretrain_seconds)


def _mean_std(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {"mean": round(float(arr.mean()), 4),
            "std": round(float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, 4), "n": len(arr)}


def summarize(work: Path, recipe: Recipe, *, seconds: float,
              pretrain_seconds: float) -> dict[str, Any]:
    """Accuracy of each size (mean and std over all runs at each checkpoint, and of the
    per-pretraining-seed means at the last one), held-out masked-token accuracy of the
    pretrained models, and the majority-class rate of the eval split."""
    from seedlab.runs.pretrain import held_out_accuracy, read_summary

    store = Store(work)
    acc = store.run_accuracy(TASK, checkpoint="all")
    acc["checkpoint"] = acc["checkpoint"].astype(float).round(4)
    instances = store.instances(task=TASK)
    majority = float(instances["label"].value_counts(normalize=True).max())
    sizes: dict[str, Any] = {}
    last = round(max(recipe.checkpoints), 4)
    for size in recipe.sizes:
        rows = acc[acc["size"] == size]
        final = rows[rows["checkpoint"] == last]
        per_seed = final.groupby("pretrain_seed")["accuracy"].mean()
        sizes[size] = {
            "accuracy": _mean_std(final["accuracy"].tolist()),
            "accuracy_by_checkpoint": {f"{c:g}": _mean_std(g["accuracy"].tolist())
                                       for c, g in rows.groupby("checkpoint")},
            "accuracy_of_pretraining_seeds": _mean_std(per_seed.tolist()),
            "mlm_accuracy": _mean_std([held_out_accuracy(model_dir(work, size, p))
                                       for p in recipe.pretrain_seeds]),
        }
    masks = store.masks(task=TASK)
    return {"task": TASK, "n_eval_instances": len(instances),
            "n_runs": int(acc[["size", "pretrain_seed", "finetune_seed"]].drop_duplicates()
                          .shape[0]),
            "n_mask_settings": int(masks["setting"].nunique()) if len(masks) else 0,
            "majority_class_rate": round(majority, 4), "sizes": sizes,
            "seconds": round(seconds, 1), "pretraining_seconds": round(pretrain_seconds, 1),
            "pretraining_job_seconds": round(sum(
                read_summary(model_dir(work, s, p))["seconds"]
                for s in recipe.sizes for p in recipe.pretrain_seeds), 1)}


def description(recipe: Recipe, summary: dict[str, Any]) -> str:
    """The task description the app's banner shows."""
    return (f"Miniature study, {summary['n_eval_instances']:,} instances: small BERTs"
            f" pretrained from scratch (masked LM) and fine-tuned by seedlab's runner on"
            f" Rotten Tomatoes; sizes {', '.join(recipe.sizes)};"
            f" {len(recipe.pretrain_seeds)} pretraining seeds x"
            f" {len(recipe.finetune_seeds)} fine-tuning seeds;"
            f" {len(recipe.checkpoints)} checkpoints.")


def publish(work: Path, out: Path, recipe: Recipe, manifest: dict[str, Any]) -> None:
    """Copy the finished study from ``work`` into the home ``out`` in one transaction
    (runs, instances, pruning masks, the task's description), then write the manifest.
    Other tasks in ``out`` are left alone; earlier demo runs are replaced."""
    work, out = Path(work), Path(out)
    src, dest = Store(work), Store(out)
    runs = src.runs(task=TASK)
    if runs.empty:
        raise DemoError(f"{work} holds no {TASK} runs to publish")
    masks = src.masks(task=TASK)
    with dest.transaction("import", f"seedlab demo ({recipe.name})", replace=True) as tx:
        tx.set_task(TASK, src.label_list(TASK), source="seedlab demo",
                    description=manifest["description"])
        tx.add_instances(TASK, src.instances(task=TASK).drop(columns=["task"]))
        for run in runs.itertuples():
            frame = src.predictions(task=TASK, size=run.size, pretrain_seed=run.pretrain_seed,
                                    finetune_seed=run.finetune_seed,
                                    columns=["checkpoint", "instance_id", "pred", "correct",
                                             "p_correct", "probs"])
            frame = frame.sort_values(["checkpoint", "instance_id"]).reset_index(drop=True)
            table = _prediction_table(frame)
            tx.add_run(RunData(TASK, str(run.size), str(run.pretrain_seed),
                               int(run.finetune_seed), table, source="seedlab-run",
                               model=_relative_model(str(run.model), work),
                               hyperparameters=_json(run.hyperparameters),
                               provenance={**_json(run.provenance), "demo": recipe.name}))
        regrouped = masks_across_pretraining_seeds(masks)
        for setting, frame in regrouped.items():
            tx.add_masks(setting, TASK, frame)
        published = {(str(r.size), str(r.pretrain_seed), int(r.finetune_seed))
                     for r in runs.itertuples()}
        for old in dest.runs(task=TASK).itertuples():  # an earlier study's sizes or seeds
            if (str(old.size), str(old.pretrain_seed), int(old.finetune_seed)) not in published:
                tx.remove_run(TASK, str(old.size), str(old.pretrain_seed),
                              int(old.finetune_seed))
        for setting in dest.masks(task=TASK)["setting"].unique():
            if setting not in regrouped:
                tx.remove_masks(str(setting), TASK)  # an earlier publish's settings
    vocabularies = _vocabularies(_trained_vocabularies(work))
    for folder in vocabularies:
        _copy_folder(folder, out / VOCABULARIES / folder.name)
    names = {folder.name for folder in vocabularies}
    for stale in (out / VOCABULARIES).glob("*"):
        if stale.name not in names:
            shutil.rmtree(stale, ignore_errors=True)  # an earlier study's vocabulary
    with atomic.replacing(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")


def masks_across_pretraining_seeds(masks: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The study prunes the models of one fine-tuning seed; the runner files each model's
    masks under its own setting (``<prefix>-<size>-p<pretraining seed>``, seed = the
    fine-tuning seed). Regroup them per size, with the pretraining seed as the mask's seed,
    so the Pruning-masks page compares masks across pretraining seeds
    (``<prefix>-<size>``). Returns ``{setting: frame}`` in the store's mask columns."""
    from seedlab.runs.trainer import MASK_SETTING_PREFIX

    pattern = re.compile(rf"^{re.escape(MASK_SETTING_PREFIX)}-(?P<size>.+)-p(?P<seed>\d+)$")
    out: dict[str, list[pd.DataFrame]] = {}
    for setting, frame in masks.groupby("setting"):
        match = pattern.match(str(setting))
        if match is None:
            raise DemoError(f"unexpected mask setting {setting!r} in the demo build")
        if frame["seed"].nunique() != 1:
            raise DemoError(f"{setting}: expected the masks of one fine-tuning seed,"
                            f" found {sorted(frame['seed'].unique())}")
        part = frame[["component", "layer", "head", "kept", "importance"]].copy()
        part.insert(0, "seed", int(match["seed"]))
        out.setdefault(f"{MASK_SETTING_PREFIX}-{match['size']}", []).append(part)
    return {name: pd.concat(parts, ignore_index=True) for name, parts in out.items()}


def _json(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value) if value else {}
    except (TypeError, ValueError):
        return {}


def _relative_model(model: str, work: Path) -> str:
    """Model folders live in the work home; record them by their name only."""
    return Path(model).name if model.startswith(str(work)) else model


def _prediction_table(frame: pd.DataFrame):
    import pyarrow as pa

    return pa.table({
        "checkpoint": pa.array(frame["checkpoint"].astype(float).to_numpy()),
        "instance_id": pa.array(frame["instance_id"].astype(str).tolist(), pa.string()),
        "pred": pa.array(frame["pred"].astype("int32").to_numpy()),
        "correct": pa.array(frame["correct"].astype(bool).to_numpy()),
        "p_correct": pa.array(frame["p_correct"].astype("float32").to_numpy()),
        "probs": pa.array([np.asarray(p, dtype=np.float32) for p in frame["probs"]],
                          pa.list_(pa.float32())),
    })


def _vocabularies(root: Path) -> list[Path]:
    """The finished vocabularies (folders holding a ``tokenizer.json``) in folder ``root``:
    a build's ``models/.tokenizers`` or a home's ``tokenizers``."""
    return sorted(p for p in root.glob("*") if (p / "tokenizer.json").is_file()
                  and not p.name.startswith("."))


def _trained_vocabularies(work: Path) -> Path:
    """Where the pretraining jobs of the build in ``work`` keep their shared vocabulary."""
    from seedlab.runs.pretrain import TOKENIZER_FOLDER

    return Path(work) / "models" / TOKENIZER_FOLDER


def _copy_folder(src: Path, dest: Path) -> None:
    """Copy folder ``src`` to ``dest`` unless it exists (copied beside it, then renamed, so
    a reader never sees half a folder)."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(dest) as tmp:
        shutil.copytree(src, tmp)


def reuse_vocabulary(out: Path, work: Path, log: Callable[[str], None] = print) -> list[str]:
    """Put the vocabularies published in ``out`` (``out/tokenizers/``) where the pretraining
    jobs of ``work`` look for them, so the rebuild tokenizes as the published study did.
    Returns the names reused."""
    names = []
    for folder in _vocabularies(Path(out) / VOCABULARIES):
        _copy_folder(folder, _trained_vocabularies(work) / folder.name)
        names.append(folder.name)
    if names:
        log(f"reusing the vocabulary of the published study ({', '.join(names)}):"
            " pass --new-vocabulary to train another")
    return names


def _load_average() -> float | None:
    """The one-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def run_demo(out: Path, recipe: Recipe, *, work: Path | None = None, fresh: bool = False,
             command: str = "", new_vocabulary: bool = False,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the study of ``recipe`` in ``work`` and publish it into the home ``out``;
    returns the manifest. Unless ``new_vocabulary``, the vocabulary published in ``out``
    (if any) is reused, so the models are those of the published study."""
    out = Path(out).resolve()
    work = Path(work or Path(tempfile.gettempdir()) / f"seedlab-demo-{recipe.name}").resolve()
    if work == out:
        raise DemoError("the work home must differ from the destination (--out)")
    if fresh and work.exists():
        shutil.rmtree(work)
    started_at, load_start = utc_now(), _load_average()
    log(f"seedlab demo ({recipe.name}): building in {work}, publishing to {out}")
    reused = [] if new_vocabulary else reuse_vocabulary(out, work, log)
    summary = build(work, recipe, log=log)
    manifest = {
        "study": "miniature MultiBERTs on Rotten Tomatoes, made by seedlab's own runner",
        "command": command or "seedlab demo" + (" --quick" if recipe.name == "quick" else ""),
        "recipe": asdict(recipe),
        "seeds": {"pretrain": list(recipe.pretrain_seeds),
                  "finetune": list(recipe.finetune_seeds), "pruned": recipe.prune_seed},
        "started_at": started_at, "finished_at": utc_now(),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 # other work on the machine slows the build: the load says how much
                 "load_average_start": load_start, "load_average_end": _load_average()},
        "git_commit": git_commit(), "versions": package_versions(),
        "vocabulary": {"names": [f.name for f in _vocabularies(_trained_vocabularies(work))],
                       "reused_from_destination": bool(reused)},
        **summary,
    }
    manifest["description"] = description(recipe, summary)
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    publish(work, out, recipe, manifest)
    log(accuracy_table(manifest))
    log(f"published {summary['n_runs']} runs into {out} ({summary['seconds']:.0f} s)")
    return manifest


def publish_built(work: Path, out: Path) -> dict[str, Any]:
    """Publish a study that an earlier ``seedlab demo`` finished in ``work`` (its
    ``demo_manifest.json`` is there) into the home ``out``; returns the manifest."""
    work, out = Path(work).resolve(), Path(out).resolve()
    path = work / MANIFEST
    if not path.exists():
        raise DemoError(f"{work} holds no finished study ({MANIFEST} is missing): build it"
                        " first with seedlab demo --work")
    if work == out:
        raise DemoError("the work home must differ from the destination (--out)")
    manifest = json.loads(path.read_text())
    recipe = Recipe(**{k: tuple(v) if isinstance(v, list) else v
                       for k, v in manifest["recipe"].items()})
    publish(work, out, recipe, manifest)
    return manifest


def default_task(home: Path, tasks: list[str]) -> str | None:
    """The task the app opens on in ``home``: the study ``seedlab demo`` published there
    (named by its ``demo_manifest.json``) when it is among ``tasks``, else None."""
    try:
        task = json.loads((Path(home) / MANIFEST).read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if task in tasks else None


def accuracy_table(manifest: dict[str, Any]) -> str:
    """A Markdown table of the accuracy of each size (last checkpoint, mean ± std over
    runs) and its held-out masked-token accuracy."""
    lines = ["| size | runs | eval accuracy (mean ± std) | masked-LM accuracy |",
             "|---|---|---|---|"]
    for size, row in manifest["sizes"].items():
        a, m = row["accuracy"], row["mlm_accuracy"]
        lines.append(f"| {size} | {a['n']} | {a['mean']:.3f} ± {a['std']:.3f} |"
                     f" {m['mean']:.3f} ± {m['std']:.3f} |")
    lines.append(f"\nMajority class: {manifest['majority_class_rate']:.3f}.")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``seedlab demo [--quick] [--out DIR] [--work DIR] [--fresh]``."""
    p = sub.add_parser("demo", help="rebuild the default study (miniature MultiBERTs on Rotten"
                                    " Tomatoes) with seedlab's own runner")
    p.add_argument("--quick", action="store_true",
                   help="a minutes-long miniature (2 sizes x 2 x 2 seeds, few examples)")
    p.add_argument("--out", type=Path, default=None,
                   help="seedlab home to publish into (default: --home, $SEEDLAB_HOME or ./data)")
    p.add_argument("--work", type=Path, default=None,
                   help="where the study is built before publishing (default: a folder in"
                        " the temporary directory; reused, so an interrupted build resumes)")
    p.add_argument("--fresh", action="store_true", help="empty the work folder first")
    p.add_argument("--workers", type=int, default=None, help="CPU workers (default: recipe's)")
    p.add_argument("--new-vocabulary", action="store_true", dest="new_vocabulary",
                   help="train a new WordPiece vocabulary instead of reusing the one published"
                        " in --out (the models then differ from the published ones)")
    p.add_argument("--publish-only", action="store_true", dest="publish_only",
                   help="only publish the study already finished in --work")
    p.set_defaults(func=cmd_demo)


def cmd_demo(store: Store, args: argparse.Namespace) -> int:
    recipe = QUICK if args.quick else FULL
    if args.workers:
        recipe = Recipe(**{**asdict(recipe), "workers": args.workers})
    out = args.out or store.home
    if args.publish_only:
        if args.work is None:
            raise DemoError("--publish-only needs --work (the folder the study was built in)")
        manifest = publish_built(args.work, out)
        print(accuracy_table(manifest))
        print(f"published {manifest['n_runs']} runs from {args.work} into {out}")
        return 0
    command = " ".join(["seedlab", *(["--home", str(args.home)] if args.home else []), "demo",
                        *(["--quick"] if args.quick else []),
                        *(["--out", str(args.out)] if args.out else []),
                        *(["--work", str(args.work)] if args.work else []),
                        *(["--fresh"] if args.fresh else []),
                        *(["--new-vocabulary"] if args.new_vocabulary else []),
                        *(["--workers", str(args.workers)] if args.workers else [])])
    run_demo(out, recipe, work=args.work, fresh=args.fresh, command=command,
             new_vocabulary=args.new_vocabulary, log=lambda m: print(m, flush=True))
    return 0
