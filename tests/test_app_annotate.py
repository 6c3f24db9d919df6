"""The Annotate page under Streamlit's AppTest, on the fixture home of tests/app_support.py."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from app_support import app_test, make_fixture_home
from streamlit.testing.v1 import AppTest

from seedlab import annotate as an
from seedlab.store import Store

PAGE = "pages/annotate.py"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = make_fixture_home(tmp_path / "home")
    monkeypatch.setenv("SEEDLAB_HOME", str(home))
    return home


def open_page(params: dict | None = None) -> AppTest:
    at = app_test(os.environ["SEEDLAB_HOME"], PAGE, params)
    assert not at.exception, [e.value for e in at.exception]
    return at


def header(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**Instance "))


def progress_text(at: AppTest) -> str:
    return at.get("progress")[0].proto.text


def expected_queue(home: Path, *, small="tiny", large="base", min_drop=0.25, blind=False,
                   seed=0) -> an.Queue:
    """The queue the page should show, from the library on the same data."""
    store = Store(home)
    acc = an.instance_accuracy(store, "nli_sim", ["tiny", "mini", "base"])
    decay = an.decay_table(acc, small, large)["decay"]
    return an.build_queue(store.instances("nli_sim"), decay=decay, min_drop=min_drop,
                          blind=blind, seed=seed)


def test_renders_the_most_decaying_instance_first(home):
    at = open_page()
    queue = expected_queue(home)
    assert len(queue) == 8  # the fixture plants 8 decaying instances
    first = queue.instance_ids[0]
    assert f"of {len(queue)}** · `{first}`" in header(at)
    assert "group **decaying**" in header(at)
    assert f"0 of {len(queue)} judged" in progress_text(at)
    # verdict buttons wait for a name
    assert at.button(key="annotate.verdict.wrong").disabled
    assert any("Enter your name" in w.value for w in at.warning)
    # the fixture's two annotators: agreement is shown with its value from the library
    result = an.agreement(Store(home).annotations(current=True), "nli_sim")
    assert any(result.message == m.value for m in at.markdown)


def test_widgets_change_the_queue(home):
    at = open_page()
    at.toggle(key="annotate.blind").set_value(True).run()
    assert not at.exception
    blind = expected_queue(home, blind=True, seed=0)
    assert len(blind) == 16 and blind.n_controls == 8
    # the queue changed, so the page went to its first instance
    assert header(at).startswith(f"**Instance 1 of 16** · `{blind.instance_ids[0]}`")
    assert "group" not in header(at)  # blind: the group is hidden
    assert "controls, shuffled with seed 0" in progress_text(at)
    assert any("hidden in blind mode" in c.value for c in at.caption)

    at.number_input(key="annotate.seed").set_value(5).run()
    reshuffled = expected_queue(home, blind=True, seed=5)
    assert f"`{reshuffled.instance_ids[0]}`" in header(at)

    at.toggle(key="annotate.blind").set_value(False).run()
    at.selectbox(key="annotate.small").set_value("mini").run()
    assert not at.exception
    from_mini = expected_queue(home, small="mini")
    assert f"of {len(from_mini)} judged" in progress_text(at)
    at.slider(key="annotate.min_drop").set_value(0.95).run()
    strict = expected_queue(home, small="mini", min_drop=0.95)
    assert len(strict) < len(from_mini)
    if len(strict) == 0:
        assert any("loses more than 0.95" in i.value for i in at.info)
    else:
        assert f"of {len(strict)} judged" in progress_text(at)


def test_query_params_restore_the_view(home):
    params = {"annotate.blind": "true", "annotate.seed": "5", "annotate.pos": "3",
              "annotate.annotator": "zed", "annotate.min_drop": "0.25"}
    at = open_page(params)
    queue = expected_queue(home, blind=True, seed=5)
    assert header(at).startswith("**Instance 4 of 16**")
    assert f"`{queue.instance_ids[3]}`" in header(at)
    assert at.text_input(key="annotate.annotator").value == "zed"
    assert at.toggle(key="annotate.blind").value is True
    assert at.number_input(key="annotate.seed").value == 5
    assert at.query_params["annotate.pos"] == "3"


def test_a_click_is_in_the_log_and_survives_a_reload(home):
    at = open_page({"annotate.annotator": "cy"})
    first = expected_queue(home).instance_ids[0]
    at.text_input(key=f"annotate.note.nli_sim.{first}").input("premise is vague").run()
    at.button(key="annotate.verdict.wrong").click().run()
    assert not at.exception
    log = Store(home).annotations(annotator="cy")
    assert log[["task", "instance_id", "verdict", "note"]].values.tolist() == [
        ["nli_sim", first, "wrong", "premise is vague"]]
    # the page moved on to the next instance cy has not judged
    assert at.query_params["annotate.pos"] == "1"
    assert "1 of 8 judged" in progress_text(at)

    # a reload (a new session from the same link, back on the first instance) shows the
    # recorded verdict, and changing it appends a row rather than rewriting one
    params = {k: v for k, v in at.query_params.items()}
    params["annotate.pos"] = "0"
    again = open_page(params)
    assert any("Your verdict: **wrong**" in s.value for s in again.success)
    again.button(key="annotate.verdict.reasonable").click().run()
    log = Store(home).annotations(annotator="cy")
    assert log["verdict"].tolist() == ["wrong", "reasonable"]
    assert Store(home).annotations(annotator="cy", current=True)["verdict"].tolist() == [
        "reasonable"]


def test_two_tabs_annotating_at_once_lose_nothing(home):
    tab_a = open_page({"annotate.annotator": "dee"})
    tab_b = open_page({"annotate.annotator": "dee"})
    tab_a.button(key="annotate.verdict.correct").click().run()
    # tab b has not re-read the log yet and judges the same instance, then tab a the next
    tab_b.button(key="annotate.verdict.unsure").click().run()
    tab_a.button(key="annotate.verdict.wrong").click().run()
    log = Store(home).annotations(annotator="dee")
    ids = expected_queue(home).instance_ids
    assert log[["instance_id", "verdict"]].values.tolist() == [
        [ids[0], "correct"], [ids[0], "unsure"], [ids[1], "wrong"]]


def test_partial_data_gives_a_message_not_a_traceback(home):
    at = open_page({"task": "sst_one"})
    assert any("two sizes" in i.value for i in at.info)
    # a home with no annotations at all
    empty = Store(home.parent / "bare")
    with empty.transaction("test", "bare") as tx:
        tx.set_task("t", ["a", "b"])
        tx.add_instances("t", pd.DataFrame({"instance_id": ["x"], "split": ["dev"],
                                            "text_a": ["hi"], "label": ["a"],
                                            "group": ["treatment"]}))
    at = open_page({"home": str(empty.home), "task": "t"})
    assert "`x`" in header(at) and "group **treatment**" in header(at)
    assert any("No verdicts on `t` yet" in i.value for i in at.info)
