"""The shared figure frame (seedlab.ui.figure): the caption is the subtitle and is not
repeated under the chart; subtitles wrap to fit a half-width column, are escaped, and the
top margin leaves each of title, subtitle, subplot titles and a top legend its own room."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
from app_support import app_test, make_fixture_home
from plotly.subplots import make_subplots

from seedlab.ui.figure import (
    SUBTITLE_CHARS,
    SUBTITLE_LINES,
    export_config,
    subtitle_lines,
    with_caption,
)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_fixture_home(tmp_path_factory.mktemp("frame") / "home")


def subtitle(fig: go.Figure) -> str:
    return fig.layout.title.subtitle.text


def test_the_caption_is_not_repeated_under_the_figure(home):
    at = app_test(home)
    assert not at.exception
    charts = at.get("plotly_chart")
    specs = [json.loads(c.proto.spec) for c in charts]
    strip = next(s for s in specs if "accuracy of each run" in s["layout"]["title"]["text"])
    carried = strip["layout"]["title"]["subtitle"]["text"].replace("<br>", " ")
    assert "one point per run (27 runs)" in carried and "the bar is the mean." in carried
    # no element under the charts says it again
    shown = [e.value for e in [*at.caption, *at.text, *at.markdown]]
    assert not [v for v in shown if "one point per run" in v]


def test_a_subtitle_wraps_to_a_half_column_and_a_long_one_is_shortened():
    caption = "nli_sim · tiny, mini, base · pretraining seeds 0, 1, 2 · fine-tuning seeds 1, 2, 3 · N = 200"
    lines, shortened = subtitle_lines(caption)
    assert not shortened and len(lines) == 2
    assert all(len(line) <= SUBTITLE_CHARS for line in lines)
    assert " · ".join(lines) == caption  # broken at its separators
    long_lines, shortened = subtitle_lines("word " * 200)
    assert shortened and len(long_lines) == SUBTITLE_LINES and long_lines[-1].endswith("…")
    assert all(len(line) <= SUBTITLE_CHARS for line in long_lines)


def test_the_subtitle_is_escaped():
    fig = with_caption(go.Figure(), "task <b>x</b> & <a href='http://h/x'>y</a>")
    assert subtitle(fig) == "task &lt;b&gt;x&lt;/b&gt; &amp; &lt;a href='http://h/x'&gt;y&lt;/a&gt;"


def test_the_top_margin_holds_title_subtitle_subplot_titles_and_a_top_legend():
    caption = "task · sizes · seeds · " * 4  # two lines
    plain = with_caption(go.Figure(go.Heatmap(z=[[0.4, 1.0]])), caption)
    assert subtitle(plain).count("<br>") == 1
    assert plain.layout.margin.t == 70 + 16 * 2
    panels = make_subplots(rows=1, cols=2, subplot_titles=["attention heads", "MLP"])
    assert with_caption(panels, caption).layout.margin.t == 70 + 16 * 2 + 24
    legend_on_top = go.Figure(go.Bar(x=[1], y=[1]),
                              layout={"legend": {"orientation": "h", "y": 1.02}})
    assert with_caption(legend_on_top, caption).layout.margin.t == 70 + 16 * 2 + 28
    # the title is anchored to the top of the figure, so subtitle lines grow downwards
    # into the margin made for them, never onto the plot
    assert plain.layout.title.yref == "container" and plain.layout.title.yanchor == "top"
    # a larger margin a builder asked for is kept
    roomy = go.Figure(layout={"margin": {"t": 300}})
    assert with_caption(roomy, caption).layout.margin.t == 300


def test_the_export_keeps_the_figure_height_and_a_fixed_width():
    fig = with_caption(go.Figure(layout={"height": 520, "title": {"text": "A/B: accuracy"}}), "c")
    options = export_config(fig, "page.key", "svg")["toImageButtonOptions"]
    assert fig.layout.height > 520  # the subtitle's room is added to the figure
    assert options == {"format": "svg", "filename": "A_B__accuracy", "scale": 2,
                       "height": fig.layout.height, "width": 1100}


def test_the_plot_keeps_its_height_and_a_legend_gets_room_for_every_entry():
    caption = "task · sizes · seeds · " * 4  # two lines
    fig = with_caption(go.Figure(go.Bar(x=[1], y=[1]),
                                 layout={"height": 400, "margin": {"t": 50, "b": 40}}), caption)
    assert fig.layout.margin.t == 102 and fig.layout.height == 400 + 52  # the subtitle's room
    # one bar, four verdicts: a short chart with a legend of four entries
    verdicts = go.Figure([go.Bar(x=[n], y=["decaying"], orientation="h", name=v)
                          for n, v in zip([6, 3, 2, 1], ["correct", "reasonable", "wrong", "unsure"],
                                          strict=True)],
                         layout={"height": 180, "margin": {"t": 60, "b": 40}})
    roomy = with_caption(verdicts, "rotten_tomatoes · 134 decaying")
    plot = roomy.layout.height - roomy.layout.margin.t - roomy.layout.margin.b
    assert plot >= 40 + 22 * 4
    # a heatmap's colour bar is no legend: no room added
    heat = with_caption(go.Figure(go.Heatmap(z=[[1, 2]]), layout={"height": 300}), "c")
    assert heat.layout.height == 300 + max(0, 70 + 16 - 80)
