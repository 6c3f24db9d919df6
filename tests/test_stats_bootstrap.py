"""seedlab.stats.bootstrap: the Multi-Bootstrap against hand cases, the loop reference
(same random stream, equal results) and its coverage on simulated data."""

from __future__ import annotations

import numpy as np
import pytest
from stats_oracles import multibootstrap_loop

from seedlab import stats


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
    slow = multibootstrap_loop(preds, labels, seeds, treat, nboot=40, rng=5, chunk=16,
                               finetune_seeds=fine, **options)
    for name in ("base", "expt", "delta"):
        np.testing.assert_allclose(fast["draws"][name], slow["draws"][name], rtol=0,
                                   atol=1e-12)
        assert fast[name] == pytest.approx(slow[name], abs=1e-12)
    assert fast.get("thresholds") == slow.get("thresholds")


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
