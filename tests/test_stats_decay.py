"""seedlab.stats.decay: hand-checked bounds, CDF bins, BH comparison and momentum."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as sps

from seedlab import stats


def test_cdf_bins():
    # floor((v + 1 - 0.001) * 100): -1 -> -1 (clipped to 0), -0.99 -> 0, -0.98 -> 1,
    # 0 -> 99, 0.005 -> 100, 1 -> 199. Counts start from zero.
    cdf = stats.empirical_cdf(np.array([-1, -0.99, -0.98, 0, 0.005, 1]))
    assert cdf.shape == (200,)
    assert cdf[0] == pytest.approx(2 / 6)
    assert cdf[1] == pytest.approx(3 / 6)
    assert cdf[98] == pytest.approx(3 / 6)
    assert cdf[99] == pytest.approx(4 / 6)
    assert cdf[100] == pytest.approx(5 / 6)
    assert cdf[198] == pytest.approx(5 / 6) and cdf[199] == pytest.approx(1.0)


def test_one_decaying_instance_of_two():
    # Instance 0: small always right, large always wrong -> d = -1, b = 0.
    # Instance 1: both always right -> d = 0, b = 0.
    # CDF_d = 1/2 from the first bin, CDF_b = 0 below t = 0: decaying bound 1/2.
    small = np.ones((2, 4, 2))
    large = np.ones((2, 4, 2))
    large[0] = 0
    res = stats.decay_bounds(small, large)
    np.testing.assert_allclose(res.diff, [-1, 0])
    np.testing.assert_allclose(res.baseline, [0, 0])
    assert res.decaying == pytest.approx(0.5)
    assert res.improving == pytest.approx(0.0)
    assert res.grid[0] == pytest.approx(-0.99) and res.grid[99] == pytest.approx(0.0)
    assert res.grid[-1] == pytest.approx(1.0)


def test_random_baseline_halves():
    # P = 4: H1 = seeds 0, 1; H2 = seeds 2, 3. Both sizes right on H1 only:
    # b = (0 + 0)/2 - (1 + 1)/2 = -1, d = 0.
    small = np.zeros((1, 4, 3))
    small[:, :2] = 1
    res = stats.decay_bounds(small, small.copy())
    assert res.baseline[0] == pytest.approx(-1.0)
    assert res.diff[0] == pytest.approx(0.0)
    # d has less spread than b here: the bound stays 0 though the unrestricted max is 1.
    assert res.decaying == 0.0 and res.improving == 0.0
    assert res.decaying_any_t == 0.0 and res.improving_any_t == pytest.approx(1.0)


def test_improving_instances():
    # Three of four instances: small always wrong, large always right -> d = 1, b = 0.
    small = np.zeros((4, 2, 2))
    large = np.ones((4, 2, 2))
    small[3] = 1
    res = stats.decay_bounds(small, large)
    assert res.improving == pytest.approx(0.75)
    assert res.decaying == 0.0


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(2, 6), st.integers(1, 3)),
              elements=st.sampled_from([0.0, 1.0])))
def test_same_runs_give_zero_bounds(correct):
    res = stats.decay_bounds(correct, correct.copy())
    assert res.decaying == 0.0
    assert res.improving == 0.0


def test_bh_hand_case():
    # M = 5 seeds, F = 1. Three instances: small right on all 5 seeds, large on none:
    # one-sided Fisher p = 1 / C(10, 5) = 1/252. Seven instances: both right everywhere (p = 1).
    # BH adjusted p of the three = (1/252) * 10 / 3 = 0.0132: no discovery at q = 0.01,
    # three from q = 0.02 on. Bound = max_q (3/10)(1 - q) = 0.3 * 0.98.
    small = np.ones((10, 5, 1))
    large = np.ones((10, 5, 1))
    large[:3] = 0
    details = stats.bh_details(small, large)
    assert details["pvalues"][:3] == pytest.approx([1 / 252] * 3)
    assert details["pvalues"][3:] == pytest.approx([1.0] * 7)
    assert details["discoveries"][0] == 0 and details["discoveries"][1] == 3
    assert details["q"] == pytest.approx(0.02)
    assert stats.bh_bound(small, large) == pytest.approx(0.3 * 0.98)


def test_bh_ensembles_and_pvalue_cache():
    rng = np.random.default_rng(0)
    small = rng.random((300, 6, 3))
    large = rng.random((300, 6, 3))
    details = stats.bh_details(small, large)
    a = (small.mean(axis=2) > 0.5).sum(axis=1)
    b = (large.mean(axis=2) > 0.5).sum(axis=1)
    np.testing.assert_array_equal(details["a"], a)
    for i in range(0, 300, 37):
        expected = sps.fisher_exact([[a[i], 6 - a[i]], [b[i], 6 - b[i]]],
                                    alternative="greater").pvalue
        assert details["pvalues"][i] == pytest.approx(expected)
    adjusted = sps.false_discovery_control(details["pvalues"])
    k = np.array([(adjusted <= q).sum() for q in np.arange(1, 100) / 100])
    np.testing.assert_array_equal(details["discoveries"], k)
    assert details["bound"] == pytest.approx(np.max(k / 300 * (1 - np.arange(1, 100) / 100)))


def test_bh_with_class_probabilities():
    # Three classes; the ensemble is right where argmax of the mean probabilities is gold.
    probs = np.zeros((2, 2, 2, 3))
    probs[0, :, :, 0] = 0.6  # instance 0: class 0 favoured everywhere
    probs[0, :, :, 1] = 0.4
    probs[1, :, 0, 2] = 1.0  # instance 1: seed-mean 0.5 for class 2 and 0.5 for class 1
    probs[1, :, 1, 1] = 1.0
    correct = stats.ensemble_correct(probs, labels=np.array([0, 2]))
    np.testing.assert_array_equal(correct, [[True, True], [False, False]])
    with pytest.raises(ValueError, match="need labels"):
        stats.ensemble_correct(probs)


def test_instance_difference_correlation():
    # Bucket [0.5, 0.6): prev = 0.1, 0.2, 0.3 and next = -0.1, -0.2, -0.3: correlation -1.
    acc2 = np.array([0.5, 0.55, 0.58, 1.0, 0.05])
    acc1 = acc2 - np.array([0.1, 0.2, 0.3, 0.0, 0.0])
    acc3 = acc2 + np.array([-0.1, -0.2, -0.3, 0.0, 0.0])
    frame = stats.instance_difference_correlation(acc1, acc2, acc3)
    assert frame["bucket"].tolist() == pytest.approx(np.arange(10) / 10)
    assert frame["n"].tolist() == [1, 0, 0, 0, 0, 3, 0, 0, 0, 0]  # acc2 = 1 is in no bucket
    row = frame.iloc[5]
    assert row["pearson"] == pytest.approx(-1.0) and row["spearman"] == pytest.approx(-1.0)
    assert np.isnan(frame.iloc[0]["pearson"])


def test_decay_rejects_mismatched_or_missing():
    with pytest.raises(ValueError, match="same"):
        stats.decay_bounds(np.ones((3, 2, 2)), np.ones((3, 3, 2)))
    bad = np.ones((3, 2, 2))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stats.decay_bounds(bad, np.ones((3, 2, 2)))


def test_fisher_pvalues_equal_scipy_on_every_table():
    for m in (1, 2, 5, 10, 25):
        a, b = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
        got = stats.fisher_pvalues(a.ravel(), b.ravel(), m)
        expected = [sps.fisher_exact([[x, m - x], [y, m - y]], alternative="greater").pvalue
                    for x, y in zip(a.ravel(), b.ravel())]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    # by hand: m = 2, a = 2, b = 0 -> P(X >= 2) with 2 correct among 4 = 1 / C(4, 2)
    assert stats.fisher_pvalues(np.array([2]), np.array([0]), 2)[0] == 1 / 6


def test_bh_adjust_equals_scipy():
    rng = np.random.default_rng(3)
    for ps in (rng.random(500), rng.random(40) ** 4, np.array([0.01, 0.04, 0.03, 0.2, 1.0]),
               np.array([0.5, 0.5, 0.5, 0.01]), np.array([0.3])):
        np.testing.assert_allclose(stats.bh_adjust(ps), sps.false_discovery_control(ps),
                                   rtol=1e-15, atol=0)
    # by hand: sorted 0.01, 0.03, 0.04, 0.2, 1.0 -> x5/1, x5/2, x5/3, x5/4, x5/5, then the
    # running minimum from the top: 0.05, 0.0667, 0.0667, 0.25, 1.0
    np.testing.assert_allclose(stats.bh_adjust(np.array([0.01, 0.04, 0.03, 0.2, 1.0])),
                               [0.05, 0.2 / 3, 0.2 / 3, 0.25, 1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.bh_adjust(np.array([0.2, 1.5]))


# ---------------------------------------------------------------------------------------
# Odd numbers of pretraining seeds: equal halves (issue 11, item 1)


def test_odd_p_leaves_the_last_seed_out_of_diff_and_baseline():
    # P = 3, F = 2, one instance. Seeds 0 and 2 always right for the small size, seed 1
    # never; the large size equals it except seed 2, never right. The last seed is left
    # out: d over seeds 0, 1 = (1/2 - 1/2) = 0 (over all three seeds it would be -1/3);
    # b = H2 (seed 1: 0) - H1 (seed 0: 1) = -1.
    small = np.zeros((1, 3, 2))
    small[:, [0, 2]] = 1
    large = small.copy()
    large[:, 2] = 0
    res = stats.decay_bounds(small, large)
    assert res.baseline_seeds_a == (0,) and res.baseline_seeds_b == (1,)
    assert res.baseline_left_out == 2
    assert res.diff[0] == pytest.approx(0.0) and res.baseline[0] == pytest.approx(-1.0)
    # Leaving out seed 0 instead: d over seeds 1, 2 = (0 - 1/2) = -1/2, b = seed 2 - seed 1
    # = (1 + 0)/2 - 0 = 1/2.
    other = stats.decay_bounds(small, large, left_out=0)
    assert (other.baseline_seeds_a, other.baseline_seeds_b) == ((1,), (2,))
    assert other.baseline_left_out == 0
    assert other.diff[0] == pytest.approx(-0.5) and other.baseline[0] == pytest.approx(0.5)
    assert stats.decay_bounds(small, large, left_out=-3).baseline_left_out == 0


def test_even_p_uses_every_seed_and_refuses_left_out():
    small = np.ones((2, 4, 2))
    res = stats.decay_bounds(small, small)
    assert res.baseline_seeds_a == (0, 1) and res.baseline_seeds_b == (2, 3)
    assert res.baseline_left_out is None
    with pytest.raises(ValueError, match=r"left_out is for an odd number of pretraining"
                                         r" seeds; P = 4 splits into equal halves"):
        stats.decay_bounds(small, small, left_out=1)
    with pytest.raises(ValueError, match=r"left_out must be a seed position in \[0, 3\),"
                                         r" got 3"):
        stats.decay_bounds(np.ones((2, 3, 2)), np.ones((2, 3, 2)), left_out=3)


def null_study(rng: np.random.Generator, n: int, n_pre: int, n_fine: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Two sizes drawn from one model: per-instance difficulty, per-(instance, seed)
    effects, Bernoulli correctness; no instance truly decays or improves."""
    logit = rng.normal(0, 1.5, n)[:, None, None] + rng.normal(0, 0.5, (n, n_pre, 1))
    prob = 1 / (1 + np.exp(-logit))
    return ((rng.random((n, n_pre, n_fine)) < prob).astype(float),
            (rng.random((n, n_pre, n_fine)) < prob).astype(float))


def unequal_halves_bound(small: np.ndarray, large: np.ndarray) -> float:
    """The bound with halves of P // 2 and P - P // 2 seeds (the behaviour before issue 11)."""
    half = small.shape[1] // 2
    both = (small + large) / 2
    baseline = both[:, half:].mean(axis=(1, 2)) - both[:, :half].mean(axis=(1, 2))
    diff = large.mean(axis=(1, 2)) - small.mean(axis=(1, 2))
    gap = stats.empirical_cdf(diff) - stats.empirical_cdf(baseline)
    return max(0.0, gap[:99].max())


def test_null_bound_for_odd_p_is_as_small_as_for_even_p():
    # Under a null (4,000 instances, 5 fine-tuning seeds, 8 studies per P) the unequal
    # halves gave about 0.07 (P = 3) and 0.05 (P = 5); equal halves give what even P
    # gives, below 0.005 on average here (docs/stats.md has the table).
    rng = np.random.default_rng(11)
    means = {}
    for n_pre in (3, 4, 5):
        bounds, old = [], []
        for _ in range(8):
            small, large = null_study(rng, 4000, n_pre, 5)
            bounds.append(stats.decay_bounds(small, large).decaying)
            old.append(unequal_halves_bound(small, large))
        means[n_pre] = (np.mean(bounds), np.mean(old))
    print(means)
    assert means[3][1] > 0.04 and means[5][1] > 0.03  # the old halves: a spurious bound
    assert means[3][0] < 0.005 and means[5][0] < 0.005 and means[4][0] < 0.005


# ---------------------------------------------------------------------------------------
# Ensembles of 3 or more classes (issue 11, item 2)


def three_class_probs(rng: np.random.Generator, n: int, n_pre: int, n_fine: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(N, P, F, 3) softmax probabilities around a per-instance preference, and labels."""
    labels = rng.integers(0, 3, n)
    logits = (rng.normal(0, 1.0, (n, 1, 1, 3)) + rng.normal(0, 1.0, (n, n_pre, n_fine, 3)))
    logits[np.arange(n), :, :, labels] += 0.3
    probs = np.exp(logits)
    return probs / probs.sum(axis=3, keepdims=True), labels


def test_three_class_ensemble_is_the_argmax_of_mean_probabilities():
    rng = np.random.default_rng(21)
    probs, labels = three_class_probs(rng, 2000, 4, 5)
    got = stats.ensemble_correct(probs, labels, n_classes=3)
    mean = probs.mean(axis=2)  # (N, P, 3)
    expected = np.array([[np.argmax(mean[i, p]) == labels[i] for p in range(4)]
                         for i in range(2000)])
    np.testing.assert_array_equal(got, expected)
    # "Mean gold probability > 0.5" is another answer for many ensembles here.
    gold = probs[np.arange(2000), :, :, labels]  # (N, P, F)
    flips = (gold.mean(axis=2) > 0.5) != expected
    assert flips.mean() > 0.1
    # bh_details counts the same ensembles.
    details = stats.bh_details(probs, probs[:, ::-1], labels=labels, n_classes=3)
    np.testing.assert_array_equal(details["a"], expected.sum(axis=1))
    np.testing.assert_array_equal(details["b"], expected[:, ::-1].sum(axis=1))


def test_gold_only_scores_refused_for_more_than_two_labels():
    rng = np.random.default_rng(22)
    probs, labels = three_class_probs(rng, 50, 3, 2)
    gold = probs[np.arange(50), :, :, labels]
    message = ("gold-label probabilities or correctness (N, P, F) decide an ensemble only"
               " for a 2-class task; this one has 3 labels")
    with pytest.raises(ValueError, match=re.escape(message)):
        stats.ensemble_correct(gold, n_classes=3)
    with pytest.raises(ValueError, match=re.escape(message)):
        stats.ensemble_correct(gold, labels)  # the labels show a third class
    with pytest.raises(ValueError, match=re.escape(message)):
        stats.bh_bound(gold, gold, n_classes=3)
    with pytest.raises(ValueError, match=re.escape(message)):
        stats.bh_details(gold, gold, labels=labels)
    with pytest.raises(ValueError, match=r"n_classes = 2 but the class probabilities have"
                                         r" L = 3 classes"):
        stats.ensemble_correct(probs, labels, n_classes=2)
    with pytest.raises(ValueError, match=r"label 3 is not a class of the probabilities"):
        stats.ensemble_correct(probs, np.full(50, 3))
    with pytest.raises(ValueError, match=r"a -1 is a missing label"):
        stats.ensemble_correct(probs, np.full(50, -1))


def test_two_classes_gold_probability_equals_class_probabilities():
    rng = np.random.default_rng(23)
    labels = rng.integers(0, 2, 500)
    p1 = rng.random((500, 4, 3))
    probs = np.stack([1 - p1, p1], axis=3)
    gold = probs[np.arange(500), :, :, labels]
    np.testing.assert_array_equal(stats.ensemble_correct(gold, labels, n_classes=2),
                                  stats.ensemble_correct(probs, labels))
    assert stats.bh_bound(gold, gold[:, ::-1], n_classes=2) == stats.bh_bound(
        probs, probs[:, ::-1], labels=labels)


# ---------------------------------------------------------------------------------------
# Scores out of range, momentum with checkpoints (issue 11, item 4 and "Also")


def test_decay_refuses_missing_codes_and_class_ids():
    small = np.ones((10, 4, 5))
    small[:4, 0, :] = -1  # 20 cells
    message = ("decay_bounds: small: scores must be 0/1 correctness or probabilities in"
               " [0, 1]; found values -1 at 20 cells (first at index (0, 0, 0)): the store's"
               " code for a missing cell? select complete seeds first")
    with pytest.raises(ValueError, match=re.escape(message)):
        stats.decay_bounds(small, np.ones((10, 4, 5)))
    class_ids = np.tile(np.array([0, 1, 2, 1, 0])[:, None, None], (1, 4, 2))
    with pytest.raises(ValueError, match=re.escape(
            "large: scores must be 0/1 correctness or probabilities in [0, 1]; found values"
            " 2 at 8 cells (first at index (2, 0, 0)): class ids passed instead of"
            " correctness or gold-label probabilities?")):
        stats.decay_bounds(np.ones((5, 4, 2)), class_ids)
    above_one = np.ones((3, 2, 2))
    above_one[1, 0, 1] = 1.5
    with pytest.raises(ValueError, match=re.escape(
            "ensemble_correct: scores: scores must be 0/1 correctness or probabilities in"
            " [0, 1]; found values 1.5 at 1 cell (first at index (1, 0, 1))")):
        stats.bh_bound(above_one, np.ones((3, 2, 2)))


def test_momentum_refuses_four_dimensional_input_without_a_checkpoint():
    rng = np.random.default_rng(24)
    four = [(rng.random((30, 2, 2, 3)) < 0.6).astype(float) for _ in range(3)]
    with pytest.raises(ValueError, match=re.escape(
            "instance_difference_correlation: acc1 is 4-D (30, 2, 2, 3), with checkpoints:"
            " pass checkpoint= (e.g. -1, the last) instead of averaging over them")):
        stats.instance_difference_correlation(*four)
    got = stats.instance_difference_correlation(*four, checkpoint=-1)
    expected = stats.instance_difference_correlation(*(c[..., -1] for c in four))
    pd.testing.assert_frame_equal(got, expected)
    with pytest.raises(ValueError, match="checkpoint 3 is not an index of the 3 checkpoints"):
        stats.instance_difference_correlation(*four, checkpoint=3)
    with pytest.raises(ValueError, match=r"found values -1 at 1 cell"):
        stats.instance_difference_correlation(np.array([0.5, -1.0]), np.ones(2), np.ones(2))
