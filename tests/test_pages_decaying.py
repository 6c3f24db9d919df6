"""The Decaying and Agreement pages under AppTest, with their numbers computed
independently in the test from the store's arrays and ``seedlab.stats``.

Decaying: the browser shows the BH-adjusted p-value (what the BH bound thresholds) and the
raw Fisher p-value, labelled; it follows the sidebar's checkpoint (and says which runs lack
it); a single-sentence task's text_b is blank; the label-issue score and the verdict come
before the long texts. Agreement: a run that does not predict every shared instance is
named on the page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from app_support import (
    FINETUNE_SEEDS,
    PRETRAIN_SEEDS,
    app_test,
    make_fixture_home,
    plain,
    said,
    shown_texts,
)
from scipy.stats import false_discovery_control

from seedlab import stats
from seedlab.analyses import DecayQuery, Query, decay_browser, decaying, run_predictions
from seedlab.analyses.decay import ADJUSTED, RAW
from seedlab.simulate import write_study
from seedlab.store import RunData, Store


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_fixture_home(tmp_path_factory.mktemp("decaying") / "home")


def browser_frame(at) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "decay" in d.value.columns)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def open_page(home, page: str, params: dict | None = None):
    at = app_test(home, page, params)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_browser_shows_bh_adjusted_and_raw_p_values(home):
    at = open_page(home, "pages/decaying.py", {"task": "nli_sim", "decaying.show": "all"})
    rows = browser_frame(at).set_index("instance_id")
    assert "bh p-value" not in rows.columns
    store = Store(home)
    tiny = store.arrays("nli_sim", "tiny", PRETRAIN_SEEDS, FINETUNE_SEEDS, "last")
    # the raw one-sided Fisher p-values, and their BH adjustment as scipy computes it
    raw, adjusted, _ = _contract_bh(store, "nli_sim", "tiny", "base", PRETRAIN_SEEDS,
                                    FINETUNE_SEEDS, list(tiny.instance_ids))
    np.testing.assert_allclose(rows[RAW], raw.reindex(rows.index))
    np.testing.assert_allclose(rows[ADJUSTED], adjusted.reindex(rows.index))
    assert (rows[ADJUSTED] >= rows[RAW] - 1e-12).all()
    # the short columns come before the long texts, so they stay in view
    columns = list(browser_frame(at).columns)
    assert columns.index("label-issue score") < columns.index("text_a")
    assert columns.index("verdict") < columns.index("text_a")
    assert columns[:4] == ["instance_id", "decay", ADJUSTED, RAW]
    assert said(at, "raw value is before the adjustment")


def test_the_page_follows_the_sidebar_checkpoint(home):
    last = open_page(home, "pages/decaying.py", {"task": "nli_sim"})
    first = open_page(home, "pages/decaying.py", {"task": "nli_sim", "checkpoint": "1"})
    store = Store(home)
    tiny = store.arrays("nli_sim", "tiny", PRETRAIN_SEEDS, FINETUNE_SEEDS, 1.0)
    base = store.arrays("nli_sim", "base", PRETRAIN_SEEDS, FINETUNE_SEEDS, 1.0)
    expected = stats.decay_bounds(tiny.correct, base.correct)
    assert metric(first, "Decaying (lower bound)") == f"{expected.decaying:.1%}"
    _, _, bound = _contract_bh(store, "nli_sim", "tiny", "base", PRETRAIN_SEEDS,
                               FINETUNE_SEEDS, list(tiny.instance_ids), checkpoint=1.0)
    assert metric(first, "BH lower bound") == f"{bound:.1%}"
    rows = browser_frame(open_page(home, "pages/decaying.py", {
        "task": "nli_sim", "checkpoint": "1", "decaying.show": "all"})).set_index(
            "instance_id")
    np.testing.assert_allclose(rows["decay"],
                               pd.Series(expected.diff, index=tiny.instance_ids)
                               .reindex(rows.index))
    assert said(first, "checkpoint 1 ·")
    assert said(last, "each run's last checkpoint")
    # the two checkpoints give different numbers, so the page did not read the last one
    at_last = stats.decay_bounds(
        store.arrays("nli_sim", "tiny", PRETRAIN_SEEDS, FINETUNE_SEEDS, "last").correct,
        store.arrays("nli_sim", "base", PRETRAIN_SEEDS, FINETUNE_SEEDS, "last").correct)
    assert not np.array_equal(at_last.diff, expected.diff)


def _two_size_store(path, checkpoints: dict[str, list[float]], text_b: bool = True,
                    drop: tuple = (), absent: tuple = ()) -> Store:
    """Task ``t`` (2 labels, 6 instances), sizes with the given checkpoints, 2 x 2 seeds;
    runs in ``drop`` ((size, pretrain_seed, finetune_seed)) predict only 4 instances, runs
    in ``absent`` are not there."""
    store = Store(path)
    ids = [f"i{k}" for k in range(6)]
    gold = np.array([0, 1, 0, 1, 0, 1])
    rng = np.random.default_rng(3)
    with store.transaction("test", "two sizes") as tx:
        tx.set_task("t", ["neg", "pos"])
        tx.add_instances("t", pd.DataFrame({
            "instance_id": ids, "split": "dev", "text_a": [f"sentence {k}" for k in range(6)],
            "text_b": [f"second {k}" if text_b else None for k in range(6)],
            "label": [["neg", "pos"][g] for g in gold]}))
        for size, ckpts in checkpoints.items():
            for p in ("0", "1"):
                for f in (1, 2):
                    keep = 4 if (size, p, f) in drop else 6
                    if (size, p, f) in absent:
                        continue
                    rows = {c: [] for c in ("checkpoint", "instance_id", "pred", "correct",
                                            "p_correct", "probs")}
                    for ckpt in ckpts:
                        p_gold = rng.uniform(0.1, 0.9, keep)
                        pred = np.where(p_gold > 0.5, gold[:keep], 1 - gold[:keep])
                        rows["checkpoint"] += [ckpt] * keep
                        rows["instance_id"] += ids[:keep]
                        rows["pred"] += pred.tolist()
                        rows["correct"] += (pred == gold[:keep]).tolist()
                        rows["p_correct"] += p_gold.tolist()
                        rows["probs"] += [[1 - q, q] if g else [q, 1 - q]
                                          for q, g in zip(p_gold, gold[:keep])]
                    tx.add_run(RunData("t", size, p, f, pa.table(rows), source="test"))
    return store


def test_a_checkpoint_one_size_lacks_is_named(tmp_path):
    store = _two_size_store(tmp_path / "home", {"a": [1.0, 2.0], "b": [2.0]})
    at = open_page(store.home, "pages/decaying.py", {"task": "t", "checkpoint": "1"})
    assert [w.value for w in at.warning] == [
        ("Some runs of size b have no predictions at checkpoint 1: choose 'last' (each run's"
         " last checkpoint) or a checkpoint every run of both sizes has in the sidebar.")]
    fine = open_page(store.home, "pages/decaying.py", {"task": "t", "checkpoint": "2"})
    assert not fine.warning and browser_frame(fine) is not None


def test_single_sentence_text_b_is_blank_not_none(tmp_path):
    store = _two_size_store(tmp_path / "home", {"a": [1.0], "b": [1.0]}, text_b=False)
    at = open_page(store.home, "pages/decaying.py", {"task": "t", "decaying.show": "all"})
    rows = browser_frame(at)
    assert len(rows) == 6
    assert rows["text_b"].tolist() == [""] * 6
    assert rows["text_a"].str.startswith("sentence ").all()
    # the analysis itself, called directly
    query = DecayQuery("t", ("a", "b"), ("0", "1"), (1, 2), small="a", large="b")
    browser = decay_browser(store, query, decaying(store, query))
    assert browser.rows["text_b"].tolist() == [""] * 6


def test_a_simulated_single_sentence_task(tmp_path):
    store = Store(tmp_path / "home")
    write_study(store, {"n_instances": 120, "sizes": ("small", "large"), "pretrain_seeds": 2,
                        "finetune_seeds": 2, "checkpoints": 1, "n_classes": 2, "seed": 4,
                        "task": "sst"})
    at = open_page(store.home, "pages/decaying.py", {"task": "sst", "decaying.show": "all"})
    rows = browser_frame(at)
    assert len(rows) == 120 and not rows["text_b"].isin(["None", None]).any()
    assert set(rows["text_b"]) == {""}


def test_agreement_names_a_run_it_leaves_out(tmp_path):
    store = _two_size_store(tmp_path / "home", {"a": [1.0], "b": [1.0]},
                            drop=(("b", "1", 2),))
    at = open_page(store.home, "pages/agreement.py", {"task": "t"})
    warning = next(w.value for w in at.warning if "left out" in w.value)
    assert warning.startswith("1 selected run(s) left out of every table and the heatmap")
    assert "`b/p1/f2` (predicts 4 of the 6 shared instances)" in warning
    # the heatmap has the 7 complete runs
    names = next(w for w in at.selectbox if w.key == "agreement.pair_a").options
    assert len(names) == 7 and "b/p1/f2" not in names
    # the analysis, called directly
    runs = run_predictions(store, Query("t", ("a", "b"), ("0", "1"), (1, 2)))
    assert runs.left_out == (("b/p1/f2", "predicts 4 of the 6 shared instances"),)
    assert len(runs.runs) == 7 and runs.preds.shape == (7, 6)
    # a run that does not exist is named too
    other = _two_size_store(tmp_path / "other", {"a": [1.0], "b": [1.0]},
                            drop=(("b", "1", 2),), absent=(("a", "0", 1),))
    # (both sizes selected by name: the default selection leaves an incomplete size out)
    missing = open_page(other.home, "pages/agreement.py", {"task": "t", "sizes": ["a", "b"]})
    warning = next(w.value for w in missing.warning if "left out" in w.value)
    assert warning.startswith("2 selected run(s) left out")
    assert ("`a/p0/f1` (no such run), `b/p1/f2` (predicts 4 of the 6 shared instances)"
            in warning)


def test_agreement_says_nothing_when_every_run_is_complete(tmp_path):
    store = _two_size_store(tmp_path / "home", {"a": [1.0], "b": [1.0]})
    at = open_page(store.home, "pages/agreement.py", {"task": "t"})
    assert not [w for w in at.warning if "left out" in w.value]


# --- issue 11: 3-class BH on class probabilities, odd P baseline -------------------------


def _contract_bh(store: Store, task: str, small: str, large: str, seeds: list[str],
                 finetune: list[int], ids: list[str], checkpoint="last"
                 ) -> tuple[pd.Series, pd.Series, float]:
    """The contract's BH comparison, from the long prediction table: a pretraining seed's
    ensemble is right when the argmax of its class probabilities averaged over fine-tuning
    seeds is the gold label; one-sided Fisher exact test (scipy) on the counts; BH
    adjustment (scipy); bound max_q (k_q / N)(1 - q). Returns (raw, adjusted, bound)."""
    from scipy.stats import fisher_exact

    labels = store.label_list(task)
    gold = store.instances(task).set_index("instance_id")["label"].map(labels.index)
    counts = {}
    for size in (small, large):
        frame = store.predictions(task=task, size=size, checkpoint=checkpoint,
                                  columns=["pretrain_seed", "finetune_seed", "instance_id",
                                           "probs"])
        frame = frame[frame["pretrain_seed"].isin(seeds)
                      & frame["finetune_seed"].isin(finetune)]
        right = {}
        for (seed, instance), group in frame.groupby(["pretrain_seed", "instance_id"]):
            mean = np.mean(np.stack(group["probs"].to_list()), axis=0)
            right[seed, instance] = int(np.argmax(mean) == gold[instance])
        counts[size] = pd.Series({i: sum(right[s, i] for s in seeds) for i in ids})
    m = len(seeds)
    raw = pd.Series({i: fisher_exact([[counts[small][i], m - counts[small][i]],
                                      [counts[large][i], m - counts[large][i]]],
                                     alternative="greater")[1] for i in ids})
    adjusted = pd.Series(false_discovery_control(raw.to_numpy()), index=raw.index)
    qs = np.arange(1, 100) / 100
    bound = max((adjusted <= q).sum() / len(ids) * (1 - q) for q in qs)
    return raw, adjusted, float(bound)


@pytest.fixture(scope="module")
def three_class(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("mnli") / "home")
    write_study(store, {"n_instances": 150, "sizes": ("mini", "large"), "pretrain_seeds": 3,
                        "finetune_seeds": 3, "checkpoints": 1, "n_classes": 3, "seed": 11,
                        "decaying_share": 0.2, "task": "mnli3"})
    return store


def test_three_class_bh_is_the_argmax_of_mean_class_probabilities(three_class):
    store = three_class
    at = open_page(store.home, "pages/decaying.py", {"task": "mnli3", "decaying.show": "all"})
    rows = browser_frame(at).set_index("instance_id")
    ids = list(rows.index)
    finetune = sorted(store.runs("mnli3")["finetune_seed"].astype(int).unique().tolist())
    raw, adjusted, bound = _contract_bh(store, "mnli3", "mini", "large", ["0", "1", "2"],
                                        finetune, ids)
    np.testing.assert_allclose(rows[RAW], raw.reindex(ids), rtol=1e-12)
    np.testing.assert_allclose(rows[ADJUSTED], adjusted.reindex(ids), rtol=1e-12)
    assert metric(at, "BH lower bound") == f"{bound:.1%}" and bound > 0
    # the gold-label probability alone (> 0.5) would have given other p-values: the test
    # tells the two definitions apart on this data
    small = store.arrays("mnli3", "mini")
    large = store.arrays("mnli3", "large")
    a = (small.p_correct.mean(axis=2) > 0.5).sum(axis=1)
    b = (large.p_correct.mean(axis=2) > 0.5).sum(axis=1)
    gold_only = pd.Series(stats.fisher_pvalues(a, b, 3), index=small.instance_ids)
    assert not np.allclose(gold_only.reindex(ids), raw.reindex(ids))
    assert said(at, "mean class probabilities")


def test_odd_pretraining_seeds_name_the_baseline_and_the_seed_left_out(three_class):
    at = open_page(three_class.home, "pages/decaying.py", {"task": "mnli3"})
    expected = stats.decay_bounds(three_class.arrays("mnli3", "mini").correct,
                                  three_class.arrays("mnli3", "large").correct)
    seeds = ["0", "1", "2"]
    half_a = ", ".join(seeds[i] for i in expected.baseline_seeds_a)
    half_b = ", ".join(seeds[i] for i in expected.baseline_seeds_b)
    left = seeds[expected.baseline_left_out]
    assert expected.baseline_left_out is not None
    caption = next(t for t in shown_texts(at) if "random baseline" in t)
    assert plain(caption).endswith(plain(
        f" · random baseline: pretraining seeds {half_a} against {half_b}; seed {left} is left"
        " out of the comparison (observed and baseline), so that the two halves are of equal"
        " size."))
    assert metric(at, "Decaying (lower bound)") == f"{expected.decaying:.1%}"
    # two seeds selected: an even split, nothing left out
    even = open_page(three_class.home, "pages/decaying.py",
                     {"task": "mnli3", "pretrain_seeds": ["0", "2"]})
    caption = next(t for t in shown_texts(even) if "random baseline" in t)
    assert plain(caption).endswith(plain(" · random baseline: pretraining seeds 0 against 2."))


def test_three_class_runs_without_class_probabilities_are_refused(tmp_path):
    store = Store(tmp_path / "home")
    ids = [f"i{k}" for k in range(4)]
    with store.transaction("test", "no probs") as tx:
        tx.set_task("t3", ["a", "b", "c"])
        tx.add_instances("t3", pd.DataFrame({"instance_id": ids, "split": "dev",
                                             "text_a": ids, "label": ["a", "b", "c", "a"]}))
        for size in ("s", "l"):
            for p in ("0", "1"):
                for f in (1, 2):
                    tx.add_run(RunData("t3", size, p, f, pa.table({
                        "checkpoint": [1.0] * 4, "instance_id": ids, "pred": [0, 1, 2, 1],
                        "correct": [True, True, True, False], "p_correct": [0.6, 0.5, 0.4, 0.2],
                        "probs": pa.array([None] * 4, pa.list_(pa.float32()))}),
                        source="test"))
    at = open_page(store.home, "pages/decaying.py", {"task": "t3"})
    assert [w.value for w in at.warning] == [
        ("The BH comparison of a 3-class task decides each seed ensemble by the argmax of its"
         " mean class probabilities, and the runs of l or s do not keep class probabilities"
         " (the gold-label probability alone cannot tell the argmax for more than 2"
         " classes).")]


def test_store_class_probs_line_up_with_the_arrays(home):
    store = Store(home)
    for checkpoint in ("last", 1.0):
        arrays = store.arrays("nli_sim", "mini", ["2", "0"], [3, 1], checkpoint)
        probs = store.class_probs("nli_sim", "mini", ["2", "0"], [3, 1], checkpoint)
        assert probs.shape == (60, 2, 2, 3)
        np.testing.assert_array_equal(probs.argmax(axis=3), arrays.pred)
        gold = np.take_along_axis(probs, arrays.labels[:, None, None, None], axis=3)[..., 0]
        np.testing.assert_allclose(gold, arrays.p_correct, rtol=1e-6)
    # a seed the size lacks, and a checkpoint no run has, are NaN
    probs = store.class_probs("nli_sim", "mini", ["0", "9"], [1], 5.0)
    assert np.isnan(probs).all()
    probs = store.class_probs("nli_sim", "mini", ["0", "9"], [1])
    assert not np.isnan(probs[:, 0]).any() and np.isnan(probs[:, 1]).all()
