"""The store's tables and their columns, in one place.

Layout of a seedlab home (default ``data/``)::

    predictions/task=<task>/size=<size>/<run_id>.parquet   one file per run, all checkpoints
    instances/task=<task>/<digest>.parquet                 one file per task
    masks/setting=<setting>/task=<task>/<digest>.parquet   one file per (setting, task)
    evaluations/<digest>.parquet                            mask evaluation results
    tasks/<task>.json                                       label list and provenance of a task
    catalog.sqlite                                          index of the files above, the
                                                            annotation log, the job queue

The Parquet and JSON files are the data; ``catalog.sqlite`` indexes them (it is rebuilt
from them when missing) and holds what users write by hand: annotations and jobs.
"""

from __future__ import annotations

import re

import pyarrow as pa

# ---------------------------------------------------------------------------------------
# Predictions: long format, one row per (run, checkpoint, instance).
# ``task`` and ``size`` live in the hive partition path, not inside the file.
PREDICTION_FILE_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("pretrain_seed", pa.string()),
        ("finetune_seed", pa.int64()),
        ("checkpoint", pa.float64()),
        ("instance_id", pa.string()),
        ("pred", pa.int32()),
        ("correct", pa.bool_()),
        ("p_correct", pa.float32()),
        ("probs", pa.list_(pa.float32())),
    ]
)
PREDICTION_COLUMNS = [
    "task",
    "size",
    "pretrain_seed",
    "finetune_seed",
    "checkpoint",
    "instance_id",
    "pred",
    "correct",
    "p_correct",
    "probs",
]

# ---------------------------------------------------------------------------------------
# Instances: one row per evaluation instance. ``extra`` holds the fields a format carries
# beyond the core ones (genre, heuristic, subcase, template, category, group ...) as JSON.
INSTANCE_FILE_SCHEMA = pa.schema(
    [
        ("instance_id", pa.string()),
        ("split", pa.string()),
        ("guid", pa.string()),
        ("text_a", pa.string()),
        ("text_b", pa.string()),
        ("label", pa.string()),
        ("extra", pa.string()),
    ]
)
INSTANCE_COLUMNS = ["task", "instance_id", "split", "guid", "text_a", "text_b", "label"]
# Extra fields that are promoted to columns by ``Store.instances`` when present.
KNOWN_EXTRA_FIELDS = ["group", "genre", "heuristic", "subcase", "template", "category"]

# ---------------------------------------------------------------------------------------
# Pruning masks: one row per (setting, task, seed, component, layer, head).
# For MLPs ``head`` is -1.
MASK_FILE_SCHEMA = pa.schema(
    [
        ("seed", pa.int64()),
        ("component", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("kept", pa.bool_()),
        ("importance", pa.float64()),
    ]
)
MASK_COLUMNS = ["setting", "task", "seed", "component", "layer", "head", "kept", "importance"]
MASK_COMPONENTS = ("head", "mlp")

# Mask evaluation results (lottery ``evaluate_masked/**/results.json``).
EVALUATION_COLUMNS = ["experiment", "variant", "task", "metric", "mean", "std"]
EVALUATION_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("variant", pa.string()),
        ("task", pa.string()),
        ("metric", pa.string()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
    ]
)

# ---------------------------------------------------------------------------------------
# Annotations: an append-only log. The current verdict is the latest row per
# (task, instance_id, annotator).
ANNOTATION_COLUMNS = ["task", "instance_id", "annotator", "verdict", "note", "at"]
VERDICTS = ("correct", "reasonable", "wrong", "unsure")

# Runs: one row per (task, size, pretrain_seed, finetune_seed).
RUN_COLUMNS = [
    "run_id",
    "task",
    "size",
    "pretrain_seed",
    "finetune_seed",
    "source",
    "model",
    "hyperparameters",
    "provenance",
    "checkpoints",
    "n_instances",
    "n_predictions",
    "accuracy",
    "content_hash",
    "file",
    "created_at",
]

# Names that become directory names (task, size, setting) are kept to a safe alphabet so
# that hive partition paths need no escaping. ``\Z`` (not ``$``, which also matches before
# a trailing newline) and ``fullmatch``: "tx\n" is not a name. 100 characters keep a
# partition path well inside the 255 bytes a file name may have.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")
NAME_MAX_LENGTH = 100
NAME_RULE = ("letters, digits and '_', '.', '+', '-', starting with a letter or digit, at most"
             f" {NAME_MAX_LENGTH} characters")


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is usable as a task, size or setting name, else raise ValueError."""
    if (not isinstance(value, str) or len(value) > NAME_MAX_LENGTH
            or not NAME_PATTERN.fullmatch(value) or value in {".", ".."}):
        shown = value if not isinstance(value, str) or len(value) <= 60 else value[:60] + "..."
        raise ValueError(f"{kind} {shown!r} is not a valid name: use {NAME_RULE}")
    return value


# ---------------------------------------------------------------------------------------
# Task names. The GLUE names (Wang et al. 2018) are the field's convention; releases spell
# them in other ways (Zhong et al.: ``mnli``, ``sst-2``; MultiBERTs: ``MNLI``; the lottery
# masks: ``SST-2``). Every importer stores a task under ``canonical_task(name)`` and keeps
# the name the release used in its provenance, so masks, predictions and verdicts of one
# task meet.
CANONICAL_TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI",
                   "AX", "HANS", "SNLI")


def _task_key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_TASK_KEYS = {_task_key(name): name for name in CANONICAL_TASKS}


def canonical_task(name: str) -> str:
    """The one name a task is stored under: a GLUE task (or HANS, SNLI, AX) in GLUE's
    spelling whatever the case, '-' or '_' of ``name`` (``mnli`` -> ``MNLI``, ``sst2`` and
    ``sst-2`` -> ``SST-2``, ``sts_b`` -> ``STS-B``); any other name as given
    (``winogender``, ``sim-mnli``, ``MNLI_TWO``). Nothing is stripped: a name that is not
    valid stays invalid for ``check_name`` to refuse."""
    return _TASK_KEYS.get(_task_key(name), name)


def task_aliases(name: str) -> list[str]:
    """Every spelling ``canonical_task`` maps to the same task as ``name`` (lower-case
    spellings with and without '-'), the canonical one first. For a sidebar or URL that
    should find ``MNLI`` when asked for ``mnli``."""
    canonical = canonical_task(name)
    key = _task_key(canonical)
    if key not in _TASK_KEYS:
        return [canonical]
    return list(dict.fromkeys([canonical, canonical.lower(), key]))
