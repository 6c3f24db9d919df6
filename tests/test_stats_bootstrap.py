"""seedlab.stats.bootstrap: the Multi-Bootstrap against hand cases, the loop reference
(same random stream, equal results) and its coverage on simulated data."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest
from stats_oracles import multibootstrap_loop

from seedlab import stats
from seedlab.stats import bootstrap


def two_arms(rng: np.random.Generator, n: int = 300, n_seeds: int = 4, n_fine: int = 3,
             acc_base: float = 0.70, acc_expt: float = 0.75, n_classes: int = 2):
    """Runs of two arms: (preds (R, N), labels (N,), seeds (R,), finetune (R,), treatment)."""
    labels = rng.integers(0, n_classes, n)
    preds, seeds, fine, treat = [], [], [], []
    for arm, acc in ((False, acc_base), (True, acc_expt)):
        for s in range(n_seeds):
            shift = rng.uniform(-0.05, 0.05)
            for f in range(n_fine):
                ok = rng.random(n) < acc + shift
                wrong = (labels + rng.integers(1, n_classes, n)) % n_classes
                preds.append(np.where(ok, labels, wrong))
                seeds.append(s)
                fine.append(f)
                treat.append(arm)
    return np.array(preds), labels, np.array(seeds), np.array(fine), np.array(treat)


def test_no_resampling_gives_the_point_estimate():
    # Base: seed 0 runs score 1/2 and 1 (mean 3/4), seed 1 runs 1/4 and 1/4 (mean 1/4):
    # base = 1/2. Expt: seed 0 runs 1, 1; seed 1 runs 3/4, 3/4: expt = 7/8. delta = 3/8.
    labels = np.array([0, 0, 0, 0])
    preds = np.array([[0, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 1], [1, 0, 1, 1],
                      [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]])
    seeds = [0, 0, 1, 1, 0, 0, 1, 1]
    treatment = [False] * 4 + [True] * 4
    res = stats.multibootstrap(preds, labels, seeds, treatment, nboot=20, rng=0,
                               sample_seeds=False, sample_examples=False)
    assert res["base"] == pytest.approx({"mean": 0.5, "low": 0.5, "high": 0.5})
    assert res["expt"] == pytest.approx({"mean": 0.875, "low": 0.875, "high": 0.875})
    assert res["delta"]["mean"] == pytest.approx(0.375)
    assert res["delta"]["p"] == pytest.approx(1 / 20)  # never below 1 / nboot
    assert res["estimate"] == pytest.approx({"base": 0.5, "expt": 0.875, "delta": 0.375})
    assert res["seed"] == 0 and res["seeds"] == {"base": [0, 1], "expt": [0, 1]}
    assert "thresholds" not in res
    with_thresholds = stats.multibootstrap(preds, labels, seeds, treatment, nboot=20, rng=0,
                                           sample_seeds=False, sample_examples=False,
                                           thresholds=[0.3, 0.4])
    assert with_thresholds["thresholds"] == {0.3: 1.0, 0.4: 0.0}


def test_result_shape():
    preds, labels, seeds, _fine, treat = two_arms(np.random.default_rng(0))
    res = stats.multibootstrap(preds, labels, seeds, treat, nboot=100, rng=1)
    assert set(res["base"]) == {"mean", "low", "high"}
    assert set(res["expt"]) == {"mean", "low", "high"}
    assert set(res["delta"]) == {"mean", "low", "high", "p"}
    assert res["draws"]["delta"].shape == (100,)
    np.testing.assert_allclose(res["draws"]["delta"],
                               res["draws"]["expt"] - res["draws"]["base"])
    assert res["delta"]["low"] <= res["delta"]["mean"] <= res["delta"]["high"]
    assert res["delta"]["p"] == pytest.approx(max((res["draws"]["delta"] <= 0).mean(), 0.01))
    assert res["runs"] == {"base": 12, "expt": 12} and res["n_examples"] == 300


@pytest.mark.parametrize("options", [
    {},
    {"paired": False},
    {"sample_finetune": True},
    {"sample_finetune": True, "paired": False},
    {"sample_seeds": False},
    {"sample_examples": False},
    {"metric": "f1"},
    {"metric": "mcc"},
    {"expected_sign": -1, "confidence": 0.9, "thresholds": [0.0, 0.02]},
])
def test_vectorised_equals_loop(options):
    preds, labels, seeds, fine, treat = two_arms(np.random.default_rng(2), n=200)
    fast = stats.multibootstrap(preds, labels, seeds, treat, nboot=40, rng=5, chunk=16,
                                finetune_seeds=fine, **options)
    slow = multibootstrap_loop(preds, labels, seeds, treat, nboot=40, rng=5,
                               finetune_seeds=fine, **options)
    for name in ("base", "expt", "delta"):
        np.testing.assert_allclose(fast["draws"][name], slow["draws"][name], rtol=0,
                                   atol=1e-12)
        assert fast[name] == pytest.approx(slow[name], abs=1e-12)
    assert fast.get("thresholds") == slow.get("thresholds")


@pytest.mark.parametrize("options", [{}, {"sample_finetune": True, "paired": False},
                                     {"metric": "mcc"}])
def test_seed_blocks_and_chunks_do_not_change_the_draws(monkeypatch, options):
    # Blocks of 16 replicates' seeds, chunks of 7 replicates' examples (not aligned with
    # the blocks): the same draws as the loop that reads the stream replicate by replicate.
    monkeypatch.setattr(bootstrap, "SEED_BLOCK", 16)
    preds, labels, seeds, fine, treat = two_arms(np.random.default_rng(9), n=100)
    fast = stats.multibootstrap(preds, labels, seeds, treat, nboot=40, rng=2, chunk=7,
                                finetune_seeds=fine, **options)
    slow = multibootstrap_loop(preds, labels, seeds, treat, nboot=40, rng=2,
                               finetune_seeds=fine, **options)
    np.testing.assert_allclose(fast["draws"]["delta"], slow["draws"]["delta"], rtol=0,
                               atol=1e-12)


def test_mean_metric_and_three_classes():
    rng = np.random.default_rng(3)
    preds, labels, seeds, _fine, treat = two_arms(rng, n=150, n_classes=3)
    loss = rng.random(preds.shape)
    fast = stats.multibootstrap(loss, labels, seeds, treat, nboot=30, rng=1, metric="mean")
    slow = multibootstrap_loop(loss, labels, seeds, treat, nboot=30, rng=1, metric="mean")
    np.testing.assert_allclose(fast["draws"]["delta"], slow["draws"]["delta"], atol=1e-12)
    macro = stats.multibootstrap(preds, labels, seeds, treat, nboot=30, rng=1, metric="f1")
    assert 0 < macro["base"]["mean"] < 1


def test_paired_identical_arms_have_zero_delta_unpaired_do_not():
    preds, labels, seeds, _fine, treat = two_arms(np.random.default_rng(4))
    half = len(preds) // 2
    preds[half:] = preds[:half]  # the treatment arm repeats the baseline runs
    paired = stats.multibootstrap(preds, labels, seeds, treat, nboot=50, rng=0)
    np.testing.assert_allclose(paired["draws"]["delta"], 0.0, atol=1e-12)
    assert paired["delta"]["p"] == 1.0
    unpaired = stats.multibootstrap(preds, labels, seeds, treat, nboot=50, rng=0,
                                    paired=False)
    assert unpaired["draws"]["delta"].std() > 0.001


def test_paired_drops_seeds_only_one_arm_has():
    preds, labels, seeds, _fine, treat = two_arms(np.random.default_rng(5))
    keep = ~(treat & (seeds == 3))  # the treatment arm lacks seed 3
    with pytest.warns(UserWarning, match=r"only one arm has: \[3\]"):
        res = stats.multibootstrap(preds[keep], labels, seeds[keep], treat[keep], nboot=20,
                                   rng=0)
    assert res["seeds"] == {"base": [0, 1, 2], "expt": [0, 1, 2]}
    assert res["runs"] == {"base": 9, "expt": 9}
    assert res["warnings"] and "[3]" in res["warnings"][0]


def test_reproducible_and_seed_reported():
    preds, labels, seeds, _fine, treat = two_arms(np.random.default_rng(6))
    first = stats.multibootstrap(preds, labels, seeds, treat, nboot=50)
    again = stats.multibootstrap(preds, labels, seeds, treat, nboot=50, rng=first["seed"])
    np.testing.assert_array_equal(first["draws"]["delta"], again["draws"]["delta"])


def test_input_errors():
    preds, labels, seeds, _fine, treat = two_arms(np.random.default_rng(7), n=20)
    with pytest.raises(ValueError, match="labels must have shape"):
        stats.multibootstrap(preds, labels[:5], seeds, treat)
    with pytest.raises(ValueError, match="each arm"):
        stats.multibootstrap(preds, labels, seeds, np.zeros(len(preds), bool))
    with pytest.raises(ValueError, match="share no"):
        stats.multibootstrap(preds, labels, np.where(treat, seeds + 10, seeds), treat)
    with pytest.raises(ValueError, match="unknown metric"):
        stats.multibootstrap(preds, labels, seeds, treat, metric="bleu")
    with pytest.raises(ValueError, match="appears twice"):
        stats.multibootstrap(preds, labels, seeds, treat, finetune_seeds=np.zeros(len(preds)))


def test_ci_covers_the_true_difference_at_about_the_nominal_rate():
    # 200 simulated studies, true delta 0.03: per-seed shifts (uniform +-0.1) and
    # per-example difficulty (uniform +-0.15, shared by both arms), 20 seeds, 400 examples.
    # The 95% interval should cover 0.03 in about 95% of studies: the binomial standard
    # error over 200 studies is 0.015, so [0.90, 0.99] is a three-sigma band.
    rng = np.random.default_rng(123)
    n, n_seeds, covered = 400, 20, 0
    for study in range(200):
        difficulty = rng.uniform(-0.15, 0.15, n)
        preds, seeds, treat = [], [], []
        for arm, acc in ((False, 0.70), (True, 0.73)):
            for s in range(n_seeds):
                ok = rng.random(n) < acc + difficulty + rng.uniform(-0.1, 0.1)
                preds.append(np.where(ok, 0, 1))
                seeds.append(s)
                treat.append(arm)
        res = stats.multibootstrap(np.array(preds), np.zeros(n, int), seeds, treat,
                                   nboot=100, rng=study)
        covered += res["delta"]["low"] <= 0.03 <= res["delta"]["high"]
    print("coverage", covered / 200)
    assert 0.90 <= covered / 200 <= 0.99


# ---------------------------------------------------------------------------------------
# Thresholds, missing cells, one seed, memory (issue 11, items 3, 6, 7)


def hand_case() -> tuple[np.ndarray, np.ndarray, list[int], list[bool]]:
    """The runs of ``test_no_resampling_gives_the_point_estimate``: base 1/2, expt 7/8."""
    labels = np.array([0, 0, 0, 0])
    preds = np.array([[0, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 1], [1, 0, 1, 1],
                      [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]])
    return preds, labels, [0, 0, 1, 1, 0, 0, 1, 1], [False] * 4 + [True] * 4


def test_thresholds_follow_the_expected_sign_and_count_ties():
    preds, labels, seeds, treatment = hand_case()
    fixed = {"nboot": 10, "rng": 0, "sample_seeds": False, "sample_examples": False}
    # delta = 3/8 exactly in every replicate: P(delta >= 3/8) = 1 (a tie counts).
    up = stats.multibootstrap(preds, labels, seeds, treatment, thresholds=[0.375, 0.4],
                              **fixed)
    assert up["thresholds"] == {0.375: 1.0, 0.4: 0.0}
    # Arms swapped: delta = -3/8; expecting a negative effect, P(delta <= -t).
    down = stats.multibootstrap(preds, labels, seeds, ~np.array(treatment),
                                thresholds=[0.375, 0.4, -0.5], expected_sign=-1, **fixed)
    assert down["delta"]["mean"] == pytest.approx(-0.375)
    assert down["thresholds"] == {0.375: 1.0, 0.4: 0.0, -0.5: 1.0}
    assert down["delta"]["p"] == pytest.approx(0.1)  # P(delta >= 0) = 0, shown as 1/nboot
    # With resampling, the same tails of the draws.
    big, big_labels, big_seeds, _fine, big_treat = two_arms(np.random.default_rng(30))
    res = stats.multibootstrap(big, big_labels, big_seeds, big_treat, nboot=200, rng=3,
                               thresholds=[0.0, 0.03], expected_sign=-1)
    delta = res["draws"]["delta"]
    assert res["thresholds"] == {0.0: (delta <= 0).mean(), 0.03: (delta <= -0.03).mean()}


def test_missing_prediction_or_label_raises_naming_the_run():
    preds, labels, seeds, _fine, treat = two_arms(np.random.default_rng(31), n=50)
    preds[5, [2, 7, 9]] = -1  # run 5: baseline arm, pretraining seed 1
    with pytest.raises(ValueError, match=re.escape(
            "multibootstrap: run 5 (pretraining seed 1, baseline arm) has 3 missing"
            " predictions (-1 or NaN), first at example 2; drop incomplete runs, or pass"
            " missing='omit' to leave the missing cells out of that run's score")):
        stats.multibootstrap(preds, labels, seeds, treat, nboot=10, rng=0)
    preds[5, [2, 7, 9]] = 0
    labels = labels.copy()
    labels[[4, 8]] = -1
    preds[:, 4] = -1  # a -1 prediction equal to a -1 label was scored right before
    with pytest.raises(ValueError, match=re.escape(
            "multibootstrap: labels has 2 missing labels (-1 or NaN), first at example 4")):
        stats.multibootstrap(preds, labels, seeds, treat, nboot=10, rng=0)
    float_preds = preds.astype(float)
    float_preds[:, 4] = np.nan
    with pytest.raises(ValueError, match=r"run 0 \(pretraining seed 0, baseline arm\) has"
                                         r" 1 missing predictions"):
        stats.multibootstrap(float_preds, np.where(labels < 0, 0, labels), seeds, treat,
                             nboot=10, rng=0)


def test_omit_scores_each_run_on_the_examples_it_has():
    preds, labels, seeds, treatment = hand_case()
    preds = preds.copy()
    preds[0, 3] = -1  # run 0 is [0, 0, 1, -]: 2/3 right instead of 1/2
    res = stats.multibootstrap(preds, labels, seeds, treatment, nboot=10, rng=0,
                               sample_seeds=False, sample_examples=False, missing="omit")
    # base = mean(seed 0: (2/3 + 1)/2, seed 1: 1/4) = 13/24
    assert res["base"]["mean"] == pytest.approx(13 / 24)
    assert res["estimate"]["base"] == pytest.approx(13 / 24)
    assert res["missing"] == {"mode": "omit", "cells": 1, "runs": {0: 1},
                              "examples_without_label": 0}
    assert any("left out 1 missing predictions of 1 runs" in w for w in res["warnings"])
    complete = stats.multibootstrap(*hand_case(), nboot=10, rng=0)
    assert complete["missing"] == {"mode": "raise", "cells": 0, "runs": {},
                                   "examples_without_label": 0}


@pytest.mark.parametrize("options", [{}, {"sample_finetune": True}, {"metric": "f1"},
                                     {"paired": False, "metric": "mcc"}])
def test_omit_equals_the_loop_that_drops_the_cells(options):
    rng = np.random.default_rng(32)
    preds, labels, seeds, fine, treat = two_arms(rng, n=120)
    preds[rng.random(preds.shape) < 0.05] = -1
    labels = labels.copy()
    labels[[3, 50]] = -1
    fast = stats.multibootstrap(preds, labels, seeds, treat, nboot=30, rng=4, chunk=8,
                                finetune_seeds=fine, missing="omit", **options)
    slow = multibootstrap_loop(preds, labels, seeds, treat, nboot=30, rng=4,
                               finetune_seeds=fine, missing="omit", **options)
    np.testing.assert_allclose(fast["draws"]["delta"], slow["draws"]["delta"], rtol=0,
                               atol=1e-12)
    assert fast["estimate"] == pytest.approx(slow["estimate"], abs=1e-12)
    assert fast["n_examples"] == 118 and fast["missing"]["examples_without_label"] == 2
    assert fast["missing"]["cells"] == int((preds[:, labels >= 0] < 0).sum())


def test_one_pretraining_seed_is_a_warning_in_the_result():
    preds, labels, seeds, _fine, treat = two_arms(np.random.default_rng(33), n_seeds=1)
    res = stats.multibootstrap(preds, labels, seeds, treat, nboot=20, rng=0)
    message = ("one pretraining seed in the {} arm (0): the interval measures example (and"
               " fine-tuning) noise only, not the variance across pretraining seeds, and is"
               " far too narrow (coverage about 0.4-0.5 of the nominal 0.95 in simulation);"
               " use more seeds")
    assert res["warnings"] == [message.format("baseline"), message.format("treatment")]
    # One seed left after the paired design drops the unshared ones: warned too.
    preds, labels, seeds, _fine, treat = two_arms(np.random.default_rng(34), n_seeds=2)
    keep = ~(treat & (seeds == 1))
    with pytest.warns(UserWarning, match="only one arm has"):
        res = stats.multibootstrap(preds[keep], labels, seeds[keep], treat[keep], nboot=20,
                                   rng=0)
    assert len(res["warnings"]) == 3 and "one pretraining seed" in res["warnings"][1]
    many = stats.multibootstrap(*two_arms(np.random.default_rng(35))[:3],
                                two_arms(np.random.default_rng(35))[4], nboot=20, rng=0)
    assert many["warnings"] == []


def test_peak_memory_does_not_grow_with_nboot():
    # 100 runs x 2,000 examples. Before, the run weights alone were 2 x nboot x R x 8
    # bytes (1,600 bytes a replicate, 8 MB more at nboot = 6,100 than at 1,100); now the
    # seeds of at most 1,024 replicates are drawn at a time and the growth is the
    # returned draws, about 16 bytes a replicate.
    preds, labels, seeds, fine, treat = two_arms(np.random.default_rng(36), n=2000,
                                                 n_seeds=10, n_fine=5)

    def peak(nboot: int) -> int:
        tracemalloc.start()
        stats.multibootstrap(preds, labels, seeds, treat, nboot=nboot, rng=0,
                             finetune_seeds=fine, sample_finetune=True)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(1100), peak(6100)
    print("peak", small, large)
    assert large - small < 100 * 5000


# ---------------------------------------------------------------------------------------
# The nested bootstrap's coverage (documented as conservative in docs/stats.md)


def nested_study(rng: np.random.Generator, n_pre: int, n_fine: int, n: int, delta: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of two arms: accuracy 0.7 (+ delta) + pretraining-seed effect (sd 0.03) +
    fine-tuning effect (sd 0.04) + example difficulty (uniform +-0.15, shared)."""
    difficulty = rng.uniform(-0.15, 0.15, n)
    preds, seeds, fine, treat = [], [], [], []
    for arm, acc in ((False, 0.70), (True, 0.70 + delta)):
        for p in range(n_pre):
            seed_effect = rng.normal(0, 0.03)
            for f in range(n_fine):
                prob = acc + difficulty + seed_effect + rng.normal(0, 0.04)
                preds.append((rng.random(n) >= prob).astype(np.int8))  # 0 = right
                seeds.append(p)
                fine.append(f)
                treat.append(arm)
    return np.array(preds), np.array(seeds), np.array(fine), np.array(treat)


def test_nested_bootstrap_is_conservative():
    # 150 studies with a known true delta of 0.03, P = 5, F = 5, 200 examples. Without
    # nesting, resampling seeds already carries the fine-tuning noise of each seed's mean;
    # resampling fine-tuning runs again counts it twice: wider intervals (coverage at or
    # above nominal) and a bootstrap standard deviation above the true one. The band for
    # coverage is three binomial standard errors (0.018 at 150 studies) around the
    # figures of docs/stats.md.
    rng = np.random.default_rng(40)
    n_studies, truth = 150, 0.03
    covered = {False: 0, True: 0}
    spread = {False: [], True: []}
    estimates = []
    for study in range(n_studies):
        preds, seeds, fine, treat = nested_study(rng, 5, 5, 200, truth)
        labels = np.zeros(preds.shape[1], dtype=np.int8)
        for nested in (False, True):
            res = stats.multibootstrap(preds, labels, seeds, treat, nboot=200, rng=study,
                                       finetune_seeds=fine, sample_finetune=nested)
            covered[nested] += res["delta"]["low"] <= truth <= res["delta"]["high"]
            spread[nested].append(res["draws"]["delta"].std(ddof=1))
        estimates.append(res["estimate"]["delta"])
    true_sd = np.std(estimates, ddof=1)
    ratio = {k: np.mean(v) / true_sd for k, v in spread.items()}
    coverage = {k: v / n_studies for k, v in covered.items()}
    print("coverage", coverage, "sd ratio", ratio)
    assert coverage[True] >= 0.93
    assert coverage[True] >= coverage[False]
    assert ratio[True] > ratio[False] + 0.05 and ratio[True] > 1.05
