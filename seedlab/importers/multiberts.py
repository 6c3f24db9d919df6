"""The MultiBERTs prediction release (Sellam et al. 2021, google-research/language,
``multiberts/``): GLUE-style classification runs and Winogender coreference runs.

Classification layout (``example-predictions/GLUE/``)::

    index.tsv            file, task, pretrain_id, n_steps, lr, ft_seed, release (one row per run)
    <file>               TSV of class scores, one row per dev instance, one column per class
    <TASK>_dev_labels    gold label of each dev instance, one per line

Mapping: task -> ``schema.canonical_task(task)`` (GLUE's spelling: ``MNLI``, ``SST-2``; the
name as released is kept in each run's provenance); size -> ``<release>-<n_steps // 1000>k`` (n_steps as
written, e.g. ``2M`` or ``2000000``), plus ``-lr<lr>`` when a task has several learning
rates at the same release and step count; pretrain_seed -> ``str(pretrain_id)``;
finetune_seed -> ``ft_seed``; checkpoint -> 1.0 (the final fine-tuned model);
instance_id -> the row number in the score file ("0", "1", ...). Scores that are not
probability rows are put through a softmax; each run's provenance records which.
Regression tasks (STS-B: non-integer gold labels) are skipped and listed in the summary.

Coreference layout (``example-predictions/coref/<group>/``)::

    run_info.tsv    one row per run: [run name], pretrain_seed (or pretrain_id),
                    finetune_seed (or ft_seed)
    label_info.tsv  one row per Winogender instance: [instance index], answer (0 =
                    occupation, 1 = other participant), gender, pronoun_type, ...
    preds.tsv       one row per run (aligned with run_info.tsv), one column per instance
                    (aligned with label_info.tsv): the predicted referent, 0 or 1

Mapping: task -> ``winogender`` with labels [occupation, other_participant]; size -> the
group folder name (``base``, ``cda_intervention-50k`` ...); hard predictions, so p_correct
is 0/1. See docs/formats.md.

Every file the index names must lie inside the release folder (no ``..``, no absolute path,
no link out of it); messages about those files give the line and column, never their
content.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seedlab import schema
from seedlab.errors import InputError
from seedlab.importers import inputs
from seedlab.importers.table import (
    FINAL_CHECKPOINT,
    build_run_table,
    check_name,
    ensure_task,
    scores_to_probs,
)
from seedlab.store import RunData, Store

INDEX_COLUMNS = ["file", "task", "pretrain_id", "n_steps", "lr", "ft_seed", "release"]
COREF_TASK = "winogender"
COREF_LABELS = ["occupation", "other_participant"]
STEPS = re.compile(r"\s*(\d{1,15}(?:\.\d{1,15})?)\s*([kKmM]?)\s*")
# A score or prediction file has one row per instance; a row of class scores as text
# (one number of at most BYTES_PER_NUMBER bytes per class) is bounded by this many classes.
MAX_COLUMNS = 4096
TEXT_LIMIT = 1 << 30


def parse_steps(value: str) -> int | None:
    """'2M' -> 2_000_000, '200k' -> 200_000, '2000000' -> 2_000_000; None if unreadable."""
    match = STEPS.fullmatch(str(value))
    if match is None:
        return None
    number = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    return round(number)


def read_matrix(path: Path, *, delimiter: str | None = "\t", what: str = "class scores",
                root: Path | None = None, rows: int | None = None,
                columns: int = MAX_COLUMNS) -> np.ndarray:
    """A rectangular numeric text file as a (rows, columns) float array.

    Ragged rows, non-numbers and NaN are InputErrors naming the line and column (never the
    content: the file may be one a release only refers to). The file must be a regular file
    inside ``root`` (when given) of at most the bytes ``rows`` x ``columns`` numbers take as
    text.
    """
    inputs.regular_file(path, root=root, what=f"a file of {what}")
    limit = ((rows + 1) * (columns * inputs.BYTES_PER_NUMBER + 2) + 4096 if rows is not None
             else TEXT_LIMIT)
    data = inputs.read_bytes(path, limit=min(limit, TEXT_LIMIT), what=f"a file of {what}")
    text = inputs.decode(path, data, f"a text file of {what}")
    if not text.strip():
        raise InputError(path, "the file is empty", expected=f"a table of {what}")
    try:
        matrix = np.loadtxt(text.splitlines(), delimiter=delimiter, ndmin=2, dtype=np.float64)
    except ValueError:
        matrix = None
    if matrix is None:  # find the offending line for the message
        width = None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            cells = line.split(delimiter) if delimiter else line.split()
            if width is None:
                width = len(cells)
            if len(cells) != width:
                raise InputError(path, f"{len(cells)} values where line 1 has {width}",
                                 line=number, expected=f"the same number of {what} on every"
                                 " line")
            for column, cell in enumerate(cells, start=1):
                try:
                    float(cell)
                except ValueError:
                    raise InputError(path, f"the value in column {column} is not a number",
                                     line=number, field=f"column {column}",
                                     expected=what) from None
        raise InputError(path, "cannot be read", expected=f"a tab-separated table of {what}")
    bad = ~np.isfinite(matrix)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise InputError(path, "NaN or infinite value", line=row + 1, expected=what)
    return matrix


def _read_tsv(path: Path, what: str, root: Path | None = None) -> pd.DataFrame:
    text = inputs.read_text(path, limit=TEXT_LIMIT, root=root, what=what)
    if not text.strip():
        raise InputError(path, "the file is empty", expected=what)
    try:
        frame = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(path, f"cannot be parsed: {str(exc)[:200]}", expected=what) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.columns.duplicated().any():
        raise InputError(path, f"two columns named {frame.columns[frame.columns.duplicated()][0]!r}",
                         line=1, expected="distinct column names")
    return frame


def _integer(path: Path, frame: pd.DataFrame, column: str, what: str) -> np.ndarray:
    numbers = [inputs.as_int64(v) for v in frame[column]]
    bad = np.array([v is None for v in numbers], dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(path, f"{column} {inputs.quote(frame[column].iloc[i])} is not an"
                         " integer of at most 64 bits", line=i + 2, field=column, expected=what)
    return np.asarray(numbers, dtype=np.int64)


def _read_labels(path: Path, root: Path) -> list[str]:
    """Gold labels, one per line; integral numbers are normalised ('1.0' -> '1')."""
    lines = inputs.read_text(path, limit=TEXT_LIMIT, root=root, what="<TASK>_dev_labels beside"
                             " index.tsv, one gold label per line").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(path, "the file is empty", expected="one gold label per line")
    labels = []
    for number, text in enumerate(lines, start=1):
        value = text.strip()
        if not value:
            raise InputError(path, "empty line", line=number, expected="one gold label per line")
        try:
            as_float = float(value)
        except ValueError:
            labels.append(value)
            continue
        if not np.isfinite(as_float):
            raise InputError(path, "NaN or infinite label", line=number, expected="a gold label")
        labels.append(str(int(as_float)) if as_float.is_integer() else value)
    return labels


def _is_regression(labels: list[str]) -> bool:
    def non_integer_number(v: str) -> bool:
        try:
            return not float(v).is_integer()
        except ValueError:
            return False

    return any(non_integer_number(v) for v in labels)


def _gold(path: Path, labels: list[str], label_list: list[str]) -> np.ndarray:
    """Map gold labels to class indices: a label that is a class name maps to its position;
    an integer label i (with no class of that name) maps to class i."""
    lookup = {name: i for i, name in enumerate(label_list)}
    gold = np.empty(len(labels), dtype=np.int64)
    for i, value in enumerate(labels):
        if value in lookup:
            gold[i] = lookup[value]
        elif value.lstrip("-").isdigit() and 0 <= int(value) < len(label_list):
            gold[i] = int(value)
        else:
            raise InputError(path, f"label {value!r} is not in the label list {label_list}",
                             line=i + 1, expected="a class name or a class index")
    return gold


# ---------------------------------------------------------------------------------------
# Classification (index.tsv)


def import_glue(store: Store, root: Path, *, replace: bool = False,
                label_lists: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Import a folder holding ``index.tsv``. See the module docstring for the mapping."""
    index_path = root / "index.tsv"
    index = _read_tsv(index_path, "a tab-separated index with a header row", root)
    absent = [c for c in INDEX_COLUMNS if c not in index.columns]
    if absent:
        raise InputError(index_path, f"missing column(s): {', '.join(absent)}", field=absent[0],
                         expected="columns " + ", ".join(INDEX_COLUMNS))
    if index.empty:
        raise InputError(index_path, "has no runs", expected="one row per run")
    for column in ("file", "task"):
        empty = (index[column].str.strip() == "").to_numpy()
        if empty.any():
            raise InputError(index_path, f"{column} is empty", line=int(np.argmax(empty)) + 2,
                             field=column, expected="a value in every row")
    pretrain = _integer(index_path, index, "pretrain_id", "an integer pretraining seed")
    finetune = _integer(index_path, index, "ft_seed", "an integer fine-tuning seed")
    steps = [parse_steps(v) for v in index["n_steps"]]
    lrs = np.array([np.nan if v is None else v
                    for v in (inputs.as_finite(x) for x in index["lr"])], dtype=np.float64)
    for i in range(len(index)):
        if steps[i] is None:
            raise InputError(index_path, f"n_steps {inputs.quote(index['n_steps'].iloc[i])} is"
                             " not a step"
                             " count", line=i + 2, field="n_steps",
                             expected="a number of pretraining steps, e.g. 2000000, 2M, 200k")
        if np.isnan(lrs[i]):
            raise InputError(index_path, f"lr {inputs.quote(index['lr'].iloc[i])} is not a"
                             " finite number",
                             line=i + 2, field="lr", expected="a learning rate, e.g. 2e-05")
    releases = [r.strip() or "multiberts" for r in index["release"]]
    given_tasks = [t.strip() for t in index["task"]]
    tasks = [check_name(index_path, "task", t, line=i + 2) for i, t in enumerate(given_tasks)]
    base_sizes = [f"{rel}-{s // 1000}k" for rel, s in zip(releases, steps)]
    n_lr = pd.DataFrame({"t": tasks, "b": base_sizes, "lr": lrs}).groupby(["t", "b"])[
        "lr"].transform("nunique").to_numpy()
    sizes = [check_name(index_path, "size", b + (f"-lr{lr:g}" if k > 1 else ""), line=i + 2)
             for i, (b, lr, k) in enumerate(zip(base_sizes, lrs, n_lr))]
    seen: dict[tuple, int] = {}
    for i, key in enumerate(zip(tasks, sizes, pretrain, finetune)):
        if key in seen:
            raise InputError(index_path, f"the run (task {key[0]}, size {key[1]}, pretrain_id"
                             f" {key[2]}, ft_seed {key[3]}) is also on line {seen[key]}",
                             line=i + 2, expected="each run once in the index")
        seen[key] = i + 2

    label_lists = {schema.canonical_task(k): [str(x) for x in v]
                   for k, v in (label_lists or {}).items()}
    skipped: list[dict[str, str]] = []
    task_labels: dict[str, tuple[Path, list[str]]] = {}
    for given in dict.fromkeys(given_tasks):
        path = root / f"{given}_dev_labels"
        labels = _read_labels(path, root)
        if _is_regression(labels):
            skipped.append({"task": given, "reason": "regression (non-integer gold labels):"
                            " seedlab stores classification predictions"})
            continue
        task_labels[schema.canonical_task(given)] = (path, labels)

    runs: list[RunData] = []
    resolved: dict[str, list[str]] = {}
    for i, row in enumerate(index.itertuples(index=False)):
        task = tasks[i]
        if task not in task_labels:
            continue
        labels_path, labels = task_labels[task]
        score_path = root / row.file
        scores = read_matrix(score_path, root=root, rows=len(labels))
        if len(scores) != len(labels):
            raise InputError(score_path, f"{len(scores)} rows but {labels_path.name} has"
                             f" {len(labels)} labels", expected="one row of class scores per"
                             " dev instance, in the order of the labels file")
        if task not in resolved:
            resolved[task] = _label_list(store, task, labels, scores.shape[1], label_lists)
        label_list = resolved[task]
        if scores.shape[1] != len(label_list):
            raise InputError(score_path, f"{scores.shape[1]} score columns but task {task!r}"
                             f" has {len(label_list)} labels {label_list}",
                             expected=f"{len(label_list)} columns, one per class")
        gold = _gold(labels_path, labels, label_list)
        probs, kind = scores_to_probs(scores)
        table = build_run_table([str(k) for k in range(len(labels))], gold, probs=probs,
                                checkpoint=FINAL_CHECKPOINT)
        runs.append(RunData(
            task=task, size=sizes[i], pretrain_seed=str(int(pretrain[i])),
            finetune_seed=int(finetune[i]), table=table, source=str(root),
            model=f"{releases[i]} pretrain_id={int(pretrain[i])} n_steps={steps[i]}",
            hyperparameters={"lr": float(lrs[i]), "n_steps": steps[i]},
            provenance={"file": str(row.file), "index_line": i + 2, "release": releases[i],
                        "released_task": given_tasks[i],
                        "scores": kind, "softmax_applied": kind == "logits"},
        ))

    with store.transaction("multiberts", str(root), replace=replace) as tx:
        for task, label_list in resolved.items():
            ensure_task(tx, store, task, label_list, str(root))
            labels_path, labels = task_labels[task]
            gold = _gold(labels_path, labels, label_list)
            tx.add_instances(task, pd.DataFrame({
                "instance_id": [str(k) for k in range(len(labels))],
                "label": [label_list[g] for g in gold],
                "split": "dev",
            }))
        for run in runs:
            tx.add_run(run)
    summary: dict[str, Any] = dict(tx.summary)
    summary["skipped"] = skipped
    summary["tasks"] = sorted(resolved)
    return summary


def _label_list(store: Store, task: str, labels: list[str], n_classes: int,
                given: dict[str, list[str]]) -> list[str]:
    """The task's class names: given > already in the store > inferred. Inferred: integer
    labels give '0'..'C-1' (C = score columns); text labels give their sorted set."""
    if task in given:
        return given[task]
    row = store.task_row(task)
    if row is not None and row["label_list"]:
        return row["label_list"]
    if all(v.lstrip("-").isdigit() for v in labels):
        return [str(i) for i in range(n_classes)]
    return sorted(set(labels))


# ---------------------------------------------------------------------------------------
# Coreference (run_info.tsv, label_info.tsv, preds.tsv)


def _unnamed(column: str) -> bool:
    return column == "" or column.startswith("Unnamed:")


def _pick(path: Path, frame: pd.DataFrame, names: Sequence[str], what: str) -> str:
    for name in names:
        if name in frame.columns:
            return name
    raise InputError(path, f"no {what} column", field=names[0],
                     expected="a column named " + " or ".join(names))


def import_coref_group(store: Store, folder: Path, tx_runs: list[RunData],
                       instances: dict[str, pd.DataFrame], task: str = COREF_TASK,
                       release: Path | None = None) -> None:
    """Read one coreference group folder; append its runs and instances (nothing written).
    Its files must lie inside ``release`` (default ``folder``) once links are resolved."""
    release = release or folder
    size = check_name(folder, "size", folder.name)
    run_path, label_path, preds_path = (folder / "run_info.tsv", folder / "label_info.tsv",
                                        folder / "preds.tsv")
    run_info = _read_tsv(run_path, "run_info.tsv with a header row", release)
    pre_col = _pick(run_path, run_info, ["pretrain_seed", "pretrain_id"], "pretraining seed")
    ft_col = _pick(run_path, run_info, ["finetune_seed", "ft_seed"], "fine-tuning seed")
    name_col = next((c for c in run_info.columns if _unnamed(c)),
                    next((c for c in ("run", "name", "run_name") if c in run_info.columns),
                         None))
    pretrain = _integer(run_path, run_info, pre_col, "an integer pretraining seed")
    finetune = _integer(run_path, run_info, ft_col, "an integer fine-tuning seed")
    seen: dict[tuple, int] = {}
    for i, key in enumerate(zip(pretrain, finetune)):
        if key in seen:
            raise InputError(run_path, f"the run ({pre_col} {key[0]}, {ft_col} {key[1]}) is"
                             f" also on line {seen[key]}", line=i + 2,
                             expected="each run once")
        seen[key] = i + 2

    label_info = _read_tsv(label_path, "label_info.tsv with a header row", release)
    if "answer" not in label_info.columns:
        raise InputError(label_path, "no answer column", field="answer",
                         expected="answer: the gold referent, 0 = occupation, 1 = other"
                         " participant")
    answer = _integer(label_path, label_info, "answer", "0 (occupation) or 1 (participant)")
    bad = (answer < 0) | (answer >= len(COREF_LABELS))
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(label_path, f"answer {answer[i]} is not 0 or 1", line=i + 2,
                         field="answer", expected="0 (occupation) or 1 (other participant)")
    id_col = next((c for c in label_info.columns if _unnamed(c)), None)
    ids = (label_info[id_col].astype(str).tolist() if id_col
           else [str(k) for k in range(len(label_info))])

    preds = read_matrix(preds_path, delimiter=None, what="predicted referents (0 or 1)",
                        root=release, rows=len(run_info), columns=len(label_info))
    if preds.shape != (len(run_info), len(label_info)):
        raise InputError(preds_path, f"shape {preds.shape}",
                         expected=f"({len(run_info)}, {len(label_info)}): one row per run in"
                         " run_info.tsv, one column per instance in label_info.tsv")
    bad = ~np.isin(preds, (0.0, 1.0))
    if bad.any():
        r, c = (int(x) for x in np.argwhere(bad)[0])
        raise InputError(preds_path, f"value {float(preds[r, c])!r} in column {c + 1}", line=r + 1,
                         expected="0 (occupation) or 1 (other participant)")

    for r in range(len(run_info)):
        table = build_run_table(ids, answer, pred=preds[r].astype(np.int64),
                                checkpoint=FINAL_CHECKPOINT)
        tx_runs.append(RunData(
            task=task, size=size, pretrain_seed=str(int(pretrain[r])),
            finetune_seed=int(finetune[r]), table=table, source=str(folder),
            model=f"multiberts coref group {size}",
            provenance={"file": str(preds_path), "row": r + 1, "group": folder.name,
                        "run": str(run_info[name_col].iloc[r]) if name_col else str(r),
                        "scores": "hard predictions"},
        ))
    extra = label_info.drop(columns=[c for c in (id_col, "answer") if c])
    frame = pd.DataFrame({"instance_id": ids,
                          "label": [COREF_LABELS[a] for a in answer], "split": "test"})
    for column in extra.columns:
        frame[column] = extra[column].to_numpy()
    if task in instances:
        frame = pd.concat([instances[task], frame]).drop_duplicates("instance_id")
    instances[task] = frame.reset_index(drop=True)


def import_coref(store: Store, root: Path, *, replace: bool = False,
                 task: str = COREF_TASK) -> dict[str, Any]:
    """Import one coreference group folder, or a folder of group folders."""
    groups = ([root] if (root / "run_info.tsv").is_file()
              else sorted(d for d in root.iterdir() if (d / "run_info.tsv").is_file()))
    runs: list[RunData] = []
    instances: dict[str, pd.DataFrame] = {}
    for folder in groups:
        import_coref_group(store, folder, runs, instances, task, root)
    with store.transaction("multiberts", str(root), replace=replace) as tx:
        ensure_task(tx, store, task, COREF_LABELS, str(root))
        for name, frame in instances.items():
            tx.add_instances(name, frame)
        for run in runs:
            tx.add_run(run)
    summary: dict[str, Any] = dict(tx.summary)
    summary["groups"] = [g.name for g in groups]
    return summary


def import_multiberts(store: Store, path: str | Path, replace: bool = False,
                      label_lists: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Import MultiBERTs predictions from ``path``: a folder with ``index.tsv``
    (classification), a coreference group folder with ``run_info.tsv``, or a folder of such
    groups. Everything is checked first, then written in one transaction.

    ``label_lists`` (task -> class names, index = score column) names the classes of a new
    task; without it the store's list is used, else one is inferred (module docstring).
    Returns the store's summary of what changed.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(root, "not a folder", expected="a folder with index.tsv or"
                         " run_info.tsv")
    if (root / "index.tsv").is_file():
        return import_glue(store, root, replace=replace, label_lists=label_lists)
    if (root / "run_info.tsv").is_file() or any(
            (d / "run_info.tsv").is_file() for d in root.iterdir() if d.is_dir()):
        return import_coref(store, root, replace=replace)
    raise InputError(root / "index.tsv", "not found (nor run_info.tsv)",
                     expected="index.tsv (classification) or run_info.tsv, label_info.tsv and"
                     " preds.tsv (coreference)")
