"""The exported report is one offline HTML file, and it is inert: texts from data (titles,
captions, table cells and headers, sentences, page names) holding HTML, Markdown or
backticks come out as text, and the file fetches nothing."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from seedlab.figures.report import inert_figure, report_html
from seedlab.reports import ReportItem, ReportStore

HOSTILE = [
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "![b](http://127.0.0.1:8600/x.png)",
    "[click](http://127.0.0.1:8600/steal)",
    "`code` ``` a ` b",
    "</script><script>alert(2)</script>",
    '<iframe src="http://127.0.0.1:8600/frame"></iframe>',
    '<a href="http://127.0.0.1:8600/a">link</a>',
    "<link rel=stylesheet href=http://127.0.0.1:8600/s.css>",
    "<object data=http://127.0.0.1:8600/o></object>",
    "&lt;script&gt; already escaped",
]
ACTIVE = {"script", "img", "iframe", "link", "object", "embed", "a", "form", "base", "meta",
          "svg", "video", "audio", "source", "input", "style"}


class Tags(HTMLParser):
    """Every start tag of a document, with its attributes, and the text outside scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        (self.scripts if self._in_script else self.text).append(data)


def parse(document: str) -> Tags:
    parser = Tags()
    parser.feed(document)
    parser.close()
    return parser


def items_with(texts: list[str]) -> list[ReportItem]:
    """One figure, one table and one text item carrying every one of ``texts`` in every
    place a text from data goes."""
    joined = " | ".join(texts)
    fig = go.Figure(go.Bar(x=texts, y=np.arange(len(texts)), name=texts[0],
                           hovertext=texts, text=texts))
    fig.update_layout(title={"text": joined, "subtitle": {"text": texts[-1]}},
                      xaxis_title=texts[1], legend_title_text=texts[2])
    fig.add_annotation(text=texts[7], x=0, y=0)
    table = pd.DataFrame({t: [t, 0.5] for t in texts})
    return [
        ReportItem.of_figure(fig, caption=joined, page=texts[3]),
        ReportItem.of_table(joined, table, caption=joined, page=texts[4]),
        ReportItem.of_text(joined, joined, page=texts[5], caption=joined),
    ]


def tag_counts(doc: Tags) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tag, _ in doc.tags:
        counts[tag] = counts.get(tag, 0) + 1
    return counts


def test_hostile_texts_give_no_active_element():
    hostile = report_html(items_with(HOSTILE), title=HOSTILE[0])
    benign = report_html(items_with([f"text {i}" for i in range(len(HOSTILE))]), title="plain")
    doc, plain = parse(hostile), parse(benign)
    # The same elements as a report of harmless texts: the exporter's own, nothing more.
    assert tag_counts(doc) == tag_counts(plain)
    assert {t for t, _ in doc.tags} & ACTIVE == {"script", "style", "meta"}
    assert [a for t, a in doc.tags if t == "meta"] == [{"charset": "utf-8"}]
    # The exporter's scripts: plotly.js inlined once and one Plotly.newPlot per figure
    # (plus plotly's config line), none loading anything.
    scripts = [attrs for tag, attrs in doc.tags if tag == "script"]
    assert len(scripts) == 3 and all("src" not in a for a in scripts)
    for tag, attrs in doc.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert "src" not in attrs and "href" not in attrs, (tag, attrs)
    # The hostile texts are there, as text, in the visible document.
    visible = "".join(doc.text)
    for text in HOSTILE:
        assert text in visible
    # Inside the figure's script the texts are JSON strings that cannot end the script.
    plot = next(s for s in doc.scripts if "Plotly.newPlot" in s)
    assert "</script" not in plot.lower() and "<img" not in plot.lower()
    assert hostile.count(get_plotlyjs()) == 1


def test_links_in_plotly_texts_become_text():
    fig = go.Figure(go.Scatter(x=[1], y=[2], text=['<a href="http://127.0.0.1:8600/a">x</a>']),
                    layout={"title": {"text": "<A HREF='javascript:alert(1)'>t</A>"},
                            "images": [{"source": "http://127.0.0.1:8600/i.png"},
                                       {"source": "data:image/png;base64,iVBORw0KGgo="}]})
    spec = inert_figure(fig)
    assert spec["layout"]["title"]["text"] == "&lt;A HREF='javascript:alert(1)'>t&lt;/A>"
    assert spec["data"][0]["text"] == ['&lt;a href="http://127.0.0.1:8600/a">x&lt;/a>']
    assert [im["source"] for im in spec["layout"]["images"]] == ["data:image/png;base64,iVBORw0KGgo="]
    document = report_html([ReportItem.of_figure(fig)])
    plot = next(s for s in parse(document).scripts if "Plotly.newPlot" in s)
    assert "127.0.0.1:8600/i.png" not in plot
    args = json.loads(re.search(r"Plotly\.newPlot\(\s*\"figure-1\",\s*(\[.*?\]),\s*\{\"", plot,
                                re.DOTALL).group(1))
    assert args[0]["text"] == ['&lt;a href="http://127.0.0.1:8600/a">x&lt;/a>']


def test_tables_show_every_cell_escaped_with_one_number_format():
    frame = pd.DataFrame({"<b>size</b>": ["<i>tiny</i>", "base"], "accuracy": [0.044, 0.0069],
                          "runs": [3, 4], "note": [None, "`x`"]})
    document = report_html([ReportItem.of_table("Accuracy", frame)])
    assert "<th>&lt;b&gt;size&lt;/b&gt;</th>" in document
    assert "<td>&lt;i&gt;tiny&lt;/i&gt;</td>" in document
    assert '<td class="num">0.0440</td>' in document and '<td class="num">0.0069</td>' in document
    assert '<td class="num">3</td>' in document and "<td>`x`</td>" in document
    assert "<td></td>" in document  # a missing value is empty, not "None"
    assert "<b>" not in document.split("<body>")[1].replace("<b>Table", "")


def test_a_report_from_the_store_exports_offline(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    store = ReportStore(home)
    name = store.current_or_create()
    for item in items_with(HOSTILE):
        store.add(name, item)
    document = report_html(store.items(name), "Meeting")
    doc = parse(document)
    assert document.count(get_plotlyjs()) == 1
    assert [t for t, _ in doc.tags].count("figure") == 3
    assert not [a for t, a in doc.tags if "src" in a or "href" in a]
    assert "Figure 1." in document and "Table 1." in document and "Note 1." in document


@pytest.mark.parametrize("text", HOSTILE)
def test_the_report_page_shows_hostile_texts_as_text(tmp_path_factory, text):
    from app_support import app_test, make_fixture_home

    home = make_fixture_home(tmp_path_factory.mktemp("inject") / "home")
    store = ReportStore(home)
    name = store.current_or_create()
    store.add(name, ReportItem.of_text(text, text, page=text, caption=text))
    store.add(name, ReportItem.of_table(text, pd.DataFrame({text: [text]}), caption=text))
    at = app_test(home, "pages/report.py")
    assert not at.exception
    shown = [t.value for t in at.text]
    assert text in shown  # the sentence, as text
    assert any(v.startswith(f"1. {text} · note from {text}") for v in shown)
    # nothing from the item reached an element that reads Markdown or HTML
    for element in [*at.markdown, *at.caption, *at.info, *at.error, *at.get("html")]:
        assert text not in getattr(element, "value", ""), element
