"""The Overview page and its analysis on a small study built by hand
(tests/small_study.py): the instances each run was scored on, not the task's."""

from __future__ import annotations

import pytest
from app_support import app_test
from small_study import N, figure_captions, make_small_study

from seedlab import analyses as an
from seedlab.analyses.overview import count_range

PAGE = "pages/overview.py"
SEEDS = [(p, f) for p in ("0", "1") for f in (1, 2)]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    # large's runs predict only the first 20 of the task's 40 instances
    return make_small_study(tmp_path_factory.mktemp("overview") / "home",
                            {"small": SEEDS, "large": SEEDS}, scored={"large": 20})


def test_count_range():
    assert count_range([2000, 2000]) == "2,000"
    assert count_range([2000, 200, 1000]) == "200 to 2,000"


def test_run_accuracy_counts_what_each_run_was_scored_on(study):
    query = an.Query("t", ("small", "large"), ("0", "1"), (1, 2))
    acc = an.run_accuracy(study, query)
    assert acc.table.set_index("size")["instances per run"].to_dict() == {
        "small": "40", "large": "20"}
    assert acc.table.set_index("size")["mean"].to_dict() == {
        "small": pytest.approx(24 / 40), "large": pytest.approx(1.0)}
    assert acc.n_text(N) == "N = 20 to 40 of 40 instances per run"
    large = an.run_accuracy(study, an.Query("t", ("large",), ("0", "1"), (1, 2)))
    assert large.n_text(N) == "N = 20 of 40 instances per run"
    small = an.run_accuracy(study, an.Query("t", ("small",), ("0", "1"), (1, 2)))
    assert small.n_text(N) == "N = 40 instances per run"


def test_the_page_says_a_run_was_scored_on_20_of_40(study):
    at = app_test(study.home, PAGE, {"task": "t", "sizes": ["large"],
                                     "pretrain_seeds": ["0", "1"],
                                     "finetune_seeds": ["1", "2"]})
    assert not at.exception, [e.value for e in at.exception]
    caption = next(c for c in figure_captions(at) if "one point per run" in c)
    assert "N = 20 of 40 instances per run" in caption
    table = next(d.value for d in at.dataframe if "N runs" in d.value.columns)
    assert table.to_dict("records") == [
        {"size": "large", "mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0, "N runs": 4,
         "instances per run": "20"}]


def test_the_sidebar_checkpoint_reads_3_33(study):
    at = app_test(study.home, PAGE, {"task": "t", "sizes": ["small"], "checkpoint": "3.33333",
                                     "pretrain_seeds": ["0", "1"],
                                     "finetune_seeds": ["1", "2"]})
    assert not at.exception, [e.value for e in at.exception]
    caption = next(c for c in figure_captions(at) if "one point per run" in c)
    assert "checkpoint 3.33 one point" in caption and "3.333" not in caption
