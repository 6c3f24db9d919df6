"""seedlab.stats.agreement: hand-checked matrices, a brute-force reference, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from seedlab import stats

PREDS = np.array([[0, 1, 1, 0],
                  [0, 1, 0, 0],
                  [1, 0, 0, 1]])


def test_agreement_hand_case():
    # r0 vs r1 agree on 3 of 4, r0 vs r2 on none, r1 vs r2 on 1 of 4.
    expected = np.array([[1, 0.75, 0], [0.75, 1, 0.25], [0, 0.25, 1]])
    np.testing.assert_allclose(stats.agreement_matrix(PREDS), expected)


def test_kappa_hand_case():
    # Shares: r0 (1/2, 1/2), r1 (3/4, 1/4), r2 (1/2, 1/2).
    # r0-r1: p_e = 3/8 + 1/8 = 1/2, kappa = (3/4 - 1/2) / (1/2) = 1/2.
    # r0-r2: p_e = 1/2, kappa = (0 - 1/2) / (1/2) = -1.
    # r1-r2: p_e = 3/8 + 1/8 = 1/2, kappa = (1/4 - 1/2) / (1/2) = -1/2.
    expected = np.array([[1, 0.5, -1], [0.5, 1, -0.5], [-1, -0.5, 1]])
    np.testing.assert_allclose(stats.kappa_matrix(PREDS), expected)


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    classes = np.union1d(a, b)
    p_o = np.mean(a == b)
    p_e = sum(np.mean(a == k) * np.mean(b == k) for k in classes)
    return (p_o - p_e) / (1 - p_e)


def test_matches_pairwise_loop_on_three_classes():
    preds = np.random.default_rng(0).integers(0, 3, (7, 200))
    agree = stats.agreement_matrix(preds)
    kappa = stats.kappa_matrix(preds)
    np.testing.assert_allclose(stats.kappa_matrix(preds, agreement=agree), kappa)
    binary = preds % 2
    np.testing.assert_allclose(stats.kappa_matrix(binary),
                               [[cohen_kappa(a, b) for b in binary] for a in binary])
    np.testing.assert_allclose(stats.agreement_matrix(binary),
                               [[np.mean(a == b) for b in binary] for a in binary])
    for r in range(7):
        for s in range(7):
            assert agree[r, s] == pytest.approx(np.mean(preds[r] == preds[s]))
            assert kappa[r, s] == pytest.approx(cohen_kappa(preds[r], preds[s]))


def test_small_integer_and_bool_predictions_give_the_same_matrices():
    preds = np.random.default_rng(1).integers(0, 3, (6, 150))
    for dtype in (np.int8, np.uint8, np.int16):
        np.testing.assert_array_equal(stats.agreement_matrix(preds.astype(dtype)),
                                      stats.agreement_matrix(preds))
        np.testing.assert_array_equal(stats.kappa_matrix(preds.astype(dtype)),
                                      stats.kappa_matrix(preds))
        np.testing.assert_array_equal(stats.flip_rate(preds[:3].astype(dtype),
                                                      preds[3:].astype(dtype)),
                                      stats.flip_rate(preds[:3], preds[3:]))
    binary = preds % 2
    np.testing.assert_array_equal(stats.agreement_matrix(binary.astype(bool)),
                                  [[np.mean(a == b) for b in binary] for a in binary])
    with pytest.raises(ValueError, match="negative class index"):
        stats.agreement_matrix(np.array([[0, -1], [1, 1]], dtype=np.int8))


def test_constant_runs_have_undefined_kappa():
    kappa = stats.kappa_matrix(np.array([[1, 1, 1], [1, 1, 1], [0, 1, 0]]))
    assert np.isnan(kappa[0, 1]) and np.isnan(kappa[0, 0])
    assert kappa[2, 2] == pytest.approx(1.0)
    assert kappa[0, 2] == pytest.approx(0.0)  # p_o = 1/3 = p_e


def test_rejects_missing_runs():
    with pytest.raises(ValueError, match=r"missing run.*rows \[1\]"):
        stats.agreement_matrix(np.array([[0, 1], [-1, 1]]))


@settings(max_examples=50, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 8), st.integers(1, 30)),
              elements=st.integers(0, 3)))
def test_agreement_symmetric_with_unit_diagonal(preds):
    agree = stats.agreement_matrix(preds)
    np.testing.assert_allclose(agree, agree.T)
    np.testing.assert_allclose(np.diag(agree), 1.0)
    assert ((agree >= 0) & (agree <= 1 + 1e-12)).all()
    kappa = stats.kappa_matrix(preds)
    np.testing.assert_allclose(kappa, kappa.T, equal_nan=True)


def test_flatten_runs_and_summary():
    # (N=3, P=2, F=2): runs ordered p0f0, p0f1, p1f0, p1f1.
    pred = np.zeros((3, 2, 2), dtype=int)
    pred[:, 0, 1] = [0, 0, 1]
    pred[:, 1, 0] = [1, 1, 1]
    pred[:, 1, 1] = [1, 1, 0]
    runs, pre, fine = stats.flatten_runs(pred)
    assert runs.shape == (4, 3)
    assert pre.tolist() == [0, 0, 1, 1] and fine.tolist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(runs[1], [0, 0, 1])
    agree = stats.agreement_matrix(runs)
    # Same seed pairs: (p0f0, p0f1) = 2/3, (p1f0, p1f1) = 2/3.
    # Different seed pairs: (0,2) 0, (0,3) 1/3, (1,2) 1/3, (1,3) 0.
    summary = stats.agreement_summary(agree, pre, fine)
    assert summary["same_seed"]["mean"] == pytest.approx(2 / 3)
    assert summary["same_seed"]["pairs"] == 2
    assert summary["different_seed"]["mean"] == pytest.approx(1 / 6)
    assert summary["different_seed"]["pairs"] == 4
    assert summary["different_seed"]["std"] == pytest.approx(np.std([0, 1 / 3, 1 / 3, 0],
                                                                     ddof=1))


def test_flip_rate():
    small = np.array([[0, 1, 1, 0], [1, 1, 1, 1]])
    large = np.array([[0, 1, 0, 0], [0, 0, 1, 1]])
    np.testing.assert_allclose(stats.flip_rate(small, large), [0.25, 0.5])
    with pytest.raises(ValueError, match="shapes differ"):
        stats.flip_rate(small, large[:, :3])


def test_kappa_defined_for_nearly_constant_runs_at_a_million_instances():
    # Run a predicts class 1 on instance 0 only, run b on instances 0 and 1: they differ
    # on 1 of 1e6 instances. p_o = 1 - 1e-6, p_e = (1 - 1e-6)(1 - 2e-6) + 2e-12, so
    # kappa = (2e-6 - 4e-12) / (3e-6 - 4e-12) = 0.66667 (np.isclose(p_e, 1) said NaN).
    n = 1_000_000
    preds = np.zeros((3, n), dtype=np.int8)
    preds[0, 0] = 1
    preds[1, :2] = 1  # run 2 predicts class 0 everywhere
    kappa = stats.kappa_matrix(preds)
    expected = (2e-6 - 4e-12) / (3e-6 - 4e-12)
    assert kappa[0, 1] == pytest.approx(expected, rel=1e-9)
    assert kappa[0, 1] == pytest.approx(0.6667, abs=1e-4)
    # Against a constant run: p_o = p_e, kappa 0, still defined.
    assert kappa[0, 2] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(kappa[2, 2])  # both constant on one class: undefined
    assert kappa[0, 0] == pytest.approx(1.0)


def test_fleiss_defined_for_a_nearly_unanimous_table():
    # 1e6 subjects, 2 raters: both say "kept" on all but one subject, where one says
    # "pruned". p_bar = 1 - 1e-6, p_pruned = 0.5e-6: p_e = 1 - 1e-6 + 0.5e-12, so
    # kappa = (-0.5e-12) / (1e-6 - 0.5e-12), about -5e-7, not NaN.
    n = 1_000_000
    counts = np.zeros((n, 2))
    counts[:, 0] = 2
    counts[0] = (1, 1)
    p_e = (1 - 0.5e-6) ** 2 + 0.25e-12
    expected = ((1 - 1e-6) - p_e) / (1 - p_e)
    got = stats.fleiss_kappa_counts(counts)
    assert got == pytest.approx(expected, rel=1e-6) and got < 0
    counts[0] = (2, 0)
    assert np.isnan(stats.fleiss_kappa_counts(counts))
