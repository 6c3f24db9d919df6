"""Zhong et al. importers: the prediction release (built here in tmp dirs) and the real
decaying/*.pkl files."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from conftest import shared_path

from seedlab.cli import main as cli_main
from seedlab.errors import DuplicateRunError, InputError
from seedlab.importers.zhong import (
    MNLI_LABELS,
    decaying_task_name,
    import_zhong,
    import_zhong_decaying,
)

SIZES = ("mini", "large")
PRETRAIN = ("1", "2")
FINETUNE = (1, 2)
EPOCHS = (9, 10, 11, 12)
N = 20


def _probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(n, k) probabilities rounded to 6 decimals, each row summing to 1 within 1e-5."""
    logits = rng.normal(size=(n, k)) * 2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.round(p, 6)


def _write_tsv(path, probs: np.ndarray) -> None:
    path.write_text("".join("\t".join(f"{v:.6f}" for v in row) + "\n" for row in probs))


def write_task(folder, labels: list[str], predict: list[dict], seed: int = 0,
               sizes=SIZES) -> dict:
    """A task folder with data.json and results/; returns {(size, p, f, epoch): probs}."""
    rng = np.random.default_rng(seed)
    (folder / "results").mkdir(parents=True)
    (folder / "data.json").write_text(json.dumps(
        {"label_list": labels, "train": [{"guid": "train-0", "label": labels[0]}],
         "predict": predict}))
    written = {}
    for size in sizes:
        for p in PRETRAIN:
            for f in FINETUNE:
                for epoch in EPOCHS:
                    probs = _probs(rng, len(predict), len(labels))
                    _write_tsv(folder / "results" / f"s{size}p{p}f{f}epoch{epoch}over3.tsv", probs)
                    written[(size, p, f, epoch)] = probs
    return written


def mnli_predict(n: int = N) -> list[dict]:
    """n MNLI items; the last 4 are HANS items with two-way gold labels."""
    items = []
    for i in range(n - 4):
        items.append({"guid": f"dev_matched-{i}", "label": MNLI_LABELS[i % 3],
                      "text_a": f"premise {i}", "text_b": f"hypothesis {i}",
                      **({"genre": "fiction"} if i % 2 else {})})
    for i in range(4):
        items.append({"guid": f"HANS-{i}", "label": ["entailment", "non-entailment"][i % 2],
                      "text_a": "The doctor saw the lawyer .", "text_b": "The lawyer saw .",
                      "heuristic": "lexical_overlap"})
    return items


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "release"
    probs = write_task(root / "mnli", MNLI_LABELS, mnli_predict())
    return root, probs


def snapshot(store) -> tuple:
    staging = store.home / ".staging"
    leftovers = sorted(p.name for p in staging.iterdir()) if staging.exists() else []
    return store.info(), store.version(), leftovers


def expect_error(store, root, match: str, **kwargs) -> InputError:
    before = snapshot(store)
    with pytest.raises(InputError, match=match) as info:
        import_zhong(store, root, **kwargs)
    assert snapshot(store) == before
    return info.value


# -- the release -------------------------------------------------------------------------


def test_release_values(store, release):
    root, probs = release
    summary = import_zhong(store, root)
    assert summary["runs_added"] == 8
    assert summary["tasks"]["MNLI"]["instances"] == N
    assert summary["tasks"]["MNLI"]["instance_ids"] == "guid"
    assert store.label_list("MNLI") == MNLI_LABELS

    runs = store.runs(task="MNLI")
    assert sorted(runs["size"].unique()) == ["large", "mini"]
    assert set(runs["n_predictions"]) == {N * 4}

    pred = store.predictions(task="MNLI", size="large", pretrain_seed="2", finetune_seed=1)
    assert sorted(pred["checkpoint"].round(4).unique()) == [3.0, 3.3333, 3.6667, 4.0]
    at = pred[pred["checkpoint"].round(4) == 3.3333].set_index("instance_id")
    expected = probs[("large", "2", 1, 10)]
    guids = [item["guid"] for item in mnli_predict()]
    at = at.loc[guids]
    np.testing.assert_array_equal(at["pred"].to_numpy(), expected.argmax(axis=1))
    np.testing.assert_allclose(np.stack(at["probs"].to_numpy()), expected, atol=1e-6)
    # Three-way items: right when argmax is the gold index; p_correct = p(gold).
    for i in range(N - 4):
        gold = MNLI_LABELS.index(mnli_predict()[i]["label"])
        assert at["correct"].iloc[i] == (expected[i].argmax() == gold)
        assert at["p_correct"].iloc[i] == pytest.approx(expected[i, gold], abs=1e-6)
    # HANS non-entailment: right unless the model says entailment; p = 1 - p(entailment).
    for i in (N - 3, N - 1):
        assert mnli_predict()[i]["label"] == "non-entailment"
        assert at["correct"].iloc[i] == (expected[i].argmax() != 1)
        assert at["p_correct"].iloc[i] == pytest.approx(1 - expected[i, 1], abs=1e-6)

    inst = store.instances("MNLI").set_index("instance_id")
    assert inst.loc["dev_matched-1", "split"] == "dev_matched"
    assert inst.loc["dev_matched-1", "genre"] == "fiction"
    assert inst.loc["HANS-2", "heuristic"] == "lexical_overlap"
    assert inst.loc["HANS-1", "label"] == "non-entailment"

    arrays = store.arrays("MNLI", "mini", checkpoint="all")
    assert arrays.shape == (N, 2, 2, 4)
    assert arrays.complete


def test_import_twice_adds_nothing(store, release):
    root, _ = release
    import_zhong(store, root)
    before = snapshot(store)
    again = import_zhong(store, root)
    assert again["runs_added"] == 0 and again["runs_unchanged"] == 8
    assert snapshot(store) == before


def test_changed_run_needs_replace(store, release):
    root, probs = release
    import_zhong(store, root)
    changed = probs[("mini", "1", 1, 12)][:, [1, 0, 2]]
    _write_tsv(root / "mnli" / "results" / "sminip1f1epoch12over3.tsv", changed)
    before = snapshot(store)
    with pytest.raises(DuplicateRunError, match="--replace"):
        import_zhong(store, root)
    assert snapshot(store) == before
    summary = import_zhong(store, root, replace=True)
    assert summary["runs_replaced"] == 1 and summary["runs_unchanged"] == 7
    pred = store.predictions(task="MNLI", size="mini", pretrain_seed="1", finetune_seed=1,
                             checkpoint=4.0)
    assert (pred.set_index("instance_id").loc["dev_matched-0", "pred"]
            == changed[0].argmax())


def test_sst2_folds_are_concatenated(store, tmp_path):
    root = tmp_path / "release"
    fold_probs = []
    for k in range(2):
        predict = [{"guid": f"train-{k * 10 + i}", "label": str(i % 2), "text_a": f"s{i}",
                    "text_b": None} for i in range(10)]
        fold_probs.append(write_task(root / "sst-2" / f"fold{k}", ["0", "1"], predict, seed=k,
                                     sizes=("mini",)))
    summary = import_zhong(store, root)
    assert summary["runs_added"] == 4
    assert summary["tasks"]["SST-2"]["folds"] == 2
    inst = store.instances("SST-2")
    assert inst["instance_id"].tolist() == [f"train-{i}" for i in range(20)]
    assert inst["fold"].astype(int).tolist() == [0] * 10 + [1] * 10
    arrays = store.arrays("SST-2", "mini", pretrain_seeds=["2"], finetune_seeds=[2])
    assert arrays.shape == (20, 1, 1)
    expected = np.concatenate([fold_probs[0][("mini", "2", 2, 12)],
                               fold_probs[1][("mini", "2", 2, 12)]])
    labels = np.array([i % 2 for i in range(10)] * 2)
    np.testing.assert_array_equal(arrays.correct[:, 0, 0], expected.argmax(axis=1) == labels)


def test_fold_guid_collision_prefixes_fold(store, tmp_path):
    root = tmp_path / "release"
    for k in range(2):
        predict = [{"guid": f"dev-{i}", "label": "1", "text_a": "x"} for i in range(5)]
        write_task(root / "sst-2" / f"fold{k}", ["0", "1"], predict, seed=k, sizes=("mini",))
    summary = import_zhong(store, root)
    assert summary["tasks"]["SST-2"]["instance_ids"] == "fold<k>:guid"
    ids = store.instances("SST-2")["instance_id"].tolist()
    assert ids[:2] == ["fold0:dev-0", "fold0:dev-1"] and ids[5] == "fold1:dev-0"


def test_fold_missing_a_file(store, tmp_path):
    root = tmp_path / "release"
    for k in range(2):
        predict = [{"guid": f"train-{k}{i}", "label": "1", "text_a": "x"} for i in range(5)]
        write_task(root / "sst-2" / f"fold{k}", ["0", "1"], predict, seed=k, sizes=("mini",))
    (root / "sst-2" / "fold1" / "results" / "sminip2f2epoch11over3.tsv").unlink()
    expect_error(store, root, r"fold1.*different result files.*epoch 11")


def test_task_filter_and_single_task_folder(store, tmp_path):
    root = tmp_path / "release"
    write_task(root / "mnli", MNLI_LABELS, mnli_predict(), sizes=("mini",))
    write_task(root / "qqp", ["0", "1"], [{"guid": f"dev-{i}", "label": str(i % 2),
                                           "text_a": "a", "text_b": "b"} for i in range(6)],
               sizes=("mini",))
    summary = import_zhong(store, root, tasks=["qqp"])
    assert list(summary["tasks"]) == ["QQP"]
    assert store.info()["tasks"].keys() == {"QQP"}
    summary = import_zhong(store, root / "mnli")
    assert list(summary["tasks"]) == ["MNLI"] and summary["runs_added"] == 4
    expect_error(store, root, r"no task folder for \['SST-2'\]", tasks=["SST-2"])


# -- correctness tensors -----------------------------------------------------------------


def _tensors(probs: dict, size: str, predict: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2, 2, 4) correctness and gold probability as dump_correctness.py computes them."""
    c = np.zeros((len(predict), 2, 2, 4), bool)
    pc = np.zeros((len(predict), 2, 2, 4))
    for pi, p in enumerate(PRETRAIN):
        for fi, f in enumerate(FINETUNE):
            for e, epoch in enumerate(EPOCHS):
                pr = probs[(size, p, f, epoch)]
                for i, item in enumerate(predict):
                    if item["label"] == "non-entailment":
                        c[i, pi, fi, e] = pr[i].argmax() != 1
                        pc[i, pi, fi, e] = pr[i, 0] + pr[i, 2]
                    else:
                        gold = MNLI_LABELS.index(item["label"])
                        c[i, pi, fi, e] = pr[i].argmax() == gold
                        pc[i, pi, fi, e] = pr[i, gold]
    return c, pc.round(2)


def write_tensors(root, probs_mini: dict, probs_base: dict) -> tuple[dict, dict]:
    predict = mnli_predict()
    c_mini, p_mini = _tensors(probs_mini, "mini", predict)
    c_base, p_base = _tensors(probs_base, "base", predict)
    (root / "correctness").mkdir()
    (root / "correctness_p").mkdir()
    (root / "correctness" / "mnli.pkl").write_bytes(
        pickle.dumps(({"mini": c_mini, "base": c_base}, predict), protocol=3))
    (root / "correctness_p" / "mnli.pkl").write_bytes(
        pickle.dumps(({"mini": p_mini, "base": p_base}, predict), protocol=3))
    return {"mini": c_mini, "base": c_base}, {"mini": p_mini, "base": p_base}


@pytest.fixture
def release_with_tensors(tmp_path, release):
    root, probs = release
    base = {}
    rng = np.random.default_rng(7)
    for p in PRETRAIN:
        for f in FINETUNE:
            for epoch in EPOCHS:
                base[("base", p, f, epoch)] = _probs(rng, N, 3)
    c, pc = write_tensors(root, probs, base)
    return root, probs, c, pc


def test_tensors_cross_checked_and_imported(store, release_with_tensors):
    root, _, c, pc = release_with_tensors
    summary = import_zhong(store, root)
    report = summary["tasks"]["MNLI"]
    assert report["runs_from_tsv"] == 8 and report["runs_from_tensors"] == 4
    assert report["checked_against_tensors"] == 4 * 4 * 2  # mini runs x epochs x tensors
    assert report["tensor_sizes_imported"] == ["base"]
    assert summary["runs_added"] == 12

    pred = store.predictions(task="MNLI", size="base", pretrain_seed="2", finetune_seed=1,
                             checkpoint=3.6667).set_index("instance_id")
    pred = pred.loc[[item["guid"] for item in mnli_predict()]]
    np.testing.assert_array_equal(pred["correct"].to_numpy(), c["base"][:, 1, 0, 2])
    np.testing.assert_allclose(pred["p_correct"].to_numpy(), pc["base"][:, 1, 0, 2], atol=1e-6)
    gold = np.array([MNLI_LABELS.index(x["label"]) if x["label"] in MNLI_LABELS else -1
                     for x in mnli_predict()])
    expected_pred = np.where(c["base"][:, 1, 0, 2] & (gold >= 0), gold, -1)
    np.testing.assert_array_equal(pred["pred"].to_numpy(), expected_pred)
    assert all(len(p) == 0 for p in pred["probs"])
    # Re-importing is a no-op for tensor runs too.
    again = import_zhong(store, root)
    assert again["runs_unchanged"] == 12 and again["runs_added"] == 0


def test_tensor_mismatch_names_both_files(store, release_with_tensors):
    root, _, c, _ = release_with_tensors
    c["mini"][3, 1, 1, 0] = ~c["mini"][3, 1, 1, 0]
    (root / "correctness" / "mnli.pkl").write_bytes(pickle.dumps((c, mnli_predict())))
    err = expect_error(store, root, r"correct of predict item 3")
    assert str(root / "correctness" / "mnli.pkl") in str(err)
    assert "smallp" not in str(err) and "sminip2f2epoch9over3.tsv" in str(err)


def test_tensor_probability_mismatch(store, release_with_tensors):
    root, _, _, pc = release_with_tensors
    pc["mini"][5, 0, 1, 3] += 0.2
    (root / "correctness_p" / "mnli.pkl").write_bytes(pickle.dumps((pc, mnli_predict())))
    err = expect_error(store, root, r"p_correct of predict item 5")
    assert "correctness_p" in str(err) and "sminip1f2epoch12over3.tsv" in str(err)


def test_tensor_with_wrong_count_or_refused_global(store, release_with_tensors):
    root, _, c, _ = release_with_tensors
    (root / "correctness" / "mnli.pkl").write_bytes(
        pickle.dumps({"mini": c["mini"][:-1]}))
    expect_error(store, root, r"shape \(19, 2, 2, 4\).*has 20 predict items")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {root / 'pwned'}",))

    (root / "correctness" / "mnli.pkl").write_bytes(pickle.dumps({"mini": Evil()}))
    expect_error(store, root, r"system, which seedlab refuses")
    assert not (root / "pwned").exists()


# -- bad release input -------------------------------------------------------------------


def test_missing_data_json_or_results(store, release):
    root, _ = release
    (root / "mnli" / "data.json").unlink()
    expect_error(store, root, r"data\.json.*data\.json is missing")
    write_task(root / "qqp", ["0", "1"], [{"guid": "dev-1", "label": "0"}])
    for tsv in (root / "qqp" / "results").iterdir():
        tsv.unlink()
    (root / "qqp" / "results").rmdir()
    err = expect_error(store, root, r"results folder is missing", tasks=["QQP"])
    assert str(root / "qqp" / "results") in str(err)


ROW = "0.2\t0.3\t0.5\n"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (ROW + "0.1\t0.9\n" + ROW * (N - 2), r"line 2: the row has 2 values but label_list has 3"),
        (ROW * (N - 1) + "0.1\t0.", rf"line {N}: the row has 2 values"),
        (ROW + "0.2\tabc\t0.5\n" + ROW * (N - 2),
         r"line 2, field 'column 2': the value in column 2 is not a number"),
        ("", r"the file is empty"),
    ],
)
def test_truncated_ragged_or_garbled_tsv(store, release, content, match):
    root, _ = release
    path = root / "mnli" / "results" / "slargep2f1epoch11over3.tsv"
    path.write_text(content)
    err = expect_error(store, root, match)
    assert err.path == str(path)


def test_row_count_mismatch_names_both_counts(store, release):
    root, probs = release
    path = root / "mnli" / "results" / "sminip1f2epoch9over3.tsv"
    _write_tsv(path, probs[("mini", "1", 2, 9)][:-2])
    err = expect_error(store, root, r"has 18 rows but .*data\.json has 20 predict items")
    assert err.path == str(path)


@pytest.mark.parametrize(("value", "match"), [
    ("nan", r"line 7, field 'column 2': probability nan"),
    ("-0.25", r"line 7, field 'column 2': probability -0.25"),
])
def test_nan_or_negative_probability(store, release, value, match):
    root, _ = release
    path = root / "mnli" / "results" / "slargep1f1epoch12over3.tsv"
    lines = path.read_text().splitlines()
    first, _, third = lines[6].split("\t")
    lines[6] = f"{first}\t{value}\t{third}"
    path.write_text("\n".join(lines) + "\n")
    expect_error(store, root, match)


def test_rows_must_sum_to_one(store, release):
    root, probs = release
    path = root / "mnli" / "results" / "slargep1f1epoch12over3.tsv"
    bad = probs[("large", "1", 1, 12)].copy()
    bad[11] *= 1.01
    _write_tsv(path, bad)
    expect_error(store, root, r"line 12: the row sums to 1\.01")
    bad[11] = probs[("large", "1", 1, 12)][11] + [0.0008, 0, 0]  # within 1e-3: accepted
    _write_tsv(path, bad)
    assert import_zhong(store, root)["runs_added"] == 8


def test_wrong_number_of_columns(store, release):
    root, _ = release
    path = root / "mnli" / "results" / "slargep1f1epoch9over3.tsv"
    path.write_text("0.25\t0.25\t0.25\t0.25\n" * N)
    err = expect_error(store, root, r"line 1: rows have 4 columns but label_list has 3 labels")
    assert err.path == str(path)


def test_two_files_for_the_same_run(store, release):
    root, probs = release
    _write_tsv(root / "mnli" / "results" / "sminip1f01epoch9over3.tsv", probs[("mini", "1", 1, 9)])
    err = expect_error(store, root, r"the same run and epoch as .*epoch9over3\.tsv")
    assert {"sminip1f01epoch9over3.tsv", "sminip1f1epoch9over3.tsv"} == {
        os.path.basename(err.path), str(err).split(" as ")[1].split(" (")[0].rsplit("/", 1)[1]}


def test_two_folders_for_the_same_task(store, release, tmp_path):
    root, _ = release
    write_task(root / "MNLI", MNLI_LABELS, mnli_predict(), sizes=("mini",))
    expect_error(store, root, r"task folders MNLI and mnli are the same task 'MNLI'")


def test_bad_gold_label_and_unparseable_names(store, release):
    root, _ = release
    data = json.loads((root / "mnli" / "data.json").read_text())
    data["predict"][4]["label"] = "maybe"
    (root / "mnli" / "data.json").write_text(json.dumps(data))
    expect_error(store, root, r"field 'predict\[4\]\.label': gold label 'maybe'")
    data["predict"][4]["label"] = "neutral"
    (root / "mnli" / "data.json").write_text(json.dumps(data))
    (root / "mnli" / "results" / "notes.tsv").write_text("x\n")
    expect_error(store, root, r"does not name a run")


def test_failure_late_in_the_import_leaves_the_store_as_it_was(store, release, tmp_path):
    root, _ = release
    import_zhong(store, root)
    other = tmp_path / "other"
    write_task(other / "qqp", ["0", "1"], [{"guid": f"dev-{i}", "label": "1"} for i in range(8)])
    # The very last file read is broken: every run before it was already staged.
    (other / "qqp" / "results" / "smallp2f2epoch12over3.tsv").write_text("0.5\t0.5\n" * 7)
    expect_error(store, other, r"has 7 rows")
    assert not any((store.home / "predictions").glob("task=qqp/**/*.parquet"))


def test_cli_import(tmp_path, release, capsys):
    root, _ = release
    home = tmp_path / "clihome"
    assert cli_main(["--home", str(home), "import", "zhong", str(root)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs_added"] == 8
    (root / "mnli" / "results" / "slargep1f1epoch9over3.tsv").write_text("0.1\t0.2\n")
    assert cli_main(["--home", str(home), "import", "zhong", str(root), "--replace"]) == 2
    assert "slargep1f1epoch9over3.tsv, line 1" in capsys.readouterr().err


# -- decaying/*.pkl ----------------------------------------------------------------------


def test_decaying_task_names(tmp_path):
    assert decaying_task_name(tmp_path / "mnliLargeWorseThanMini.pkl") == "mnli"
    assert decaying_task_name(tmp_path / "sst-2LargeWorseThanMini.pkl") == "sst-2"
    assert decaying_task_name(tmp_path / "qqp.pkl") == "qqp"


def test_real_decaying_pickles(store):
    folder = shared_path("acl2021-instance-level", "decaying")
    summary = import_zhong_decaying(store, folder)
    assert summary["instances"] == 5616
    assert summary["annotations_added"] == 321
    assert {t: v["instances"] for t, v in summary["tasks"].items()} == {
        "MNLI": 4232, "QQP": 854, "SST-2": 530}
    assert {t: v["verdicts"] for t, v in summary["tasks"].items()} == {
        "MNLI": 104, "QQP": 102, "SST-2": 115}
    assert summary["tasks"]["QQP"]["splits"] == {
        "twitter_dev": 74, "twitter_test": 38, "twitter_train": 340, "dev": 402}
    assert summary["tasks"]["MNLI"]["splits"]["dev_matched"] == 176
    assert summary["tasks"]["MNLI"]["splits"]["HANS"] == 250

    inst = store.instances()
    assert len(inst) == 5616
    assert inst.groupby("task")["split"].value_counts()["SST-2"].to_dict() == {
        "train": 516, "dev": 14}
    assert (inst["group"] == "treatment").sum() == 5616 // 2
    row = inst[(inst["task"] == "QQP") & (inst["instance_id"] == "dev-37564")].iloc[0]
    assert (row["split"], row["text_a"], row["text_b"], row["label"]) == (
        "dev", "How should I learn coding?", "How to learn coding?", "1")
    hans = inst[(inst["task"] == "MNLI") & (inst["instance_id"] == "HANS-25095")].iloc[0]
    assert (hans["label"], hans["heuristic"], hans["template"]) == (
        "entailment", "constituent", "temp59")
    assert inst[inst["task"] == "MNLI"]["label"].isin(
        MNLI_LABELS + ["non-entailment"]).all()
    assert store.label_list("MNLI") == MNLI_LABELS
    assert store.label_list("SST-2") == ["0", "1"]

    ann = store.annotations(current=True)
    assert len(ann) == 321 and set(ann["annotator"]) == {"rz"}
    assert set(ann["source"]) == {"zhong-decaying"}
    assert ann["verdict"].value_counts().to_dict() == {
        "correct": 239, "reasonable": 38, "wrong": 21, "unsure": 23}
    assert ann.groupby("task").size().to_dict() == {"MNLI": 104, "QQP": 102, "SST-2": 115}
    assert set(ann["instance_id"]) <= set(inst["instance_id"])

    before = snapshot(store)
    again = import_zhong_decaying(store, folder / "qqpLargeWorseThanMini.pkl")
    assert again["annotations_added"] == 0 and again["annotations_unchanged"] == 102
    assert snapshot(store) == before


def write_decaying(path, splits: dict) -> None:
    path.write_bytes(pickle.dumps(splits, protocol=3))


def test_decaying_merges_with_release_instances(store, release, tmp_path):
    root, _ = release
    import_zhong(store, root)
    items = [dict(x) for x in mnli_predict()[:2]]
    write_decaying(tmp_path / "mnliLargeWorseThanMini.pkl", {
        "dev_matched": (items, ["treatment", "control"], {"rz": ["Wrong", None]})})
    summary = import_zhong_decaying(store, tmp_path / "mnliLargeWorseThanMini.pkl")
    assert summary["annotations_added"] == 1
    inst = store.instances("MNLI").set_index("instance_id")
    assert len(inst) == N
    assert inst.loc["dev_matched-0", "group"] == "treatment"
    assert inst.loc["dev_matched-1", "genre"] == "fiction"  # release field kept
    ann = store.annotations()
    assert ann[["instance_id", "verdict"]].values.tolist() == [["dev_matched-0", "wrong"]]


def test_decaying_guid_in_two_splits_gets_split_prefix(store, tmp_path):
    item = {"guid": "x-1", "label": "1", "text_a": "a"}
    write_decaying(tmp_path / "qqpLargeWorseThanMini.pkl", {
        "dev": ([item, {"guid": "x-2", "label": "0"}], ["treatment", "control"], {}),
        "twitter_dev": ([item], ["control"], {"rz": ["Unsure"]})})
    import_zhong_decaying(store, tmp_path / "qqpLargeWorseThanMini.pkl")
    ids = store.instances("QQP")["instance_id"].tolist()
    assert ids == ["dev:x-1", "x-2", "twitter_dev:x-1"]
    assert store.annotations()["instance_id"].tolist() == ["twitter_dev:x-1"]


@pytest.mark.parametrize(("splits", "match"), [
    ({"dev": ([{"guid": "d-1", "label": "1"}], ["treated"], {})}, r"group 'treated'"),
    ({"dev": ([{"guid": "d-1", "label": "1"}], ["control"], {"rz": ["Maybe"]})},
     r"field \"\['dev'\]\[2\]\['rz'\]\[0\]\": verdict 'Maybe'"),
    ({"dev": ([{"guid": "d-1", "label": "1"}], ["control", "control"], {})},
     r"1 instances but 2 groups"),
    ({"dev": ([{"guid": "d-1", "label": "7"}], ["control"], {})}, r"gold label '7'"),
    ({"dev": [1, 2]}, r"not a 3-tuple"),
])
def test_bad_decaying_input(store, tmp_path, splits, match):
    path = tmp_path / "qqpLargeWorseThanMini.pkl"
    write_decaying(path, splits)
    before = snapshot(store)
    with pytest.raises(InputError, match=match) as info:
        import_zhong_decaying(store, path)
    assert info.value.path == str(path)
    assert snapshot(store) == before


def test_malicious_decaying_pickle_does_not_run(store, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "sst-2LargeWorseThanMini.pkl"
    path.write_bytes(pickle.dumps({"dev": ([Evil()], ["control"], {})}))
    before = snapshot(store)
    with pytest.raises(InputError, match="refuses to load"):
        import_zhong_decaying(store, tmp_path)
    assert not marker.exists()
    assert snapshot(store) == before


# -- one name per task across importers ----------------------------------------------------


def test_canonical_task_names():
    from seedlab.schema import canonical_task, task_aliases

    assert [canonical_task(n) for n in ("mnli", "Mnli", "MNLI", "sst-2", "sst2", "SST_2", "qqp",
                                        "qnli", "rte", "cola", "mrpc", "sts-b", "stsb", "wnli",
                                        "hans")] == [
        "MNLI", "MNLI", "MNLI", "SST-2", "SST-2", "SST-2", "QQP", "QNLI", "RTE", "CoLA", "MRPC",
        "STS-B", "STS-B", "WNLI", "HANS"]
    # Not GLUE tasks: kept as given (the shipped study's names, the lottery's variants).
    for name in ("sim-mnli", "sim-sst2", "rotten_tomatoes", "winogender", "MNLI_TWO",
                 "HANS_MNLI", "mnli-mm", "tx\n"):
        assert canonical_task(name) == name
    assert task_aliases("sst2") == ["SST-2", "sst-2", "sst2"]
    assert task_aliases("winogender") == ["winogender"]


def test_importers_meet_on_one_task_name(store, release, tmp_path):
    """Zhong's ``mnli`` folder, the decaying ``mnli...pkl``, a lottery ``MNLI`` mask folder
    and a table with ``task`` ``mnli`` all land in the task MNLI; the name each release used
    is kept in the runs' provenance and in the summaries."""
    from seedlab.importers.lottery import import_lottery
    from seedlab.importers.table import import_table

    root, _ = release
    summary = import_zhong(store, root)
    assert summary["tasks"]["MNLI"]["released_as"] == "mnli"
    items = [dict(x) for x in mnli_predict()[:2]]
    write_decaying(tmp_path / "mnliLargeWorseThanMini.pkl", {
        "dev_matched": (items, ["treatment", "control"], {"rz": ["Wrong", None]})})
    decaying = import_zhong_decaying(store, tmp_path / "mnliLargeWorseThanMini.pkl")
    assert decaying["tasks"]["MNLI"]["released_as"] == "mnli"
    seed = tmp_path / "lottery" / "masks" / "heads" / "MNLI" / "seed_1"
    seed.mkdir(parents=True)
    np.save(seed / "head_mask.npy", np.ones((2, 2)))
    import_lottery(store, tmp_path / "lottery")
    table = tmp_path / "more.jsonl"
    table.write_text(json.dumps({"task": "mnli", "size": "tiny", "pretrain_seed": 0,
                                 "finetune_seed": 0, "instance_id": "dev_matched-0",
                                 "probs": [0.1, 0.8, 0.1], "label": MNLI_LABELS[0]}) + "\n")
    import_table(store, table)

    assert sorted(store.tasks()["task"]) == ["MNLI"]
    assert set(store.masks()["task"]) == {"MNLI"}
    assert set(store.annotations()["task"]) == {"MNLI"}
    runs = store.runs(task="MNLI")
    released = {json.loads(p)["released_task"] for p in runs["provenance"]}
    assert released == {"mnli"} and set(runs["size"]) == {"mini", "large", "tiny"}
