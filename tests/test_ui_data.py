"""seedlab.ui.data: the cached computations behind the analysis pages give the values of
the store and seedlab.stats called directly (they only change how, and how often, it is
computed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from app_support import DECAYING, FINETUNE_SEEDS, PRETRAIN_SEEDS, SIZES, make_fixture_home

from seedlab import analyses, stats
from seedlab.store import RunData, Store
from seedlab.ui import data


def _decompositions(ds, task, sizes, pretrain, finetune, checkpoint, score, nboot=500, seed=0):
    """``({size: (Decomposition, CI, instance_ids)}, notes)`` through the cached wrapper."""
    result = data.decomposition(ds, analyses.DecompositionQuery(
        task, sizes, pretrain, finetune, checkpoint, score=score, nboot=nboot, seed=seed))
    return ({size: (part.decomposition, part.ci, part.instance_ids)
             for size, part in result.sizes.items()}, list(result.notes))


def _run_rows(ds, task, sizes, pretrain, finetune, checkpoint):
    runs = data.run_predictions(ds, analyses.Query(task, sizes, pretrain, finetune, checkpoint))
    return runs.preds, runs.runs, runs.instance_ids, runs.labels


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return data.open_data(make_fixture_home(tmp_path_factory.mktemp("uidata") / "home"))


def test_decompositions_equal_each_size_alone(ds):
    store = Store(ds.home)
    results, notes = _decompositions(ds, "nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS,
                                     "last", "0/1 loss", 200, 4)
    assert notes == [] and list(results) == SIZES
    for size in SIZES:
        arrays = store.arrays("nli_sim", size, PRETRAIN_SEEDS, FINETUNE_SEEDS, "last")
        dec, ci, ids = results[size]
        expected = stats.decompose(arrays.correct)
        np.testing.assert_allclose(dec.bias2, expected.bias2, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dec.var_pretrain, expected.var_pretrain, rtol=1e-12,
                                   atol=1e-14)
        alone = stats.decomposition_ci(expected, nboot=200, rng=4)
        for term in ("loss", "bias2", "var_pretrain", "var_finetune"):
            for key in ("mean", "low", "high", "std"):
                assert ci[term][key] == pytest.approx(alone[term][key], rel=1e-12, abs=1e-14)
        assert list(ids) == list(arrays.instance_ids)
        # one size alone gives the same
        one = _decompositions(ds, "nli_sim", [size], PRETRAIN_SEEDS, FINETUNE_SEEDS, "last",
                              "0/1 loss", 200, 4)[0][size]
        assert one[1]["bias2"]["low"] == pytest.approx(ci["bias2"]["low"], rel=1e-12)


def test_decompositions_report_the_sizes_that_cannot_be_decomposed(ds):
    # Checkpoint variance over a single checkpoint: every size fails with the same note.
    results, notes = _decompositions(ds, "nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS,
                                     [2.0], "squared loss", 100)
    assert results == {} and len(notes) == 3 and "2 checkpoints" in notes[0]
    query = analyses.DecompositionQuery("nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS,
                                        [2.0], score="squared loss", nboot=100)
    with pytest.raises(analyses.NotEnoughData, match="2 checkpoints"):
        analyses.decompose_size(Store(ds.home), query, SIZES[0])


def test_run_rows_match_the_store_arrays(ds):
    store = Store(ds.home)
    preds, runs, ids, labels = _run_rows(ds, "nli_sim", SIZES, PRETRAIN_SEEDS,
                                         FINETUNE_SEEDS, "last")
    assert preds.dtype == np.int8 and preds.shape == (27, 60)
    assert list(runs.itertuples(index=False, name=None)) == [
        (s, p, f) for s in SIZES for p in PRETRAIN_SEEDS for f in FINETUNE_SEEDS]
    for r, (size, p, f) in enumerate(runs.itertuples(index=False, name=None)):
        arrays = store.arrays("nli_sim", size, [p], [f], "last")
        np.testing.assert_array_equal(preds[r], arrays.pred[:, 0, 0])
    np.testing.assert_array_equal(labels, arrays.labels)
    assert list(ids) == list(arrays.instance_ids)
    matrix = data.agreement(ds, analyses.AgreementQuery(
        "nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS, "last", metric="agreement")).matrix
    np.testing.assert_array_equal(matrix, stats.agreement_matrix(preds.astype(np.int64)))


def _table(ids, preds, gold):
    return pa.table({"checkpoint": [1.0] * len(ids), "instance_id": ids,
                     "pred": preds, "correct": [p == g for p, g in zip(preds, gold)],
                     "p_correct": [0.9 if p == g else 0.2 for p, g in zip(preds, gold)],
                     "probs": [[0.9, 0.1] if p == 0 else [0.1, 0.9] for p in preds]})


def test_run_rows_keep_the_instances_every_size_predicts(tmp_path):
    """Size 'b' predicts 4 of the 5 instances and one of its runs only 3: the rows are the
    4 shared instances, in table order, and the incomplete run is left out."""
    store = Store(tmp_path / "home")
    ids = ["i0", "i1", "i2", "i3", "i4"]
    gold = [0, 1, 0, 1, 1]
    with store.transaction("test", "tests/test_ui_data.py") as tx:
        tx.set_task("t", ["no", "yes"])
        tx.add_instances("t", pd.DataFrame({"instance_id": ids, "split": "dev", "guid": ids,
                                            "text_a": ids, "text_b": "",
                                            "label": [["no", "yes"][g] for g in gold]}))
        tx.add_run(RunData("t", "a", "0", 1, _table(ids, [0, 1, 1, 1, 0], gold), source="t"))
        tx.add_run(RunData("t", "a", "0", 2, _table(ids, [0, 0, 0, 1, 1], gold), source="t"))
        keep = ["i0", "i1", "i3", "i4"]
        tx.add_run(RunData("t", "b", "0", 1, _table(keep, [1, 1, 0, 1],
                                                     [0, 1, 1, 1]), source="t"))
        tx.add_run(RunData("t", "b", "0", 2, _table(["i0", "i1", "i3"], [0, 1, 1],
                                                     [0, 1, 1]), source="t"))
    ds = data.open_data(store.home)
    preds, runs, shared, labels = _run_rows(ds, "t", ["a", "b"], ["0"], [1, 2], "last")
    assert list(shared) == keep
    assert list(runs.itertuples(index=False, name=None)) == [("a", "0", 1), ("a", "0", 2),
                                                             ("b", "0", 1)]
    np.testing.assert_array_equal(preds, [[0, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 1]])
    np.testing.assert_array_equal(labels, [0, 1, 1, 1])


def test_label_issue_scores_match_stats_on_every_run(ds):
    store = Store(ds.home)
    got = data.label_issue_scores(ds, analyses.Query("nli_sim", SIZES, PRETRAIN_SEEDS,
                                                     FINETUNE_SEEDS))
    per_size = [store.arrays("nli_sim", s, PRETRAIN_SEEDS, FINETUNE_SEEDS, "last")
                for s in SIZES]
    expected = stats.label_issues(
        np.hstack([a.p_correct.reshape(60, -1) for a in per_size]),
        np.hstack([a.pred.reshape(60, -1) for a in per_size]), per_size[0].labels,
        instance_ids=list(per_size[0].instance_ids),
        annotations=store.annotations(task="nli_sim", current=True),
        label_list=per_size[0].label_list)
    pd.testing.assert_frame_equal(got, expected)
    # the score is one minus the mean gold-label probability over all 27 runs
    first = got.iloc[0]
    row = list(per_size[0].instance_ids).index(first["instance_id"])
    mean_p = np.mean([a.p_correct[row] for a in per_size])
    assert first["score"] == pytest.approx(1 - mean_p)


def _decay(ds, task, small, large, pretrain, finetune):
    out = data.decaying(ds, analyses.DecayQuery(task, [small, large], pretrain, finetune,
                                                small=small, large=large))
    return {"result": out.result, "bh": out.bh, "instance_ids": out.instance_ids}


def test_decay_matches_stats_on_the_store_arrays(ds):
    store = Store(ds.home)
    out = _decay(ds, "nli_sim", "tiny", "base", PRETRAIN_SEEDS, FINETUNE_SEEDS)
    tiny = store.arrays("nli_sim", "tiny", PRETRAIN_SEEDS, FINETUNE_SEEDS, "last")
    base = store.arrays("nli_sim", "base", PRETRAIN_SEEDS, FINETUNE_SEEDS, "last")
    assert list(out["instance_ids"]) == list(tiny.instance_ids)
    expected = stats.decay_bounds(tiny.correct, base.correct)
    assert out["result"].decaying == expected.decaying > 0  # instances 0-7 decay
    np.testing.assert_array_equal(out["result"].diff, expected.diff)
    # nli_sim has 3 labels: the ensembles are decided on the class probabilities
    bh = stats.bh_details(
        store.class_probs("nli_sim", "tiny", PRETRAIN_SEEDS, FINETUNE_SEEDS),
        store.class_probs("nli_sim", "base", PRETRAIN_SEEDS, FINETUNE_SEEDS),
        labels=tiny.labels, n_classes=3)
    np.testing.assert_array_equal(out["bh"]["pvalues"], bh["pvalues"])
    assert out["bh"]["bound"] == bh["bound"]


def test_decay_keeps_the_instances_both_sizes_predict(tmp_path):
    store = Store(tmp_path / "home")
    ids = [f"i{k}" for k in range(6)]
    gold = [0, 1, 0, 1, 1, 0]
    with store.transaction("test", "tests/test_ui_data.py") as tx:
        tx.set_task("t", ["no", "yes"])
        tx.add_instances("t", pd.DataFrame({"instance_id": ids, "split": "dev", "guid": ids,
                                            "text_a": ids, "text_b": "",
                                            "label": [["no", "yes"][g] for g in gold]}))
        rng = np.random.default_rng(0)
        for size, kept in (("a", ids), ("b", ids[1:])):
            for p in ("0", "1"):
                for f in (1, 2):
                    preds = rng.integers(0, 2, len(kept)).tolist()
                    tx.add_run(RunData("t", size, p, f, _table(kept, preds,
                                                               gold[len(ids) - len(kept):]),
                                       source="t"))
    ds = data.open_data(store.home)
    out = _decay(ds, "t", "a", "b", ["0", "1"], [1, 2])
    assert list(out["instance_ids"]) == ids[1:]
    a = store.arrays("t", "a", ["0", "1"], [1, 2], "last")
    b = store.arrays("t", "b", ["0", "1"], [1, 2], "last")
    np.testing.assert_array_equal(out["result"].diff,
                                  stats.decay_bounds(a.correct[1:], b.correct).diff)


def test_annotation_queue_is_the_library_queue(ds):
    from seedlab import annotate as an

    store = Store(ds.home)
    accuracy = an.instance_accuracy(store, "nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS)
    decay = an.decay_table(accuracy, "tiny", "base")["decay"]
    instances = store.instances(task="nli_sim")
    for blind in (False, True):
        expected = an.build_queue(instances, decay=decay, min_drop=0.25, blind=blind, seed=3)
        got = data.annotation_queue(ds, analyses.QueueQuery(
            "nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS, "last", split=None, small="tiny",
            large="base", min_drop=0.25, blind=blind, control_ratio=1.0, seed=3))
        pd.testing.assert_frame_equal(got.items, expected.items)
        assert got.n_focus == expected.n_focus and got.n_focus > 0
    # the decaying instances of the fixture lead the queue
    assert set(got.items.loc[got.items["group"] == "decaying", "instance_id"]) <= set(DECAYING)
    grouped = data.annotation_queue(ds, analyses.QueueQuery(
        "nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS, "last", split=["dev_matched"]))
    # without sizes: the imported groups, in table order (the fixture's group 'decaying')
    assert grouped.instance_ids == DECAYING


def test_a_verdict_does_not_recompute_the_statistics(tmp_path, monkeypatch):
    """Annotating moves ``annotations_version`` only: the cached decompositions are reused
    and the annotation log shows the new verdict."""
    ds = data.open_data(make_fixture_home(tmp_path / "home"))
    calls = []
    real = stats.decomposition_ci_many

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats, "decomposition_ci_many", counted)
    args = ("nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS, "last", "0/1 loss", 200, 4)
    first, _ = _decompositions(ds, *args)
    assert calls == [1]
    before = ds.annotations("nli_sim", current=False)
    instance = str(first[SIZES[0]][2][0])
    ds.annotate("nli_sim", instance, "new annotator", "wrong")
    after = data.open_data(ds.home)
    assert after.version == ds.version
    assert after.annotations_version == ds.annotations_version + 1
    again, _ = _decompositions(after, *args)
    assert calls == [1]
    assert again[SIZES[0]][1] == first[SIZES[0]][1]
    log = after.annotations("nli_sim", current=False)
    assert len(log) == len(before) + 1
    mine = log[log["annotator"] == "new annotator"]
    assert list(zip(mine["instance_id"], mine["verdict"])) == [(instance, "wrong")]


def test_a_verdict_shows_in_the_decay_browser_without_recomputing_the_decay(tmp_path,
                                                                            monkeypatch):
    ds = data.open_data(make_fixture_home(tmp_path / "home"))
    calls = []
    real = stats.decay_bounds

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats, "decay_bounds", counted)
    query = analyses.DecayQuery("nli_sim", SIZES, PRETRAIN_SEEDS, FINETUNE_SEEDS,
                                small="tiny", large="base")
    before = data.decay_browser(ds, query).rows.set_index("instance_id")["verdict"]
    assert calls == [1] and before.loc["nli-030"] == "not annotated"
    ds.annotate("nli_sim", "nli-030", "cy", "wrong")
    after = data.decay_browser(data.open_data(ds.home), query).rows
    assert after.set_index("instance_id").loc["nli-030", "verdict"] == "wrong"
    assert calls == [1]  # the decay itself came from the cache
