"""The Report page and the pin API in the app (AppTest): pins are kept in the home, so a
new session (a reload, a restarted server) finds them; several reports by name."""

from __future__ import annotations

import os

import pytest
from app_support import app_test, make_fixture_home

from seedlab.reports import ReportStore


@pytest.fixture
def home(tmp_path):
    return make_fixture_home(tmp_path / "home")


def by_key(elements, key):
    return next(e for e in elements if e.key == key)


def heads(at) -> list[str]:
    return [t.value for t in at.text if t.value[:1].isdigit() and ". " in t.value]


def test_a_pinned_figure_is_there_in_a_new_session(home):
    at = app_test(home)
    by_key(at.button, "overview.strip.pin").click().run()
    assert not at.exception
    assert ReportStore(home).names() == ["report"]
    # A new AppTest is a new browser session: nothing in st.session_state is shared.
    again = app_test(home, "pages/report.py")
    assert not again.exception
    assert heads(again) and heads(again)[0].startswith(
        "1. nli_sim: accuracy of each run · figure from Overview")
    assert by_key(again.selectbox, "report.current").value == "report"
    assert again.get("download_button")


def pin_script() -> None:
    import pandas as pd

    from seedlab.ui.figure import pin_table, pin_table_button, pin_text

    pin_table("Decomposition", pd.DataFrame({"component": ["bias²"], "estimate": [0.0123]}),
              caption="mini · 3 x 3 seeds", page="Bias and variance")
    pin_text("Significance", "mini is better than tiny (p < 0.001, one-sided).",
             page="Significance")
    pin_table_button("By button", pd.DataFrame({"x": [1]}), key="test.table.pin")


def test_pin_table_and_pin_text_from_page_code(home):
    from streamlit.testing.v1 import AppTest

    os.environ["SEEDLAB_HOME"] = str(home)
    at = AppTest.from_function(pin_script, default_timeout=60).run()
    assert not at.exception
    store = ReportStore(home)
    items = store.items(store.current())
    assert [(i.kind, i.title, i.page) for i in items] == [
        ("table", "Decomposition", "Bias and variance"), ("text", "Significance", "Significance")]
    assert items[0].table["estimate"].tolist() == [0.0123]
    by_key(at.button, "test.table.pin").click().run()
    items = store.items(store.current())
    assert [(i.kind, i.title, i.page) for i in items][-1] == ("table", "By button", "test")
    assert len(items) == 5
    page = app_test(home, "pages/report.py")
    assert not page.exception
    assert [h.split(" · ")[0] for h in heads(page)] == [
        "1. Decomposition", "2. Significance",
        # pin_table and pin_text pin on every run of the script (the click reran it):
        "3. Decomposition", "4. Significance", "5. By button"]
    assert "mini is better than tiny (p < 0.001, one-sided)." in [t.value for t in page.text]
    assert page.dataframe[0].value["component"].tolist() == ["bias²"]


def test_create_choose_rename_and_delete_reports(home):
    store = ReportStore(home)
    at = app_test(home, "pages/report.py")
    assert any("No figures pinned yet" in i.value for i in at.info)
    by_key(at.text_input, "report.new_name").input("group meeting").run()
    by_key(at.button, "report.create").click().run()
    assert not at.exception
    assert store.names() == ["group meeting"] and store.current() == "group meeting"
    by_key(at.text_input, "report.new_name").input("backup").run()
    by_key(at.button, "report.create").click().run()
    assert store.current() == "backup"
    by_key(at.selectbox, "report.current").select("group meeting").run()
    assert store.current() == "group meeting"
    # a pin from a page goes to the chosen report
    at.switch_page("pages/overview.py").run()
    by_key(at.button, "overview.strip.pin").click().run()
    assert store.info("group meeting").n_items == 1 and store.info("backup").n_items == 0
    at.switch_page("pages/report.py").run()
    by_key(at.text_input, "report.rename_to").input("meeting 2").run()
    by_key(at.button, "report.rename").click().run()
    assert not at.exception
    assert store.names() == ["backup", "meeting 2"] and store.current() == "meeting 2"
    assert by_key(at.selectbox, "report.current").value == "meeting 2"
    # a bad name is refused with a message, nothing changes
    by_key(at.text_input, "report.rename_to").input("../outside").run()
    by_key(at.button, "report.rename").click().run()
    assert any("is not allowed" in e.value for e in at.error)
    assert store.names() == ["backup", "meeting 2"]
    assert not (home.parent / "outside").exists()
    by_key(at.checkbox, "report.delete_confirm").check().run()
    by_key(at.button, "report.delete").click().run()
    assert not at.exception
    assert store.names() == ["backup"]
    assert by_key(at.selectbox, "report.current").value == "backup"


def test_the_title_and_the_order_are_kept(home):
    store = ReportStore(home)
    at = app_test(home)
    by_key(at.button, "overview.strip.pin").click().run()
    by_key(at.button, "overview.coverage.pin").click().run()
    at.switch_page("pages/report.py").run()
    by_key(at.text_input, "report.title.report").input("Seeds, for Tuesday").run()
    by_key(at.button, "report.down.0").click().run()
    again = app_test(home, "pages/report.py")
    assert by_key(again.text_input, "report.title.report").value == "Seeds, for Tuesday"
    assert [h.split(" · ")[0] for h in heads(again)] == [
        "1. Runs of nli_sim", "2. nli_sim: accuracy of each run"]
    assert store.info("report").title == "Seeds, for Tuesday"


def test_the_significance_statement_and_the_decomposition_table_are_pinned(home):
    sig = app_test(home, "pages/significance.py")
    assert not sig.exception
    statement = next(i.value for i in sig.info if "accuracy" in i.value)
    by_key(sig.button, "significance.statement.pin").click().run()
    bv = app_test(home, "pages/bias_variance.py")
    assert not bv.exception
    by_key(bv.button, "bias_variance.summary.pin").click().run()
    assert not bv.exception
    store = ReportStore(home)
    items = store.items(store.current_or_create())
    assert [item.kind for item in items] == ["text", "table"]
    assert items[0].text == statement and items[0].page == "significance"
    assert items[1].title == "Bias and variance: the decomposition"
    assert list(items[1].table.columns) == ["size", "term", "mean", "95% CI low", "95% CI high",
                                            "bootstrap std"]
    assert "bias²" in set(items[1].table["term"])
