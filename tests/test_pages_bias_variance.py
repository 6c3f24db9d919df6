"""The Bias and variance page and its analysis on a small study built by hand
(tests/small_study.py): the summary table gives every term with its bootstrap interval,
under plain names, in one order."""

from __future__ import annotations

import numpy as np
import pytest
from app_support import app_test
from small_study import SMALL_RIGHT, figure_captions, make_small_study

from seedlab import analyses as an
from seedlab import stats

PAGE = "pages/bias_variance.py"
TERMS = ["bias²", "pretraining variance", "fine-tuning variance", "expected loss"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_small_study(tmp_path_factory.mktemp("bias_variance") / "home")


def test_the_table_has_every_term_with_its_interval(study):
    query = an.DecompositionQuery("t", ("small", "large"), ("0", "1", "2"), (1, 2), nboot=300)
    result = an.decomposition(study, query)
    table = result.table
    assert list(table.columns) == ["size", "term", "mean", "95% CI low", "95% CI high",
                                   "bootstrap std"]
    assert table["size"].tolist() == ["small"] * 4 + ["large"] * 4
    assert table["term"].tolist() == TERMS * 2
    small = table[table["size"] == "small"].set_index("term")
    # every run of small is right on the same 24 of 40 instances: no variance, and the
    # 0/1 loss is bias² = 16/40
    assert small.loc["bias²", "mean"] == pytest.approx(16 / 40)
    assert small.loc["expected loss", "mean"] == pytest.approx(16 / 40)
    assert small.loc["pretraining variance", "mean"] == pytest.approx(0.0, abs=1e-12)
    arrays = study.arrays("t", "small", ["0", "1", "2"], [1, 2])
    np.testing.assert_array_equal(arrays.correct[:, 0, 0], SMALL_RIGHT)
    ci = stats.decomposition_ci_many([stats.decompose(arrays.correct),
                                      stats.decompose(study.arrays(
                                          "t", "large", ["0", "1", "2"], [1, 2]).correct)],
                                     nboot=300, rng=0)[0]
    assert small.loc["bias²", "95% CI low"] == pytest.approx(ci["bias2"]["low"])
    assert small.loc["bias²", "95% CI high"] == pytest.approx(ci["bias2"]["high"])
    assert small.loc["bias²", "95% CI low"] < 0.4 < small.loc["bias²", "95% CI high"]
    instances = result.instance_table
    assert list(instances.columns) == ["size", "instance_id", *TERMS]
    assert len(instances) == 2 * 40


def test_the_page_shows_the_intervals_under_plain_headers(study):
    at = app_test(study.home, PAGE, {"task": "t", "sizes": ["small", "large"],
                                     "pretrain_seeds": ["0", "1", "2"],
                                     "finetune_seeds": ["1", "2"],
                                     "bias_variance.nboot": "300"})
    assert not at.exception, [e.value for e in at.exception]
    summary = next(d.value for d in at.dataframe if "term" in d.value.columns)
    assert list(summary.columns) == ["size", "term", "mean", "95% CI low", "95% CI high",
                                     "bootstrap std"]
    assert summary["term"].tolist()[:4] == TERMS
    assert not any(raw in summary["term"].tolist() for raw in ("bias2", "var_finetune"))
    instances = next(d.value for d in at.dataframe if "instance_id" in d.value.columns)
    assert "bias2" not in instances.columns and "fine-tuning variance" in instances.columns


def test_the_sidebar_checkpoint_reads_3_33(study):
    at = app_test(study.home, PAGE, {"task": "t", "sizes": ["small"], "checkpoint": "3.33333",
                                     "pretrain_seeds": ["0", "1"],
                                     "finetune_seeds": ["1", "2"],
                                     "bias_variance.nboot": "100"})
    assert not at.exception, [e.value for e in at.exception]
    captions = [c for c in figure_captions(at) if "instances binned" in c]
    assert captions and "checkpoint 3.33 N =" in captions[0] and "3.333" not in captions[0]
