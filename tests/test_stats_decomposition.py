"""seedlab.stats.decomposition: hand-checked cases, a loop reference, properties."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from seedlab import stats


def reference_decompose(c: np.ndarray) -> dict[str, np.ndarray]:
    """statistics.md section 1 written out with loops, one instance at a time."""
    out = {k: [] for k in ("loss", "bias2", "var_pretrain", "var_finetune", "var_checkpoint")}
    for x in c:
        loss = np.mean((1 - x) ** 2)
        if x.ndim == 2:
            n_pre, n_fine = x.shape
            vf = sum(np.var(x[p], ddof=1) for p in range(n_pre)) / n_pre
            cbar = [np.mean(x[p]) for p in range(n_pre)]
            vp = np.var(cbar, ddof=1) - vf / n_fine
            vc = 0.0
            out["var_checkpoint"].append(np.nan)
        else:
            n_pre, n_fine, n_ckpt = x.shape
            s2e = np.array([[np.var(x[p, f], ddof=1) for f in range(n_fine)]
                            for p in range(n_pre)])
            vc = s2e.mean()
            vf_p = np.array([np.var([x[p, f].mean() for f in range(n_fine)], ddof=1)
                             - s2e[p].mean() / n_ckpt for p in range(n_pre)])
            vf = vf_p.mean()
            cbar = [x[p].mean() for p in range(n_pre)]
            vp = np.var(cbar, ddof=1) - np.mean(
                [s2e[p].mean() / (n_ckpt * n_fine) + vf_p[p] / n_fine for p in range(n_pre)])
            out["var_checkpoint"].append(vc)
        out["loss"].append(loss)
        out["var_finetune"].append(vf)
        out["var_pretrain"].append(vp)
        out["bias2"].append(loss - vp - vf - vc)
    return {k: np.array(v) for k, v in out.items()}


def test_all_correct_and_all_wrong():
    # Instance 0 always right: no loss, no variance. Instance 1 always wrong: loss 1 = bias2.
    c = np.stack([np.ones((3, 2)), np.zeros((3, 2))])
    dec = stats.decompose(c)
    np.testing.assert_allclose(dec.loss, [0, 1])
    np.testing.assert_allclose(dec.bias2, [0, 1])
    np.testing.assert_allclose(dec.var_pretrain, [0, 0])
    np.testing.assert_allclose(dec.var_finetune, [0, 0])
    assert dec.var_checkpoint is None
    assert dec.summary() == {"loss": 0.5, "bias2": 0.5, "var_pretrain": 0.0,
                             "var_finetune": 0.0, "var_checkpoint": None}


def test_one_noisy_seed():
    # p0 = [1, 1], p1 = [1, 0]. loss = 1/4. s2_f = [0, 1/2] -> var_finetune = 1/4.
    # cbar_p = [1, 1/2], s2_p = 1/8, var_pretrain = 1/8 - (1/4)/2 = 0, bias2 = 0.
    dec = stats.decompose(np.array([[[1, 1], [1, 0]]], dtype=float))
    assert dec.loss[0] == pytest.approx(0.25)
    assert dec.var_finetune[0] == pytest.approx(0.25)
    assert dec.var_pretrain[0] == pytest.approx(0.0)
    assert dec.bias2[0] == pytest.approx(0.0)


def test_pretraining_seed_only():
    # p0 = [1, 1], p1 = [0, 0]: loss 1/2, var_finetune 0, var_pretrain = s2([1, 0]) = 1/2.
    dec = stats.decompose(np.array([[[1, 1], [0, 0]]], dtype=float))
    assert (dec.loss[0], dec.var_finetune[0], dec.var_pretrain[0], dec.bias2[0]) == \
        pytest.approx((0.5, 0.0, 0.5, 0.0))


def test_squared_loss_on_probabilities():
    # Constant probability 0.8: loss = 0.2^2 = 0.04, all of it bias.
    dec = stats.decompose(np.full((1, 2, 3), 0.8))
    assert dec.loss[0] == pytest.approx(0.04)
    assert dec.bias2[0] == pytest.approx(0.04)


def test_checkpoints_hand_case():
    # c[p0, f0] = [1, 0] over 2 checkpoints, every other run [1, 1].
    # s2_e = 1/2 at (p0, f0), else 0 -> var_checkpoint = 1/8; loss = 1/8.
    # cbar_pf: p0 = [1/2, 1], p1 = [1, 1]; vf_p0 = s2([1/2, 1]) - (1/4)/2 = 1/8 - 1/8 = 0.
    # cbar_p = [3/4, 1], s2_p = 1/32; leak = mean_p[mean_f s2_e / 4] = (1/16 + 0)/2 = 1/32.
    # var_pretrain = 0, var_finetune = 0, bias2 = 1/8 - 1/8 = 0.
    c = np.ones((1, 2, 2, 2))
    c[0, 0, 0, 1] = 0
    dec = stats.decompose(c)
    assert dec.var_checkpoint[0] == pytest.approx(0.125)
    assert dec.loss[0] == pytest.approx(0.125)
    assert dec.var_finetune[0] == pytest.approx(0.0)
    assert dec.var_pretrain[0] == pytest.approx(0.0)
    assert dec.bias2[0] == pytest.approx(0.0)
    assert dec.summary()["var_checkpoint"] == pytest.approx(0.125)


@pytest.mark.parametrize("shape", [(40, 4, 3), (40, 3, 4, 5)])
def test_matches_loop_reference(shape):
    c = np.random.default_rng(0).random(shape)
    dec = stats.decompose(c)
    ref = reference_decompose(c)
    for name in ("loss", "bias2", "var_pretrain", "var_finetune"):
        np.testing.assert_allclose(getattr(dec, name), ref[name], rtol=1e-12, atol=1e-14)
    if len(shape) == 4:
        np.testing.assert_allclose(dec.var_checkpoint, ref["var_checkpoint"], rtol=1e-12)


def test_unbiased_on_a_variance_components_model():
    # c = m + A_p + B_pf + C_pfe with known variances: each estimator recovers its own.
    # Uniform effects keep every score in [0, 1] (0.5 +- 0.34 at most); the tolerances are
    # about four standard deviations of each estimate over repeated draws.
    rng = np.random.default_rng(1)
    n, n_pre, n_fine, n_ckpt = 20000, 4, 3, 3

    def uniform(var: float, shape: tuple[int, ...]) -> np.ndarray:
        return rng.uniform(-np.sqrt(3 * var), np.sqrt(3 * var), shape)

    c = (0.5 + uniform(0.01, (n, n_pre, 1, 1)) + uniform(0.004, (n, n_pre, n_fine, 1))
         + uniform(0.001, (n, n_pre, n_fine, n_ckpt)))
    s = stats.decompose(c).summary()
    assert s["var_pretrain"] == pytest.approx(0.01, abs=0.0002)
    assert s["var_finetune"] == pytest.approx(0.004, abs=0.00003)
    assert s["var_checkpoint"] == pytest.approx(0.001, abs=0.000007)


def test_rejects_nan_and_too_few_seeds():
    c = np.ones((2, 2, 2))
    c[1, 0, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*\(1, 0, 1\)"):
        stats.decompose(c)
    with pytest.raises(ValueError, match="fine-tuning seeds"):
        stats.decompose(np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match="3-D or 4-D"):
        stats.decompose(np.ones((2, 3)))


scores = st.floats(0, 1, allow_nan=False, width=32)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(2, 4), st.integers(2, 4)),
              elements=scores)
       | arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 3), st.integers(2, 3),
                                      st.integers(2, 3)), elements=scores))
def test_terms_add_up_to_loss(c):
    dec = stats.decompose(c)
    total = dec.bias2 + dec.var_pretrain + dec.var_finetune
    if dec.var_checkpoint is not None:
        total = total + dec.var_checkpoint
    np.testing.assert_allclose(total, dec.loss, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 1), st.integers(2, 4), st.integers(2, 4), st.sampled_from([None, 2, 3]))
def test_constant_tensor_has_no_variance(value, n_pre, n_fine, n_ckpt):
    shape = (3, n_pre, n_fine) if n_ckpt is None else (3, n_pre, n_fine, n_ckpt)
    dec = stats.decompose(np.full(shape, value))
    np.testing.assert_allclose(dec.var_pretrain, 0, atol=1e-12)
    np.testing.assert_allclose(dec.var_finetune, 0, atol=1e-12)
    if n_ckpt is not None:
        np.testing.assert_allclose(dec.var_checkpoint, 0, atol=1e-12)
    np.testing.assert_allclose(dec.bias2, (1 - value) ** 2, atol=1e-12)


def test_decomposition_ci_is_reproducible_and_brackets_the_mean():
    c = np.random.default_rng(2).integers(0, 2, (300, 4, 3)).astype(float)
    dec = stats.decompose(c)
    first = stats.decomposition_ci(dec, nboot=300, rng=7)
    again = stats.decomposition_ci(dec, nboot=300, rng=7)
    assert first["seed"] == 7 and first["nboot"] == 300 and first["n_instances"] == 300
    for name in ("loss", "bias2", "var_pretrain", "var_finetune"):
        assert first[name] == again[name]
        assert first[name]["low"] < first[name]["mean"] < first[name]["high"]
        # The bootstrap standard error of a mean is close to std / sqrt(N).
        expected = getattr(dec, name).std(ddof=1) / np.sqrt(300)
        assert first[name]["std"] == pytest.approx(expected, rel=0.2)
    assert "var_checkpoint" not in first
    unseeded = stats.decomposition_ci(dec, nboot=50)
    assert isinstance(unseeded["seed"], int)
    assert stats.decomposition_ci(dec, nboot=50, rng=unseeded["seed"]) == unseeded


def test_variance_by_bias_bins():
    # bias2 -0.1 (clipped into bin 0), 0.01, 0.02 -> bin 0; 0.03 -> bin 0.025; 1.2 -> last bin.
    b = np.array([-0.1, 0.01, 0.02, 0.03, 1.2])
    dec = stats.Decomposition(loss=b + 1, bias2=b, var_pretrain=np.array([1., 2, 3, 4, 5]),
                              var_finetune=np.array([0., 0, 3, 1, 1]), var_checkpoint=None,
                              n_pretrain=2, n_finetune=2)
    frame = stats.variance_by_bias(dec)
    assert list(frame.columns) == ["bin", "bias2", "var_pretrain", "var_finetune", "count"]
    assert frame["bin"].tolist() == pytest.approx([0.0, 0.025, 0.975])
    assert frame["count"].tolist() == [3, 1, 1]
    assert frame["bias2"].tolist() == pytest.approx([(-0.1 + 0.01 + 0.02) / 3, 0.03, 1.2])
    assert frame["var_pretrain"].tolist() == pytest.approx([2.0, 4.0, 5.0])
    assert frame["var_finetune"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # A value on a bin edge opens that bin.
    dec.bias2 = np.array([0.075, 0.05, 0.5, 0.5, 0.5])
    assert stats.variance_by_bias(dec)["bin"].tolist() == pytest.approx([0.05, 0.075, 0.5])


def test_within_across_hand_case():
    # p0: f0 = [1, 1], f1 = [1, 0]; p1: f0 = [0, 0], f1 = [0, 1].
    # within: |f0 - f1| = 1/2 for both seeds -> 1/2.
    # across: (p0f0, p1f0) 1, (p0f0, p1f1) 1/2, (p0f1, p1f0) 1/2, (p0f1, p1f1) 1 -> 3/4.
    c = np.zeros((2, 2, 2))
    c[:, 0, 0] = [1, 1]
    c[:, 0, 1] = [1, 0]
    c[:, 1, 0] = [0, 0]
    c[:, 1, 1] = [0, 1]
    assert stats.within_across(c) == pytest.approx((0.5, 0.75))


def test_within_across_probabilities_match_brute_force():
    c = np.random.default_rng(3).random((30, 3, 4))
    within = np.mean([np.abs(c[:, p, a] - c[:, p, b]).mean() for p in range(3)
                      for a in range(4) for b in range(a + 1, 4)])
    across = np.mean([np.abs(c[:, a, d] - c[:, b, e]).mean() for a in range(3)
                      for b in range(a + 1, 3) for d in range(4) for e in range(4)])
    assert stats.within_across(c) == pytest.approx((within, across), rel=1e-12)


def _loop_ci(dec, nboot, seed, chunk=100, confidence=0.95):
    """The bootstrap written out: each replicate averages the resampled instances."""
    gen = np.random.default_rng(seed)
    comps = dec.components()
    n = dec.n_instances
    draws = {name: [] for name in comps}
    for start in range(0, nboot, chunk):
        idx = gen.integers(0, n, size=(min(chunk, nboot - start), n))
        for row in idx:
            for name, values in comps.items():
                draws[name].append(values[row].mean())
    alpha = (1 - confidence) / 2
    return {name: {"mean": comps[name].mean(),
                   "low": np.quantile(d, alpha), "high": np.quantile(d, 1 - alpha),
                   "std": np.std(d, ddof=1)} for name, d in draws.items()}


def test_decomposition_ci_equals_the_written_out_bootstrap():
    rng = np.random.default_rng(5)
    dec = stats.decompose(rng.integers(0, 2, (57, 3, 2, 2)))
    got = stats.decomposition_ci(dec, nboot=45, rng=11, chunk=20)
    expected = _loop_ci(dec, 45, 11, chunk=20)
    assert set(got) - {"seed", "nboot", "n_instances", "confidence"} == set(expected)
    for name, values in expected.items():
        for key, value in values.items():
            assert got[name][key] == pytest.approx(value, rel=1e-12, abs=1e-14), (name, key)


def test_decomposition_ci_many_shares_one_draw_per_instance_count():
    rng = np.random.default_rng(6)
    decs = [stats.decompose(rng.integers(0, 2, (40, 3, 2))),
            stats.decompose(rng.random((40, 2, 3, 2))),
            stats.decompose(rng.integers(0, 2, (25, 2, 2)))]
    many = stats.decomposition_ci_many(decs, nboot=60, rng=3, chunk=16)
    assert [m["n_instances"] for m in many] == [40, 40, 25]
    assert "var_checkpoint" in many[1] and "var_checkpoint" not in many[0]
    for dec, got in zip(decs, many):
        alone = stats.decomposition_ci(dec, nboot=60, rng=3, chunk=16)
        written_out = _loop_ci(dec, 60, 3, chunk=16)
        assert got["seed"] == alone["seed"] == 3
        for name in written_out:
            for key in ("mean", "low", "high", "std"):
                assert got[name][key] == pytest.approx(alone[name][key], rel=1e-12, abs=1e-14)
                assert got[name][key] == pytest.approx(written_out[name][key], rel=1e-12,
                                                       abs=1e-14)
    # A Generator is drawn from once per group of equal N, the groups in order.
    gen_many = stats.decomposition_ci_many(decs, nboot=60, rng=np.random.default_rng(3),
                                           chunk=16)
    assert gen_many[0]["seed"] is None
    assert gen_many[0]["loss"]["low"] == pytest.approx(many[0]["loss"]["low"], rel=1e-12)
    assert gen_many[1]["bias2"]["high"] == pytest.approx(many[1]["bias2"]["high"], rel=1e-12)
    gen = np.random.default_rng(3)
    for start in range(0, 60, 16):  # what the N = 40 group drew
        gen.integers(0, 40, size=(min(16, 60 - start), 40))
    third = stats.decomposition_ci(decs[2], nboot=60, rng=gen, chunk=16)
    assert gen_many[2] == third
    with pytest.raises(ValueError, match="nboot"):
        stats.decomposition_ci_many(decs, nboot=0)


def test_scores_out_of_range_are_refused_with_what_was_found():
    # The store's -1 code for a missing cell: 20 cells of one seed (float and int8 input).
    c = np.ones((10, 4, 5))
    c[:4, 1, :] = -1
    message = ("decompose: x: scores must be 0/1 correctness or probabilities in [0, 1];"
               " found values -1 at 20 cells (first at index (0, 1, 0)): the store's code"
               " for a missing cell? select complete seeds first")
    with pytest.raises(ValueError, match=re.escape(message)):
        stats.decompose(c)
    with pytest.raises(ValueError, match=re.escape(message)):
        stats.decompose(c.astype(np.int8))
    with pytest.raises(ValueError, match=r"found values -1 at 40 cells \(first at index"
                                         r" \(0, 1, 0, 0\)\)"):
        stats.decompose(np.repeat(c[..., None], 2, axis=3))  # 4-D: every cell twice
    # Class ids of a 3-class task passed instead of correctness.
    ids = np.tile(np.arange(3)[:, None, None], (2, 2, 3))  # (6, 2, 3), values 0, 1, 2
    with pytest.raises(ValueError, match=re.escape(
            "within_across: c: scores must be 0/1 correctness or probabilities in [0, 1];"
            " found values 2 at 12 cells (first at index (2, 0, 0)): class ids passed"
            " instead of correctness or gold-label probabilities?")):
        stats.within_across(ids)
    with pytest.raises(ValueError, match=r"found values -0\.5 at 1 cell, 1\.5 at 1 cell"
                                         r" \(first at index \(0, 0, 0\)\): expected 0/1"):
        stats.decompose(np.array([[[-0.5, 1.5], [0.2, 0.3]]]))
    # NaN is still reported as a missing run, at its index.
    c = np.ones((3, 2, 2))
    c[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*\(2, 1, 0\)"):
        stats.within_across(c)


def test_valid_integer_and_bool_scores_give_the_float_result():
    rng = np.random.default_rng(8)
    c = rng.random((40, 3, 2, 3)) < 0.6
    want = stats.decompose(c.astype(float)).summary()
    assert stats.decompose(c).summary() == pytest.approx(want, abs=1e-12)
    assert stats.decompose(c.astype(np.int8)).summary() == pytest.approx(want, abs=1e-12)
