"""The generic importer: long tables (CSV / TSV / Parquet / JSONL) and dense numpy arrays."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seedlab.errors import DuplicateRunError, InputError
from seedlab.importers.table import import_table, scores_to_probs

LABELS = ["entailment", "neutral", "contradiction"]


def _long_frame() -> pd.DataFrame:
    """2 pretraining seeds x 2 fine-tuning seeds x 3 instances, 3 classes."""
    rng = np.random.default_rng(1)
    rows = []
    gold = {"a": "entailment", "b": "neutral", "c": "contradiction"}
    for p in ("0", "1"):
        for f in (0, 1):
            for iid in ("a", "b", "c"):
                probs = rng.dirichlet(np.ones(3)).round(6)
                probs[-1] = round(1 - probs[:-1].sum(), 6)
                rows.append({"task": "toy-nli", "size": "base", "pretrain_seed": p,
                             "finetune_seed": f, "instance_id": iid,
                             "probs": json.dumps(probs.tolist()), "label": gold[iid],
                             "split": "dev", "text_a": f"premise {iid}"})
    return pd.DataFrame(rows)


def _sidecar(path: Path, **meta) -> None:
    Path(str(path) + ".json").write_text(json.dumps(meta))


def _expected(frame: pd.DataFrame, label_list: list[str]) -> pd.DataFrame:
    probs = np.array([json.loads(p) for p in frame["probs"]])
    gold = frame["label"].map({n: i for i, n in enumerate(label_list)}).to_numpy()
    out = frame[["pretrain_seed", "finetune_seed", "instance_id"]].copy()
    out["pred"] = probs.argmax(axis=1)
    out["p_correct"] = probs[np.arange(len(frame)), gold]
    out["correct"] = out["pred"] == gold
    return out


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl"])
def test_long_formats_round_trip(store, tmp_path, fmt):
    frame = _long_frame()
    path = tmp_path / f"preds.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "parquet":
        frame.assign(probs=[json.loads(p) for p in frame["probs"]]).to_parquet(path)
    else:
        path.write_text("\n".join(json.dumps({**r, "probs": json.loads(r["probs"])})
                                  for r in frame.to_dict("records")) + "\n")
    _sidecar(path, label_list=LABELS)
    summary = import_table(store, path)
    assert summary["runs_added"] == 4 and summary["instances"] == 3
    assert store.label_list("toy-nli") == LABELS
    got = store.predictions(task="toy-nli").sort_values(
        ["pretrain_seed", "finetune_seed", "instance_id"]).reset_index(drop=True)
    want = _expected(frame, LABELS)
    assert got["pred"].tolist() == want["pred"].tolist()
    assert got["correct"].tolist() == want["correct"].tolist()
    np.testing.assert_allclose(got["p_correct"], want["p_correct"], atol=1e-6)
    assert (got["checkpoint"] == 1.0).all()
    inst = store.instances(task="toy-nli").set_index("instance_id")
    assert inst.loc["b", "label"] == "neutral" and inst.loc["a", "text_a"] == "premise a"
    assert inst.loc["c", "split"] == "dev"
    # importing twice adds nothing
    info, version = store.info(), store.version()
    again = import_table(store, path)
    assert again["runs_unchanged"] == 4 and again["runs_added"] == 0
    assert store.info() == info and store.version() == version


def test_label_list_inferred_sorted_and_task_size_from_arguments(store, tmp_path):
    frame = _long_frame().drop(columns=["task", "size"])
    path = tmp_path / "preds.csv"
    frame.to_csv(path, index=False)
    import_table(store, path, task="nli", size="tiny")
    assert store.label_list("nli") == sorted(LABELS)
    runs = store.runs(task="nli")
    assert set(runs["size"]) == {"tiny"} and len(runs) == 4
    got = store.predictions(task="nli", pretrain_seed="1", finetune_seed=0)
    want = _expected(frame, sorted(LABELS))
    want = want[(want.pretrain_seed == "1") & (want.finetune_seed == 0)]
    assert got.sort_values("instance_id")["pred"].tolist() == want["pred"].tolist()


def test_pred_only_with_integer_labels_and_checkpoints(store, tmp_path):
    path = tmp_path / "hard.csv"
    path.write_text("task,size,pretrain_seed,finetune_seed,checkpoint,instance_id,pred,label\n"
                    "sst,mini,1,7,0.5,x,1,1\n"
                    "sst,mini,1,7,0.5,y,0,1\n"
                    "sst,mini,1,7,1.0,x,1,1\n"
                    "sst,mini,1,7,1.0,y,1,1\n")
    import_table(store, path)
    assert store.label_list("sst") == ["0", "1"]
    arrays = store.arrays("sst", "mini", checkpoint="all")
    assert arrays.shape == (2, 1, 1, 2) and arrays.checkpoints == [0.5, 1.0]
    order = list(arrays.instance_ids)
    y = order.index("y")
    assert arrays.correct[y, 0, 0].tolist() == [0.0, 1.0]
    assert arrays.p_correct[y, 0, 0].tolist() == [0.0, 1.0]  # hard predictions: one-hot


@pytest.mark.parametrize(
    "line, text, match",
    [
        (3, "toy,base,0,zero,b,\"[0.5,0.5]\",n", r"line 3, field 'finetune_seed'.*not an integer"),
        (3, "toy,base,0,1,b,\"[0.5,0.6]\",e", r"line 3, field 'probs'.*summing to 1"),
        (3, "toy,base,0,1,b,not-a-list,n", r"line 3, field 'probs'.*JSON array"),
        (3, "toy,base,0,1,b,\"[0.2,0.3,0.5]\",n", r"line 3, field 'probs'.*2 probabilities"),
        (3, "toy,base,0,1,b,\"[0.5,0.5]\",", r"line 3, field 'label'.*empty"),
        (3, "toy,base,0,1,a,\"[0.5,0.5]\",e", r"line 3, field 'instance_id'.*second row"),
        (3, "toy,base,0,1,b,\"[0.5,0.5]\",q", r"line 3, field 'label'.*not in the label list"),
        (3, "toy,base,0,1,b,\"[0.5,0.5]\"", r"line 3, field 'label'.*empty"),
        (3, "toy,bad size,0,1,b,\"[0.5,0.5]\",n", r"field 'size'.*not a valid name"),
    ],
)
def test_bad_rows_name_their_line(store, tmp_path, line, text, match):
    path = tmp_path / "bad.csv"
    path.write_text("task,size,pretrain_seed,finetune_seed,instance_id,probs,label\n"
                    "toy,base,0,1,a,\"[0.5,0.5]\",e\n" + text + "\n")
    _sidecar(path, label_list=["e", "n"])
    before = store.info(), store.version()
    with pytest.raises(InputError) as err:
        import_table(store, path)
    message = str(err.value)
    assert str(path) in message
    if match:
        assert re.search(match, message), message
    assert (store.info(), store.version()) == before


def test_missing_columns_named(store, tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("task,size,instance_id,probs\ntoy,base,a,\"[1.0, 0.0]\"\n")
    with pytest.raises(InputError, match="missing column.*pretrain_seed, finetune_seed"):
        import_table(store, path)
    path.write_text("pretrain_seed,finetune_seed,instance_id,pred,label\n0,1,a,1,1\n")
    with pytest.raises(InputError, match="no 'task' column and no --task"):
        import_table(store, path)


def test_bad_parquet_row_is_reported_by_index(store, tmp_path):
    frame = _long_frame()
    frame["probs"] = [json.loads(p) for p in frame["probs"]]
    frame.loc[5, "probs"] = [0.9, 0.9, 0.9]
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(InputError, match=r"bad.parquet, field 'probs': row 5: .*distribution"):
        import_table(store, path)


def test_bad_jsonl_line(store, tmp_path):
    path = tmp_path / "bad.jsonl"
    good = {"task": "t", "size": "s", "pretrain_seed": 0, "finetune_seed": 0,
            "instance_id": "a", "pred": 0, "label": "0"}
    path.write_text(json.dumps(good) + "\n\n{oops\n")
    with pytest.raises(InputError, match=r"bad.jsonl, line 3: not valid JSON"):
        import_table(store, path)


def test_label_list_clash_with_store_leaves_it_unchanged(store, tmp_path):
    path = tmp_path / "p.csv"
    _long_frame().to_csv(path, index=False)
    _sidecar(path, label_list=LABELS)
    import_table(store, path)
    before = store.info(), store.version()
    other = tmp_path / "q.csv"
    _long_frame().to_csv(other, index=False)
    _sidecar(other, label_list=list(reversed(LABELS)))
    with pytest.raises(InputError, match="label_list"):
        import_table(store, other)
    assert (store.info(), store.version()) == before


def test_changed_predictions_need_replace(store, tmp_path):
    path = tmp_path / "p.csv"
    frame = _long_frame()
    frame.to_csv(path, index=False)
    import_table(store, path)
    frame.loc[0, "probs"] = "[0.0, 0.0, 1.0]"
    frame.to_csv(path, index=False)
    with pytest.raises(DuplicateRunError):
        import_table(store, path)
    summary = import_table(store, path, replace=True)
    assert summary["runs_replaced"] == 1


# ---------------------------------------------------------------------------------------
# Dense arrays


def test_npy_correctness_round_trip(store, tmp_path):
    rng = np.random.default_rng(3)
    correct = (rng.random((6, 3, 4)) > 0.4).astype(np.float64)
    path = tmp_path / "correct.npy"
    np.save(path, correct)
    _sidecar(path, task="toy", size="small", pretrain_seeds=["s0", "s1", "s2"],
             finetune_seeds=[0, 1, 2, 3], label_list=["neg", "pos"],
             labels=["pos", "neg", "pos", "pos", "neg", "neg"],
             instance_ids=[f"i{k}" for k in range(6)])
    summary = import_table(store, path)
    assert summary["runs_added"] == 12
    arrays = store.arrays("toy", "small", pretrain_seeds=["s0", "s1", "s2"],
                          finetune_seeds=[0, 1, 2, 3])
    assert list(arrays.instance_ids) == [f"i{k}" for k in range(6)]
    np.testing.assert_array_equal(arrays.correct, correct)
    np.testing.assert_array_equal(arrays.p_correct, correct)
    assert arrays.labels.tolist() == [1, 0, 1, 1, 0, 0]
    # a binary task: a wrong hard prediction is the other class
    assert np.array_equal(arrays.pred[0], np.where(correct[0] == 1, 1, 0))
    info, version = store.info(), store.version()
    import_table(store, path)
    assert store.info() == info and store.version() == version


def test_npy_probabilities_four_d_with_missing_run(store, tmp_path):
    rng = np.random.default_rng(4)
    p_correct = rng.random((5, 2, 3, 2))
    p_correct[:, 1, 2, :] = np.nan  # run (p1, f=12) was never trained
    path = tmp_path / "gold_probs.npy"
    np.save(path, p_correct)
    side = tmp_path / "meta.json"
    side.write_text(json.dumps({"pretrain_seeds": [0, 1], "finetune_seeds": [10, 11, 12],
                                "checkpoints": [0.5, 1.0]}))
    summary = import_table(store, path, task="toy", size="mini", sidecar=side)
    assert summary["runs_added"] == 5 and summary["missing_runs"] == [["1", 12]]
    arrays = store.arrays("toy", "mini", checkpoint="all", finetune_seeds=[10, 11, 12])
    assert arrays.missing == [("1", 12)]
    np.testing.assert_allclose(arrays.p_correct, p_correct, rtol=1e-6)  # float32 storage
    np.testing.assert_array_equal(np.isnan(arrays.correct), np.isnan(p_correct))
    present = ~np.isnan(p_correct)
    np.testing.assert_array_equal(arrays.correct[present], (p_correct > 0.5)[present])


def test_npz_with_probs(store, tmp_path):
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(3), size=(4, 2, 2))  # (N, P, F, C)
    labels = [0, 2, 1, 2]
    gold_p = np.take_along_axis(probs, np.array(labels)[:, None, None, None], axis=-1)[..., 0]
    path = tmp_path / "run.npz"
    np.savez(path, probs=probs, p_correct=gold_p)
    _sidecar(path, task="nli3", size="base", pretrain_seeds=["a", "b"], finetune_seeds=[1, 2],
             label_list=LABELS, labels=labels)
    import_table(store, path)
    arrays = store.arrays("nli3", "base")
    np.testing.assert_allclose(arrays.p_correct, gold_p, rtol=1e-6)
    np.testing.assert_array_equal(arrays.pred, probs.argmax(-1))
    stored = store.predictions(task="nli3", pretrain_seed="a", finetune_seed=1)
    first = stored.set_index("instance_id").loc["0", "probs"]
    np.testing.assert_allclose(first, probs[0, 0, 0], rtol=1e-6)


@pytest.mark.parametrize(
    "meta, array, match",
    [
        ({"pretrain_seeds": [0, 1], "finetune_seeds": [0]}, np.ones((3, 3, 1)),
         r"field 'pretrain_seeds'.*has 2 entries but the array has 3"),
        ({"pretrain_seeds": [0], "finetune_seeds": [0, 1, 2]}, np.ones((3, 1, 2)),
         r"field 'finetune_seeds'.*3 entries"),
        ({"pretrain_seeds": [0], "finetune_seeds": [0], "checkpoints": [1.0]},
         np.ones((3, 1, 1, 2)), r"field 'checkpoints'.*1 entries but the array has 2"),
        ({"pretrain_seeds": [0], "finetune_seeds": [0], "instance_ids": ["a"]},
         np.ones((3, 1, 1)), r"field 'instance_ids'"),
        ({"pretrain_seeds": [0], "finetune_seeds": [0], "labels": [1, 0]}, np.ones((3, 1, 1)),
         r"field 'labels'.*2 entries but the array has 3"),
        ({"finetune_seeds": [0]}, np.ones((3, 1, 1)), r"field 'pretrain_seeds'.*no"),
        ({"pretrain_seeds": [0], "finetune_seeds": [0]}, np.ones((3, 1)), r"shape \(3, 1\)"),
        ({"pretrain_seeds": [0], "finetune_seeds": [0]}, np.array([[[1.0]], [[np.nan]]]),
         None),
        ({"pretrain_seeds": [0], "finetune_seeds": [0]}, np.full((2, 1, 1), 1.5),
         r"outside \[0, 1\]"),
    ],
)
def test_sidecar_shape_mismatches(store, tmp_path, meta, array, match):
    path = tmp_path / "scores.npy"
    np.save(path, array)
    _sidecar(path, task="toy", size="base", **meta)
    with pytest.raises(InputError) as err:
        import_table(store, path)
    if match is None:  # NaN in one instance of a run that has other values
        match = r"NaN at index \(1, 0, 0\)"
    assert re.search(match, str(err.value)), str(err.value)
    assert store.info()["totals"]["runs"] == 0 and store.version() == 0


def test_missing_sidecar_and_pickled_npy(store, tmp_path):
    path = tmp_path / "lonely.npy"
    np.save(path, np.ones((2, 1, 1)))
    with pytest.raises(InputError, match="sidecar not found"):
        import_table(store, path)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([object()], dtype=object), allow_pickle=True)
    _sidecar(pickled, task="t", size="s", pretrain_seeds=[0], finetune_seeds=[0])
    with pytest.raises(InputError, match="holds object values .*object and string arrays are refused"):
        import_table(store, pickled)


def test_npz_inconsistent_probs_and_correct(store, tmp_path):
    probs = np.array([[[[0.9, 0.1]]], [[[0.2, 0.8]]]])  # (2, 1, 1, 2)
    path = tmp_path / "bad.npz"
    np.savez(path, probs=probs, correct=np.array([[[1.0]], [[0.0]]]))
    _sidecar(path, task="t", size="s", pretrain_seeds=[0], finetune_seeds=[0], labels=[0, 1])
    with pytest.raises(InputError, match="field 'correct'.*argmax"):
        import_table(store, path)


def test_scores_to_probs():
    probs, kind = scores_to_probs(np.array([[0.25, 0.75], [1.0, 0.0]]))
    assert kind == "probabilities" and probs[0, 1] == 0.75
    probs, kind = scores_to_probs(np.array([[2.0, 0.0], [-1.0, 1.0]]))
    assert kind == "logits"
    np.testing.assert_allclose(probs[0], [1 / (1 + np.exp(-2)), 1 - 1 / (1 + np.exp(-2))])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
