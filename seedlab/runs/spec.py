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

Only value types live here (no store, no queue): ``runs.plan`` asks the store which jobs
a grid still needs.
"""

from __future__ import annotations

import itertools
import json
import math
import string
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from seedlab import schema
from seedlab.errors import InputError

DEFAULT_PRUNE = {"threshold": 0.9, "step": 0.1}
# The only placeholders a model template may hold.
PLACEHOLDERS = ("size", "pretrain_seed")
# Fine-tuning seeds seed numpy too, which takes 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1


def fill_template(template: str, *, size: str, pretrain_seed: str) -> str:
    """``template`` with ``{size}`` and ``{pretrain_seed}`` replaced (``{{``/``}}`` are
    literal braces). Nothing else is evaluated: any other field, attribute, index,
    conversion or format spec raises ``ValueError`` saying which."""
    values = {"size": size, "pretrain_seed": pretrain_seed}
    parts = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"unbalanced braces in {template!r} ({exc}); write {{{{ and }}}}"
                         " for literal braces") from exc
    for literal, name, spec, conversion in parsed:
        parts.append(literal)
        if name is None:
            continue
        if name not in values or spec or conversion:
            whole = "{" + name + (f"!{conversion}" if conversion else "") + (
                f":{spec}" if spec else "") + "}"
            raise ValueError(f"{whole} in {template!r} is not a placeholder: only {{size}} and"
                             " {pretrain_seed} are")
        parts.append(values[name])
    return "".join(parts)



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
        try:
            return fill_template(str(model), size=size, pretrain_seed=pretrain_seed)
        except ValueError as exc:
            raise InputError(self.source, str(exc), field="model",
                             expected="a model source with at most {size} and"
                             " {pretrain_seed} placeholders") from exc

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


def _number(value: Any, kind: type, name: str, source: str) -> float | int:
    """``value`` as a finite ``kind`` (float or int); an int field takes only whole numbers."""
    expected = "a finite number" if kind is float else "a whole number"
    if isinstance(value, bool):
        raise InputError(source, f"{value!r} is not a number", field=name, expected=expected)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(source, f"{value!r} is not a number", field=name,
                         expected=expected) from exc
    if not math.isfinite(number):
        raise InputError(source, f"{value!r} is not a finite number", field=name,
                         expected=expected)
    if kind is float:
        return number
    if isinstance(value, int):
        return value
    if not number.is_integer():
        raise InputError(source, f"{value!r} is not a whole number", field=name,
                         expected=expected)
    return int(number)


def _seed(value: Any, source: str) -> int:
    seed = _number(value, int, "finetune_seeds", source)
    if not 0 <= seed <= MAX_SEED:
        raise InputError(source, f"seed {value!r} is out of range", field="finetune_seeds",
                         expected=f"integers from 0 to {MAX_SEED}")
    return int(seed)


def _check_templates(model: Any, sizes: list[str], pretrain: list[str], source: str) -> None:
    """Every model source (or template) fills for the grid's first cell, so a bad
    placeholder is refused here, before anything expands."""
    if isinstance(model, dict):
        missing = [size for size in sizes if size not in model]
        if missing:
            raise InputError(source, f"no model for size {missing[0]!r}", field="model",
                             expected="an entry for every size")
    values = list(model.values()) if isinstance(model, dict) else _listify(model)
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise InputError(source, f"{value!r} is not a model source", field="model",
                             expected="a path, hub id or catalogue name")
        try:
            fill_template(value, size=sizes[0], pretrain_seed=pretrain[0])
        except ValueError as exc:
            raise InputError(source, str(exc), field="model",
                             expected="a model source with at most {size} and"
                             " {pretrain_seed} placeholders") from exc


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
    finetune = [_seed(s, source) for s in _listify(seeds_raw)]
    model = data["model"]
    if isinstance(model, list) and len(model) != len(pretrain):
        raise InputError(source, f"{len(model)} models for {len(pretrain)} pretraining seeds",
                         field="model",
                         expected="one model, or one model per pretraining seed")
    _check_templates(model, sizes, pretrain, source)
    options: dict[str, Any] = {}
    for name, kind in _NUMBER_OPTIONS.items():
        if data.get(name) is not None:
            options[name] = _number(data[name], kind, name, source)
            if options[name] < 0 or (name != "warmup" and name != "weight_decay"
                                     and options[name] == 0):
                raise InputError(source, f"{data[name]!r} is out of range", field=name,
                                 expected="a positive number")
    for name in _TEXT_OPTIONS:
        if data.get(name) is not None:
            options[name] = str(data[name])
    epochs = options.get("epochs", 1.0)
    checkpoints = tuple(_number(c, float, "checkpoints", source)
                        for c in _listify(data.get("checkpoints", [epochs])))
    if not checkpoints or any(c <= 0 or c > epochs + 1e-9 for c in checkpoints):
        raise InputError(source, f"checkpoints {list(checkpoints)} are not within the"
                         f" {epochs} training epochs", field="checkpoints",
                         expected="epochs between 0 (exclusive) and epochs")
    options["checkpoints"] = tuple(sorted(set(checkpoints)))
    prune = data.get("prune")
    if prune:
        prune = {**DEFAULT_PRUNE, **(prune if isinstance(prune, dict) else {})}
        threshold = _number(prune["threshold"], float, "prune", source)
        step = _number(prune["step"], float, "prune", source)
        if not (0 < threshold <= 1 and 0 < step < 1):
            raise InputError(source, f"prune {prune} is out of range", field="prune",
                             expected="threshold in (0, 1], step in (0, 1)")
        options["prune"] = {"threshold": threshold, "step": step}
    if data.get("kind", "finetune") != "finetune":
        raise InputError(source, f"job kind {data['kind']!r} is not supported", field="kind",
                         expected="finetune")
    return GridSpec(task=data["task"], model=model, size=sizes, pretrain_seed=pretrain,
                    finetune_seeds=finetune, options=options, source=source)


def grid_from_fields(fields: dict[str, Any], source: str) -> GridSpec:
    """A grid from the fields a form or a command line gives (the Runs page and
    ``seedlab runs submit`` build their grids here, so both read fields the same way).

    ``fields`` holds spec fields (``task``, ``model``, ``size``...); a field that is None,
    blank text or an empty list is left out (the spec's default applies), a ``model`` list
    of one is that one source, and ``prune`` False means no pruning. Numbers may be given
    as text (``"3.33"``): ``parse_grid`` reads them, refusing NaN and infinities with the
    field named."""
    data: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, str):
            value = value.strip()
        if value is None or (isinstance(value, (str, list, tuple)) and not value):
            continue
        data[name] = value
    model = data.get("model")
    if isinstance(model, (list, tuple)):
        data["model"] = model[0] if len(model) == 1 else list(model)
    if not data.get("prune"):
        data.pop("prune", None)
    return parse_grid(data, source)


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
