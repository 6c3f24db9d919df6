"""The report store (seedlab.reports) without Streamlit: reports by name in the home, items
kept on disk in order, names that cannot leave the home, atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from seedlab.reports import (
    MANIFEST,
    MAX_TABLE_CELLS,
    ReportError,
    ReportItem,
    ReportStore,
    check_name,
)


@pytest.fixture
def store(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return ReportStore(home)


def bar(title: str = "Accuracy") -> go.Figure:
    return go.Figure(go.Bar(x=["tiny", "base"], y=[0.61, 0.83]), layout={"title": {"text": title}})


def test_items_survive_a_new_store_object_in_order(store):
    store.create("group meeting")
    table = pd.DataFrame({"component": ["bias²", "variance"], "estimate": [0.0123, np.nan],
                          "n": np.array([3, 4], dtype=np.int64)})
    store.add("group meeting", ReportItem.of_figure(bar(), caption="nli_sim · 27 runs", page="Overview"))
    store.add("group meeting", ReportItem.of_table("Decomposition", table, caption="mini", page="Bias"))
    store.add("group meeting", ReportItem.of_text("Finding", "mini beats tiny (p < 0.001).",
                                                  page="Significance"))
    again = ReportStore(store.home)  # e.g. after a server restart
    items = again.items("group meeting")
    assert [i.kind for i in items] == ["figure", "table", "text"]
    assert items[0].title == "Accuracy" and items[0].caption == "nli_sim · 27 runs"
    assert list(items[0].figure().data[0].y) == [0.61, 0.83]
    assert items[1].table.columns.tolist() == ["component", "estimate", "n"]
    assert items[1].table["component"].tolist() == ["bias²", "variance"]
    assert items[1].table["estimate"].iloc[0] == 0.0123 and pd.isna(items[1].table["estimate"].iloc[1])
    assert items[1].table["n"].tolist() == [3, 4]
    assert items[2].text == "mini beats tiny (p < 0.001)." and items[2].page == "Significance"
    assert again.info("group meeting").n_items == 3
    # the layout on disk: a manifest and one file per item
    folder = store.root / "group meeting"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert [e["kind"] for e in manifest["items"]] == ["figure", "table", "text"]
    assert sorted(p.name for p in (folder / "items").iterdir()) == sorted(
        f"{e['id']}.json" for e in manifest["items"])


def test_move_remove_and_reorder(store):
    store.create("r")
    ids = [store.add("r", ReportItem.of_text(f"t{i}", str(i))).id for i in range(4)]
    store.move("r", ids[3], -2)
    assert [i.title for i in store.items("r")] == ["t0", "t3", "t1", "t2"]
    store.move("r", ids[0], -5)  # already first: stays
    assert [i.title for i in store.items("r")] == ["t0", "t3", "t1", "t2"]
    store.remove("r", ids[1])
    assert [i.title for i in store.items("r")] == ["t0", "t3", "t2"]
    assert not (store.root / "r" / "items" / f"{ids[1]}.json").exists()
    store.reorder("r", [ids[2], ids[0], ids[3]])
    assert [i.title for i in store.items("r")] == ["t2", "t0", "t3"]
    with pytest.raises(ReportError, match="must list each of its 3 items once"):
        store.reorder("r", [ids[2], ids[0]])
    with pytest.raises(ReportError, match="has no item 'nope'"):
        store.remove("r", "nope")


def test_several_reports_current_rename_and_delete(store):
    assert store.names() == [] and store.current() is None
    assert store.current_or_create() == "report"  # the first pin makes one
    assert store.names() == ["report"] and store.current() == "report"
    store.create("Meeting 2026-12-02")
    assert store.names() == ["Meeting 2026-12-02", "report"]
    assert store.current() == "report"  # creating does not switch
    store.set_current("Meeting 2026-12-02")
    store.add("Meeting 2026-12-02", ReportItem.of_text("a", "b"))
    store.rename("Meeting 2026-12-02", "meeting")
    assert store.current() == "meeting"  # the current report follows its new name
    assert [i.text for i in store.items("meeting")] == ["b"]
    with pytest.raises(ReportError, match="already exists"):
        store.create("report")
    with pytest.raises(ReportError, match="already exists"):
        store.rename("meeting", "report")
    store.delete("meeting")
    assert store.names() == ["report"] and store.current() is None
    assert store.current_or_create() == "report"  # falls back to an existing one
    with pytest.raises(ReportError, match="no report named 'meeting'"):
        store.items("meeting")
    assert not [p for p in store.root.iterdir() if p.name.startswith(".deleted")]


@pytest.mark.parametrize("name", [
    "", "../escape", "..", ".hidden", "a/b", "a\\b", "tx\n", "trailing ", "trailing.",
    "x" * 65, "a..b", "/etc", "~root", "name\x00", "Ünïcode",
])
def test_names_that_could_leave_the_home_are_refused(store, name):
    with pytest.raises(ReportError, match="is not allowed"):
        check_name(name)
    with pytest.raises(ReportError, match="is not allowed"):
        store.create(name)
    assert store.names() == []
    assert not (store.home.parent / "escape").exists()


def test_a_link_out_of_the_home_is_refused(tmp_path):
    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    outside.mkdir()
    (home / "reports").mkdir()
    os.symlink(outside, home / "reports" / "linked")
    store = ReportStore(home)
    assert store.names() == []
    with pytest.raises(ReportError, match="plain folder"):
        store.create("linked")
    os.symlink(outside, tmp_path / "home2-reports")
    (tmp_path / "home2").mkdir()
    os.symlink(outside, tmp_path / "home2" / "reports")
    with pytest.raises(ReportError, match="expected a folder of reports inside the home"):
        ReportStore(tmp_path / "home2")
    assert list(outside.iterdir()) == []


def test_a_missing_home_is_not_created(tmp_path):
    with pytest.raises(ReportError, match="no such seedlab home"):
        ReportStore(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_a_failed_write_leaves_the_manifest_as_it_was(store, monkeypatch):
    store.create("r")
    store.add("r", ReportItem.of_text("kept", "x"))
    before = (store.root / "r" / MANIFEST).read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.add("r", ReportItem.of_text("lost", "y"))
    monkeypatch.undo()
    assert (store.root / "r" / MANIFEST).read_bytes() == before
    assert [i.title for i in store.items("r")] == ["kept"]
    # no temporary file is left behind
    assert not list((store.root / "r").rglob("*.tmp"))


def test_a_corrupt_manifest_is_named(store):
    store.create("r")
    (store.root / "r" / MANIFEST).write_text("{not json")
    with pytest.raises(ReportError, match=r"report\.json: the report manifest is not valid JSON"):
        store.items("r")
    (store.root / "r" / MANIFEST).write_text(json.dumps(
        {"format": "seedlab-report/1", "items": [{"id": "../../x", "kind": "text"}]}))
    with pytest.raises(ReportError, match="12-hex-digit 'id'"):
        store.items("r")


def test_tables_keep_their_index_and_are_bounded(store):
    store.create("r")
    frame = pd.DataFrame({"accuracy": [0.5, 0.75]}, index=pd.Index(["tiny", "base"], name="size"))
    item = store.add("r", ReportItem.of_table("by size", frame))
    table = store.items("r")[0].table
    assert table.columns.tolist() == ["size", "accuracy"]
    assert table["size"].tolist() == ["tiny", "base"] and item.kind == "table"
    big = pd.DataFrame(np.zeros((MAX_TABLE_CELLS // 2 + 1, 2)))
    with pytest.raises(ReportError, match="a report holds tables of at most"):
        ReportItem.of_table("too big", big)
    odd = pd.DataFrame({"x": [float("inf"), float("-inf")], "when": pd.to_datetime(["2026-01-02", None])})
    store.add("r", ReportItem.of_table("odd", odd))
    back = store.items("r")[1].table
    assert back["x"].tolist() == ["inf", "-inf"]
    assert back["when"].iloc[0].startswith("2026-01-02") and pd.isna(back["when"].iloc[1])


def test_the_report_store_imports_no_streamlit():
    code = ("import sys, seedlab.reports, seedlab.figures.report; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ})
    assert out.stdout.strip() == "False"
