"""AppTest of the analysis pages on the fixture home: each renders, its main widgets change
what it shows, its query parameters restore the view, and partial data gives a message."""

from __future__ import annotations

import pytest
from app_support import DECAYING, app_test, make_fixture_home, shown_texts

PAGES = ["overview", "bias_variance", "agreement", "decaying", "significance", "datamap",
         "report"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_fixture_home(tmp_path_factory.mktemp("pages") / "home")


# AppTest does not expose a dataframe's key, so each table is found by a column only it has.
TABLE_COLUMNS = {
    "overview.accuracy": "N runs",
    "bias_variance.summary": "term",
    "bias_variance.instances": "instance_id",
    "agreement.summary": "same pretraining seed: mean",
    "agreement.disagree": "gold",
    "decaying.browser": "decay",
    "significance.table": "high",
    "datamap.browser": "variability",
}


def frame_by_key(at, key):
    column = TABLE_COLUMNS[key]
    for df in at.dataframe:
        value = df.value
        if column in value.columns and not (key == "bias_variance.summary"
                                            and "instance_id" in value.columns):
            return value
    raise AssertionError(f"no dataframe {key!r} (with column {column!r})")


def means(summary):
    """The Bias and variance summary (one row per size and term) as sizes x terms."""
    return summary.pivot(index="size", columns="term", values="mean").reindex(
        list(dict.fromkeys(summary["size"])))


def widget(at, key):
    for kind in ("radio", "toggle", "selectbox", "multiselect", "number_input", "slider",
                 "text_input"):
        for w in getattr(at, kind):
            if w.key == key:
                return w
    raise AssertionError(f"no widget {key!r}")


@pytest.mark.parametrize("page", PAGES)
def test_partial_data_gives_a_message_not_a_traceback(home, page):
    at = app_test(home, f"pages/{page}.py", query={"task": "sst_one"})
    assert not at.exception
    if page not in ("overview", "report"):
        assert at.info or at.warning, f"{page}: no message for one seed / one size"


def test_overview_accuracy_follows_the_sidebar(home):
    at = app_test(home)
    table = frame_by_key(at, "overview.accuracy")
    assert table["size"].tolist() == ["tiny", "mini", "base"]
    assert table["N runs"].tolist() == [9, 9, 9]
    at = app_test(home, query={"sizes": ["base"], "pretrain_seeds": ["0"]})
    table = frame_by_key(at, "overview.accuracy")
    assert table["size"].tolist() == ["base"]
    assert table["N runs"].tolist() == [3]
    coverage = [c.value for c in at.caption if "cells" in c.value]
    assert coverage and "present: 27 of 27" in coverage[0]


def test_bias_variance_loss_toggle_changes_the_terms(home):
    at = app_test(home, "pages/bias_variance.py")
    assert not at.exception
    zero_one = means(frame_by_key(at, "bias_variance.summary"))
    assert zero_one.index.tolist() == ["tiny", "mini", "base"]
    # the decaying instances make the base model's bias the largest
    assert zero_one["bias²"].idxmax() == "base"
    widget(at, "bias_variance.loss").set_value("squared loss").run()
    squared = means(frame_by_key(at, "bias_variance.summary"))
    assert not at.exception
    assert (squared["expected loss"] != zero_one["expected loss"]).all()
    per = frame_by_key(at, "bias_variance.instances")
    assert len(per) == 3 * 60
    total = per["bias²"] + per["pretraining variance"] + per["fine-tuning variance"]
    assert ((total - per["expected loss"]).abs() < 1e-9).all()


def test_bias_variance_query_restores_the_view(home):
    at = app_test(home, "pages/bias_variance.py",
                  query={"bias_variance.loss": "squared loss", "bias_variance.checkpoints":
                         "true", "sizes": ["mini"]})
    assert not at.exception
    assert widget(at, "bias_variance.loss").value == "squared loss"
    assert widget(at, "bias_variance.checkpoints").value is True
    table = means(frame_by_key(at, "bias_variance.summary"))
    assert table.index.tolist() == ["mini"]
    assert "checkpoint variance" in table.columns


def test_agreement_metric_and_pair(home):
    at = app_test(home, "pages/agreement.py")
    assert not at.exception
    summary = frame_by_key(at, "agreement.summary")
    agree = summary["same pretraining seed: mean"].tolist()
    assert all(0 < a <= 1 for a in agree)
    widget(at, "agreement.metric").set_value("kappa").run()
    kappa = frame_by_key(at, "agreement.summary")["same pretraining seed: mean"].tolist()
    assert kappa != agree and all(k < a for k, a in zip(kappa, agree))
    # two runs of different sizes disagree on the decaying instances
    at.selectbox(key="agreement.pair_a").set_value("tiny/p0/f1").run()
    at.selectbox(key="agreement.pair_b").set_value("base/p0/f1").run()
    disagree = frame_by_key(at, "agreement.disagree")
    assert set(DECAYING) <= set(disagree["instance_id"])
    assert at.query_params["agreement.run_b"] in ("base/p0/f1", ["base/p0/f1"])


def test_agreement_query_restores_blocks(home):
    at = app_test(home, "pages/agreement.py",
                  query={"agreement.blocks": "true", "agreement.metric": "kappa",
                         "agreement.run_a": "mini/p1/f2"})
    assert not at.exception
    assert widget(at, "agreement.blocks").value is True
    assert widget(at, "agreement.metric").value == "kappa"
    assert at.selectbox(key="agreement.pair_a").value == "mini/p1/f2"


def test_decaying_sizes_and_filters(home):
    at = app_test(home, "pages/decaying.py")
    assert not at.exception
    browser = frame_by_key(at, "decaying.browser")
    assert set(DECAYING) <= set(browser["instance_id"])
    assert (browser["decay"] < 0).all()
    widget(at, "decaying.small").set_value("mini").run()
    assert not at.exception
    assert widget(at, "decaying.large").options == ["base"]
    assert any("sizes mini vs base" in t for t in shown_texts(at))
    decay = frame_by_key(at, "decaying.browser").set_index("instance_id")["decay"]
    # decay is now accuracy(base) - accuracy(mini): built as 0.15 vs 0.6 on these instances
    assert decay.loc[DECAYING].max() < 0
    widget(at, "decaying.group").set_value(["control"]).run()
    filtered = frame_by_key(at, "decaying.browser")
    assert not set(DECAYING) & set(filtered["instance_id"])
    assert set(filtered["group"]) <= {"control"}


def test_decaying_query_restores_the_view(home):
    at = app_test(home, "pages/decaying.py",
                  query={"decaying.small": "tiny", "decaying.large": "mini",
                         "decaying.verdict": ["wrong"], "decaying.show": "all"})
    assert not at.exception
    assert widget(at, "decaying.large").value == "mini"
    browser = frame_by_key(at, "decaying.browser")
    assert browser["instance_id"].tolist() == [DECAYING[0]]


def test_significance_changes_with_the_configurations(home):
    at = app_test(home, "pages/significance.py",
                  query={"significance.nboot": "300"})
    assert not at.exception
    table = frame_by_key(at, "significance.table").set_index("")
    assert table.index.tolist() == ["tiny (last)", "base (last)", "difference"]
    reading = next(i.value for i in at.info if "Multi-Bootstrap" in i.value)
    assert "paired" in reading and "3 pretraining seeds (0, 1, 2)" in reading
    widget(at, "significance.expt_size").set_value("mini").run()
    other = frame_by_key(at, "significance.table").set_index("")
    assert other.index.tolist()[1] == "mini (last)"
    assert other.loc["difference", "mean"] != table.loc["difference", "mean"]


def test_significance_query_restores_the_options(home):
    at = app_test(home, "pages/significance.py",
                  query={"significance.design": "unpaired", "significance.nboot": "200",
                         "significance.base_ckpt": "1", "significance.expt_size": "tiny"})
    assert not at.exception
    assert widget(at, "significance.design").value == "unpaired"
    assert widget(at, "significance.nboot").value == 200
    table = frame_by_key(at, "significance.table")
    assert table[""].tolist()[:2] == ["tiny (1)", "tiny (last)"]


def test_datamap_regions_and_thresholds(home):
    at = app_test(home, "pages/datamap.py")
    assert not at.exception
    browser = frame_by_key(at, "datamap.browser")
    assert set(browser["region"]) <= {"ambiguous", "hard"}
    easy_before = int(next(m for m in at.metric if m.label == "Easy").value)
    widget(at, "datamap.confidence").set_value(0.95).run()
    easy_after = int(next(m for m in at.metric if m.label == "Easy").value)
    assert easy_after < easy_before
    widget(at, "datamap.regions").set_value(["easy"]).run()
    assert set(frame_by_key(at, "datamap.browser")["region"]) == {"easy"}


def test_datamap_query_restores_the_view(home):
    at = app_test(home, "pages/datamap.py",
                  query={"datamap.size": "tiny", "datamap.regions": ["hard"],
                         "datamap.variability": "0.3"})
    assert not at.exception
    assert widget(at, "datamap.size").value == "tiny"
    assert widget(at, "datamap.variability").value == pytest.approx(0.3)
    assert set(frame_by_key(at, "datamap.browser")["region"]) <= {"hard"}
