"""The Significance page and its analysis on a small study built by hand
(tests/small_study.py): the seeds the bootstrap used, the p-value at its floor, one-sided
p beside a two-sided interval, and checkpoints written as 3.33."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from app_support import app_test
from small_study import figure_captions, make_small_study, plain

from seedlab import analyses as an
from seedlab.analyses.significance import NESTED_NOTE, arm_name, checkpoint_name

PAGE = "pages/significance.py"
SEEDS = {"task": "t", "pretrain_seeds": ["0", "1", "2"], "finetune_seeds": [1, 2]}
# large has no runs of pretraining seed 2: the paired design drops it
RUNS = {"small": [(p, f) for p in ("0", "1", "2") for f in (1, 2)],
        "large": [(p, f) for p in ("0", "1") for f in (1, 2)]}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_small_study(tmp_path_factory.mktemp("significance") / "home", RUNS)


def test_the_result_names_the_seeds_it_used_not_the_query(study):
    query = an.SignificanceQuery(**SEEDS, baseline=("small", "last"),
                                 treatment=("large", "last"), nboot=400)
    with pytest.warns(UserWarning, match="dropped pretraining seeds"):
        result = an.significance(study, query)
    assert result.pretrain_seeds("base") == ["0", "1"]
    assert result.pretrain_seeds("expt") == ["0", "1"]
    assert result.finetune_seeds("base") == [1, 2]
    assert result.runs["base"] == (("0", 1), ("0", 2), ("1", 1), ("1", 2))
    assert result.seeds_text() == "pretraining seeds 0, 1 · fine-tuning seeds 1, 2"
    # small is right on 24 of 40 on every run, large on all: the difference is 0.4 in
    # every replicate that resamples seeds only
    assert result.bootstrap["estimate"]["delta"] == pytest.approx(0.4)
    assert result.p_floor == pytest.approx(1 / 400)
    assert result.bootstrap["delta"]["p"] == pytest.approx(1 / 400)  # at the floor

    unpaired = an.significance(study, an.SignificanceQuery(
        **SEEDS, baseline=("small", "last"), treatment=("large", "last"), nboot=100,
        paired=False))
    assert unpaired.pretrain_seeds("base") == ["0", "1", "2"]
    assert unpaired.seeds_text() == (
        "small (last): pretraining seeds 0, 1, 2 · fine-tuning seeds 1, 2 · large (last):"
        " pretraining seeds 0, 1 · fine-tuning seeds 1, 2")


def test_checkpoints_are_named_with_two_decimals_at_most():
    assert [checkpoint_name(c) for c in ("last", 1.0, 10 / 3, 0.5, 2 / 3)] == [
        "last", "1", "3.33", "0.5", "0.67"]
    assert arm_name("small", 10 / 3) == "small (3.33)"


def test_the_page_lists_the_used_seeds_and_the_p_value_floor(study):
    at = app_test(study.home, PAGE, {**{k: v for k, v in SEEDS.items() if k != "task"},
                                     "task": "t", "sizes": ["small", "large"],
                                     "significance.nboot": "1000"})
    assert not at.exception, [e.value for e in at.exception]
    assert any("dropped pretraining seeds" in w.value and "'2'" in w.value
               for w in at.warning)
    caption = next(c for c in figure_captions(at) if "replicates, seed" in c)
    assert plain("pretraining seeds 0, 1 · fine-tuning seeds 1, 2") in caption
    assert "0, 1, 2" not in caption
    p_metric = next(m for m in at.metric if m.label == "p-value (one-sided)")
    assert p_metric.value == "< 0.001"
    reading = next(i.value for i in at.info if "Multi-Bootstrap" in i.value)
    assert "one-sided p < 0.001" in reading and "2 pretraining seeds (0, 1)" in reading
    sided = next(c.value for c in at.caption if "one-sided" in c.value)
    assert "**two-sided**" in sided and "0.025" in sided
    table = at.dataframe[0].value.set_index("")
    assert table.index.tolist() == ["small (last)", "large (last)", "difference"]
    assert table.loc["difference", "mean"] == pytest.approx(0.4, abs=0.1)


def test_checkpoint_choices_read_3_33(study):
    at = app_test(study.home, PAGE, {"task": "t", "sizes": ["small", "large"],
                                     "pretrain_seeds": ["0", "1"], "finetune_seeds": ["1", "2"],
                                     "significance.nboot": "200",
                                     "significance.base_size": "small",
                                     "significance.expt_size": "small",
                                     "significance.expt_ckpt": "3.33333"})
    assert not at.exception, [e.value for e in at.exception]
    box = next(s for s in at.selectbox if s.key == "significance.base_ckpt")
    assert box.options == ["last", "1", "3.33"]
    table = at.dataframe[0].value
    assert table[""].tolist() == ["small (last)", "small (3.33)", "difference"]


# -- issue 11: one pretraining seed, the nested design, thresholds by expected sign ----


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    cells = [("0", 1), ("0", 2), ("0", 3)]
    return make_small_study(tmp_path_factory.mktemp("one_seed") / "home",
                            {"small": cells, "large": cells})


def test_one_pretraining_seed_is_warned_about(one_seed):
    result = an.significance(one_seed, an.SignificanceQuery(
        "t", pretrain_seeds=["0"], finetune_seeds=[1, 2, 3], baseline=("small", "last"),
        treatment=("large", "last"), nboot=200))
    assert len(result.warnings) == 2  # one per arm
    assert all("one pretraining seed" in w and "far too narrow" in w
               for w in result.warnings)
    at = app_test(one_seed.home, PAGE, {"task": "t", "sizes": ["small", "large"],
                                        "pretrain_seeds": ["0"],
                                        "finetune_seeds": ["1", "2", "3"],
                                        "significance.nboot": "200"})
    assert not at.exception, [e.value for e in at.exception]
    shown = [w.value for w in at.warning if "one pretraining seed" in w.value]
    assert any("baseline arm ('0')" in w for w in shown)
    assert any("treatment arm ('0')" in w for w in shown)


def test_the_nested_option_says_what_docs_stats_measured(study):
    # every coverage figure of the docs' nested-bootstrap table is in the page's note
    text = (Path(__file__).resolve().parents[1] / "docs" / "stats.md").read_text()
    section = text[text.index("### The nested bootstrap"):]
    rows = [line.split("|")[1:-1] for line in section.splitlines()
            if re.match(r"\| \d+ \| \d+ \|", line)][:3]
    assert len(rows) == 3
    for p, f, nested, unnested, *_ in (map(str.strip, r) for r in rows):
        assert nested in NESTED_NOTE and unnested in NESTED_NOTE, (p, f)
    assert "**conservative**" in NESTED_NOTE and "1.2x" in NESTED_NOTE
    at = app_test(study.home, PAGE, {"task": "t", "sizes": ["small", "large"],
                                     "pretrain_seeds": ["0", "1"],
                                     "finetune_seeds": ["1", "2"],
                                     "significance.nboot": "200",
                                     "significance.nested": "true"})
    assert not at.exception, [e.value for e in at.exception]
    toggle = next(t for t in at.toggle if t.key == "significance.nested")
    assert toggle.value is True and toggle.help == NESTED_NOTE
    assert any(c.value.endswith(NESTED_NOTE) for c in at.caption)


def test_thresholds_follow_the_expected_sign(study):
    query = {"task": "t", "pretrain_seeds": ["0", "1"], "finetune_seeds": [1, 2],
             "baseline": ("large", "last"), "treatment": ("small", "last"), "nboot": 300,
             "thresholds": (0.3, 0.5)}
    worse = an.significance(study, an.SignificanceQuery(**query, expected_sign=-1))
    draws = worse.draws  # small - large: about -0.4
    assert list(worse.thresholds.columns) == ["threshold t", "P(delta <= -t)"]
    assert worse.thresholds["P(delta <= -t)"].tolist() == pytest.approx(
        [(draws <= -0.3).mean(), (draws <= -0.5).mean()])
    better = an.significance(study, an.SignificanceQuery(**query))
    assert list(better.thresholds.columns) == ["threshold t", "P(delta >= t)"]
    assert better.thresholds["P(delta >= t)"].tolist() == pytest.approx(
        [(better.draws >= 0.3).mean(), (better.draws >= 0.5).mean()])
