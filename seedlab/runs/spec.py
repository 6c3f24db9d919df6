"""Job specs: what one fine-tuning run is, and how a grid form expands into runs.

A grid spec is a JSON object (``seedlab runs submit --spec FILE.json``)::

    {"task": "rotten_tomatoes", "model": ["multiberts-seed_0", "multiberts-seed_1"],
     "size": "base", "pretrain_seed": ["0", "1"], "finetune_seeds": [1, 2],
     "checkpoints": [3, 3.33, 3.67, 4], "epochs": 4, "learning_rate": 2e-5,
     "batch_size": 32, "max_seq_length": 128}

``size``, ``pretrain_seed`` and ``finetune_seeds`` may be lists and expand into a grid
(sizes x pretraining seeds x fine-tuning seeds). ``model`` is one source (it may contain
``{size}`` and ``{pretrain_seed}`` placeholders), a list with one source per pretraining
seed, or an object mapping size to a source (or template). Optional: ``data`` (the task's
folder or file), ``warmup`` (fraction of steps), ``max_train_examples``,
``max_eval_examples``, ``intermediate_task`` (STILTs) with ``intermediate_data``,
``prune`` (``true`` or ``{"threshold": 0.9, "step": 0.1}``), ``weight_decay``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from seedlab import schema
from seedlab.errors import InputError

DEFAULT_PRUNE = {"threshold": 0.9, "step": 0.1}


@dataclass(frozen=True)
class JobSpec:
    """One run: one model, one pretraining-seed label, one fine-tuning seed.

    ``checkpoints`` are fractional epochs at which the eval split is scored (predictions
    are stored for each); ``kind`` is ``'finetune'`` (the trainer is written so other job
    kinds, such as masked-LM pretraining, can be added).
    """

    task: str
    model: str
    size: str
    pretrain_seed: str
    finetune_seed: int
    checkpoints: tuple[float, ...] = (1.0,)
    epochs: float = 1.0
    learning_rate: float = 2e-5
    batch_size: int = 32
    max_seq_length: int = 128
    warmup: float = 0.1
    weight_decay: float = 0.01
    data: str | None = None
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    intermediate_task: str | None = None
    intermediate_data: str | None = None
    prune: dict | None = None
    kind: str = "finetune"

    @property
    def key(self) -> tuple[str, str, str, int]:
        """The store key of the run this job produces."""
        return (self.task, self.size, self.pretrain_seed, self.finetune_seed)

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "learning_rate": self.learning_rate, "batch_size": self.batch_size,
            "epochs": self.epochs, "max_seq_length": self.max_seq_length,
            "warmup": self.warmup, "weight_decay": self.weight_decay,
            "checkpoints": list(self.checkpoints),
            "max_train_examples": self.max_train_examples,
            "max_eval_examples": self.max_eval_examples,
            "intermediate_task": self.intermediate_task, "prune": self.prune,
        }

    def to_json(self) -> str:
        data = asdict(self)
        data["checkpoints"] = list(self.checkpoints)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        data = json.loads(text)
        data["checkpoints"] = tuple(data["checkpoints"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class GridSpec:
    """A grid form: lists of sizes, pretraining seeds and fine-tuning seeds, shared
    hyperparameters. ``expand()`` gives the jobs."""

    task: str
    model: Any
    size: list[str]
    pretrain_seed: list[str]
    finetune_seeds: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "<spec>"

    def model_for(self, size: str, index: int, pretrain_seed: str) -> str:
        model = self.model
        if isinstance(model, dict):
            if size not in model:
                raise InputError(self.source, f"no model for size {size!r}", field="model",
                                 expected="an entry for every size")
            model = model[size]
        if isinstance(model, list):
            model = model[index]
        return str(model).format(size=size, pretrain_seed=pretrain_seed)

    def expand(self) -> list[JobSpec]:
        """One JobSpec per size x pretraining seed x fine-tuning seed, in that order."""
        jobs = []
        for size, (i, p), f in itertools.product(self.size, enumerate(self.pretrain_seed),
                                                 self.finetune_seeds):
            jobs.append(JobSpec(task=self.task, model=self.model_for(size, i, p), size=size,
                                pretrain_seed=p, finetune_seed=f, **self.options))
        return jobs


_NUMBER_OPTIONS = {"epochs": float, "learning_rate": float, "batch_size": int,
                   "max_seq_length": int, "warmup": float, "weight_decay": float,
                   "max_train_examples": int, "max_eval_examples": int}
_TEXT_OPTIONS = ("data", "intermediate_task", "intermediate_data")
_KNOWN = {"task", "model", "size", "pretrain_seed", "finetune_seeds", "finetune_seed",
          "checkpoints", "prune", "kind", *_NUMBER_OPTIONS, *_TEXT_OPTIONS}


def _listify(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def parse_grid(data: dict[str, Any], source: str = "<spec>") -> GridSpec:
    """Validate a grid spec object; errors name the field and what was expected."""
    if not isinstance(data, dict):
        raise InputError(source, "the spec is not a JSON object", expected="a JSON object")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise InputError(source, f"unknown field {unknown[0]!r}", field=unknown[0],
                         expected="one of " + ", ".join(sorted(_KNOWN)))
    for name in ("task", "model", "size", "pretrain_seed"):
        if data.get(name) in (None, "", []):
            raise InputError(source, "missing", field=name, expected="a value")
    try:
        schema.check_name("task", data["task"])
        sizes = [schema.check_name("size", str(s)) for s in _listify(data["size"])]
    except ValueError as exc:
        raise InputError(source, str(exc), field="task/size") from exc
    pretrain = [str(p) for p in _listify(data["pretrain_seed"])]
    seeds_raw = data.get("finetune_seeds", data.get("finetune_seed"))
    if seeds_raw in (None, []):
        raise InputError(source, "missing", field="finetune_seeds", expected="a list of integers")
    try:
        finetune = [int(s) for s in _listify(seeds_raw)]
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"{seeds_raw!r} are not integers", field="finetune_seeds",
                         expected="a list of integers") from exc
    model = data["model"]
    if isinstance(model, list) and len(model) != len(pretrain):
        raise InputError(source, f"{len(model)} models for {len(pretrain)} pretraining seeds",
                         field="model",
                         expected="one model, or one model per pretraining seed")
    options: dict[str, Any] = {}
    for name, kind in _NUMBER_OPTIONS.items():
        if data.get(name) is not None:
            try:
                options[name] = kind(data[name])
            except (TypeError, ValueError) as exc:
                raise InputError(source, f"{data[name]!r} is not a number", field=name,
                                 expected=kind.__name__) from exc
            if options[name] < 0 or (name != "warmup" and name != "weight_decay"
                                     and options[name] == 0):
                raise InputError(source, f"{data[name]!r} is out of range", field=name,
                                 expected="a positive number")
    for name in _TEXT_OPTIONS:
        if data.get(name) is not None:
            options[name] = str(data[name])
    epochs = options.get("epochs", 1.0)
    try:
        checkpoints = tuple(float(c) for c in _listify(data.get("checkpoints", [epochs])))
    except (TypeError, ValueError) as exc:
        raise InputError(source, "checkpoints are not numbers", field="checkpoints",
                         expected="a list of epochs, fractions allowed") from exc
    if not checkpoints or any(c <= 0 or c > epochs + 1e-9 for c in checkpoints):
        raise InputError(source, f"checkpoints {list(checkpoints)} are not within the"
                         f" {epochs} training epochs", field="checkpoints",
                         expected="epochs between 0 (exclusive) and epochs")
    options["checkpoints"] = tuple(sorted(set(checkpoints)))
    prune = data.get("prune")
    if prune:
        prune = {**DEFAULT_PRUNE, **(prune if isinstance(prune, dict) else {})}
        if not (0 < float(prune["threshold"]) <= 1 and 0 < float(prune["step"]) < 1):
            raise InputError(source, f"prune {prune} is out of range", field="prune",
                             expected="threshold in (0, 1], step in (0, 1)")
        options["prune"] = {"threshold": float(prune["threshold"]), "step": float(prune["step"])}
    if data.get("kind", "finetune") != "finetune":
        raise InputError(source, f"job kind {data['kind']!r} is not supported", field="kind",
                         expected="finetune")
    return GridSpec(task=data["task"], model=model, size=sizes, pretrain_seed=pretrain,
                    finetune_seeds=finetune, options=options, source=source)


def load_grid(path: str | Path) -> GridSpec:
    """Read a grid spec from a JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(path, "does not exist") from exc
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON: {exc.msg}", line=exc.lineno,
                         expected="a JSON object") from exc
    return parse_grid(data, str(path))


def existing_keys(store: Any, task: str) -> set[tuple[str, str, str, int]]:
    """Keys (task, size, pretrain_seed, finetune_seed) of the runs the store already has."""
    runs = store.runs(task=task)
    return {(task, str(r.size), str(r.pretrain_seed), int(r.finetune_seed))
            for r in runs.itertuples()}


def missing_jobs(store: Any, grid: GridSpec | dict) -> list[JobSpec]:
    """The jobs of ``grid`` whose predictions are not in the store yet.

    ``grid`` may be a ``GridSpec`` or a spec object (as in a spec file). Jobs already
    queued or running are not skipped here; ``queue.submit`` skips those."""
    if isinstance(grid, dict):
        grid = parse_grid(grid)
    have = existing_keys(store, grid.task)
    return [job for job in grid.expand() if job.key not in have]


def relaunch_jobs(store: Any, task: str,
                  keys: list[tuple[str, str, int]]) -> tuple[list[JobSpec], list[str]]:
    """Jobs that fill the missing ``(size, pretrain_seed, finetune_seed)`` cells of a task's
    coverage grid, following the recipe of runs seedlab already made.

    A missing cell is filled from a run of the same task, size and pretraining seed that a
    seedlab job produced: its job spec (model, data, hyperparameters) with the missing
    fine-tuning seed. Cells without such a run (imported predictions carry no recipe) are
    returned as plain-words reasons instead. Returns ``(jobs, reasons)``.
    """
    from dataclasses import replace

    from seedlab.runs import queue

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
