"""Generic formats: a documented long table (CSV / TSV / Parquet / JSONL) and dense numpy
arrays (.npy / .npz) with a JSON sidecar. See docs/formats.md for examples.

Long table, one row per (run, checkpoint, instance)::

    task, size, pretrain_seed, finetune_seed, [checkpoint], instance_id,
    probs | pred [+ p_correct], [label], [label_list], [split, text_a, text_b]

Dense arrays: ``correct`` / ``p_correct`` of shape (N, P, F) or (N, P, F, E) and optional
``probs`` (N, P, F[, E], C), where N = instances, P = pretraining seeds, F = fine-tuning
seeds, E = checkpoints, C = classes. The sidecar names the axes.

The helpers ``build_run_table``, ``scores_to_probs`` and ``ensure_task`` are shared with the
MultiBERTs importer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seedlab import schema
from seedlab.errors import InputError
from seedlab.importers import inputs
from seedlab.store import RunData, Store, Transaction

FINAL_CHECKPOINT = 1.0
PROB_TOLERANCE = 1e-3
LONG_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
                 ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Class indices are stored as int32; no task has more classes than this.
MAX_CLASSES = 1 << 20
INSTANCE_FIELDS = ["split", "text_a", "text_b"]


# ---------------------------------------------------------------------------------------
# Shared helpers


def scores_to_probs(scores: np.ndarray) -> tuple[np.ndarray, str]:
    """Class scores (R, C) -> probabilities (R, C) and what the scores were.

    Rows that are all non-negative and sum to 1 within 1e-3 are probabilities and kept as
    they are ('probabilities'); otherwise every row is put through a softmax ('logits').
    """
    scores = np.asarray(scores, dtype=np.float64)
    if (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=PROB_TOLERANCE):
        return scores, "probabilities"
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True), "logits"


def build_run_table(
    instance_ids: Sequence[str],
    gold: np.ndarray,
    *,
    probs: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    correct: np.ndarray | None = None,
    p_correct: np.ndarray | None = None,
    checkpoint: float | np.ndarray = FINAL_CHECKPOINT,
    n_classes: int = 0,
) -> pa.Table:
    """One run's prediction table (the columns ``RunData.table`` needs), R rows.

    ``gold`` (R,) holds gold class indices (-1 where unknown). Give ``probs`` (R, C): pred is
    its argmax, p_correct the gold probability. Or give ``pred`` (R,) with optional
    ``p_correct`` (R,): a hard prediction puts probability 1 on its class (p_correct is 0/1).
    Or give ``correct`` (R,) with optional ``p_correct`` when only scores are known; pred is
    then the gold class where correct, the other class where wrong on a binary task
    (``n_classes`` 2), and -1 where it cannot be known.
    """
    n = len(instance_ids)
    gold = np.asarray(gold, dtype=np.int64)
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float64)
        pred = probs.argmax(axis=1)
        rows = np.arange(n)
        p_correct = np.where(gold >= 0, probs[rows, np.clip(gold, 0, None)], np.nan)
        correct = pred == gold
        prob_lists = list(probs.astype(np.float32))
    elif pred is not None:
        pred = np.asarray(pred, dtype=np.int64)
        correct = pred == gold
        if p_correct is None:
            p_correct = correct.astype(np.float64)
        prob_lists = [[] for _ in range(n)]
    else:
        correct = np.asarray(correct, dtype=bool)
        if p_correct is None:
            p_correct = correct.astype(np.float64)
        pred = np.where(correct & (gold >= 0), gold, -1)
        if n_classes == 2:
            pred = np.where(~correct & (gold >= 0), 1 - gold, pred)
        prob_lists = [[] for _ in range(n)]
    checkpoints = np.broadcast_to(np.asarray(checkpoint, dtype=np.float64), (n,))
    return pa.table({
        "checkpoint": pa.array(checkpoints, pa.float64()),
        "instance_id": pa.array([str(i) for i in instance_ids], pa.string()),
        "pred": pa.array(np.asarray(pred, dtype=np.int32)),
        "correct": pa.array(np.asarray(correct, dtype=bool)),
        "p_correct": pa.array(np.asarray(p_correct, dtype=np.float32)),
        "probs": pa.array([list(map(float, p)) for p in prob_lists], pa.list_(pa.float32())),
    })


def ensure_task(tx: Transaction, store: Store, task: str, label_list: Sequence[str],
                source: str = "") -> None:
    """Register ``task`` with ``label_list`` unless the store already has exactly that (so a
    repeated import leaves the store untouched). A different label list is an InputError."""
    row = store.task_row(task)
    labels = [str(x) for x in label_list]
    if row is not None and (row["label_list"] == labels or not labels):
        return
    tx.set_task(task, labels, source=source)


def check_name(path: Path, kind: str, value: Any, **where: Any) -> str:
    """``value`` as a task, size or seed name, or an InputError naming the file and place.
    A task name is first made canonical (``schema.canonical_task``: ``mnli`` -> ``MNLI``)."""
    if not isinstance(value, str):
        raise InputError(path, f"{kind} {inputs.quote(value)} is a {type(value).__name__}",
                         field=where.pop("field", kind), expected=f"a {kind} name as text",
                         **where)
    name = schema.canonical_task(value) if kind == "task" else value
    try:
        return schema.check_name(kind, name)
    except ValueError:
        raise InputError(path, f"{kind} {inputs.quote(name)} is not a valid name",
                         field=where.pop("field", kind), expected=schema.NAME_RULE,
                         **where) from None


def check_label_list(path: Path, value: Any, field: str = "label_list") -> list[str]:
    """A list of distinct class names (text or integers) as text, or an InputError."""
    if (not isinstance(value, list) or not value or len(value) > MAX_CLASSES
            or not all(isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool))
                       for x in value)
            or len({str(x) for x in value}) != len(value)):
        raise InputError(path, f"{field} is {inputs.quote(value)}", field=field,
                         expected='a list of distinct class names, index = class, e.g. ["0", "1"]')
    return [str(x) for x in value]


def seed_label(value: Any) -> str:
    """A pretraining seed as text: integral numbers without '.0'."""
    if (isinstance(value, (float, np.floating)) and math.isfinite(value)
            and float(value).is_integer()):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip()


def label_index(label_list: Sequence[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(label_list)}


# ---------------------------------------------------------------------------------------
# Long tables


@dataclass
class _Located:
    """Where a row of a long table is, for error messages."""

    path: Path
    kind: str
    lines: np.ndarray  # (R,) 1-based line numbers for text files, row indices for Parquet

    def error(self, i: int, problem: str, field: str | None = None,
              expected: str | None = None) -> InputError:
        if self.kind == "parquet":
            return InputError(self.path, f"row {int(self.lines[i])}: {problem}", field=field,
                              expected=expected)
        return InputError(self.path, problem, line=int(self.lines[i]), field=field,
                          expected=expected)

    def first(self, bad: np.ndarray | pd.Series, problem: Callable[[int], str], field: str,
              expected: str) -> None:
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            i = int(np.argmax(bad))
            raise self.error(i, problem(i), field=field, expected=expected)


def read_long(path: Path) -> tuple[pd.DataFrame, _Located]:
    """Read a long table as text-valued columns (lists kept for JSONL/Parquet ``probs``)."""
    kind = LONG_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(path, f"unknown file type {path.suffix!r}",
                         expected="a .csv, .tsv, .parquet, .jsonl, .npy or .npz file")
    inputs.regular_file(path, what=f"a {kind.upper()} file")
    inputs.check_size(path, inputs.TABLE_LIMIT, f"a {kind.upper()} file")
    if kind in ("csv", "tsv"):
        _check_utf8_lines(path)
        try:
            frame = pd.read_csv(path, sep="," if kind == "csv" else "\t", dtype=str,
                                keep_default_na=False, na_values=[""], encoding="utf-8")
        except pd.errors.EmptyDataError:
            raise InputError(path, "the file is empty",
                             expected=f"a {kind.upper()} file with a header row") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(path, f"cannot be parsed: {str(exc)[:200]}",
                             expected=f"a {kind.upper()} file with a header row") from None
        lines = np.arange(len(frame)) + 2
    elif kind == "jsonl":
        with open(path, "rb") as handle:
            records, numbers = inputs.json_lines(path, (
                inputs.decode(path, raw, "UTF-8 JSON lines", line=number)
                for number, raw in enumerate(handle, start=1)))
        frame = pd.DataFrame.from_records(records)
        lines = np.asarray(numbers, dtype=np.int64)
    else:
        try:
            frame = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InputError(path, f"cannot be read as Parquet: {str(exc)[:200]}",
                             expected="a Parquet file") from None
        lines = np.arange(len(frame))
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.columns.duplicated().any():
        name = frame.columns[frame.columns.duplicated()][0]
        raise InputError(path, f"two columns named {inputs.quote(name)}", field=name,
                         expected="distinct column names")
    return frame.reset_index(drop=True), _Located(path, kind, lines)


def _check_utf8_lines(path: Path) -> None:
    """Read a text table line by line; a byte that is not UTF-8 is an error naming its line
    (pandas would only give a byte offset)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(path, f"byte {exc.start + 1} of the line is not UTF-8"
                                 f" ({exc.reason})", line=number,
                                 expected="UTF-8 text") from None


def _missing(values: pd.Series) -> np.ndarray:
    return np.array([v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
                     or (isinstance(v, str) and not v.strip()) for v in values], dtype=bool)


def _json_list(value: Any) -> list | None:
    """A list given as a list, a numpy array or a JSON array string; None otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return value if isinstance(value, list) else None


def _parse_probs(value: Any) -> list[float] | None:
    """Class probabilities as finite floats; None for anything else (NaN included: with a
    NaN, ``min(p) < 0`` and ``abs(sum(p) - 1) > tol`` are both false)."""
    value = _json_list(value)
    if not value or len(value) > MAX_CLASSES:
        return None
    numbers = [inputs.as_finite(v) if not isinstance(v, str) else None for v in value]
    return None if any(v is None for v in numbers) else numbers


def _infer_label_list(golds: list[str], n_classes: int) -> list[str]:
    """Label list when neither a sidecar nor the store gives one: if every gold label is an
    integer, the classes are '0'..'C-1'; otherwise the sorted distinct label strings."""
    if golds and all(g.lstrip("-").isdigit() for g in golds):
        top = max(max(int(g) for g in golds) + 1, n_classes)
        return [str(i) for i in range(top)]
    names = sorted(set(golds))
    if not names and n_classes:
        return [str(i) for i in range(n_classes)]
    return names


def _sidecar_label_lists(sidecar: dict, task: str, path: Path | None = None
                         ) -> list[str] | None:
    """The label list the sidecar gives ``task`` (its ``label_lists`` entry under any
    spelling of the task, else its ``label_list``), or None."""
    lists = sidecar.get("label_lists")
    if isinstance(lists, dict):
        for name, value in lists.items():
            if schema.canonical_task(str(name)) == task:
                return check_label_list(path, value, f"label_lists.{name}")
    if "label_list" in sidecar:
        return check_label_list(path, sidecar["label_list"])
    return None


def import_long(store: Store, path: Path, *, task: str | None = None, size: str | None = None,
                sidecar: dict | None = None, replace: bool = False,
                sidecar_path: Path | None = None) -> dict[str, Any]:
    """Import a long table (see the module docstring). Returns the store's summary."""
    frame, loc = read_long(path)
    sidecar = sidecar or {}
    if frame.empty:
        raise InputError(path, "has no rows", expected="one row per run and instance")
    for name, value in (("task", task), ("size", size)):
        if name not in frame.columns:
            if value is None:
                raise InputError(path, f"no {name!r} column and no --{name} given",
                                 field=name, expected=f"a {name} column or --{name} NAME")
            frame[name] = value
        elif value is not None:
            same = schema.canonical_task if name == "task" else str
            other = ~frame[name].map(lambda v, f=same: f(str(v))).eq(same(value)).to_numpy()
            loc.first(other, lambda i, n=name, v=value: f"{n} {inputs.quote(frame[n].iloc[i])}"
                      f" but --{n} {v!r}", name,
                      f"the {name} given on the command line, or no --{name}")
    required = ["task", "size", "pretrain_seed", "finetune_seed", "instance_id"]
    absent = [c for c in required if c not in frame.columns]
    if "probs" not in frame.columns and "pred" not in frame.columns:
        absent.append("probs or pred")
    if absent:
        raise InputError(path, f"missing column(s): {', '.join(absent)}", field=absent[0],
                         expected="columns " + ", ".join(required) + ", and probs or pred")
    for column in required:
        loc.first(_missing(frame[column]), lambda i, c=column: f"{c} is empty", column,
                  "a value in every row")

    released_tasks = frame["task"].copy()
    frame["task"] = [_checked(loc, i, "task", v) for i, v in enumerate(frame["task"])]
    frame["size"] = [_checked(loc, i, "size", v) for i, v in enumerate(frame["size"])]
    tasks = frame["task"].tolist()
    frame["pretrain_seed"] = [_checked(loc, i, "pretraining seed", seed_label(v), "pretrain_seed")
                              for i, v in enumerate(frame["pretrain_seed"])]
    frame["instance_id"] = [seed_label(v) for v in frame["instance_id"]]
    ft = [inputs.as_int64(v) for v in frame["finetune_seed"]]
    loc.first(np.array([v is None for v in ft]),
              lambda i: f"finetune_seed {inputs.quote(frame['finetune_seed'].iloc[i])} is not an"
              " integer of at most 64 bits", "finetune_seed", "an integer seed")
    frame["finetune_seed"] = np.asarray(ft, dtype=np.int64)
    if "checkpoint" in frame.columns:
        ck = [FINAL_CHECKPOINT if gone else inputs.as_finite(v)
              for v, gone in zip(frame["checkpoint"], _missing(frame["checkpoint"]))]
        loc.first(np.array([v is None for v in ck]),
                  lambda i: f"checkpoint {inputs.quote(frame['checkpoint'].iloc[i])} is not a"
                  " finite number", "checkpoint", "a number (1.0 = the final checkpoint)")
        frame["checkpoint"] = np.asarray(ck, dtype=np.float64)
    else:
        frame["checkpoint"] = FINAL_CHECKPOINT
    key = ["task", "size", "pretrain_seed", "finetune_seed", "checkpoint", "instance_id"]
    loc.first(frame.duplicated(key),
              lambda i: f"a second row for instance {frame['instance_id'].iloc[i]!r} of the same"
              " run and checkpoint", "instance_id",
              "one row per (task, size, pretrain_seed, finetune_seed, checkpoint, instance_id)")

    # predictions
    n_classes = np.zeros(len(frame), dtype=np.int64)
    probs_rows: list[list[float]] | None = None
    pred = p_correct = None
    if "probs" in frame.columns:
        probs_rows = [_parse_probs(v) for v in frame["probs"]]
        loc.first(np.array([p is None for p in probs_rows]),
                  lambda i: f"probs {inputs.quote(frame['probs'].iloc[i])} is not a list of"
                  " finite numbers", "probs",
                  "a JSON array of class probabilities, e.g. [0.1, 0.9]")
        bad = np.array([min(p) < 0 or abs(sum(p) - 1) > PROB_TOLERANCE for p in probs_rows])
        loc.first(bad, lambda i: f"probs {probs_rows[i]} do not form a distribution", "probs",
                  "non-negative class probabilities summing to 1")
        n_classes = np.array([len(p) for p in probs_rows])
    else:
        pred_num = [inputs.as_int64(v) for v in frame["pred"]]
        loc.first(np.array([v is None or not 0 <= v < MAX_CLASSES for v in pred_num]),
                  lambda i: f"pred {inputs.quote(frame['pred'].iloc[i])} is not a class index",
                  "pred", "an integer index into the label list (0 = first class)")
        pred = np.asarray(pred_num, dtype=np.int64)
        n_classes = pred + 1
        if "p_correct" in frame.columns:
            pc = [inputs.as_finite(v) for v in frame["p_correct"]]
            loc.first(np.array([v is None or not 0 <= v <= 1 for v in pc]),
                      lambda i: f"p_correct {inputs.quote(frame['p_correct'].iloc[i])} is not a"
                      " probability", "p_correct", "a number between 0 and 1")
            p_correct = np.asarray(pc, dtype=np.float64)

    # gold labels
    if "label" in frame.columns:
        loc.first(_missing(frame["label"]), lambda i: "label is empty", "label",
                  "the gold label of the instance in every row")
        frame["label"] = [seed_label(v) for v in frame["label"]]
    else:
        stored = store.instances(task=sorted(set(tasks)))
        known = dict(zip(zip(stored["task"], stored["instance_id"]), stored["label"]))
        labels = [known.get((t, i)) for t, i in zip(frame["task"], frame["instance_id"])]
        loc.first(np.array([v is None or v is pd.NA for v in labels]),
                  lambda i: f"no label column, and the store has no gold label for instance"
                  f" {frame['instance_id'].iloc[i]!r} of task {frame['task'].iloc[i]!r}",
                  "label", "a label column (the gold label as text)")
        frame["label"] = [str(v) for v in labels]
    clash = frame.groupby(["task", "instance_id"])["label"].transform("nunique") > 1
    loc.first(clash, lambda i: f"instance {frame['instance_id'].iloc[i]!r} has gold label"
              f" {frame['label'].iloc[i]!r} here and another label in an earlier row", "label",
              "the same gold label in every row of an instance")

    label_lists: dict[str, list[str]] = {}
    for name in sorted(set(tasks)):
        rows = (frame["task"] == name).to_numpy()
        given = _sidecar_label_lists(sidecar, name, sidecar_path)
        if given is None and "label_list" in frame.columns:
            first = frame.loc[rows, "label_list"].iloc[0]
            given = _parse_label_list(first)
            if given is None:
                raise loc.error(int(np.argmax(rows)), f"label_list {inputs.quote(first)} is not"
                                " a list", "label_list", 'a JSON array of class names, e.g.'
                                ' ["0", "1"]')
        row = store.task_row(name)
        if given is None and row is not None and row["label_list"]:
            given = row["label_list"]
        if given is None:
            given = _infer_label_list(frame.loc[rows, "label"].tolist(),
                                      int(n_classes[rows].max()))
        label_lists[name] = given
        lookup = label_index(given)
        idx = np.where(rows)[0]
        unknown = np.zeros(len(frame), dtype=bool)
        unknown[idx] = ~frame.loc[rows, "label"].isin(lookup).to_numpy()
        loc.first(unknown, lambda i, given=given: f"gold label {frame['label'].iloc[i]!r} is not in the"
                  f" label list {given}", "label", "one of " + ", ".join(given))
        wrong = np.zeros(len(frame), dtype=bool)
        if probs_rows is not None:
            wrong[idx] = n_classes[idx] != len(given)
            loc.first(wrong, lambda i, given=given, name=name: f"probs has {int(n_classes[i])} classes but task"
                      f" {name!r} has {len(given)} labels", "probs",
                      f"{len(given)} probabilities in the order {given}")
        else:
            wrong[idx] = n_classes[idx] > len(given)
            loc.first(wrong, lambda i, given=given, name=name: f"pred {int(pred[i])} is beyond the {len(given)} labels"
                      f" of task {name!r}", "pred", f"an index from 0 to {len(given) - 1}")
    gold = np.array([label_index(label_lists[t])[lab]
                     for t, lab in zip(frame["task"], frame["label"])], dtype=np.int64)

    runs: list[RunData] = []
    for (t, s, p, f), rows in frame.groupby(["task", "size", "pretrain_seed", "finetune_seed"],
                                             sort=True).indices.items():
        rows = np.sort(rows)
        kwargs: dict[str, Any] = {"checkpoint": frame["checkpoint"].to_numpy()[rows]}
        if probs_rows is not None:
            kwargs["probs"] = np.array([probs_rows[i] for i in rows])
        else:
            kwargs["pred"] = pred[rows]
            kwargs["p_correct"] = p_correct[rows] if p_correct is not None else None
        table = build_run_table(frame["instance_id"].to_numpy()[rows], gold[rows], **kwargs)
        released = sorted({str(v) for v in released_tasks.to_numpy()[rows]})
        runs.append(RunData(task=t, size=s, pretrain_seed=p, finetune_seed=int(f), table=table,
                            source=str(path), provenance={
                                "file": str(path), "format": loc.kind,
                                "scores": "probs" if probs_rows is not None else "pred",
                                "released_task": released[0] if len(released) == 1
                                else released}))

    with store.transaction("table", str(path), replace=replace) as tx:
        for name, labels in label_lists.items():
            ensure_task(tx, store, name, labels, str(path))
            rows = frame[frame["task"] == name]
            first = rows.drop_duplicates("instance_id")
            inst = pd.DataFrame({"instance_id": first["instance_id"], "label": first["label"]})
            for column in INSTANCE_FIELDS:
                if column in frame.columns:
                    inst[column] = first[column].to_numpy()
            tx.add_instances(name, inst.reset_index(drop=True))
        for run in runs:
            tx.add_run(run)
    return dict(tx.summary)


def _checked(loc: _Located, i: int, kind: str, value: Any, field: str | None = None) -> str:
    """``check_name`` of row ``i``, the error naming the row's line."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = str(value)
    try:
        return check_name(loc.path, kind, value)
    except InputError as exc:
        raise loc.error(i, exc.problem, field=field or kind, expected=exc.expected) from None


def _parse_label_list(value: Any) -> list[str] | None:
    value = _json_list(value)
    return [str(x) for x in value] if value is not None else None


# ---------------------------------------------------------------------------------------
# Dense arrays


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .npy (as ``scores``) or .npz file; every header is checked against
    the file size, and object or string arrays refused, before data is read."""
    if path.suffix.lower() == ".npy":
        return {"scores": inputs.load_npy(path)}
    arrays = inputs.load_npz(path)
    known = {"correct", "p_correct", "probs"}
    if not known & set(arrays):
        raise InputError(path, f"holds {sorted(arrays)}", field="correct",
                         expected="arrays named correct and/or p_correct (and optional probs)")
    return {k: v for k, v in arrays.items() if k in known}


def find_sidecar(path: Path, sidecar: str | Path | None) -> Path:
    """The JSON sidecar: the one given, else ``<file>.json`` (scores.npy.json), else
    ``<stem>.json`` (scores.json)."""
    if sidecar is not None:
        candidates = [Path(sidecar)]
    else:
        candidates = [Path(str(path) + ".json"), path.with_suffix(".json")]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise InputError(candidates[0], "sidecar not found",
                     expected="a JSON sidecar naming task, size, pretrain_seeds, finetune_seeds"
                     " (use --sidecar PATH)")


def _read_json(path: Path) -> dict:
    payload = inputs.read_json(path, limit=inputs.SIDECAR_LIMIT, what="a JSON sidecar")
    if not isinstance(payload, dict):
        raise InputError(path, f"a {type(payload).__name__}", expected="a JSON object")
    return payload


def import_arrays(store: Store, path: Path, *, task: str | None = None, size: str | None = None,
                  sidecar: str | Path | None = None, replace: bool = False) -> dict[str, Any]:
    """Import dense arrays (.npy or .npz) described by a JSON sidecar. Returns the summary.

    A .npy holds one array (N, P, F) or (N, P, F, E): 0/1 correctness when every value is 0
    or 1, otherwise gold-class probabilities (the sidecar's ``"values": "correct"`` or
    ``"p_correct"`` overrides the guess). Where only p_correct is known, correct is
    p_correct > 0.5. NaN over a whole (pretrain_seed, finetune_seed) slice marks a missing
    run; NaN elsewhere is an error.
    """
    side_path = find_sidecar(path, sidecar)
    meta = _read_json(side_path)
    arrays = _load_arrays(path)

    def field(name: str, default: Any = None, required: bool = False) -> Any:
        if name not in meta:
            if required:
                raise InputError(side_path, f"no {name!r}", field=name,
                                 expected=f"a {name} entry in the sidecar")
            return default
        return meta[name]

    for name, value in (("task", task), ("size", size)):
        same = schema.canonical_task if name == "task" else str
        if value is not None and name in meta and same(str(meta[name])) != same(value):
            raise InputError(side_path, f"{name} is {inputs.quote(meta[name])} but --{name}"
                             f" {value!r}", field=name, expected=f"the same {name}, or no --{name}")
        if value is not None:
            meta[name] = value
    released_task = field("task", required=True)
    task_name = check_name(side_path, "task", released_task)
    size = field("size", required=True)
    size_name = check_name(side_path, "size", str(size) if isinstance(size, int) else size)

    if "scores" in arrays:
        scores = arrays.pop("scores")
        if scores.dtype.kind not in "biuf":
            raise InputError(path, f"dtype {scores.dtype}", expected="numbers")
        values = np.asarray(scores, dtype=np.float64)
        kind = meta.get("values")
        if kind is None:
            finite = values[~np.isnan(values)]
            kind = "correct" if np.isin(finite, (0.0, 1.0)).all() else "p_correct"
        if kind not in ("correct", "p_correct"):
            raise InputError(side_path, f"values is {kind!r}", field="values",
                             expected="correct or p_correct")
        arrays[kind] = values
    base = arrays.get("correct", arrays.get("p_correct"))
    probs = arrays.get("probs")
    if probs is not None and probs.ndim not in (4, 5):
        raise InputError(path, f"array 'probs' has shape {probs.shape}", field="probs",
                         expected="(N, P, F[, E], classes)")
    if base is None:
        base = probs[..., 0]
    shape = base.shape
    if len(shape) not in (3, 4):
        name = "correct" if "correct" in arrays else ("p_correct" if "p_correct" in arrays
                                                      else "probs")
        raise InputError(path, f"array {name!r} has shape {shape}", field=name,
                         expected="(N, P, F) or (N, P, F, E): instances, pretraining seeds,"
                         " fine-tuning seeds[, checkpoints]")
    for name in ("correct", "p_correct"):
        if name in arrays and arrays[name].shape != shape:
            raise InputError(path, f"array {name!r} has shape {arrays[name].shape}", field=name,
                             expected=f"shape {shape}, the same as the other arrays")
    if probs is not None and probs.shape[:-1] != shape:
        raise InputError(path, f"array 'probs' has shape {probs.shape}", field="probs",
                         expected=f"shape {shape} + (classes,)")
    n, p, f = shape[:3]
    e = shape[3] if len(shape) == 4 else 1

    def axis(name: str, length: int, default: list | None, what: str) -> list:
        value = field(name, default, required=default is None)
        if not isinstance(value, list) or len(value) != length:
            got = len(value) if isinstance(value, list) else type(value).__name__
            raise InputError(side_path, f"{name} has {got} entries but the array has {length}"
                             f" {what}", field=name,
                             expected=f"a list of {length} {what} (array shape {shape})")
        return value

    pretrain_raw = axis("pretrain_seeds", p, None, "pretraining seeds")
    pretrain_seeds = [
        check_name(side_path, "pretraining seed",
                   seed_label(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else s,
                   field="pretrain_seeds")
        for s in pretrain_raw]
    finetune_raw = axis("finetune_seeds", f, None, "fine-tuning seeds")
    finetune_seeds = [inputs.as_int64(s) for s in finetune_raw]
    if any(s is None for s in finetune_seeds):
        bad = finetune_raw[finetune_seeds.index(None)]
        raise InputError(side_path, f"finetune_seeds holds {inputs.quote(bad)}",
                         field="finetune_seeds", expected="integer seeds of at most 64 bits")
    checkpoints = axis("checkpoints", e, [FINAL_CHECKPOINT] if len(shape) == 3 else None,
                       "checkpoints")
    if any(isinstance(c, str) or inputs.as_finite(c) is None for c in checkpoints):
        raise InputError(side_path, f"checkpoints {inputs.quote(checkpoints)} are not all"
                         " finite numbers", field="checkpoints",
                         expected="numbers (1.0 = the final checkpoint)")
    checkpoints = [float(c) for c in checkpoints]
    ids_raw = axis("instance_ids", n, [str(i) for i in range(n)], "instances")
    if not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids_raw):
        raise InputError(side_path, "instance_ids holds a value that is not text or an"
                         " integer", field="instance_ids", expected="instance ids")
    instance_ids = [seed_label(i) for i in ids_raw]
    for name, values in (("pretrain_seeds", pretrain_seeds), ("finetune_seeds", finetune_seeds),
                         ("checkpoints", checkpoints), ("instance_ids", instance_ids)):
        if len(set(values)) != len(values):
            raise InputError(side_path, f"{name} repeats a value", field=name,
                             expected="distinct values")

    labels_raw = field("labels")
    label_list = field("label_list")
    if label_list is not None:
        label_list = check_label_list(side_path, label_list)
    gold = np.full(n, -1, dtype=np.int64)
    gold_names: list[str | None] = [None] * n
    if labels_raw is not None:
        if not isinstance(labels_raw, list) or len(labels_raw) != n:
            got = len(labels_raw) if isinstance(labels_raw, list) else type(labels_raw).__name__
            raise InputError(side_path, f"labels has {got} entries but the array has {n}"
                             " instances", field="labels", expected=f"{n} gold labels")
        if label_list is None:
            row = store.task_row(task_name)
            label_list = (row["label_list"] if row and row["label_list"] else _infer_label_list(
                [str(x) for x in labels_raw], probs.shape[-1] if probs is not None else 0))
        lookup = label_index(label_list)
        for i, value in enumerate(labels_raw):
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise InputError(side_path, f"labels[{i}] is a {type(value).__name__}",
                                 field="labels", expected="class names or their indices")
            name = str(value)
            if name not in lookup and isinstance(value, int) and 0 <= value < len(label_list):
                name = label_list[value]
            if name not in lookup:
                raise InputError(side_path, f"labels[{i}] is {value!r}, not in the label list"
                                 f" {label_list}", field="labels",
                                 expected="class names from label_list, or their indices")
            gold[i], gold_names[i] = lookup[name], name
    if label_list is None:
        row = store.task_row(task_name)
        label_list = row["label_list"] if row else (
            [str(i) for i in range(probs.shape[-1])] if probs is not None else [])
    if probs is not None:
        if probs.shape[-1] != len(label_list):
            raise InputError(path, f"probs has {probs.shape[-1]} classes but label_list has"
                             f" {len(label_list)}", field="probs",
                             expected=f"{len(label_list)} classes")
        if labels_raw is None:
            raise InputError(side_path, "probs given but no gold labels", field="labels",
                             expected="labels: the gold class of each instance")

    # Arrays as (N, P, F, E); NaN over a whole run slice means the run is missing.
    def four(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        return a if len(shape) == 4 else a[:, :, :, None, ...]  # probs keep their class axis

    stacked = {k: four(v) for k, v in arrays.items()}
    check = stacked.get("correct", stacked.get("p_correct"))
    if check is None:
        check = stacked["probs"].sum(axis=-1)
    nan = np.isnan(check)
    whole = nan.all(axis=(0, 3))  # (P, F) missing runs
    partial = nan & ~whole[None, :, :, None]
    if partial.any():
        where = tuple(int(i) for i in np.argwhere(partial)[0])
        raise InputError(path, f"NaN at index {where[:len(shape)]} inside a run that has other"
                         " values", expected="numbers for every instance and checkpoint of a"
                         " run (NaN over a whole run marks it missing)")
    present = ~nan
    if "correct" in stacked:
        c = stacked["correct"][present]
        if not np.isin(c, (0.0, 1.0)).all():
            raise InputError(path, "correct holds values other than 0 and 1", field="correct",
                             expected="0/1 correctness")
    if "p_correct" in stacked:
        pc = stacked["p_correct"][present]
        if (pc < 0).any() or (pc > 1).any():
            raise InputError(path, "p_correct holds values outside [0, 1]", field="p_correct",
                             expected="gold-class probabilities between 0 and 1")
    if probs is not None:
        pr = stacked["probs"][present]
        if (pr < 0).any() or not np.allclose(pr.sum(axis=-1), 1, atol=PROB_TOLERANCE):
            raise InputError(path, "probs rows are not distributions", field="probs",
                             expected="non-negative class probabilities summing to 1")
        derived_pred = stacked["probs"].argmax(axis=-1)
        derived_correct = (derived_pred == gold[:, None, None, None]).astype(float)
        if "correct" in stacked and not np.array_equal(stacked["correct"][present],
                                                       derived_correct[present]):
            raise InputError(path, "correct disagrees with the argmax of probs", field="correct",
                             expected="correct == (argmax(probs) == gold label)")
        gold_p = np.take_along_axis(stacked["probs"], np.clip(gold, 0, None)[:, None, None, None,
                                                                              None], axis=-1)[..., 0]
        if "p_correct" in stacked and not np.allclose(stacked["p_correct"][present],
                                                      gold_p[present], atol=1e-6):
            raise InputError(path, "p_correct disagrees with probs at the gold label",
                             field="p_correct", expected="p_correct == probs[..., gold label]")

    runs: list[RunData] = []
    missing: list[list[Any]] = []
    ids = np.tile(np.asarray(instance_ids, dtype=object), e)  # instance-major within checkpoint
    ckpt = np.repeat(np.asarray(checkpoints, dtype=np.float64), n)
    gold_rows = np.tile(gold, e)
    scores_kind = "probs" if probs is not None else (
        "correct" if "correct" in stacked else "p_correct (correct = p_correct > 0.5)")
    for pi, pseed in enumerate(pretrain_seeds):
        for fi, fseed in enumerate(finetune_seeds):
            if whole[pi, fi]:
                missing.append([pseed, fseed])
                continue

            def flat(name: str, pi: int = pi, fi: int = fi) -> np.ndarray | None:
                if name not in stacked:
                    return None
                block = stacked[name][:, pi, fi]  # (N, E[, C])
                return np.concatenate([block[:, k] for k in range(e)], axis=0)

            kwargs: dict[str, Any] = {"checkpoint": ckpt}
            if probs is not None:
                kwargs["probs"] = flat("probs")
            else:
                pc = flat("p_correct")
                cor = flat("correct")
                kwargs["correct"] = (cor > 0.5) if cor is not None else (pc > 0.5)
                kwargs["p_correct"] = pc
                kwargs["n_classes"] = len(label_list)
            table = build_run_table(ids, gold_rows, **kwargs)
            runs.append(RunData(task=task_name, size=size_name, pretrain_seed=pseed,
                                finetune_seed=fseed, table=table, source=str(path),
                                provenance={"file": str(path), "sidecar": str(side_path),
                                            "scores": scores_kind,
                                            "released_task": released_task}))
    if not runs:
        raise InputError(path, "every run is NaN", expected="at least one run with values")

    instances = pd.DataFrame({"instance_id": instance_ids, "label": gold_names})
    for column in INSTANCE_FIELDS:
        if isinstance(meta.get(column), list) and len(meta[column]) == n:
            instances[column] = meta[column]
    with store.transaction("table", str(path), replace=replace) as tx:
        ensure_task(tx, store, task_name, label_list, str(path))
        tx.add_instances(task_name, instances)
        for run in runs:
            tx.add_run(run)
    summary: dict[str, Any] = dict(tx.summary)
    summary["missing_runs"] = missing
    return summary


# ---------------------------------------------------------------------------------------


def import_table(store: Store, path: str | Path, task: str | None = None,
                 size: str | None = None, sidecar: str | Path | None = None,
                 replace: bool = False) -> dict[str, Any]:
    """Import a long table (.csv, .tsv, .parquet, .jsonl) or dense arrays (.npy, .npz).

    ``task`` / ``size`` fill those when the file (or the arrays' sidecar) has none.
    ``sidecar``: JSON file; for arrays it is required (default ``<file>.json``), for long
    tables optional (default ``<file>.json`` when present) and may hold ``label_list`` or
    ``label_lists: {task: [...]}``. Returns the store's summary of what changed.
    """
    path = Path(path)
    inputs.regular_file(path, what="a .csv, .tsv, .parquet, .jsonl, .npy or .npz file")
    if path.suffix.lower() in (".npy", ".npz"):
        return import_arrays(store, path, task=task, size=size, sidecar=sidecar,
                             replace=replace)
    side: dict = {}
    side_path = Path(sidecar) if sidecar is not None else Path(str(path) + ".json")
    if sidecar is not None or side_path.exists():
        if not side_path.exists():
            raise InputError(side_path, "sidecar not found", expected="a JSON file")
        side = _read_json(side_path)
    return import_long(store, path, task=task, size=size, sidecar=side, replace=replace,
                       sidecar_path=side_path)
