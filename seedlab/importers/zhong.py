"""Importers for Zhong, Ghosh, Klein & Steinhardt (2021), "Are Larger Pretrained Language
Models Uniformly Better? Comparing Performance at the Instance Level".

Two formats (docs/formats-zhong.md has the full mapping):

* ``import_zhong``: the prediction release, ``<task>/data.json`` plus
  ``<task>/results/s{size}p{p}f{f}epoch{i}over3.tsv`` (SST-2 in ``fold0..4/``), and the
  processed ``correctness/<task>.pkl`` / ``correctness_p/<task>.pkl`` tensors.
* ``import_zhong_decaying``: ``decaying/<task>LargeWorseThanMini.pkl``, the decaying and
  control instances with the ``rz`` annotator's verdicts on their gold labels.

Everything is read and validated before anything is written; a bad file raises
``InputError`` naming the file, the line or field, and what was expected, and the store
is left as it was. Pickles are read with ``seedlab.importers.safe_pickle``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from seedlab import schema
from seedlab.errors import InputError
from seedlab.importers import inputs, safe_pickle
from seedlab.importers.table import check_name
from seedlab.store import RunData, Store

RELEASE_KIND = "zhong"
DECAYING_KIND = "zhong-decaying"

MNLI_LABELS = ["contradiction", "entailment", "neutral"]
# Label lists of the decaying tasks, as the release's data.json gives them (GLUE's order),
# by canonical task name.
DECAYING_LABELS = {"MNLI": MNLI_LABELS, "QQP": ["0", "1"], "SST-2": ["0", "1"]}
# HANS gold labels are two-way; the MNLI model is three-way. "non-entailment" is right when
# the model predicts anything but "entailment" (Zhong et al.'s utils.correctness).
NON_ENTAILMENT = "non-entailment"
EXTRA_FIELDS = ("genre", "heuristic", "subcase", "template", "category")
VERDICTS = {"correct", "reasonable", "wrong", "unsure"}
GROUPS = {"treatment", "control"}
# Keys of a predict item (or a decaying instance) that are the importer's own columns.
RESERVED_KEYS = {"instance_id", "task", "split", "fold", "extra"}

# Used with fullmatch: a name ending in a newline is not a result file.
RESULT_NAME = re.compile(
    r"s(?P<size>[A-Za-z0-9_]+?)p(?P<p>[A-Za-z0-9_.+-]+?)f(?P<f>\d{1,18})epoch(?P<epoch>\d{1,4})"
    r"over3\.tsv"
)
# The correctness tensors' last axis: checkpoints after 9/3, 10/3, 11/3 and 12/3 epochs.
TENSOR_EPOCHS = (9, 10, 11, 12)
# The tensors' pretraining / fine-tuning axes hold seeds 1..10 and 1..5 in order
# (dump_correctness.py loops ``range(1, 11)`` and ``range(1, 6)``).
TENSOR_SEED_BASE = 1
# correctness_p values were rounded to 2 decimals by dump_correctness.py.
P_CORRECT_TOLERANCE = 0.005 + 1e-6
ROW_SUM_TOLERANCE = 1e-3
SKIPPED_FOLDERS = {"correctness", "correctness_p", "ensemble_c", "decaying", "pretrained"}


def checkpoint_of(epoch: int) -> float:
    """The checkpoint (in epochs) of a result file ``...epoch{epoch}over3.tsv``."""
    return round(epoch / 3, 4)


# =======================================================================================
# decaying/*.pkl


def decaying_task_name(path: Path) -> str:
    """``mnliLargeWorseThanMini.pkl`` -> ``mnli``, ``sst-2LargeWorseThanMini.pkl`` -> ``sst-2``:
    the leading lower-case part of the file name, as the release spells it (the task is
    stored under ``schema.canonical_task`` of it)."""
    match = re.match(r"([a-z0-9][a-z0-9_.+-]*)", path.stem)
    if not match:
        raise InputError(path, "cannot tell the task from the file name",
                         expected="a name such as mnliLargeWorseThanMini.pkl")
    return match.group(1).rstrip(".")


def task_name(path: Path, released: str, **where: Any) -> str:
    """The canonical name of a task the release calls ``released`` (``mnli`` -> ``MNLI``;
    names that are no GLUE task are lower-cased, as this importer always did)."""
    return check_name(path, "task", schema.canonical_task(released.lower()), **where)


@dataclass
class _DecayingFile:
    path: Path
    task: str
    released_task: str
    instances: pd.DataFrame
    annotations: pd.DataFrame
    splits: dict[str, int]


def _read_decaying(path: Path, root: Path | None) -> _DecayingFile:
    released = decaying_task_name(path)
    task = task_name(path, released)
    data = safe_pickle.load(path, root=root)
    if not isinstance(data, dict):
        raise InputError(path, f"the pickle holds a {type(data).__name__}",
                         expected="a dict {split: (data_list, group_list, annotations)}")
    rows: list[dict[str, Any]] = []
    verdicts: list[tuple[int, str, str]] = []  # (row index, annotator, verdict)
    splits: dict[str, int] = {}
    for split, value in data.items():
        where = f"[{split!r}]"
        if not (isinstance(value, (tuple, list)) and len(value) == 3):
            raise InputError(path, "a split is not a 3-tuple", field=where,
                             expected="(data_list, group_list, annotations)")
        items, groups, annotations = value
        if not isinstance(items, list) or not isinstance(groups, list):
            raise InputError(path, "data_list and group_list must be lists", field=where,
                             expected="(data_list, group_list, annotations), two lists and a"
                             " dict")
        if len(items) != len(groups):
            raise InputError(path, f"{len(items)} instances but {len(groups)} groups",
                             field=where, expected="one group for each instance")
        if not isinstance(annotations, dict):
            raise InputError(path, "annotations is not a dict", field=f"{where}[2]",
                             expected="{} or {'rz': [verdict or None, ...]}")
        for annotator, marks in annotations.items():
            if not inputs.is_person_name(annotator):
                raise InputError(path, f"annotator name {inputs.quote(annotator)} is not a name",
                                 field=f"{where}[2]", expected="the annotator's name, e.g. 'rz'"
                                 " (non-empty text, at most 100 characters)")
            if not isinstance(marks, list) or len(marks) != len(items):
                raise InputError(path, f"annotator {annotator!r} has"
                                 f" {len(marks) if isinstance(marks, list) else 'no'} verdicts"
                                 f" for {len(items)} instances", field=f"{where}[2]",
                                 expected="one verdict or None for each instance")
        splits[str(split)] = len(items)
        for i, (item, group) in enumerate(zip(items, groups)):
            field_name = f"{where}[0][{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("guid"), str):
                raise InputError(path, "an instance is not a dict with a string guid",
                                 field=field_name, expected="{'guid', 'label', 'text_a', ...}")
            if not isinstance(group, str) or group not in GROUPS:
                raise InputError(path, f"group {inputs.quote(group)} is not known",
                                 field=f"{where}[1][{i}]", expected="'treatment' or 'control'")
            _check_item(path, item, field_name)
            row = {"split": str(split), "guid": item["guid"], "text_a": item.get("text_a"),
                   "text_b": item.get("text_b"), "label": _label_text(item.get("label")),
                   "group": group}
            for extra in EXTRA_FIELDS:
                if item.get(extra) is not None:
                    row[extra] = item[extra]
            for annotator, marks in annotations.items():
                verdict = marks[i]
                if verdict is None:
                    continue
                if not isinstance(verdict, str) or verdict.lower() not in VERDICTS:
                    raise InputError(path, f"verdict {verdict!r} is not known",
                                     field=f"{where}[2][{annotator!r}][{i}]",
                                     expected="Correct, Reasonable, Wrong, Unsure or None")
                verdicts.append((len(rows), str(annotator), verdict.lower()))
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise InputError(path, "the pickle holds no instances", expected="at least one split")
    frame.insert(0, "instance_id", _decaying_ids(path, frame))
    ann = pd.DataFrame(
        {"task": task, "instance_id": [frame["instance_id"].iloc[r] for r, _, _ in verdicts],
         "annotator": [a for _, a, _ in verdicts], "verdict": [v for _, _, v in verdicts],
         "note": ""}
    )
    return _DecayingFile(path, task, released, frame, ann, splits)


def _decaying_ids(path: Path, frame: pd.DataFrame) -> pd.Series:
    """The guid; a guid found in more than one split becomes ``split:guid``."""
    dup_in_split = frame.duplicated(["split", "guid"])
    if dup_in_split.any():
        row = frame[dup_in_split].iloc[0]
        raise InputError(path, f"guid {row['guid']!r} appears twice in split {row['split']!r}",
                         field="guid", expected="unique guids within a split")
    shared = frame.groupby("guid")["split"].transform("nunique") > 1
    ids = frame["guid"].astype(str).copy()
    ids[shared] = frame["split"][shared] + ":" + frame["guid"][shared]
    return ids


def _label_text(label: Any) -> str | None:
    return None if label is None else str(label)


def _check_item(path: Path, item: dict, where: str) -> None:
    """An instance of a release (a predict item, a decaying instance): text fields are text,
    the gold label text or an integer, other fields JSON scalars, no key the importer uses
    for its own columns."""
    for key, value in item.items():
        if not isinstance(key, str):
            raise InputError(path, f"key {inputs.quote(key)} is not text", field=where,
                             expected="text keys")
        if key in RESERVED_KEYS:
            raise InputError(path, f"key {key!r} is one seedlab sets itself", field=f"{where}.{key}",
                             expected="no key named " + ", ".join(sorted(RESERVED_KEYS)))
        if value is None:
            continue
        integer = (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                   and inputs.is_json_scalar(value))
        if key in ("text_a", "text_b"):
            ok, expected = isinstance(value, str), "text"
        elif key in ("guid", "label"):
            ok, expected = isinstance(value, str) or integer, "text or an integer"
        else:
            ok = inputs.is_json_scalar(value)
            expected = "text, a number or true/false"
        if not ok:
            raise InputError(path, f"{key} is a {type(value).__name__}", field=f"{where}.{key}",
                             expected=expected)


def _check_labels(path: Path, task: str, labels: pd.Series, label_list: list[str]) -> None:
    allowed = set(label_list)
    if "entailment" in allowed:
        allowed.add(NON_ENTAILMENT)
    bad = labels.notna() & ~labels.isin(sorted(allowed))
    if bad.any():
        raise InputError(path, f"gold label {labels[bad].iloc[0]!r} is not a label of task"
                         f" {task!r}", field="label", expected=" | ".join(sorted(allowed)))


def import_zhong_decaying(store: Store, path: str | Path) -> dict[str, Any]:
    """Import ``decaying/*.pkl`` (the folder or one file): instances with their
    ``group`` (treatment = decaying, control) and every annotator's verdicts on the gold
    labels (``rz``), as annotations from source ``zhong-decaying``.

    Returns the transaction summary plus ``tasks``: per task, instances, verdicts, splits.
    Importing the same files again adds nothing.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.pkl"))
        if not files:
            raise InputError(path, "the folder holds no .pkl file",
                             expected="decaying/<task>LargeWorseThanMini.pkl files")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(path, "no such file or folder",
                         expected="the decaying/ folder or one of its .pkl files")
    parsed = [_read_decaying(f, path if path.is_dir() else None) for f in files]
    label_lists: dict[str, list[str]] = {}
    for item in parsed:
        known = store.task_row(item.task)
        if item.task in label_lists:
            labels = label_lists[item.task]
        elif known is not None:
            labels = list(known["label_list"])
        elif item.task in DECAYING_LABELS:
            labels = DECAYING_LABELS[item.task]
        else:
            labels = sorted({x for x in item.instances["label"].dropna()})
        _check_labels(item.path, item.task, item.instances["label"], labels)
        label_lists[item.task] = labels

    tasks: dict[str, dict[str, Any]] = {}
    with store.transaction(DECAYING_KIND, str(path)) as tx:
        for task, labels in label_lists.items():
            known = store.task_row(task)
            if known is None or list(known["label_list"]) != labels:
                tx.set_task(task, labels, source=str(path),
                            description="Zhong et al. (2021) instance-level study")
        for item in parsed:
            tx.add_instances(item.task, item.instances)
            if not item.annotations.empty:
                tx.add_annotations(item.annotations)
            entry = tasks.setdefault(item.task, {"instances": 0, "verdicts": 0, "splits": {},
                                                 "released_as": item.released_task})
            entry["instances"] += len(item.instances)
            entry["verdicts"] += len(item.annotations)
            entry["splits"].update(item.splits)
    return {**tx.summary, "tasks": tasks}


# =======================================================================================
# The prediction release: <task>/data.json + <task>/results/*.tsv


@dataclass
class _Fold:
    """One data.json with its results folder (a task, or one SST-2 fold)."""

    folder: Path
    fold: int | None
    label_list: list[str]
    predict: list[dict]
    results: dict[tuple[str, str, int, int], Path]  # (size, p, f, epoch) -> file
    root: Path  # the release folder every file must lie in


@dataclass
class _TaskPlan:
    """A validated task folder: its instances and what its runs will be built from."""

    task: str
    folder: Path
    label_list: list[str]
    instances: pd.DataFrame
    gold: np.ndarray  # (N,) label index from data.json; -2 for HANS non-entailment
    folds: list[_Fold]
    tsv_runs: dict[tuple[str, str, int], list[int]]  # (size, p, f) -> epochs
    hyperparameters: dict[str, Any]
    correctness_path: Path | None = None
    correctness_p_path: Path | None = None
    correctness: dict[str, np.ndarray] = field(default_factory=dict)  # size -> (N, P, F, 4)
    correctness_p: dict[str, np.ndarray] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> Iterator[RunData]:
        """Read, validate and yield every run: result files first, then tensor-only sizes."""
        yield from _tsv_runs(self)
        yield from _tensor_runs(self)


def _load_json(path: Path, root: Path) -> Any:
    return inputs.read_json(path, root=root)


def _read_fold(folder: Path, fold: int | None, need_results: bool, root: Path) -> _Fold:
    data_path = folder / "data.json"
    if not data_path.is_file():
        raise InputError(data_path, "data.json is missing",
                         expected="<task>/data.json with label_list, train and predict")
    data = _load_json(data_path, root)
    if not isinstance(data, dict):
        raise InputError(data_path, "the file is not a JSON object",
                         expected="keys label_list, train, predict")
    for key in ("label_list", "predict"):
        if key not in data:
            raise InputError(data_path, f"key {key!r} is missing", field=key,
                             expected="keys label_list, train, predict")
    label_list = data["label_list"]
    if (not isinstance(label_list, list) or len(label_list) < 2
            or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in label_list)
            or len({str(x) for x in label_list}) != len(label_list)):
        raise InputError(data_path, "label_list is not a list of at least two distinct labels",
                         field="label_list", expected='class names, e.g. ["0", "1"]')
    predict = data["predict"]
    if not isinstance(predict, list) or not all(isinstance(x, dict) for x in predict):
        raise InputError(data_path, "predict is not a list of objects", field="predict",
                         expected="[{guid, text_a, text_b, label, ...}, ...]")
    results_dir = folder / "results"
    results: dict[tuple[str, str, int, int], Path] = {}
    if results_dir.is_dir():
        for tsv in sorted(results_dir.iterdir()):
            if tsv.suffix != ".tsv":
                continue
            match = RESULT_NAME.fullmatch(tsv.name)
            if not match:
                raise InputError(tsv, "the file name does not name a run",
                                 expected="s{size}p{pretrain seed}f{finetune seed}epoch{i}over3.tsv")
            check_name(tsv, "size", match["size"], field="file name")
            check_name(tsv, "pretraining seed", match["p"], field="file name")
            key = (match["size"], match["p"], int(match["f"]), int(match["epoch"]))
            if key in results:
                raise InputError(tsv, f"the same run and epoch as {results[key]} (size {key[0]},"
                                 f" pretraining seed {key[1]}, fine-tuning seed {key[2]},"
                                 f" epoch {key[3]}/3)", expected="one file per run and epoch")
            results[key] = tsv
    elif need_results:
        raise InputError(results_dir, "the results folder is missing",
                         expected="<task>/results/s{size}p{p}f{f}epoch{i}over3.tsv files,"
                                  " or correctness/<task>.pkl beside the task folders")
    return _Fold(folder, fold, [str(x) for x in label_list], predict, results, root)


def _task_folders(root: Path, tasks: list[str] | None) -> list[Path]:
    def is_task(folder: Path) -> bool:
        return (folder / "data.json").exists() or (folder / "results").is_dir() or any(
            re.fullmatch(r"fold\d+", p.name) for p in folder.iterdir() if p.is_dir())

    if not root.is_dir():
        raise InputError(root, "no such folder", expected="the release folder")
    if is_task(root) and root.name not in SKIPPED_FOLDERS:
        found = [root]
    else:
        found = [p for p in sorted(root.iterdir())
                 if p.is_dir() and p.name not in SKIPPED_FOLDERS and not p.name.startswith(".")
                 and is_task(p)]
    if tasks:
        wanted = {schema.canonical_task(t.lower()) for t in tasks}
        unknown = wanted - {schema.canonical_task(p.name.lower()) for p in found}
        if unknown:
            raise InputError(root, f"no task folder for {sorted(unknown)}",
                             expected=f"one of {[p.name for p in found]}")
        found = [p for p in found if schema.canonical_task(p.name.lower()) in wanted]
    if not found:
        raise InputError(root, "no task folder found",
                         expected="<task>/data.json and <task>/results/ (SST-2: <task>/fold0..4/)")
    names: dict[str, Path] = {}
    for p in found:
        task = task_name(p, p.name)
        if task in names:
            raise InputError(p, f"task folders {names[task].name} and {p.name} are the same task"
                             f" {task!r}", expected="one folder per task")
        names[task] = p
    return found


def _pickle_paths(root: Path, task_folder: Path) -> tuple[Path | None, Path | None]:
    bases = [root, root.parent] if task_folder == root else [root]
    if root.name == "model_data_for_release":
        bases.append(root.parent)
    for base in bases:
        for name in (task_folder.name, task_folder.name.lower()):
            c = base / "correctness" / f"{name}.pkl"
            p = base / "correctness_p" / f"{name}.pkl"
            if c.exists() or p.exists():
                return (c if c.exists() else None, p if p.exists() else None)
    return None, None


def _plan_task(root: Path, folder: Path) -> _TaskPlan:
    task = task_name(folder, folder.name)
    correctness_path, correctness_p_path = _pickle_paths(root, folder)
    need_results = correctness_path is None
    fold_dirs = sorted((p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"fold\d+", p.name)),
                       key=lambda p: int(p.name[4:]))
    if fold_dirs and (folder / "data.json").exists():
        raise InputError(folder, "the folder has both data.json and fold folders",
                         expected="either <task>/data.json or <task>/fold<k>/data.json")
    folds = ([_read_fold(p, int(p.name[4:]), need_results, root) for p in fold_dirs]
             if fold_dirs else [_read_fold(folder, None, need_results, root)])
    label_list = folds[0].label_list
    for fold in folds[1:]:
        if fold.label_list != label_list:
            raise InputError(fold.folder / "data.json", f"label_list {fold.label_list} differs"
                             f" from {label_list} in {folds[0].folder / 'data.json'}",
                             field="label_list", expected="the same labels in every fold")
    if task == "HANS" and NON_ENTAILMENT in label_list:
        # The predictions come from the 3-way MNLI model: its classes are the columns.
        label_list = MNLI_LABELS

    instances, gold = _release_instances(task, folds, label_list)
    plan = _TaskPlan(task, folder, label_list, instances, gold, folds,
                     _run_epochs(folds), _hyperparameters(folder, root),
                     correctness_path, correctness_p_path)
    by_guid = bool((instances["instance_id"] == instances["guid"]).all())
    plan.report = {"released_as": folder.name, "instances": len(instances),
                   "folds": len(fold_dirs) or None,
                   "instance_ids": "guid" if by_guid else "fold<k>:guid"}
    if correctness_path:
        plan.correctness = _read_tensor(correctness_path, plan, correctness_path.parent.parent)
    if correctness_p_path:
        plan.correctness_p = _read_tensor(correctness_p_path, plan,
                                          correctness_p_path.parent.parent)
    _check_tensors(plan)
    tsv_sizes = {size for size, _, _ in plan.tsv_runs}
    plan.report.update(
        runs_from_tsv=len(plan.tsv_runs), runs_from_tensors=0, checked_against_tensors=0,
        tensor_sizes_imported=sorted(set(plan.correctness) - tsv_sizes),
    )
    skipped = sorted(set(plan.correctness_p) - set(plan.correctness) - tsv_sizes)
    if skipped:
        plan.report["skipped_p_only_sizes"] = skipped
    return plan


def _release_instances(task: str, folds: list[_Fold], label_list: list[str]
                       ) -> tuple[pd.DataFrame, np.ndarray]:
    index = {label: i for i, label in enumerate(label_list)}
    hans_ok = "entailment" in index
    rows: list[dict[str, Any]] = []
    gold: list[int] = []
    for fold in folds:
        data_path = fold.folder / "data.json"
        seen: set[str] = set()
        for i, item in enumerate(fold.predict):
            _check_item(data_path, item, f"predict[{i}]")
            guid = item.get("guid")
            guid = str(i) if guid is None else str(guid)
            if guid in seen:
                raise InputError(data_path, f"guid {guid!r} appears twice",
                                 field=f"predict[{i}].guid", expected="unique guids")
            seen.add(guid)
            label = _label_text(item.get("label"))
            if label in index:
                gold.append(index[label])
            elif label == NON_ENTAILMENT and hans_ok:
                gold.append(-2)
            else:
                raise InputError(data_path, f"gold label {label!r} is not in label_list"
                                 f" {label_list}", field=f"predict[{i}].label",
                                 expected=" | ".join(label_list))
            row = {"guid": guid, "split": guid.rpartition("-")[0] if "-" in guid else "",
                   "text_a": item.get("text_a"), "text_b": item.get("text_b"), "label": label}
            for key, value in item.items():
                if key not in row and key != "guid" and value is not None:
                    row[key] = value
            if fold.fold is not None:
                row["fold"] = fold.fold
            rows.append(row)
    frame = pd.DataFrame(rows)
    ids = frame["guid"].astype(str)
    if ids.duplicated().any():
        # The same guid in two folds: keep ids unique by naming the fold.
        ids = "fold" + frame["fold"].astype(str) + ":" + ids
    frame.insert(0, "instance_id", ids)
    return frame, np.asarray(gold, dtype=np.int64)


def _hyperparameters(folder: Path, root: Path) -> dict[str, Any]:
    path = folder / "size2hyperparam.json"
    if not path.exists():
        return {}
    data = _load_json(path, root)
    return data if isinstance(data, dict) else {}


# -- result TSVs ---------------------------------------------------------------------------


def read_probabilities(path: Path, n_labels: int, n_rows: int, data_path: Path,
                       root: Path | None = None) -> np.ndarray:
    """Read one ``results/*.tsv``: ``(n_rows, n_labels)`` float64 class probabilities.

    Raises ``InputError`` naming the file and line for a ragged, truncated or non-numeric
    row, NaN or negative values, rows that do not sum to 1 (within 1e-3), and a row count
    other than the ``n_rows`` predict items of ``data_path``. The file must be a regular
    file (inside ``root`` when given) of at most the bytes that many numbers take as text.
    """
    inputs.regular_file(path, root=root, what="a result TSV")
    limit = _tsv_limit(n_rows, n_labels)
    inputs.check_size(path, limit, f"a TSV of {n_rows} x {n_labels} probabilities")
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": pa.float64() for i in range(n_labels)}),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise _locate_tsv_error(path, n_labels, exc, limit) from None
    if table.num_columns != n_labels:
        raise InputError(path, f"rows have {table.num_columns} columns but label_list has"
                         f" {n_labels} labels", line=1,
                         expected="one probability per label, tab-separated")
    probs = np.column_stack([c.to_numpy() for c in table.columns])
    if probs.shape[0] != n_rows:
        raise InputError(path, f"has {probs.shape[0]} rows but {data_path} has {n_rows}"
                         " predict items", expected="one row per predict item, in order")
    bad = ~np.isfinite(probs) | (probs < 0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(path, f"probability {float(probs[row, col])} in column {col + 1}",
                         line=int(row) + 1, field=f"column {col + 1}",
                         expected="finite probabilities >= 0")
    off = np.abs(probs.sum(axis=1) - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise InputError(path, f"the row sums to {probs[row].sum():.6g}", line=row + 1,
                         expected=f"probabilities summing to 1 (within {ROW_SUM_TOLERANCE})")
    return probs


def _tsv_limit(n_rows: int, n_labels: int) -> int:
    return (n_rows + 1) * (n_labels * inputs.BYTES_PER_NUMBER + 2) + 4096


def _locate_tsv_error(path: Path, n_labels: int, exc: Exception, limit: int) -> InputError:
    """Scan the file line by line (only after a fast read failed) for the bad line; reads at
    most ``limit`` bytes."""
    try:
        text = inputs.decode(path, inputs.read_bytes(path, limit=limit, what="a result TSV"),
                             "tab-separated numbers")
    except InputError as err:
        return err
    if not text.strip():
        return InputError(path, "the file is empty", expected="one row of probabilities per"
                          " predict item")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != n_labels:
            return InputError(path, f"the row has {len(values)} values but label_list has"
                              f" {n_labels} labels (a truncated or ragged row)", line=lineno,
                              expected="one probability per label, tab-separated")
        for col, value in enumerate(values, 1):
            try:
                float(value)
            except ValueError:
                # The release names this file, the user did not: say where, not what.
                return InputError(path, f"the value in column {col} is not a number",
                                  line=lineno, field=f"column {col}", expected="a probability")
    return InputError(path, f"cannot read the file as tab-separated numbers: {exc}",
                      expected="one row of probabilities per predict item")


def _probs_list(probs: np.ndarray) -> pa.Array:
    n, k = probs.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(probs.astype(np.float32).ravel()))


def score(probs: np.ndarray, gold: np.ndarray, label_list: list[str]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pred`` (argmax), ``correct`` and ``p_correct`` of ``(N, C)`` probabilities against
    ``gold`` ``(N,)`` label indices (-2: HANS non-entailment, right unless the prediction is
    entailment, with p_correct = 1 - p(entailment)). Each output is ``(N,)``."""
    pred = probs.argmax(axis=1).astype(np.int32)
    hans = gold == -2
    safe_gold = np.where(hans, 0, gold)
    correct = pred == safe_gold
    p_correct = probs[np.arange(len(gold)), safe_gold]
    if hans.any():
        ent = label_list.index("entailment")
        correct = np.where(hans, pred != ent, correct)
        p_correct = np.where(hans, 1.0 - probs[:, ent], p_correct)
    return pred, correct, p_correct


def _model(size: str) -> str:
    return f"BERT-{size} (Zhong et al. 2021 pretraining)"


def _run_epochs(folds: list[_Fold]) -> dict[tuple[str, str, int], list[int]]:
    """(size, p, f) -> epochs of the result files; every fold must hold the same files."""
    for fold in folds[1:]:
        if set(fold.results) != set(folds[0].results):
            extra = min(set(fold.results) ^ set(folds[0].results))
            raise InputError(fold.folder / "results", f"fold{fold.fold} and fold{folds[0].fold}"
                             f" hold different result files (e.g. size {extra[0]}, p {extra[1]},"
                             f" f {extra[2]}, epoch {extra[3]})",
                             expected="the same runs and epochs in every fold")
    by_run: dict[tuple[str, str, int], list[int]] = {}
    for key in sorted(folds[0].results):
        by_run.setdefault(key[:3], []).append(key[3])
    return by_run


def _hyper(plan: _TaskPlan, size: str) -> dict[str, Any]:
    value = plan.hyperparameters.get(size)
    return value if isinstance(value, dict) else {}


def _tsv_runs(plan: _TaskPlan) -> Iterator[RunData]:
    """One RunData per (size, p, f), from the result files of every fold (concatenated in
    fold order), cross-checked against the correctness tensors where they hold the run."""
    n_labels = len(plan.label_list)
    ids = pa.array(plan.instances["instance_id"].tolist(), pa.string())
    for (size, p, f), epochs in plan.tsv_runs.items():
        parts = []
        files = []
        for epoch in epochs:
            paths = [fold.results[(size, p, f, epoch)] for fold in plan.folds]
            probs = np.concatenate([
                read_probabilities(path, n_labels, len(fold.predict), fold.folder / "data.json",
                                   root=fold.root)
                for path, fold in zip(paths, plan.folds)])
            files += [str(path) for path in paths]
            pred, correct, p_correct = score(probs, plan.gold, plan.label_list)
            _cross_check(plan, size, p, f, epoch, correct, p_correct, paths[0])
            parts.append(pa.table({
                "checkpoint": pa.array(np.full(len(pred), checkpoint_of(epoch))),
                "instance_id": ids, "pred": pa.array(pred), "correct": pa.array(correct),
                "p_correct": pa.array(p_correct.astype(np.float32)), "probs": _probs_list(probs),
            }))
        yield RunData(
            task=plan.task, size=size, pretrain_seed=p, finetune_seed=f,
            table=pa.concat_tables(parts), source=RELEASE_KIND, model=_model(size),
            hyperparameters=_hyper(plan, size),
            provenance={"file": files[0], "files": files, "format": "zhong results tsv",
                        "released_task": plan.folder.name},
        )


def _cross_check(plan: _TaskPlan, size: str, p: str, f: int, epoch: int, correct: np.ndarray,
                 p_correct: np.ndarray, tsv: Path) -> None:
    """Compare one checkpoint of a result-file run with the tensors, where they hold it
    (pretraining seed p at tensor index p-1, fine-tuning seed f at f-1, epochs 9..12)."""
    if not p.isdigit() or epoch not in TENSOR_EPOCHS:
        return
    pi, fi, e = int(p) - TENSOR_SEED_BASE, f - TENSOR_SEED_BASE, TENSOR_EPOCHS.index(epoch)
    for tensors, path, column, values, tol in (
        (plan.correctness, plan.correctness_path, "correct", correct, 0.0),
        (plan.correctness_p, plan.correctness_p_path, "p_correct", p_correct,
         P_CORRECT_TOLERANCE),
    ):
        array = tensors.get(size)
        if array is None or not (0 <= pi < array.shape[1] and 0 <= fi < array.shape[2]):
            continue
        expected = array[:, pi, fi, e]
        diff = np.abs(values.astype(np.float64) - expected) > tol
        if diff.any():
            i = int(np.argmax(diff))
            raise InputError(
                path, f"{column} of predict item {i} ({plan.instances['guid'].iloc[i]!r}) is"
                f" {expected[i]:.4g} here but {float(values[i]):.4g} from {tsv}"
                f" ({int(diff.sum())} of {len(diff)} items differ at size {size}, p {p}, f {f},"
                f" epoch {epoch}/3)", field=size,
                expected="tensors computed from the same result files")
        plan.report["checked_against_tensors"] += 1


# -- correctness tensors -------------------------------------------------------------------


def _read_tensor(path: Path, plan: _TaskPlan, root: Path) -> dict[str, np.ndarray]:
    """``correctness[_p]/<task>.pkl``: ``{size: (N, P, F, 4)}`` or ``({size: ...}, predict)``."""
    data = safe_pickle.load(path, root=root)
    predicts = None
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], dict):
        data, predicts = data
    if not isinstance(data, dict):
        raise InputError(path, f"the pickle holds a {type(data).__name__}",
                         expected="{size: array (N, P, F, 4)} or ({size: array}, predict list)")
    n = len(plan.instances)
    if predicts is not None:
        if not isinstance(predicts, list) or len(predicts) != n:
            raise InputError(path, f"the pickle's predict list has"
                             f" {len(predicts) if isinstance(predicts, list) else 'no'} items but"
                             f" {plan.folder} has {n} predict items", field="[1]")
        guids = plan.instances["guid"].tolist()
        for i, (item, guid) in enumerate(zip(predicts, guids)):
            theirs = item.get("guid", str(i)) if isinstance(item, dict) else None
            if str(theirs) != guid:
                raise InputError(path, f"predict item {i} has guid {theirs!r} but data.json has"
                                 f" {guid!r}", field=f"[1][{i}]",
                                 expected="the predict items of data.json, in order")
    out: dict[str, np.ndarray] = {}
    for size, array in data.items():
        if not isinstance(size, str):
            raise InputError(path, f"size key {inputs.quote(size)} is not text", field="size",
                             expected="{size name: array}")
        check_name(path, "size", size, field=size)
        try:
            array = np.asarray(array)
        except (ValueError, TypeError):  # ragged nested lists
            raise InputError(path, f"size {size!r} is a ragged nested list", field=size,
                             expected="a rectangular array (N, P, F, 4)") from None
        if array.dtype.kind not in "biuf":
            raise InputError(path, f"size {size!r} holds {array.dtype} values",
                             field=str(size), expected="numbers")
        if array.ndim != 4 or array.shape[0] != n or array.shape[3] != len(TENSOR_EPOCHS):
            raise InputError(path, f"size {size!r} has shape {array.shape}; {plan.folder} has"
                             f" {n} predict items", field=str(size),
                             expected=f"(N={n}, pretraining seeds, fine-tuning seeds, 4)")
        if array.dtype.kind not in "biuf":
            raise InputError(path, f"size {size!r} holds {array.dtype} values",
                             field=str(size), expected="numbers")
        out[str(size)] = array.astype(np.float64)
    return out


def _check_tensors(plan: _TaskPlan) -> None:
    """Values in range and the two tensors' shapes in agreement."""
    for size, array in plan.correctness.items():
        bad_mask = ~np.isin(array, (0.0, 1.0))
        if bad_mask.any():
            bad = tuple(int(x) for x in np.argwhere(bad_mask)[0])
            raise InputError(plan.correctness_path, f"value {array[bad]!r} at index {bad}",
                             field=size, expected="0 or 1 (correct or not)")
        other = plan.correctness_p.get(size)
        if other is not None and other.shape != array.shape:
            raise InputError(plan.correctness_p_path, f"size {size!r} has shape {other.shape}"
                             f" but {plan.correctness_path} has {array.shape}", field=size,
                             expected="the same shape in correctness/ and correctness_p/")
    for size, array in plan.correctness_p.items():
        bad_mask = (~np.isfinite(array) | (array < -P_CORRECT_TOLERANCE)
                    | (array > 1 + P_CORRECT_TOLERANCE))
        if bad_mask.any():
            bad = tuple(int(x) for x in np.argwhere(bad_mask)[0])
            raise InputError(plan.correctness_p_path, f"value {array[bad]!r} at index {bad}",
                             field=size, expected="a probability in [0, 1]")


def _tensor_runs(plan: _TaskPlan) -> Iterator[RunData]:
    """Runs of the sizes that have a correctness tensor but no result files.

    The class probabilities are unknown: ``probs`` is empty, ``pred`` is the gold index
    where the run was correct and -1 (unknown) elsewhere, ``p_correct`` comes from
    correctness_p where present, else NaN.
    """
    n = len(plan.instances)
    ids = pa.array(plan.instances["instance_id"].tolist(), pa.string())
    empty_probs = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)),
                                           pa.array([], pa.float32()))
    for size in plan.report["tensor_sizes_imported"]:
        array = plan.correctness[size]
        p_array = plan.correctness_p.get(size)
        files = [str(plan.correctness_path)] + (
            [str(plan.correctness_p_path)] if p_array is not None else [])
        for pi in range(array.shape[1]):
            for fi in range(array.shape[2]):
                parts = []
                for e, epoch in enumerate(TENSOR_EPOCHS):
                    correct = array[:, pi, fi, e] == 1.0
                    pred = np.where(correct & (plan.gold >= 0), plan.gold, -1).astype(np.int32)
                    p_correct = (p_array[:, pi, fi, e] if p_array is not None
                                 else np.full(n, np.nan))
                    parts.append(pa.table({
                        "checkpoint": pa.array(np.full(n, checkpoint_of(epoch))),
                        "instance_id": ids, "pred": pa.array(pred),
                        "correct": pa.array(correct),
                        "p_correct": pa.array(p_correct.astype(np.float32)),
                        "probs": empty_probs,
                    }))
                plan.report["runs_from_tensors"] += 1
                yield RunData(
                    task=plan.task, size=size, pretrain_seed=str(pi + TENSOR_SEED_BASE),
                    finetune_seed=fi + TENSOR_SEED_BASE, table=pa.concat_tables(parts),
                    source=RELEASE_KIND, model=_model(size), hyperparameters=_hyper(plan, size),
                    provenance={"file": str(plan.correctness_path), "files": files,
                                "format": "zhong correctness tensor", "tensor_index": [pi, fi],
                                "released_task": plan.folder.name,
                                "pred": "the gold index where correct, else -1 (unknown)",
                                "probs": "unknown (empty)"},
                )


def import_zhong(store: Store, path: str | Path, tasks: list[str] | None = None,
                 replace: bool = False) -> dict[str, Any]:
    """Import Zhong et al.'s prediction release at ``path`` (the folder holding one folder
    per task, or one task folder).

    Each task folder's data.json and correctness tensors are validated first; then, in one
    transaction, every result file is read and validated and each run staged to disk as it
    is built (so memory stays bounded by one run). Any error discards the whole
    transaction: the store is left as it was. ``tasks`` limits the import to those task
    folders; ``replace`` lets a run replace a stored run with the same key but other
    predictions.

    Returns the transaction summary plus ``tasks``: per task, instances, runs from result
    files, runs from tensors, and how many checkpoints were cross-checked with the tensors.
    """
    root = Path(path)
    plans = [_plan_task(root, folder) for folder in _task_folders(root, tasks)]
    with store.transaction(RELEASE_KIND, str(root), replace=replace) as tx:
        for plan in plans:
            known = store.task_row(plan.task)
            if known is None or list(known["label_list"]) != plan.label_list:
                tx.set_task(plan.task, plan.label_list, source=str(plan.folder),
                            description="Zhong et al. (2021) prediction release")
            tx.add_instances(plan.task, plan.instances)
            for run in plan.runs():
                tx.add_run(run, spill=True)
    return {**tx.summary, "tasks": {plan.task: plan.report for plan in plans}}
