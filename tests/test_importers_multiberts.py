"""The MultiBERTs importer, on fixtures built in the release's layout (index.tsv + score
files + <TASK>_dev_labels; run_info.tsv / label_info.tsv / preds.tsv for coreference)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seedlab.errors import InputError
from seedlab.importers.multiberts import import_multiberts, parse_steps

N_MNLI, N_RTE = 6, 4


def _scores_file(path: Path, scores: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, scores, delimiter="\t", fmt="%.8f")


@pytest.fixture
def glue(tmp_path) -> tuple[Path, dict]:
    """MNLI: 2 pretraining seeds x 2 fine-tuning seeds x 2 learning rates at 2M steps (logit
    files); RTE: 1 lr at 1M and 2M (probability files); STS-B: regression, skipped."""
    root = tmp_path / "GLUE"
    rng = np.random.default_rng(7)
    rows, scores = [], {}
    for pid in (0, 1):
        for ft in (0, 1):
            for lr in ("2e-05", "5e-05"):
                name = f"MNLI/release=multiberts,pretrain_id={pid},n_steps=2M,lr={lr},ft_seed={ft}.tsv"
                scores[name] = rng.normal(size=(N_MNLI, 3)) * 3
                rows.append([name, "MNLI", pid, "2M", lr, ft, "multiberts"])
            for steps in ("1M", "2M"):
                name = f"RTE/pretrain_id={pid},n_steps={steps},ft_seed={ft}.tsv"
                scores[name] = rng.dirichlet(np.ones(2), size=N_RTE)
                rows.append([name, "RTE", pid, steps, "3e-05", ft, "multiberts"])
    name = "STS-B/pretrain_id=0,ft_seed=0.tsv"
    scores[name] = rng.random((3, 1)) * 5
    rows.append([name, "STS-B", 0, "2M", "2e-05", 0, "multiberts"])
    for name, values in scores.items():
        _scores_file(root / name, values)
    index = pd.DataFrame(rows, columns=["file", "task", "pretrain_id", "n_steps", "lr",
                                        "ft_seed", "release"])
    index.to_csv(root / "index.tsv", sep="\t", index=False)
    (root / "MNLI_dev_labels").write_text("0\n2\n1\n1\n0\n2\n")
    (root / "RTE_dev_labels").write_text("1\n0\n0\n1\n")
    (root / "STS-B_dev_labels").write_text("3.2\n0.5\n4.75\n")
    return root, {"scores": scores, "index": index,
                  "labels": {"MNLI": [0, 2, 1, 1, 0, 2], "RTE": [1, 0, 0, 1]}}


def test_parse_steps():
    assert parse_steps("2M") == 2_000_000 and parse_steps("200k") == 200_000
    assert parse_steps("2000000") == 2_000_000 and parse_steps("1.5M") == 1_500_000
    assert parse_steps("lots") is None


def test_glue_mapping_and_values(store, glue):
    root, data = glue
    summary = import_multiberts(store, root)
    assert summary["runs_added"] == 8 + 8
    assert summary["tasks"] == ["MNLI", "RTE"]
    assert [s["task"] for s in summary["skipped"]] == ["STS-B"]
    runs = store.runs()
    assert sorted(runs["task"].unique()) == ["MNLI", "RTE"]
    # several learning rates at 2M for MNLI -> '-lr' suffix; one for RTE -> none
    assert sorted(runs[runs.task == "MNLI"]["size"].unique()) == [
        "multiberts-2000k-lr2e-05", "multiberts-2000k-lr5e-05"]
    assert sorted(runs[runs.task == "RTE"]["size"].unique()) == [
        "multiberts-1000k", "multiberts-2000k"]
    assert store.label_list("MNLI") == ["0", "1", "2"]

    # one MNLI run, logits: softmax applied and recorded
    name = "MNLI/release=multiberts,pretrain_id=1,n_steps=2M,lr=5e-05,ft_seed=0.tsv"
    logits = data["scores"][name]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gold = np.array(data["labels"]["MNLI"])
    got = store.predictions(task="MNLI", size="multiberts-2000k-lr5e-05", pretrain_seed="1",
                            finetune_seed=0)
    got = got.assign(k=got["instance_id"].astype(int)).sort_values("k")
    assert got["instance_id"].tolist() == [str(k) for k in range(N_MNLI)]
    assert got["pred"].tolist() == logits.argmax(axis=1).tolist()
    np.testing.assert_allclose(got["p_correct"], probs[np.arange(N_MNLI), gold], atol=1e-6)
    np.testing.assert_allclose(np.stack(got["probs"]), probs, atol=1e-6)
    assert (got["checkpoint"] == 1.0).all()
    run = runs[(runs["size"] == "multiberts-2000k-lr5e-05") & (runs.pretrain_seed == "1")
               & (runs.finetune_seed == 0)].iloc[0]
    assert '"scores": "logits"' in run["provenance"] and name in run["provenance"]
    assert '"lr": 5e-05' in run["hyperparameters"]

    # an RTE run, already probabilities: kept as they are
    name = "RTE/pretrain_id=0,n_steps=1M,ft_seed=1.tsv"
    arrays = store.arrays("RTE", "multiberts-1000k")
    assert arrays.shape == (N_RTE, 2, 2)
    p = data["scores"][name]
    gold = np.array(data["labels"]["RTE"])
    np.testing.assert_allclose(arrays.p_correct[:, 0, 1], p[np.arange(N_RTE), gold], atol=1e-6)
    np.testing.assert_array_equal(arrays.correct[:, 0, 1], p.argmax(1) == gold)
    assert '"scores": "probabilities"' in store.runs(task="RTE", size="multiberts-1000k",
                                                     pretrain_seed="0",
                                                     finetune_seed=1)["provenance"].iloc[0]
    inst = store.instances(task="MNLI")
    assert inst["label"].tolist() == ["0", "2", "1", "1", "0", "2"]
    assert set(inst["split"]) == {"dev"}


def test_glue_import_twice_adds_nothing(store, glue):
    root, _ = glue
    import_multiberts(store, root)
    info, version = store.info(), store.version()
    again = import_multiberts(store, root)
    assert again["runs_added"] == 0 and again["runs_unchanged"] == 16
    assert store.info() == info and store.version() == version


def test_text_labels_map_through_the_stores_label_list(store, glue):
    root, data = glue
    names = ["contradiction", "entailment", "neutral"]
    (root / "MNLI_dev_labels").write_text("\n".join(names[g] for g in data["labels"]["MNLI"]))
    import_multiberts(store, root, label_lists={"MNLI": names})
    assert store.label_list("MNLI") == names
    arrays = store.arrays("MNLI", "multiberts-2000k-lr2e-05")
    assert arrays.labels.tolist() == data["labels"]["MNLI"]
    # integer labels later map onto the same classes by position
    (root / "MNLI_dev_labels").write_text("0\n2\n1\n1\n0\n2\n")
    again = import_multiberts(store, root)
    assert again["runs_unchanged"] == 16


def _expect_error(store, root, pattern: str) -> None:
    before = store.info(), store.version()
    with pytest.raises(InputError) as err:
        import_multiberts(store, root)
    assert re.search(pattern, str(err.value)), str(err.value)
    assert (store.info(), store.version()) == before


def test_missing_index_columns_are_named(store, glue):
    root, data = glue
    data["index"].drop(columns=["lr", "release"]).to_csv(root / "index.tsv", sep="\t",
                                                         index=False)
    _expect_error(store, root, r"index.tsv, field 'lr': missing column\(s\): lr, release")


def test_missing_run_file(store, glue):
    root, data = glue
    name = data["index"]["file"].iloc[3]
    (root / name).unlink()
    _expect_error(store, root, re.escape(str(root / name)) + ": file not found")


def test_ragged_rows(store, glue):
    root, data = glue
    import_multiberts(store, root)  # the store holds data; a failed import must keep it
    name = data["index"]["file"].iloc[0]
    lines = (root / name).read_text().splitlines()
    lines[2] = "\t".join(lines[2].split("\t")[:2])
    (root / name).write_text("\n".join(lines) + "\n")
    _expect_error(store, root, r", line 3: 2 values where line 1 has 3")


def test_wrong_row_count(store, glue):
    root, data = glue
    name = data["index"]["file"].iloc[1]
    _scores_file(root / name, np.ones((N_MNLI - 1, 3)))
    _expect_error(store, root, r"5 rows but MNLI_dev_labels has 6 labels")


def test_nan_scores(store, glue):
    root, data = glue
    name = data["index"]["file"].iloc[0]
    scores = data["scores"][name].copy()
    scores[4, 1] = np.nan
    _scores_file(root / name, scores)
    _expect_error(store, root, r", line 5: NaN")


def test_duplicate_runs_in_index(store, glue):
    root, data = glue
    index = pd.concat([data["index"], data["index"].iloc[[5]]])
    index.to_csv(root / "index.tsv", sep="\t", index=False)
    _expect_error(store, root, r"index.tsv, line 19: the run \(task MNLI, size multiberts-2000k-lr5e-05,"
                  r" pretrain_id 0, ft_seed 1\) is also on line 7")


def test_bad_index_values_and_labels(store, glue):
    root, data = glue
    index = data["index"].copy()
    index.loc[4, "n_steps"] = "forever"
    index.to_csv(root / "index.tsv", sep="\t", index=False)
    _expect_error(store, root, r"line 6, field 'n_steps'")
    data["index"].to_csv(root / "index.tsv", sep="\t", index=False)
    (root / "RTE_dev_labels").write_text("1\n0\n7\n1\n")
    _expect_error(store, root, r"RTE_dev_labels, line 3: label '7' is not in the label list")
    (root / "RTE_dev_labels").unlink()
    _expect_error(store, root, r"RTE_dev_labels: file not found")


# ---------------------------------------------------------------------------------------
# Coreference


def _coref_group(folder: Path, runs: list[tuple[int, int]], preds: np.ndarray,
                 answers: list[int]) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame({"pretrain_seed": [p for p, _ in runs],
                  "finetune_seed": [f for _, f in runs]}).to_csv(folder / "run_info.tsv",
                                                                  sep="\t")
    genders = ["MASCULINE", "FEMININE", "UNKNOWN"]
    pd.DataFrame({"gender": [genders[k % 3] for k in range(len(answers))],
                  "pronoun_type": "NOM", "answer": answers,
                  "occupation": "technician", "other_participant": "customer",
                  "someone": [k % 2 == 1 for k in range(len(answers))],
                  "template_idx": [k // 3 for k in range(len(answers))]}).to_csv(
        folder / "label_info.tsv", sep="\t")
    np.savetxt(folder / "preds.tsv", preds, fmt="%.18e")


@pytest.fixture
def coref(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "coref"
    rng = np.random.default_rng(11)
    answers = [1, 1, 0, 0, 1, 0]
    base_runs = [(p, f) for p in (0, 1) for f in (0, 1, 2)]
    base = rng.integers(0, 2, size=(len(base_runs), len(answers))).astype(float)
    cda_runs = [(p, f) for p in (0, 1) for f in (0, 1)]
    cda = rng.integers(0, 2, size=(len(cda_runs), len(answers))).astype(float)
    _coref_group(root / "base", base_runs, base, answers)
    _coref_group(root / "cda_intervention-50k", cda_runs, cda, answers)
    return root, {"answers": answers, "base": (base_runs, base), "cda": (cda_runs, cda)}


def test_coref_groups(store, coref):
    root, data = coref
    summary = import_multiberts(store, root)
    assert summary["groups"] == ["base", "cda_intervention-50k"]
    assert summary["runs_added"] == 6 + 4
    assert store.label_list("winogender") == ["occupation", "other_participant"]
    runs, preds = data["base"]
    arrays = store.arrays("winogender", "base", pretrain_seeds=["0", "1"],
                          finetune_seeds=[0, 1, 2])
    assert list(arrays.instance_ids) == [str(k) for k in range(6)]
    answers = np.array(data["answers"])
    for r, (p, f) in enumerate(runs):
        np.testing.assert_array_equal(arrays.pred[:, p, f], preds[r])
        np.testing.assert_array_equal(arrays.correct[:, p, f], preds[r] == answers)
        np.testing.assert_array_equal(arrays.p_correct[:, p, f], preds[r] == answers)
    assert arrays.labels.tolist() == data["answers"]
    inst = store.instances(task="winogender")
    assert inst.loc[0, "label"] == "other_participant" and inst.loc[2, "label"] == "occupation"
    assert inst.loc[1, "gender"] == "FEMININE"
    cda = store.arrays("winogender", "cda_intervention-50k")
    assert cda.shape == (6, 2, 2)
    run = store.runs(task="winogender", size="base", pretrain_seed="1", finetune_seed=2)
    assert '"run": "5"' in run["provenance"].iloc[0]
    info, version = store.info(), store.version()
    import_multiberts(store, root)
    assert store.info() == info and store.version() == version


def test_coref_one_group_folder(store, coref):
    root, _ = coref
    summary = import_multiberts(store, root / "base")
    assert summary["groups"] == ["base"] and summary["runs_added"] == 6


def test_coref_bad_inputs(store, coref):
    root, data = coref
    group = root / "base"
    preds = data["base"][1]
    np.savetxt(group / "preds.tsv", preds[:, :5])
    _expect_error(store, root, r"base/preds.tsv: shape \(6, 5\) \(expected \(6, 6\)")
    bad = preds.copy()
    bad[3, 2] = 2
    np.savetxt(group / "preds.tsv", bad)
    _expect_error(store, root, r"preds.tsv, line 4: value 2.0 in column 3")
    np.savetxt(group / "preds.tsv", preds)
    info = pd.read_csv(group / "run_info.tsv", sep="\t", index_col=0)
    info.loc[4, "finetune_seed"] = 0
    info.to_csv(group / "run_info.tsv", sep="\t")
    _expect_error(store, root, r"run_info.tsv, line 6: the run \(pretrain_seed 1,"
                  r" finetune_seed 0\) is also on line 5")
    info.drop(columns=["finetune_seed"]).to_csv(group / "run_info.tsv", sep="\t")
    _expect_error(store, root, r"run_info.tsv, field 'finetune_seed': no fine-tuning seed")
