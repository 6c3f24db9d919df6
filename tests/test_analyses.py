"""seedlab.analyses called directly (no Streamlit) on built stores: hand-checked values
on a tiny store, and on the dashboard fixture the values of seedlab.stats on the store's
arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from app_support import DECAYING, FINETUNE_SEEDS, PRETRAIN_SEEDS, SIZES, make_fixture_home

from seedlab import analyses as an
from seedlab import stats
from seedlab.align import align_instances, usable_runs
from seedlab.annotate import build_queue, decay_table, instance_accuracy
from seedlab.store import RunData, SeedArrays, Store

IDS = ["i0", "i1", "i2", "i3", "i4", "i5"]
GOLD = [0, 1, 1, 0, 1, 0]  # i0..i5, labels no / yes
# size "a" predicts i0..i3: (pretraining seed, fine-tuning seed) -> predictions
A_PREDS = {("0", 1): [0, 1, 1, 0], ("0", 2): [0, 1, 0, 0],
           ("1", 1): [1, 1, 1, 0], ("1", 2): [0, 0, 1, 0]}


def _table(ids, preds, gold):
    return pa.table({"checkpoint": [1.0] * len(ids), "instance_id": ids, "pred": preds,
                     "correct": [p == g for p, g in zip(preds, gold)],
                     "p_correct": [0.8 if p == g else 0.3 for p, g in zip(preds, gold)],
                     "probs": [[0.8, 0.2] if p == 0 else [0.2, 0.8] for p in preds]})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Store:
    """Task t: size a on i0..i3 (2 x 2 runs, A_PREDS); size b on i3, i1, i0, i5 (seed 0,
    fine-tuning seeds 1, 2; always right); size c on i4, i5 only (none of a's)."""
    store = Store(tmp_path_factory.mktemp("analyses") / "home")
    with store.transaction("test", "tests/test_analyses.py") as tx:
        tx.set_task("t", ["no", "yes"])
        tx.add_instances("t", pd.DataFrame({
            "instance_id": IDS, "split": "dev", "guid": IDS, "text_a": [f"text {i}" for i in IDS],
            "text_b": "", "label": [["no", "yes"][g] for g in GOLD]}))
        for (p, f), preds in A_PREDS.items():
            tx.add_run(RunData("t", "a", p, f, _table(IDS[:4], preds, GOLD[:4]), source="t"))
        b_ids = ["i0", "i1", "i3", "i5"]
        b_gold = [GOLD[IDS.index(i)] for i in b_ids]
        for f in (1, 2):
            tx.add_run(RunData("t", "b", "0", f, _table(b_ids, b_gold, b_gold), source="t"))
        tx.add_run(RunData("t", "c", "0", 1, _table(["i4", "i5"], [1, 1], [1, 0]), source="t"))
    return store


@pytest.fixture(scope="module")
def fixture(tmp_path_factory) -> Store:
    return Store(make_fixture_home(tmp_path_factory.mktemp("analyses_fixture") / "home"))


def _arrays(ids, correct, size="s", missing=()):
    correct = np.asarray(correct, dtype=float).reshape(len(ids), 1, -1)
    return SeedArrays(task="t", size=size, instance_ids=np.array(ids, dtype=object),
                      labels=np.arange(len(ids)), label_list=["x"], pretrain_seeds=["0"],
                      finetune_seeds=list(range(1, correct.shape[2] + 1)), checkpoints=[1.0],
                      correct=correct, p_correct=correct, pred=np.where(correct > 0, 1, -1),
                      missing=list(missing))


# -- the one alignment ------------------------------------------------------------------


def test_align_keeps_the_shared_instances_in_the_first_order():
    first = _arrays(["i0", "i1", "i2", "i3"], [[1], [0], [1], [1]])
    second = _arrays(["i3", "i1", "i0"], [[0.5], [0.25], [0.75]], size="t")
    aligned = align_instances([first, second])
    assert aligned.reordered and list(aligned.instance_ids) == ["i0", "i1", "i3"]
    np.testing.assert_array_equal(aligned.labels, [0, 1, 3])
    np.testing.assert_array_equal(aligned.arrays[1].correct.ravel(), [0.75, 0.25, 0.5])
    np.testing.assert_array_equal(aligned.arrays[1].labels, [2, 1, 0])
    same = align_instances([first, _arrays(["i0", "i1", "i2", "i3"], [[0]] * 4)])
    assert not same.reordered and same.arrays[0] is first  # no copy when already aligned
    with pytest.raises(ValueError, match="no arrays"):
        align_instances([])


def test_usable_runs_leave_out_missing_runs_and_missing_predictions():
    arrays = _arrays(["i0", "i1"], [[1, 1, 1], [1, 0, 1]], missing=[("0", 3)])
    arrays.pred[1, 0, 1] = -1  # run (0, 2) lacks i1
    np.testing.assert_array_equal(usable_runs(arrays), [True, False, False])


# -- the analyses, on the tiny store ---------------------------------------------------


def test_run_predictions_and_agreement_by_hand(tiny):
    query = an.AgreementQuery("t", ["a", "b"], ["0", "1"], [1, 2], metric="agreement")
    runs = an.run_predictions(tiny, query)
    # b has no runs for pretraining seed 1; the instances both sizes predict: i0, i1, i3
    assert list(runs.instance_ids) == ["i0", "i1", "i3"]
    assert runs.names == ["a/p0/f1", "a/p0/f2", "a/p1/f1", "a/p1/f2", "b/p0/f1", "b/p0/f2"]
    np.testing.assert_array_equal(runs.preds[:4], [[0, 1, 0], [0, 1, 0], [1, 1, 0],
                                                   [0, 0, 0]])
    result = an.agreement(tiny, query)
    assert result.matrix[0, 2] == pytest.approx(2 / 3)
    size_a = result.summary.set_index("size").loc["a"]
    # same pretraining seed: (p0f1, p0f2) 1, (p1f1, p1f2) 1/3; different: 2/3, 2/3, 2/3, 2/3
    assert size_a["same pretraining seed: mean"] == pytest.approx(2 / 3)
    assert size_a["same pretraining seed: pairs"] == 2
    assert size_a["different pretraining seed: mean"] == pytest.approx(2 / 3)
    assert size_a["different pretraining seed: pairs"] == 4
    # b: one pretraining seed (no within/across); a: complete 2 x 2
    assert result.not_within_across == ("b",)
    a = tiny.arrays("t", "a", ["0", "1"], [1, 2])
    within, across = stats.within_across(a.correct)
    row = result.within_across.iloc[0]
    assert (row["size"], row["N"]) == ("a", 4)
    assert row["within (same pretraining seed)"] == pytest.approx(within)
    assert row["across - within"] == pytest.approx(across - within)
    blocks, groups = result.blocks()
    assert groups == ["a/p0", "a/p1", "b/p0"]
    assert blocks[0, 0] == pytest.approx(1.0) and blocks[0, 1] == pytest.approx(2 / 3)
    pair = an.disagreements(result, tiny.instances(task="t"), tiny.label_list("t"),
                            "a/p0/f1", "a/p1/f1")
    assert (pair.count, pair.total) == (1, 3) and pair.value == pytest.approx(2 / 3)
    assert pair.table.to_dict("records") == [
        {"instance_id": "i0", "gold": "no", "A: a/p0/f1": "no", "B: a/p1/f1": "yes",
         "text_a": "text i0", "text_b": ""}]


def test_significance_on_shared_instances_and_its_errors(tiny):
    base = {"task": "t", "pretrain_seeds": ["0", "1"], "finetune_seeds": [1, 2]}
    # b has runs of pretraining seed 0 only: the paired design drops seed 1, and says so
    with pytest.warns(UserWarning, match="dropped pretraining seeds"):
        result = an.significance(tiny, an.SignificanceQuery(
            **base, baseline=("a", "last"), treatment=("b", 1.0), nboot=200))
    assert (result.base_name, result.expt_name) == ("a (last)", "b (1)")
    a = tiny.arrays("t", "a", ["0", "1"], [1, 2])
    with pytest.warns(UserWarning, match="dropped pretraining seeds"):
        expected = stats.multibootstrap(
            np.vstack([a.pred[[0, 1, 3]].reshape(3, -1).T, [[0, 1, 0]] * 2]),
            np.array([0, 1, 0]), ["0", "0", "1", "1", "0", "0"],
            np.array([False] * 4 + [True] * 2), finetune_seeds=[1, 2, 1, 2, 1, 2], nboot=200)
    assert result.bootstrap["delta"]["mean"] == pytest.approx(expected["delta"]["mean"])
    assert result.table[""].tolist() == ["a (last)", "b (1)", "difference"]
    assert result.table["mean"].tolist()[1] == pytest.approx(1.0)  # b is always right
    np.testing.assert_array_equal(result.draws, expected["draws"]["delta"])
    assert result.thresholds is None
    with pytest.raises(an.NotEnoughData, match="share no instances"):
        an.significance(tiny, an.SignificanceQuery(**base, baseline=("a", "last"),
                                                   treatment=("c", "last")))


def test_instance_accuracy_on_the_shared_instances(tiny):
    acc = an.instance_accuracy(tiny, an.AccuracyQuery("t", ["b", "a", "nope"], ["0"], [1, 2]))
    assert list(acc.columns) == ["b", "a"]  # a size without runs is left out
    assert acc.index.tolist() == ["i0", "i1", "i3"]  # b's order, shared with a
    assert acc["a"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert acc["b"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    pd.testing.assert_frame_equal(acc, instance_accuracy(tiny, "t", ["b", "a", "nope"], ["0"],
                                                         [1, 2]))


def test_label_issue_scores_leave_out_sizes_without_the_instances(tiny):
    # a (complete, i0..i3) comes first; b lacks i2, so only a's 4 runs count
    scores = an.label_issue_scores(tiny, an.Query("t", ["a", "b"], ["0", "1"], [1, 2]))
    a = tiny.arrays("t", "a", ["0", "1"], [1, 2])
    expected = stats.label_issues(a.p_correct.reshape(4, -1), a.pred.reshape(4, -1), a.labels,
                                  instance_ids=list(a.instance_ids),
                                  annotations=tiny.annotations(task="t", current=True),
                                  label_list=a.label_list)
    pd.testing.assert_frame_equal(scores, expected)
    none = an.label_issue_scores(tiny, an.Query("t", ["a"], ["0", "7"], [1]))
    assert list(none.columns) == ["instance_id", "score"] and none.empty


# -- the analyses, on the dashboard fixture ---------------------------------------------


Q = {"task": "nli_sim", "sizes": SIZES, "pretrain_seeds": PRETRAIN_SEEDS,
     "finetune_seeds": FINETUNE_SEEDS}


def test_decomposition_gives_the_stats_of_each_size(fixture):
    result = an.decomposition(fixture, an.DecompositionQuery(**Q, nboot=100, seed=2))
    assert list(result.sizes) == SIZES and result.notes == () and result.n_instances == 60
    for size in SIZES:
        arrays = fixture.arrays("nli_sim", size, PRETRAIN_SEEDS, FINETUNE_SEEDS)
        dec = stats.decompose(arrays.correct)
        assert result.means.loc[size, "bias2"] == pytest.approx(dec.bias2.mean())
        rows = result.by_bias[result.by_bias["size"] == size].drop(columns="size")
        pd.testing.assert_frame_equal(rows.reset_index(drop=True),
                                      stats.variance_by_bias(dec).reset_index(drop=True))
    assert len(result.summary) == 3 * 4 and set(result.summary["term"]) == {
        "loss", "bias2", "var_pretrain", "var_finetune"}
    per = result.per_instance
    assert len(per) == 180
    np.testing.assert_allclose(per["bias2"] + per["var_pretrain"] + per["var_finetune"],
                               per["loss"], atol=1e-12)
    one = an.decomposition(fixture, an.DecompositionQuery(
        **{**Q, "sizes": ["mini"]}, checkpoint=[2.0], nboot=100))
    assert one.sizes == {} and "2 checkpoints" in one.notes[0] and one.n_instances == 0


def test_decaying_and_its_browser(fixture):
    query = an.DecayQuery(**Q, small="tiny", large="base")
    out = an.decaying(fixture, query)
    tiny = fixture.arrays("nli_sim", "tiny", PRETRAIN_SEEDS, FINETUNE_SEEDS)
    base = fixture.arrays("nli_sim", "base", PRETRAIN_SEEDS, FINETUNE_SEEDS)
    np.testing.assert_array_equal(out.result.diff, stats.decay_bounds(tiny.correct,
                                                                      base.correct).diff)
    qs, discoveries = out.bh_curve
    assert qs.shape == discoveries.shape and out.bh["bound"] >= 0
    browser = an.decay_browser(fixture, query, out)
    rows = browser.rows.set_index("instance_id")
    # ann and bob both said wrong on the first; ann reasonable, bob correct on the second
    assert rows.loc[DECAYING[0], "verdict"] == "wrong"
    assert rows.loc[DECAYING[1], "verdict"] == "correct"  # a tie: the first by name
    assert rows.loc["nli-030", "verdict"] == "not annotated"
    per_size = [fixture.arrays("nli_sim", s, PRETRAIN_SEEDS, FINETUNE_SEEDS) for s in SIZES]
    assert rows.loc[DECAYING[3], "accuracy per size"] == pytest.approx(
        [a.correct[3].mean() for a in per_size])
    assert rows.loc[DECAYING[3], "text_a"].startswith("Premise number nli-003")
    assert browser.splits == ["dev_matched", "dev_mismatched"]
    assert browser.verdicts == ["correct", "not annotated", "wrong"]  # the tie went to correct
    view = browser.view(browser.splits, ["decaying"], browser.verdicts, only_decaying=True)
    assert set(view["instance_id"]) == set(DECAYING)
    assert view["decay"].is_monotonic_increasing and (view["decay"] < 0).all()
    with pytest.raises(an.NotEnoughData, match="2 pretraining seeds"):
        an.decaying(fixture, an.DecayQuery(**{**Q, "pretrain_seeds": ["0"]}, small="tiny",
                                           large="base"))


def test_data_map_and_its_browser(fixture):
    result = an.data_map(fixture, an.DataMapQuery(**Q, size="mini", variability=0.1))
    arrays = fixture.arrays("nli_sim", "mini", PRETRAIN_SEEDS, FINETUNE_SEEDS)
    expected = stats.seed_data_map(arrays.p_correct, arrays.correct, variability_threshold=0.1,
                                   confidence_threshold=0.5)
    pd.testing.assert_frame_equal(result.frame.drop(columns="instance_id"), expected)
    assert sum(result.counts.values()) == 60 and list(result.counts) == list(stats.REGIONS)
    view = result.browser(fixture.instances(task="nli_sim"), ["hard"])
    assert len(view) == result.counts["hard"] and set(view["region"]) <= {"hard"}
    assert view["variability"].is_monotonic_decreasing and "text_b" in view
    picked = result.browser(fixture.instances(task="nli_sim"), ["hard"], ["nli-001"])
    assert picked["instance_id"].tolist() == ["nli-001"]


def test_annotation_queue_is_build_queue_on_the_accuracies(fixture):
    query = an.QueueQuery(**Q, small="tiny", large="base", min_drop=0.25, blind=True, seed=3)
    accuracy = instance_accuracy(fixture, "nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS)
    expected = build_queue(fixture.instances(task="nli_sim"),
                           decay=decay_table(accuracy, "tiny", "base")["decay"], min_drop=0.25,
                           blind=True, seed=3)
    got = an.annotation_queue(fixture, query)
    pd.testing.assert_frame_equal(got.items, expected.items)
    grouped = an.annotation_queue(fixture, an.QueueQuery(**Q, split=["dev_matched"]))
    assert grouped.instance_ids == DECAYING


def test_run_coverage_and_accuracy(fixture):
    runs = fixture.runs(task="nli_sim")
    jobs = pd.DataFrame({"size": ["huge"], "pretrain_seed": ["0"], "finetune_seed": [1],
                         "status": ["queued"]})
    cover = an.run_coverage(runs, jobs)
    assert cover.counts.to_dict() == {"missing": 8, "present": 27, "queued": 1}
    assert ("huge", "1", 2) in cover.missing and len(cover.missing) == 8
    acc = an.run_accuracy(fixture, an.Query("nli_sim", ["base", "tiny"], ["0", "1"], [2]))
    assert acc.sizes == ["base", "tiny"] and acc.table["N runs"].tolist() == [2, 2]
    assert acc.table["size"].tolist() == ["base", "tiny"] and acc.n_instances == 60
    expected = fixture.run_accuracy("nli_sim", "base")
    expected = expected[expected["pretrain_seed"].isin(["0", "1"])
                        & (expected["finetune_seed"] == 2)]
    assert acc.table.loc[0, "mean"] == pytest.approx(expected["accuracy"].mean())
    assert an.run_accuracy(fixture, an.Query("nli_sim", ["base"], ["9"], [2])) is None


def _add_masks(store: Store, task: str, seeds_by_component: dict, keep) -> None:
    rows = []
    for component, seeds in seeds_by_component.items():
        for seed in seeds:
            for layer in range(12):
                for head in (range(12) if component == "head" else [-1]):
                    rows.append((seed, component, layer, head,
                                 bool(keep(seed, component, layer, head)), 0.0))
    with store.transaction("test", "tests/test_analyses.py") as tx:
        tx.add_masks("lottery", task, pd.DataFrame(
            rows, columns=["seed", "component", "layer", "head", "kept", "importance"]))


def test_masks_align_seeds_and_compare_tasks(tmp_path):
    store = Store(make_fixture_home(tmp_path / "home"))  # nli_sim: seeds 1, 2, 3
    # sst_one: heads of seeds 2, 3, 4, MLPs of seeds 3, 4; seed 4 keeps nothing
    _add_masks(store, "sst_one", {"head": [2, 3, 4], "mlp": [3, 4]},
               lambda seed, component, layer, head: seed != 4 and (layer + max(head, 0)) % 2)
    choices = an.mask_choices(store)
    assert choices.settings == ["lottery"] and choices.tasks["lottery"] == ["nli_sim",
                                                                            "sst_one"]
    assert choices.components["lottery"] == ["both", "head", "mlp"]
    assert choices.head_shape["lottery"] == (12, 12)
    query = an.MaskQuery("lottery", "both", choices.head_shape["lottery"])
    result = an.masks(store, query, choices.tasks["lottery"])
    sst = result.tasks["sst_one"]
    assert sst.seeds == [3, 4] and sst.rows.shape == (2, 156)
    assert sst.rows[1].sum() == 0 and result.notes["sst_one"] == [
        "sst_one: seed(s) 4 keep no component"]
    assert result.common_seeds == [3]
    heads, _ = store.mask_arrays("lottery", "nli_sim", "head")
    mlps, _ = store.mask_arrays("lottery", "nli_sim", "mlp")
    nli = np.concatenate([heads.reshape(3, -1), mlps], axis=1)
    np.testing.assert_array_equal(result.tasks["nli_sim"].rows, nli)
    stack = np.stack([nli[[2]], sst.rows[[0]]])
    np.testing.assert_array_equal(result.task_count, stats.task_count(stack))
    np.testing.assert_array_equal(result.stable, stats.stable_components(stack))
    np.testing.assert_array_equal(result.task_overlap[0], stats.task_overlap(stack)[0])
    head, mlp = result.split(result.task_count)
    assert head.shape == (12, 12) and mlp.shape == (12,)
    mean, _ = result.tasks["nli_sim"].survival()
    np.testing.assert_array_equal(mean, nli.mean(axis=0))
    overlap = result.overlap.set_index("task")
    assert overlap.loc["sst_one", "kept per seed"] == f"{int(sst.rows[0].sum())} / 0"
    assert overlap.loc["nli_sim", "observed"] == pytest.approx(stats.mask_jaccard(nli))
    assert overlap.loc["nli_sim", "fleiss_kappa"] == pytest.approx(stats.fleiss_kappa(nli))
    heads_only = an.masks(store, an.MaskQuery("lottery", "head", (12, 12)), ["sst_one"])
    assert heads_only.tasks["sst_one"].seeds == [2, 3, 4] and heads_only.task_overlap is None
    assert heads_only.split(np.arange(144.0))[1] is None


def test_mask_evaluations_pick_one_metric_per_task(fixture):
    evaluations = an.mask_evaluations(fixture)
    assert evaluations.arm_names == ["lottery/bad", "lottery/good", "lottery/random"]
    assert evaluations.default_arms == evaluations.arm_names  # no head_mlp arms: the first 6
    shown = evaluations.shown(["lottery/random", "lottery/good"])
    assert shown["experiment"].tolist() == ["lottery/random", "lottery/good"]
    assert shown["mean"].tolist() == [0.74, 0.81]
    assert "arm" not in evaluations.picked(["lottery/bad"]).columns


def test_job_rows_and_run_metrics(tmp_path):
    from seedlab.analyses.jobs import QUEUE_COLUMNS, job_rows, run_metrics

    jobs = pd.DataFrame({"id": [1, 2, 3, 4], "state": ["running", "finished", "queued",
                                                        "running"],
                         "step": [5, 9, None, 3], "total": [20, 9, None, 0],
                         "executor": ["local", "local", "slurm", "local"],
                         "slurm_id": ["", "", "77_0", "9"], "spec": ["{}"] * 4,
                         **{c: None for c in QUEUE_COLUMNS
                            if c not in ("id", "state", "progress", "executor", "slurm_id")}})
    view = job_rows(jobs)
    assert view["progress"].tolist() == [0.25, 1.0, 0.0, 0.0]  # no total yet: 0
    assert list(view.columns) == QUEUE_COLUMNS  # state and progress first; no spec
    assert view["slurm_id"].isna().tolist() == [True, True, False, True]  # blank when local
    assert view["slurm_id"].iloc[2] == "77_0"
    assert run_metrics(tmp_path) is None
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "accuracy": 0.5}\n\n'
                                            '{"epoch": 2, "accuracy": 0.75}\n')
    assert run_metrics(tmp_path).to_dict("records") == [{"epoch": 1, "accuracy": 0.5},
                                                        {"epoch": 2, "accuracy": 0.75}]


@pytest.mark.parametrize(("module", "absent"), [
    ("seedlab.analyses", ["streamlit", "seedlab.ui.data"]),
    ("seedlab.align", ["seedlab.analyses", "seedlab.annotate"]),
    ("seedlab.annotate", ["seedlab.analyses", "streamlit"]),
    ("seedlab.ui.state", ["seedlab.ui.data", "seedlab.ui.sidebar", "seedlab.demo"]),
    ("seedlab.ui.data", ["seedlab.ui.sidebar", "seedlab.demo"]),
])
def test_data_flows_one_way(module, absent):
    """Importing a module does not import what sits downstream of it (no import cycles:
    each of these would close one)."""
    import subprocess
    import sys

    code = (f"import sys, {module}; "
            f"print([m for m in {absent!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == "[]", out.stdout


def test_task_table_lists_every_task(fixture):
    rows = {row["task"]: row for row in an.task_table(fixture.info())}
    assert set(rows) == {"nli_sim", "sst_one"}
    assert rows["nli_sim"]["sizes"] == "tiny, mini, base" and rows["nli_sim"]["runs"] == 27
    assert rows["nli_sim"]["simulated"] and not rows["sst_one"]["simulated"]
    assert rows["sst_one"]["instances"] == 20 and rows["nli_sim"]["annotations"] == 5
