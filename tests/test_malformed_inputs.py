"""A corpus of malformed inputs for every importer, each refused cleanly.

"Cleanly" (issue 12): exit code 2, no traceback, one message naming the file and the line
or field and what was expected, and the store byte-identical afterwards (every file under
the home hashed before and after, catalog.sqlite included).

Valid base releases of the five importers are built once per session and imported into a
base home (which must succeed); each case copies one base release and the home, breaks
the copy in one way, and runs ``seedlab import`` on it (``seedlab.cli.main`` in-process for
speed, a few through the real command in a subprocess).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seedlab.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
MNLI_LABELS = ["contradiction", "entailment", "neutral"]
TSV_ROW = "0.2\t0.3\t0.5\n"
SQL = "x'); DROP TABLE runs;--"


# ---------------------------------------------------------------------------------------
# Valid base releases


def _npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def _json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def _build_zhong(root: Path) -> None:
    """mnli/data.json with 4 predict items, one run of result files (2 epochs), and
    correctness tensors of a size without result files."""
    predict = [{"guid": f"dev_matched-{i}", "label": MNLI_LABELS[i % 3], "text_a": f"p {i}",
                "text_b": f"h {i}", **({"genre": "fiction"} if i % 2 else {})} for i in range(4)]
    _json(root / "mnli" / "data.json", {"label_list": MNLI_LABELS, "train": [],
                                         "predict": predict})
    (root / "mnli" / "results").mkdir()
    for epoch in (9, 12):
        (root / "mnli" / "results" / f"sminip1f1epoch{epoch}over3.tsv").write_text(TSV_ROW * 4)
    _json(root / "mnli" / "size2hyperparam.json", {"mini": {"lr": 1e-4}})
    correct = np.array([1.0, 0.0, 1.0, 1.0])[:, None, None, None] * np.ones((4, 1, 1, 4))
    (root / "correctness").mkdir()
    (root / "correctness" / "mnli.pkl").write_bytes(pickle.dumps({"base": correct}))
    (root / "correctness_p").mkdir()
    (root / "correctness_p" / "mnli.pkl").write_bytes(pickle.dumps({"base": correct * 0.9}))


def _decaying_items() -> dict:
    items = [{"guid": f"dev-{i}", "label": str(i % 2), "text_a": f"q {i}", "text_b": f"r {i}"}
             for i in range(3)]
    return {"dev": (items, ["treatment", "control", "control"],
                    {"rz": ["Correct", None, "Wrong"]})}


def _build_decaying(root: Path) -> None:
    root.mkdir()
    (root / "qqpLargeWorseThanMini.pkl").write_bytes(pickle.dumps(_decaying_items(), protocol=3))


def _build_glue(root: Path) -> None:
    root.mkdir()
    (root / "RTE").mkdir()
    rows = ["file\ttask\tpretrain_id\tn_steps\tlr\tft_seed\trelease"]
    for pid in (0, 1):
        (root / "RTE" / f"run{pid}.tsv").write_text("0.9\t0.1\n0.2\t0.8\n0.6\t0.4\n")
        rows.append(f"RTE/run{pid}.tsv\tRTE\t{pid}\t2M\t2e-05\t0\tmultiberts")
    (root / "index.tsv").write_text("\n".join(rows) + "\n")
    (root / "RTE_dev_labels").write_text("0\n1\n0\n")


def _build_coref(root: Path) -> None:
    group = root / "base"
    group.mkdir(parents=True)
    (group / "run_info.tsv").write_text("\tpretrain_seed\tfinetune_seed\n0\t0\t0\n1\t1\t0\n")
    (group / "label_info.tsv").write_text("\tanswer\tgender\n0\t1\tMASCULINE\n1\t0\tFEMININE\n"
                                          "2\t1\tNEUTRAL\n")
    (group / "preds.tsv").write_text("1 0 1\n0 0 1\n")


def _build_lottery(root: Path) -> None:
    seed = root / "masks" / "heads" / "MNLI" / "seed_1"
    _npy(seed / "head_mask.npy", np.array([[1, 0], [1, 1]], dtype=np.float32))
    _npy(seed / "head_importance.npy", np.array([[0.5, 0.1], [0.7, 0.9]]))
    _npy(root / "masks" / "mlps" / "MNLI" / "seed_1" / "mlp_mask.npy", np.array([1.0, 0.0]))
    _json(root / "evaluate_masked" / "exp" / "results.json", {"MNLI": {"acc": [0.8, 0.01]}})


LABELS = {"a": "0", "b": "1", "c": "0"}


def _long_rows(size: str, scores: str) -> pd.DataFrame:
    rows = []
    for p in (0, 1):
        for iid, label in LABELS.items():
            row = {"task": "toy", "size": size, "pretrain_seed": p, "finetune_seed": 0,
                   "instance_id": iid}
            if scores == "probs":
                row["probs"] = [0.9, 0.1] if label == "0" else [0.3, 0.7]
            else:
                row["pred"] = int(label)
            row["label"] = label
            rows.append(row)
    return pd.DataFrame(rows)


def _build_table(root: Path) -> None:
    root.mkdir()
    frame = _long_rows("csv", "probs")
    frame.assign(probs=frame["probs"].map(json.dumps)).to_csv(root / "preds.csv", index=False)
    _long_rows("csvpred", "pred").to_csv(root / "pred.csv", index=False)
    pq.write_table(pa.Table.from_pandas(_long_rows("pq", "probs")), root / "preds.parquet")
    _long_rows("jl", "probs").to_json(root / "preds.jsonl", orient="records", lines=True)
    correct = np.array([1.0, 0.0, 1.0]).reshape(3, 1, 1)
    _npy(root / "scores.npy", correct)
    meta = {"task": "toyarr", "pretrain_seeds": [0], "finetune_seeds": [0],
            "labels": ["0", "1", "0"], "label_list": ["0", "1"]}
    _json(root / "scores.npy.json", {**meta, "size": "npy"})
    np.savez(root / "bundle.npz", correct=correct, p_correct=np.array([0.8, 0.3, 0.6]).reshape(
        3, 1, 1))
    _json(root / "bundle.npz.json", {**meta, "size": "npz"})


BASES: dict[str, tuple[Callable[[Path], None], str]] = {
    # name: (builder, import format)
    "zhong": (_build_zhong, "zhong"),
    "decaying": (_build_decaying, "zhong-decaying"),
    "glue": (_build_glue, "multiberts"),
    "coref": (_build_coref, "multiberts"),
    "lottery": (_build_lottery, "lottery"),
    "table": (_build_table, "table"),
}
BASE_IMPORTS = [("zhong", ""), ("decaying", "qqpLargeWorseThanMini.pkl"), ("glue", ""),
                ("coref", ""), ("lottery", ""), ("table", "preds.csv"), ("table", "pred.csv"),
                ("table", "preds.parquet"), ("table", "preds.jsonl"), ("table", "scores.npy"),
                ("table", "bundle.npz")]


@pytest.fixture(scope="session")
def bases(tmp_path_factory) -> tuple[Path, Path]:
    """(folder of the base releases, a home into which every one was imported)."""
    top = tmp_path_factory.mktemp("malformed")
    releases, home = top / "releases", top / "home"
    for name, (build, _) in BASES.items():
        build(releases / name)
    for name, rel in BASE_IMPORTS:
        path = releases / name / rel if rel else releases / name
        code = cli_main(["--home", str(home), "import", BASES[name][1], str(path)])
        assert code == 0, f"the base release {path} must import"
    return releases, home


def snapshot(home: Path) -> dict[str, str]:
    """Every file under ``home`` -> its sha256 (folders -> 'dir')."""
    out = {}
    for folder, dirs, files in os.walk(home):
        for name in dirs:
            out[os.path.relpath(os.path.join(folder, name), home)] = "dir"
        for name in files:
            path = Path(folder) / name
            out[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------------------------------
# Mutations


def write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return mutate


def link(rel: str, target: str) -> Callable[[Path], None]:
    """Replace ``rel`` by a symlink to ``target`` ('OUTSIDE' = a valid-looking file beside
    the release, outside it)."""
    def mutate(root: Path) -> None:
        path = root / rel
        if path.exists() or path.is_symlink():
            path.unlink()
        if target == "OUTSIDE":
            outside = root.parent / "outside.tsv"
            outside.write_text(TSV_ROW * 4 if "mnli" in rel else "0.5\t0.5\n" * 3)
            path.symlink_to(outside)
        else:
            path.symlink_to(target)
    return mutate


def edit_json(rel: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        data = json.loads((root / rel).read_text())
        result = change(data)
        (root / rel).write_text(json.dumps(data if result is None else result))
    return mutate


def predict_item(i: int, **fields) -> Callable[[Path], None]:
    return edit_json("mnli/data.json", lambda d: d["predict"][i].update(fields))


def pickled(rel: str, obj) -> Callable[[Path], None]:
    return write(rel, pickle.dumps(obj, protocol=4))


def decaying(change: Callable[[dict], None]) -> Callable[[Path], None]:
    data = _decaying_items()
    change(data)
    return pickled("qqpLargeWorseThanMini.pkl", data)


def npy(rel: str, array: np.ndarray) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        np.save(root / rel, array, allow_pickle=True)
    return mutate


def npy_header(rel: str, shape: tuple[int, ...], payload: bytes = b"\0" * 56
               ) -> Callable[[Path], None]:
    """A .npy whose header claims ``shape`` (float64) over ``payload`` bytes."""
    def mutate(root: Path) -> None:
        with open(root / rel, "wb") as handle:
            np.lib.format.write_array_header_1_0(
                handle, {"descr": "<f8", "fortran_order": False, "shape": shape})
            handle.write(payload)
    return mutate


def npz(rel: str, **arrays) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        np.savez(root / rel, **arrays)
    return mutate


def moved_out(rel: str) -> Callable[[Path], None]:
    """Move the folder ``rel`` out of the release and leave a symlink to it in its place."""
    def mutate(root: Path) -> None:
        outside = root.parent / "elsewhere"
        shutil.move(root / rel, outside)
        (root / rel).symlink_to(outside, target_is_directory=True)
    return mutate


def rename(rel: str, new: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / new).parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / rel, root / new)
    return mutate


def csv_line(rel: str, number: int, text: str) -> Callable[[Path], None]:
    """Replace line ``number`` (1-based) of a text file."""
    def mutate(root: Path) -> None:
        lines = (root / rel).read_text().splitlines()
        lines[number - 1] = text
        (root / rel).write_text("\n".join(lines) + "\n")
    return mutate


def jsonl_record(number: int, **fields) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        lines = (root / "preds.jsonl").read_text().splitlines()
        record = json.loads(lines[number - 1])
        record.update(fields)
        lines[number - 1] = json.dumps(record)
        (root / "preds.jsonl").write_text("\n".join(lines) + "\n")
    return mutate


def parquet(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        frame = change(_long_rows("pq", "probs"))
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / "preds.parquet")
    return mutate


def both(*mutations: Callable[[Path], None]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        for m in mutations:
            m(root)
    return mutate


# ---------------------------------------------------------------------------------------
# The corpus


@dataclass
class Case:
    id: str
    base: str
    mutate: Callable[[Path], None]
    names: str  # the file (or folder) the message must name, relative to the release
    where: str | None = None  # regex for the line / field part of the message
    path: str = ""  # what is imported, relative to the release ("" = the release folder)
    args: tuple[str, ...] = ()
    never: str | None = None  # text that must not appear in the message


def _zhong_cases() -> list[Case]:
    dj, tsv = "mnli/data.json", "mnli/results/sminip1f1epoch9over3.tsv"
    c, cp = "correctness/mnli.pkl", "correctness_p/mnli.pkl"
    ones = np.ones((4, 1, 1, 4))
    cases = [
        Case("data.json not JSON", "zhong", write(dj, '{"label_list": ["a", "b"],\n oops}'), dj,
             r"line 2"),
        Case("data.json not UTF-8", "zhong", write(dj, b'{"label_list":\n ["\xff\xfe"]}'), dj,
             r"line 2"),
        Case("data.json 0 bytes", "zhong", write(dj, b""), dj, r"line 1"),
        Case("data.json NaN", "zhong", predict_item(0, genre=float("nan")), dj, r"NaN"),
        Case("data.json a list", "zhong", write(dj, "[]"), dj),
        Case("data.json without label_list", "zhong", edit_json(dj, lambda d: d.pop("label_list")
                                                                and None), dj, r"field 'label_list'"),
        Case("label_list of lists", "zhong", edit_json(dj, lambda d: d.update(
            label_list=[["a"], ["b"]])), dj, r"field 'label_list'"),
        Case("label_list repeats", "zhong", edit_json(dj, lambda d: d.update(
            label_list=["a", "a", "b"])), dj, r"field 'label_list'"),
        Case("predict not a list", "zhong", edit_json(dj, lambda d: d.update(predict={})), dj,
             r"field 'predict'"),
        Case("predict key instance_id", "zhong", predict_item(1, instance_id="x"), dj,
             r"field 'predict\[1\]\.instance_id'"),
        Case("predict key extra", "zhong", predict_item(0, extra="not json"), dj,
             r"field 'predict\[0\]\.extra'"),
        Case("predict key task", "zhong", predict_item(2, task="rte"), dj,
             r"field 'predict\[2\]\.task'"),
        Case("predict text_a a list", "zhong", predict_item(0, text_a=["a"]), dj,
             r"field 'predict\[0\]\.text_a'"),
        Case("predict extra a dict", "zhong", predict_item(3, genre={"a": 1}), dj,
             r"field 'predict\[3\]\.genre'"),
        Case("predict extra beyond int64", "zhong", predict_item(3, template=10**30), dj,
             r"field 'predict\[3\]\.template'"),
        Case("predict guid a float", "zhong", predict_item(1, guid=1.5), dj,
             r"field 'predict\[1\]\.guid'"),
        Case("predict guid a bool", "zhong", predict_item(1, guid=True), dj,
             r"field 'predict\[1\]\.guid'"),
        Case("predict label unknown", "zhong", predict_item(2, label="maybe"), dj,
             r"field 'predict\[2\]\.label'"),
        Case("predict guid twice", "zhong", predict_item(1, guid="dev_matched-0"), dj,
             r"field 'predict\[1\]\.guid'"),
        Case("result tsv 0 bytes", "zhong", write(tsv, b""), tsv),
        Case("result tsv not UTF-8", "zhong", write(tsv, TSV_ROW + "0.2\t\xff\t0.5\n" + TSV_ROW * 2),
             tsv, r"line 2"),
        Case("result tsv bytes not UTF-8", "zhong", write(tsv, TSV_ROW.encode() + b"0.2\t\xff\xfe\t0.5\n"
                                                          + TSV_ROW.encode() * 2), tsv, r"line 2"),
        Case("result tsv NaN", "zhong", write(tsv, TSV_ROW * 2 + "nan\t0.5\t0.5\n" + TSV_ROW), tsv,
             r"line 3"),
        Case("result tsv negative", "zhong", write(tsv, "-0.2\t0.7\t0.5\n" + TSV_ROW * 3), tsv,
             r"line 1"),
        Case("result tsv 1e400", "zhong", write(tsv, TSV_ROW + "1e400\t0\t0\n" + TSV_ROW * 2), tsv,
             r"line 2"),
        Case("result tsv ragged", "zhong", write(tsv, TSV_ROW * 3 + "0.5\t0.5\n"), tsv, r"line 4"),
        Case("result tsv short", "zhong", write(tsv, TSV_ROW * 3), tsv),
        Case("result tsv not summing", "zhong", write(tsv, TSV_ROW + "0.2\t0.2\t0.2\n" + TSV_ROW * 2),
             tsv, r"line 2"),
        Case("result tsv text", "zhong", write(tsv, TSV_ROW * 2 + "secret\tb\tc\n" + TSV_ROW), tsv,
             r"line 3, field 'column 1'", never="secret"),
        Case("result tsv larger than 4 rows can be", "zhong", write(tsv, TSV_ROW * 4 + " " * 20000),
             tsv),
        Case("result tsv -> /dev/zero", "zhong", link(tsv, "/dev/zero"), tsv),
        Case("result tsv -> outside the release", "zhong", link(tsv, "OUTSIDE"), tsv),
        Case("data.json -> /dev/zero", "zhong", link(dj, "/dev/zero"), dj),
        Case("task folder -> outside", "zhong", moved_out("mnli"), dj),
        Case("results folder -> outside", "zhong", moved_out("mnli/results"), tsv),
        Case("result name seed beyond int64", "zhong",
             rename(tsv, "mnli/results/sminip1f99999999999999999999epoch9over3.tsv"),
             "mnli/results/sminip1f99999999999999999999epoch9over3.tsv"),
        Case("task folder unicode", "zhong", rename("mnli", "tâche"), "tâche", r"field 'task'"),
        Case("task folder SQL", "zhong", rename("mnli", SQL), SQL, r"field 'task'"),
        Case("task folder newline", "zhong", rename("mnli", "mnli\n"), "mnli\n", r"field 'task'"),
        Case("task folder too long", "zhong", rename("mnli", "m" * 150), "m" * 150, r"field 'task'"),
        Case("two folders of one task", "zhong", lambda r: shutil.copytree(r / "mnli", r / "MNLI"),
             "mnli"),
        Case("size2hyperparam not JSON", "zhong", write("mnli/size2hyperparam.json", "{\n\n,"),
             "mnli/size2hyperparam.json", r"line 3"),
        Case("tensor ragged nested lists", "zhong", pickled(c, {"base": [[1, 2], [3]]}), c,
             r"field 'base'"),
        Case("tensor size ../../etc", "zhong", pickled(c, {"../../etc": ones}), c,
             r"field '../../etc'"),
        Case("tensor size newline", "zhong", pickled(c, {"base\n": ones}), c, r"field 'base\\n'"),
        Case("tensor size not text", "zhong", pickled(c, {5: ones}), c, r"field 'size'"),
        Case("tensor of strings", "zhong", pickled(c, {"base": np.full((4, 1, 1, 4), "x")}), c,
             r"field 'base'"),
        Case("tensor of objects", "zhong", pickled(c, {"base": [[[[None] * 4]]] * 4}), c,
             r"field 'base'"),
        Case("tensor wrong shape", "zhong", pickled(c, {"base": np.ones((3, 1, 1, 4))}), c,
             r"field 'base'"),
        Case("tensor value 2", "zhong", pickled(c, {"base": ones * 2}), c, r"field 'base'"),
        Case("tensor_p NaN", "zhong", pickled(cp, {"base": ones * np.nan}), cp, r"field 'base'"),
        Case("tensor runs code", "zhong", write(c, b"cos\nsystem\n(S'true'\ntR."), c),
        Case("tensor truncated", "zhong", write(c, pickle.dumps({"base": ones})[:-20]), c),
        Case("tensor -> /dev/zero", "zhong", link(c, "/dev/zero"), c),
    ]
    return cases


def _decaying_cases() -> list[Case]:
    f = "qqpLargeWorseThanMini.pkl"

    def split(**kw) -> Callable[[dict], None]:
        def change(d: dict) -> None:
            items, groups, ann = d["dev"]
            d["dev"] = (kw.get("items", items), kw.get("groups", groups), kw.get("ann", ann))
        return change

    items = _decaying_items()["dev"][0]
    return [Case(name, "decaying", mutate, f, where, path=f) for name, mutate, where in [
        ("group is a list", decaying(split(groups=[["treatment"], "control", "control"])),
         r"field \"\['dev'\]\[1\]\[0\]\""),
        ("group unknown", decaying(split(groups=["treated", "control", "control"])),
         r"field \"\['dev'\]\[1\]\[0\]\""),
        ("annotator empty", decaying(split(ann={"": ["Correct", None, None]})),
         r"field \"\['dev'\]\[2\]\""),
        ("annotator blank", decaying(split(ann={"  ": ["Correct", None, None]})),
         r"field \"\['dev'\]\[2\]\""),
        ("annotator not text", decaying(split(ann={5: ["Correct", None, None]})),
         r"field \"\['dev'\]\[2\]\""),
        ("annotator newline", decaying(split(ann={"rz\n": ["Correct", None, None]})),
         r"field \"\['dev'\]\[2\]\""),
        ("verdict unknown", decaying(split(ann={"rz": ["Maybe", None, None]})),
         r"field \"\['dev'\]\[2\]\['rz'\]\[0\]\""),
        ("verdict count", decaying(split(ann={"rz": ["Correct"]})), r"field \"\['dev'\]\[2\]\""),
        ("split not a tuple", decaying(lambda d: d.update(dev=[1, 2])), r"field \"\['dev'\]\""),
        ("data list not a list", decaying(split(items={"a": 1})), r"field \"\['dev'\]\""),
        ("group count", decaying(split(groups=["control"])), r"field \"\['dev'\]\""),
        ("item not a dict", decaying(split(items=[1, items[1], items[2]])),
         r"field \"\['dev'\]\[0\]\[0\]\""),
        ("guid an int", decaying(split(items=[{**items[0], "guid": 5}, items[1], items[2]])),
         r"field \"\['dev'\]\[0\]\[0\]\""),
        ("text_a a dict", decaying(split(items=[{**items[0], "text_a": {"a": 1}}, items[1],
                                                items[2]])),
         r"field \"\['dev'\]\[0\]\[0\]\.text_a\""),
        ("extra a list", decaying(split(items=[items[0], {**items[1], "heuristic": ["x"]},
                                               items[2]])),
         r"field \"\['dev'\]\[0\]\[1\]\.heuristic\""),
        ("item key instance_id", decaying(split(items=[items[0], items[1],
                                                       {**items[2], "instance_id": "z"}])),
         r"field \"\['dev'\]\[0\]\[2\]\.instance_id\""),
        ("gold label unknown", decaying(split(items=[{**items[0], "label": "7"}, items[1],
                                                     items[2]])), r"field 'label'"),
        ("guid twice", decaying(split(items=[items[0], items[0], items[2]])), r"field 'guid'"),
        ("top level a list", pickled(f, [1, 2]), None),
        ("0 bytes", write(f, b""), None),
        ("truncated", write(f, pickle.dumps(_decaying_items())[:-30]), None),
        ("runs code", write(f, b"cposix\nsystem\n(S'true'\ntR."), None),
        ("-> /dev/zero", link(f, "/dev/zero"), None),
    ]] + [Case("folder: a .pkl -> outside", "decaying", link(f, "OUTSIDE"), f)]


def _glue_cases() -> list[Case]:
    ix, run0, labels = "index.tsv", "RTE/run0.tsv", "RTE_dev_labels"
    header = "file\ttask\tpretrain_id\tn_steps\tlr\tft_seed\trelease"

    def row(**kw) -> Callable[[Path], None]:
        values = {"file": "RTE/run1.tsv", "task": "RTE", "pretrain_id": "1", "n_steps": "2M",
                  "lr": "2e-05", "ft_seed": "0", "release": "multiberts", **kw}
        return csv_line(ix, 3, "\t".join(values[c] for c in header.split("\t")))

    return [
        Case("index 0 bytes", "glue", write(ix, b""), ix),
        Case("index not UTF-8", "glue", write(ix, header.encode() + b"\nRTE/run0.tsv\tR\xe9\n"), ix,
             r"line 2"),
        Case("index missing column", "glue", csv_line(ix, 1, header.replace("\tlr", "\tLR")), ix,
             r"field 'lr'"),
        Case("index empty file cell", "glue", row(file=" "), ix, r"line 3.*field 'file'"),
        Case("index pretrain_id 1e30", "glue", row(pretrain_id="1e30"), ix,
             r"line 3.*field 'pretrain_id'"),
        Case("index ft_seed beyond int64", "glue", row(ft_seed="99999999999999999999999"), ix,
             r"line 3.*field 'ft_seed'"),
        Case("index n_steps 1e400", "glue", row(n_steps="1e400"), ix, r"line 3.*field 'n_steps'"),
        Case("index n_steps 40 digits", "glue", row(n_steps="9" * 40), ix,
             r"line 3.*field 'n_steps'"),
        Case("index lr inf", "glue", row(lr="inf"), ix, r"line 3.*field 'lr'"),
        Case("index task unicode", "glue", row(task="RTÉ"), ix, r"line 3.*field 'task'"),
        Case("index task SQL", "glue", row(task=SQL), ix, r"line 3.*field 'task'"),
        Case("index release with a slash", "glue", row(release="../../etc"), ix,
             r"line 3.*field 'size'"),
        Case("index run twice", "glue", row(file="RTE/run0.tsv", pretrain_id="0"), ix, r"line 3"),
        Case("file ../outside.tsv", "glue", both(write("../outside.tsv", "0.5\t0.5\n" * 3),
                                                 row(file="../outside.tsv")), "../outside.tsv"),
        Case("file /etc/passwd", "glue", row(file="/etc/passwd"), "/etc/passwd", never="root:"),
        Case("file -> /dev/zero", "glue", link("RTE/run1.tsv", "/dev/zero"), "RTE/run1.tsv"),
        Case("file -> outside", "glue", link("RTE/run1.tsv", "OUTSIDE"), "RTE/run1.tsv"),
        Case("file is a folder", "glue", row(file="RTE"), "RTE"),
        Case("file with a NUL byte", "glue", row(file="RTE/run\x001.tsv"), "RTE/run\\x001.tsv",
             never="leads outside"),
        Case("run folder -> outside", "glue", moved_out("RTE"), "RTE/run0.tsv"),
        Case("scores text", "glue", write(run0, "0.9\t0.1\nroot:x:0:0\t1\n0.6\t0.4\n"), run0,
             r"line 2.*field 'column 1'", never="root:"),
        Case("scores not UTF-8", "glue", write(run0, b"0.9\t0.1\n0.2\t\xff\n0.6\t0.4\n"), run0,
             r"line 2"),
        Case("scores 0 bytes", "glue", write(run0, b""), run0),
        Case("scores NaN", "glue", write(run0, "0.9\t0.1\n0.2\t0.8\nnan\t0.4\n"), run0, r"line 3"),
        Case("scores ragged", "glue", write(run0, "0.9\t0.1\n0.2\n0.6\t0.4\n"), run0, r"line 2"),
        Case("scores row count", "glue", write(run0, "0.9\t0.1\n0.2\t0.8\n"), run0),
        Case("scores larger than 3 rows can be", "glue",
             write(run0, "0.9\t0.1\n" * 3 + "\n" * (3 << 20)), run0),
        Case("labels not UTF-8", "glue", write(labels, b"0\n\xff\n0\n"), labels, r"line 2"),
        Case("labels 0 bytes", "glue", write(labels, b""), labels),
        Case("labels NaN", "glue", write(labels, "0\nnan\n0\n"), labels, r"line 2"),
        Case("label beyond the classes", "glue", write(labels, "0\n1\n5\n"), labels, r"line 3"),
        Case("labels missing", "glue", lambda r: (r / labels).unlink(), labels),
        Case("labels -> /dev/zero", "glue", link(labels, "/dev/zero"), labels),
    ]


def _coref_cases() -> list[Case]:
    ri, li, pr = "base/run_info.tsv", "base/label_info.tsv", "base/preds.tsv"
    return [
        Case("run_info 0 bytes", "coref", write(ri, b""), ri),
        Case("run_info not UTF-8", "coref", write(ri, b"\tpretrain_seed\tfinetune_seed\n0\t\xff\t0\n"
                                                  b"1\t1\t0\n"), ri, r"line 2"),
        Case("run_info no seed column", "coref", csv_line(ri, 1, "\tseed\tfinetune_seed"), ri,
             r"field 'pretrain_seed'"),
        Case("run_info seed beyond int64", "coref", csv_line(ri, 3, "1\t99999999999999999999\t0"),
             ri, r"line 3.*field 'pretrain_seed'"),
        Case("run_info seed 1e30", "coref", csv_line(ri, 2, "0\t0\t1e30"), ri,
             r"line 2.*field 'finetune_seed'"),
        Case("run_info run twice", "coref", csv_line(ri, 3, "1\t0\t0"), ri, r"line 3"),
        Case("label_info answer 2", "coref", csv_line(li, 3, "1\t2\tFEMININE"), li,
             r"line 3.*field 'answer'"),
        Case("label_info no answer", "coref", csv_line(li, 1, "\tgold\tgender"), li,
             r"field 'answer'"),
        Case("label_info 0 bytes", "coref", write(li, b""), li),
        Case("preds 0.5", "coref", write(pr, "1 0 1\n0 0.5 1\n"), pr, r"line 2"),
        Case("preds shape", "coref", write(pr, "1 0\n0 0\n"), pr),
        Case("preds not UTF-8", "coref", write(pr, b"1 0 1\n0 \xff 1\n"), pr, r"line 2"),
        Case("preds -> /dev/zero", "coref", link(pr, "/dev/zero"), pr),
        Case("preds -> outside", "coref", link(pr, "OUTSIDE"), pr),
        Case("group -> outside", "coref", moved_out("base"), ri),
        Case("group name with a space", "coref", rename("base", "base line"), "base line",
             r"field 'size'"),
        Case("group name newline", "coref", rename("base", "base\n"), "base\n", r"field 'size'"),
    ]


def _lottery_cases() -> list[Case]:
    seed = "masks/heads/MNLI/seed_1"
    hm, hi = f"{seed}/head_mask.npy", f"{seed}/head_importance.npy"
    res = "evaluate_masked/exp/results.json"
    return [
        Case("head_mask 0 bytes", "lottery", write(hm, b""), hm),
        Case("head_mask header 7 TiB", "lottery", npy_header(hm, (1 << 20, 1 << 20, 1 << 20)), hm),
        Case("head_mask header larger than the data", "lottery", npy_header(hm, (2, 4)), hm),
        Case("head_mask truncated", "lottery", write(hm, open_npy((2, 2))[:-5]), hm),
        Case("head_mask objects", "lottery", npy(hm, np.array([[None, 1]], dtype=object)), hm),
        Case("head_mask strings", "lottery", npy(hm, np.array([["1", "0"]])), hm),
        Case("head_mask 0.5", "lottery", npy(hm, np.full((2, 2), 0.5)), hm),
        Case("head_mask 1-D", "lottery", npy(hm, np.ones(4)), hm),
        Case("head_mask not npy", "lottery", write(hm, b"PK\x03\x04 not an array"), hm),
        Case("head_mask -> /dev/zero", "lottery", link(hm, "/dev/zero"), hm),
        Case("head_mask -> outside", "lottery", both(
            lambda r: np.save(r.parent / "outside.npy", np.ones((2, 2))),
            lambda r: ((r / hm).unlink(), (r / hm).symlink_to(r.parent / "outside.npy"))), hm),
        Case("setting -> outside", "lottery", moved_out("masks/heads"), hm),
        Case("importance NaN", "lottery", npy(hi, np.full((2, 2), np.nan)), hi),
        Case("importance shape", "lottery", npy(hi, np.ones((2, 3))), hi),
        Case("importance without mask", "lottery", lambda r: (r / hm).unlink(), hi),
        Case("seed folder seed_x", "lottery", rename(seed, "masks/heads/MNLI/seed_x"),
             "masks/heads/MNLI/seed_x"),
        Case("seed folder beyond int64", "lottery",
             rename(seed, "masks/heads/MNLI/seed_9999999999999999999"),
             "masks/heads/MNLI/seed_9999999999999999999"),
        Case("seed folder newline", "lottery", rename(seed, "masks/heads/MNLI/seed_1\n"),
             "masks/heads/MNLI/seed_1\n"),
        Case("setting unicode", "lottery", rename("masks/heads", "masks/têtes"), "masks/têtes",
             r"field 'setting'"),
        Case("setting newline", "lottery", rename("masks/heads", "masks/heads\n"),
             "masks/heads\n", r"field 'setting'"),
        Case("task folder SQL", "lottery", rename("masks/heads/MNLI", f"masks/heads/{SQL}"),
             f"masks/heads/{SQL}"),
        Case("results.json not JSON", "lottery", write(res, '{"MNLI":\n {"acc": [0.8,]}}'), res,
             r"line 2"),
        Case("results.json not UTF-8", "lottery", write(res, b'{"MNLI":\n {"\xff": [0.8, 0]}}'), res,
             r"line 2"),
        Case("results.json NaN", "lottery", write(res, '{"MNLI": {"acc": [NaN, 0.1]}}'), res),
        Case("results.json not [mean, std]", "lottery", write(res, '{"MNLI": {"acc": 0.8}}'), res,
             r"field 'MNLI.acc'"),
        Case("results.json a list", "lottery", write(res, "[1]"), res),
        Case("results.json -> /dev/zero", "lottery", link(res, "/dev/zero"), res),
        Case("masks changed, no --replace", "lottery", npy(hm, np.zeros((2, 2))), "masks/heads",
             r"field 'MNLI'"),
    ]


def open_npy(shape: tuple[int, ...]) -> bytes:
    """The bytes of a float64 .npy of ``shape``."""
    buffer = io.BytesIO()
    np.save(buffer, np.ones(shape))
    return buffer.getvalue()


def _table_cases() -> list[Case]:
    csv, pcsv, parq, jl, arr, side, bun = ("preds.csv", "pred.csv", "preds.parquet",
                                            "preds.jsonl", "scores.npy", "scores.npy.json",
                                            "bundle.npz")

    def row(number: int, **kw) -> Callable[[Path], None]:
        values = {"task": "toy", "size": "csv", "pretrain_seed": "0", "finetune_seed": "0",
                  "instance_id": "b", "probs": '"[0.3, 0.7]"', "label": "1", **kw}
        return csv_line(csv, number, ",".join(values.values()))

    def prow(number: int, pred: str) -> Callable[[Path], None]:
        return csv_line(pcsv, number, f"toy,csvpred,0,0,b,{pred},1")

    def meta(**kw) -> Callable[[Path], None]:
        return edit_json(side, lambda d: d.update(kw))

    def cell(column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
        def change(frame: pd.DataFrame) -> pd.DataFrame:
            frame[column] = frame[column].astype(object)
            frame.at[2, column] = value
            return frame
        return change

    cases = [
        ("csv 0 bytes", write(csv, b""), csv, csv, None),
        ("csv not UTF-8", write(csv, b"task,size\ntoy,\xff\n"), csv, csv, r"line 2"),
        ("csv probs NaN", row(3, probs='"[NaN, 1.0]"'), csv, csv, r"line 3.*field 'probs'"),
        ("csv probs Infinity", row(3, probs='"[Infinity, 0]"'), csv, csv, r"line 3.*field 'probs'"),
        ("csv probs negative", row(4, instance_id="c", label="0", probs='"[-0.5, 1.5]"'), csv,
         csv, r"line 4.*field 'probs'"),
        ("csv probs not summing", row(3, probs='"[0.5, 0.6]"'), csv, csv, r"line 3.*field 'probs'"),
        ("csv probs text", row(3, probs="abc"), csv, csv, r"line 3.*field 'probs'"),
        ("csv probs booleans", row(3, probs='"[true, false]"'), csv, csv, r"line 3.*field 'probs'"),
        ("csv finetune_seed 1e30", row(3, finetune_seed="1e30"), csv, csv,
         r"line 3.*field 'finetune_seed'"),
        ("csv finetune_seed beyond int64", row(3, finetune_seed="99999999999999999999"), csv, csv,
         r"line 3.*field 'finetune_seed'"),
        ("csv checkpoint 1e400", both(csv_line(csv, 1, "task,size,pretrain_seed,finetune_seed,"
                                                        "instance_id,probs,label,checkpoint"),
                                      csv_line(csv, 2, 'toy,csv,0,0,a,"[0.9, 0.1]",0,1e400')),
         csv, csv, r"line 2.*field 'checkpoint'"),
        ("csv task unicode", row(3, task="tâche"), csv, csv, r"line 3.*field 'task'"),
        ("csv task SQL", row(3, task='"x\'); DROP TABLE runs;--"'), csv, csv,
         r"line 3.*field 'task'"),
        ("csv size ../../etc", row(3, size="../../etc"), csv, csv, r"line 3.*field 'size'"),
        ("csv pretrain_seed empty", row(3, pretrain_seed=""), csv, csv,
         r"line 3.*field 'pretrain_seed'"),
        ("csv pretrain_seed with a slash", row(3, pretrain_seed="../x"), csv, csv,
         r"line 3.*field 'pretrain_seed'"),
        ("csv row twice", row(4, instance_id="a", label="0", probs='"[0.9, 0.1]"'), csv, csv,
         r"line 4.*field 'instance_id'"),
        ("csv header only", write(csv, "task,size,pretrain_seed,finetune_seed,instance_id,probs,"
                                       "label\n"), csv, csv, None),
        ("csv missing column", csv_line(csv, 1, "task,size,pretrain_seed,finetune_seed,iid,probs,"
                                                "label"), csv, csv, r"field 'instance_id'"),
        ("csv label clash", row(3, label="0"), csv, csv, r"line \d.*field 'label'"),
        ("csv pred 1e20", prow(3, "1e20"), pcsv, pcsv, r"line 3.*field 'pred'"),
        ("csv pred int64 max", prow(3, "9223372036854775807"), pcsv, pcsv, r"line 3.*field 'pred'"),
        ("csv pred -1", prow(3, "-1"), pcsv, pcsv, r"line 3.*field 'pred'"),
        ("csv pred 1.5", prow(3, "1.5"), pcsv, pcsv, r"line 3.*field 'pred'"),
        ("csv pred beyond the labels", prow(3, "7"), pcsv, pcsv, r"line 3.*field 'pred'"),
        ("csv -> /dev/zero", link(csv, "/dev/zero"), csv, csv, None),
        ("parquet probs NaN", parquet(cell("probs", [float("nan"), 1.0])), parq, parq,
         r"field 'probs': row 2"),
        ("parquet pred 1e20", parquet(lambda f: f.drop(columns="probs").assign(
            pred=[0.0, 1.0, 1e20, 0.0, 1.0, 0.0])), parq, parq, r"field 'pred': row 2"),
        ("parquet finetune_seed 1e30", parquet(lambda f: f.assign(
            finetune_seed=[0.0, 0.0, 1e30, 0.0, 0.0, 0.0])), parq, parq,
         r"field 'finetune_seed': row 2"),
        ("parquet task newline", parquet(cell("task", "toy\n")), parq, parq,
         r"field 'task': row 2"),
        ("parquet garbage", write(parq, b"PAR1 not really PAR1"), parq, parq, None),
        ("parquet 0 bytes", write(parq, b""), parq, parq, None),
        ("jsonl task newline", jsonl_record(2, task="tx\n"), jl, jl, r"line 2.*field 'task'"),
        ("jsonl size ../../etc", jsonl_record(3, size="../../etc"), jl, jl,
         r"line 3.*field 'size'"),
        ("jsonl size a float", jsonl_record(3, size=1e30), jl, jl, r"line 3.*field 'size'"),
        ("jsonl finetune_seed 1e30", jsonl_record(2, finetune_seed=1e30), jl, jl,
         r"line 2.*field 'finetune_seed'"),
        ("jsonl checkpoint 1e400", lambda r: jsonl_record(2)(r) or csv_line(
            jl, 2, (r / jl).read_text().splitlines()[1][:-1] + ', "checkpoint": 1e400}')(r),
         jl, jl, r"line 2.*field 'checkpoint'"),
        ("jsonl not UTF-8", lambda r: (r / jl).write_bytes((r / jl).read_bytes() + b'{"\xff": 1}\n'),
         jl, jl, r"line 7"),
        ("jsonl not JSON", lambda r: (r / jl).write_text((r / jl).read_text() + "{oops\n"), jl, jl,
         r"line 7"),
        ("jsonl a list", lambda r: (r / jl).write_text((r / jl).read_text() + "[1]\n"), jl, jl,
         r"line 7"),
        ("jsonl NaN", lambda r: csv_line(jl, 1, (r / jl).read_text().splitlines()[0].replace(
            "0.9", "NaN"))(r), jl, jl, r"line 1"),
        ("jsonl 0 bytes", write(jl, b""), jl, jl, None),
        ("npy 0 bytes", write(arr, b""), arr, arr, None),
        ("npy header 7 TiB", npy_header(arr, (1 << 40, 1, 1)), arr, arr, None),
        ("npy header beyond the data", npy_header(arr, (30, 1, 1)), arr, arr, None),
        ("npy objects", npy(arr, np.array([[[None]]] * 3, dtype=object)), arr, arr, None),
        ("npy strings", npy(arr, np.array([[["1"]]] * 3)), arr, arr, None),
        ("npy values 2", npy(arr, np.full((3, 1, 1), 2.0)), arr, arr, r"field 'p_correct'"),
        ("npy NaN inside a run", npy(arr, np.array([1.0, np.nan, 0.0]).reshape(3, 1, 1)), arr,
         arr, None),
        ("npy 2-D", npy(arr, np.ones((3, 1))), arr, arr, None),
        ("npy -> /dev/zero", link(arr, "/dev/zero"), arr, arr, None),
        ("npz member objects", npz(bun, correct=np.array([[[None]]] * 3, dtype=object)), bun,
         "bundle.npz[correct]", None),
        ("npz member strings", npz(bun, correct=np.array([[["1"]]] * 3)), bun,
         "bundle.npz[correct]", None),
        ("npz member header beyond the data", lambda r: _npz_raw(r / bun, open_npy((3, 1, 1))[:-8]),
         bun, "bundle.npz[correct]", None),
        ("npz garbage", write(bun, b"PK\x03\x04garbage"), bun, bun, None),
        ("npz probs 0-D", npz(bun, correct=np.ones((3, 1, 1)), probs=np.float64(1)), bun, bun,
         r"field 'probs'"),
        ("sidecar not UTF-8", write(side, b'{"task":\n "\xff"}'), arr, side, r"line 2"),
        ("sidecar 0 bytes", write(side, b""), arr, side, r"line 1"),
        ("sidecar NaN", write(side, '{"task": "toyarr", "size": NaN}'), arr, side, None),
        ("sidecar a list", write(side, "[]"), arr, side, None),
        ("sidecar finetune_seeds 1e30", meta(finetune_seeds=[1e30]), arr, side,
         r"field 'finetune_seeds'"),
        ("sidecar finetune_seeds beyond int64", meta(finetune_seeds=[10**20]), arr, side,
         r"field 'finetune_seeds'"),
        ("sidecar finetune_seeds true", meta(finetune_seeds=[True]), arr, side,
         r"field 'finetune_seeds'"),
        ("sidecar checkpoints 1e400", lambda r: (r / side).write_text(
            (r / side).read_text()[:-1] + ', "checkpoints": [1e400]}'), arr, side,
         r"field 'checkpoints'"),
        ("sidecar task newline", meta(task="toyarr\n"), arr, side, r"field 'task'"),
        ("sidecar task a number", meta(task=5), arr, side, r"field 'task'"),
        ("sidecar size ../../etc", meta(size="../../etc"), arr, side, r"field 'size'"),
        ("sidecar pretrain_seeds count", meta(pretrain_seeds=[0, 1]), arr, side,
         r"field 'pretrain_seeds'"),
        ("sidecar pretrain_seeds a dict", meta(pretrain_seeds=[{"a": 1}]), arr, side,
         r"field 'pretrain_seeds'"),
        ("sidecar label_list of lists", meta(label_list=[[0], [1]]), arr, side,
         r"field 'label_list'"),
        ("sidecar labels dicts", meta(labels=[{}, {}, {}]), arr, side, r"field 'labels'"),
        ("sidecar instance_ids dicts", meta(instance_ids=[{}, {}, {}]), arr, side,
         r"field 'instance_ids'"),
        ("sidecar missing", lambda r: (r / side).unlink(), arr, side, None),
        ("sidecar -> /dev/zero", link(side, "/dev/zero"), arr, side, None),
        ("long-table sidecar label_list text", lambda r: _json(r / "preds.csv.json",
                                                               {"label_list": "01"}), csv,
         "preds.csv.json", r"field 'label_list'"),
    ]
    return [Case(name, "table", mutate, names, where, path=path)
            for name, mutate, path, names, where in cases]


def _npz_raw(path: Path, member: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("correct.npy", member)


CASES = (_zhong_cases() + _decaying_cases() + _glue_cases() + _coref_cases()
         + _lottery_cases() + _table_cases())


def test_the_corpus_is_large_and_covers_every_importer():
    assert len(CASES) >= 100
    assert {c.base for c in CASES} == set(BASES)
    assert len({(c.base, c.id) for c in CASES}) == len(CASES)


def _prepare(case: Case, bases: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    releases, base_home = bases
    release = tmp_path / "r" / case.base
    shutil.copytree(releases / case.base, release, symlinks=True)
    home = tmp_path / "home"
    shutil.copytree(base_home, home, symlinks=True)
    case.mutate(release)
    return release, home


def _check(case: Case, release: Path, code: int, err: str, before: dict, home: Path) -> None:
    assert code == 2, f"exit code {code}, stderr: {err!r}"
    assert "Traceback" not in err
    assert err.startswith("seedlab: error: ") and err.count("\n") == 1, err
    if case.names.startswith("/"):
        named = case.names
    else:
        named = str(release / case.names)
    if not named.isprintable():  # a name with a newline is shown escaped, on one line
        named = named.encode("unicode_escape").decode("ascii")
    assert named in err, f"the message does not name {named}: {err!r}"
    if case.where:
        assert re.search(case.where, err), f"no {case.where!r} in {err!r}"
    assert "(expected " in err, err
    if case.never:
        assert case.never not in err
    assert snapshot(home) == before, "the store changed"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.base}: {c.id}" for c in CASES])
def test_malformed_input_is_refused_cleanly(case, bases, tmp_path, capsys):
    release, home = _prepare(case, bases, tmp_path)
    before = snapshot(home)
    argv = ["--home", str(home), "import", BASES[case.base][1], str(release / case.path),
            *case.args]
    capsys.readouterr()
    code = cli_main(argv)
    _, err = capsys.readouterr()
    _check(case, release, code, err, before, home)


SUBPROCESS_CASES = ["zhong: predict key instance_id", "glue: file /etc/passwd",
                    "table: csv probs NaN", "lottery: head_mask header 7 TiB",
                    "decaying: group is a list"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_the_real_command_refuses_cleanly(name, bases, tmp_path):
    """The same checks through ``python -m seedlab`` in a subprocess (no traceback escapes
    the real entry point either)."""
    case = next(c for c in CASES if f"{c.base}: {c.id}" == name)
    release, home = _prepare(case, bases, tmp_path)
    before = snapshot(home)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "seedlab", "--home", str(home), "import",
                           BASES[case.base][1], str(release / case.path), *case.args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    _check(case, release, done.returncode, done.stderr, before, home)


def test_the_same_masks_again_are_not_a_change(bases, tmp_path):
    """The lottery base imported again, unchanged, is accepted (--replace is only needed
    for other masks) and adds nothing."""
    releases, base_home = bases
    home = tmp_path / "home"
    shutil.copytree(base_home, home)
    assert cli_main(["--home", str(home), "import", "lottery", str(releases / "lottery")]) == 0
    from seedlab.store import Store

    masks = Store(home).masks()
    assert len(masks) == 4 + 2 and sorted(masks["task"].unique()) == ["MNLI"]


def test_a_repeated_import_leaves_the_catalogue_byte_identical(bases, tmp_path):
    releases, base_home = bases
    home = tmp_path / "home"
    shutil.copytree(base_home, home)
    before = snapshot(home)
    assert cli_main(["--home", str(home), "import", "zhong", str(releases / "zhong")]) == 0
    assert snapshot(home) == before


@pytest.mark.parametrize(("base", "rel", "change"), [
    ("zhong", "", write("mnli/results/sminip1f1epoch9over3.tsv", "0.5\t0.3\t0.2\n" * 4)),
    ("glue", "", write("RTE/run0.tsv", "0.1\t0.9\n0.2\t0.8\n0.6\t0.4\n")),
    ("table", "preds.jsonl", lambda r: (r / "preds.jsonl").write_text(
        (r / "preds.jsonl").read_text().replace("0.9", "0.8").replace("0.1", "0.2"))),
])
def test_a_changed_run_without_replace_is_refused_at_commit(base, rel, change, bases, tmp_path,
                                                            capsys):
    """Valid input whose runs differ from the stored ones: the store refuses it when it
    commits (after the importer staged everything, spilled runs included), with exit 2 and
    the store byte-identical; --replace then imports it."""
    release, home = _prepare(Case("changed", base, change, ""), bases, tmp_path)
    before = snapshot(home)
    argv = ["--home", str(home), "import", BASES[base][1], str(release / rel)]
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("seedlab: error: ") and "--replace" in err and "Traceback" not in err
    assert snapshot(home) == before
    assert cli_main([*argv, "--replace"]) == 0
    assert snapshot(home) != before
