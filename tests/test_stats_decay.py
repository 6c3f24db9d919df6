"""seedlab.stats.decay: hand-checked bounds, CDF bins, BH comparison and momentum."""

from __future__ import annotations

import numpy as np
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
