"""The dashboard frame: sidebar, URL state, simulated banner, figure pinning, report export."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import pytest
from app_support import app_test, make_fixture_home
from plotly.offline import get_plotlyjs

from seedlab.figures.report import ReportItem, report_html


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_fixture_home(tmp_path_factory.mktemp("app") / "home")


def qp(at, name):
    """A query parameter of the app's URL after the run, always as a list."""
    value = at.query_params.get(name, [])
    return value if isinstance(value, list) else [value]


def sidebar_widget(at, label):
    for widget in [*at.sidebar.selectbox, *at.sidebar.multiselect, *at.sidebar.text_input]:
        if widget.label == label:
            return widget
    raise AssertionError(f"no sidebar widget {label!r}")


def test_default_view_fills_the_url_and_shows_the_banner(home):
    at = app_test(home)
    assert not at.exception
    assert at.title[0].value == "Overview"
    assert sidebar_widget(at, "Task").value == "nli_sim"
    assert sidebar_widget(at, "Sizes").value == ["tiny", "mini", "base"]
    assert qp(at, "task") == ["nli_sim"]
    assert qp(at, "sizes") == ["tiny", "mini", "base"]
    assert qp(at, "finetune_seeds") == ["1", "2", "3"]
    assert qp(at, "checkpoint") == ["last"]
    assert any("Simulated data" in w.value for w in at.warning)


def test_query_parameters_restore_the_sidebar(home):
    at = app_test(home, query={"task": "nli_sim", "sizes": ["mini", "base"],
                               "pretrain_seeds": ["0", "2"], "finetune_seeds": ["3"],
                               "checkpoint": "1"})
    assert not at.exception
    assert sidebar_widget(at, "Sizes").value == ["mini", "base"]
    assert sidebar_widget(at, "Pretraining seeds").value == ["0", "2"]
    assert sidebar_widget(at, "Fine-tuning seeds").value == [3]
    assert sidebar_widget(at, "Checkpoint").value == "1"


def test_unknown_values_in_the_url_fall_back(home):
    at = app_test(home, query={"task": "no_such_task", "sizes": ["huge"]})
    assert not at.exception
    assert sidebar_widget(at, "Task").value == "nli_sim"
    assert sidebar_widget(at, "Sizes").value == ["tiny", "mini", "base"]


def test_changing_the_task_changes_the_view_and_the_url(home):
    at = app_test(home)
    sidebar_widget(at, "Task").set_value("sst_one").run()
    assert not at.exception
    assert qp(at, "task") == ["sst_one"]
    assert sidebar_widget(at, "Sizes").value == ["base"]
    assert not any("Simulated data" in w.value for w in at.warning)


def test_state_survives_a_page_switch(home):
    at = app_test(home)
    sidebar_widget(at, "Sizes").set_value(["tiny", "base"]).run()
    at.switch_page("pages/report.py").run()
    assert not at.exception
    assert sidebar_widget(at, "Sizes").value == ["tiny", "base"]
    assert qp(at, "sizes") == ["tiny", "base"]


def test_a_folder_without_a_store_says_so(tmp_path):
    at = app_test(tmp_path / "nothing-here")
    assert not at.exception
    assert any("No seedlab store" in w.value for w in at.sidebar.warning)
    assert any("No data" in i.value for i in at.info)


def test_a_fresh_clone_without_a_catalogue_opens_its_data(tmp_path):
    """The repository tracks data/'s files but not its catalogue: the app rebuilds it."""
    from seedlab.store import Store

    home = make_fixture_home(tmp_path / "home")
    (home / "catalog.sqlite").unlink()
    for leftover in home.glob("catalog.sqlite-*"):
        leftover.unlink()
    assert Store.is_home(home) and not Store.is_home(home / "predictions" / "nothing")
    at = app_test(home)
    assert not at.exception
    assert not [w for w in at.sidebar.warning if "No seedlab store" in w.value]
    assert sidebar_widget(at, "Task").value == "nli_sim"
    assert at.title[0].value == "Overview"
    assert any("Simulated data" in w.value for w in at.warning)
    assert (home / "catalog.sqlite").exists()


def test_pinning_a_figure_puts_it_on_the_report_page(home):
    at = app_test(home)
    pin = next(b for b in at.button if b.key == "overview.strip.pin")
    pin.click().run()
    at.switch_page("pages/report.py").run()
    assert not at.exception
    assert "Figure" not in [i.value for i in at.info]
    heads = [t.value for t in at.text if t.value.startswith("1. ")]
    assert heads and heads[0].startswith("1. nli_sim: accuracy of each run · figure from Overview")
    # the caption is the figure's subtitle (not repeated under it)
    figure = at.get("plotly_chart")[0]
    assert "one point per run (27 runs)" in figure.proto.spec
    # removing it empties the report again
    next(b for b in at.button if b.key == "report.remove.0").click().run()
    assert any("No figures pinned yet" in i.value for i in at.info)


def test_report_html_is_self_contained():
    figs = [go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": {"text": f"F{i}"}})
            for i in range(3)]
    items = [ReportItem(f.to_json(), f"caption {i} <b>", "Overview", "2024-01-01", f"F{i}")
             for i, f in enumerate(figs)]
    html = report_html(items, "Meeting")
    # plotly.js is inlined exactly once and nothing is fetched from the network




    assert html.count(get_plotlyjs()) == 1
    assert not re.findall(r"<script[^>]*\bsrc=", html)
    assert html.count("<figure>") == 3
    assert "caption 2 &lt;b&gt;" in html
    assert html.index("figure-1") < html.index("figure-2") < html.index("figure-3")


def test_a_caption_leaves_room_for_subplot_titles():
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from seedlab.ui.figure import with_caption

    caption = "task · sizes · seeds · " * 4  # wraps onto two lines
    panels = make_subplots(rows=1, cols=2, subplot_titles=["attention heads", "MLP"])
    panels.add_trace(go.Heatmap(z=[[0.4, 1.0]]), 1, 1)
    plain = go.Figure(go.Heatmap(z=[[0.4, 1.0]]))
    assert with_caption(plain, caption).layout.margin.t == 70 + 16 * 2
    assert with_caption(panels, caption).layout.margin.t == 70 + 16 * 2 + 24
    assert with_caption(panels, caption).layout.title.subtitle.text.count("<br>") == 1


def link_query(at) -> dict[str, list[str]]:
    """The query of the link in the sidebar's Copy link popover."""
    from urllib.parse import parse_qs, urlsplit

    (code,) = at.sidebar.code
    return parse_qs(urlsplit(code.value).query, keep_blank_values=True)


def test_the_copy_link_follows_the_page_controls_changed_in_this_run(home):
    """The page draws its controls after the sidebar drew the link: the link still holds
    their new values, and a new session opened on it shows the same controls."""
    at = app_test(home, "pages/agreement.py")
    assert link_query(at)["agreement.blocks"] == ["false"]
    next(t for t in at.toggle if t.key == "agreement.blocks").set_value(True).run()
    next(r for r in at.radio if r.key == "agreement.metric").set_value("kappa").run()
    assert not at.exception
    query = link_query(at)
    assert query["agreement.blocks"] == ["true"]
    assert query["agreement.metric"] == ["kappa"]
    reopened = app_test(home, query=query)
    reopened.switch_page("pages/agreement.py").run()
    assert next(t for t in reopened.toggle if t.key == "agreement.blocks").value is True
    assert next(r for r in reopened.radio if r.key == "agreement.metric").value == "kappa"
    assert link_query(reopened) == query


def test_the_copy_link_holds_the_view_when_a_page_stops_early(home):
    """Agreement stops (st.stop) when the selection has one run: the link drawn before the
    stop still has the sidebar's last change and the page's control set in that run."""
    at = app_test(home, "pages/agreement.py")
    next(r for r in at.radio if r.key == "agreement.metric").set_value("kappa").run()
    sidebar_widget(at, "Sizes").set_value(["tiny"]).run()
    sidebar_widget(at, "Pretraining seeds").set_value(["0"]).run()
    sidebar_widget(at, "Fine-tuning seeds").set_value([2]).run()
    assert any("Agreement needs at least 2 runs" in i.value for i in at.info)
    query = link_query(at)
    assert (query["sizes"], query["pretrain_seeds"], query["finetune_seeds"]) == (
        ["tiny"], ["0"], ["2"])
    assert query["agreement.metric"] == ["kappa"]
