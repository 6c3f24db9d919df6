"""Showing figures (plotly export as PNG or SVG, the data description) and pinning
figures, tables and sentences to the report.

``show_figure(fig, key=..., caption=...)`` is the one way a page shows a figure. The
caption names the data (task, sizes, seeds, N); it is written into the figure as its
subtitle (wrapped to fit a half-width column), so the chart, its PNG or SVG export and the
report all carry it; it is not repeated under the chart. ``note=`` adds a line under the
chart that the subtitle does not hold.

Pinning (the report is kept in the selected home, ``<home>/reports/<name>/``, by
``seedlab.reports``, so it survives reloads and restarts; the Report page chooses which
report is current)::

    pin(fig, caption, page)                        # what show_figure's button does
    pin_table(title, frame, caption="", page="")   # a table as it is now
    pin_text(title, text, page="")                 # e.g. a page's summary sentence
    pin_table_button(title, frame, key=..., caption=..., page=...)  # a button that pins
    pin_text_button(title, text, key=..., page=...)

Every text from data is shown as text (``st.text``, escaped plotly subtitles), never as
Markdown or HTML.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from seedlab.reports import ReportError, ReportItem, ReportStore
from seedlab.store import Store
from seedlab.ui.state import current

FORMATS = ["png", "svg"]
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# The subtitle is wrapped to this many characters a line: at its 12 px font that is about
# 290 px, which fits the narrow column of a 3:2 split at a 1280 px window (plotly never
# wraps text, and a line longer than the chart is cut).
SUBTITLE_CHARS = 60
SUBTITLE_LINES = 6
SUBTITLE_LINE_PX = 16
TITLE_PX = 46  # the title line and the space above it
EXPORT_WIDTH = 1100
LEGEND_ENTRY_PX = 22
# Trace types plotly leaves out of the legend unless asked (they have a colour bar).
NO_LEGEND_BY_DEFAULT = {"heatmap", "histogram2d", "histogram2dcontour", "contour", "table",
                        "surface", "parcoords", "parcats", "sankey", "indicator"}
LEGEND_TITLE_PX = 40
FONT_FAMILY = 'Arial, "Liberation Sans", Helvetica, sans-serif'


def literal(text: str) -> str:
    """``text`` for a Streamlit element that reads Markdown (toasts, labels, info boxes),
    with every ASCII punctuation mark backslash-escaped, so it shows as written: no link,
    image, code span or HTML from data."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))


# ---------------------------------------------------------------------------------------
# The report store of the selected home


def report_store() -> ReportStore:
    """The reports of the selected home; :class:`ReportError` when the home is not a
    seedlab store (a report is never written into a folder a URL named)."""
    home = current().home
    if not Store.is_home(home):
        raise ReportError(f"{home} is not a seedlab store: reports are kept in a store's home")
    return ReportStore(home)


def current_report() -> str:
    """The name of the report pins go to (made, as ``report``, on the first pin)."""
    return report_store().current_or_create()


def report_items() -> list[ReportItem]:
    """The items of the current report, in order."""
    store = report_store()
    return store.items(store.current_or_create())


def _add(item: ReportItem) -> ReportItem:
    store = report_store()
    return store.add(store.current_or_create(), item)


def pin(fig: go.Figure, caption: str, page: str) -> ReportItem:
    """Append a figure (as it is now, with ``caption``) to the current report."""
    return _add(ReportItem.of_figure(fig, caption=caption, page=page))


pin_figure = pin


def pin_table(title: str, frame: pd.DataFrame, caption: str = "", page: str = "") -> ReportItem:
    """Append a table (a copy of ``frame`` as it is now) to the current report. A
    non-default index becomes columns; at most ``seedlab.reports.MAX_TABLE_CELLS`` cells."""
    return _add(ReportItem.of_table(title, frame, caption=caption, page=page))


def pin_text(title: str, text: str, page: str = "", caption: str = "") -> ReportItem:
    """Append a text (e.g. the page's summary sentence) to the current report."""
    return _add(ReportItem.of_text(title, text, page=page, caption=caption))


def _pin_button(make: Callable[[], ReportItem], *, key: str, what: str,
                container: Any = None, help: str | None = None) -> ReportItem | None:
    """A "Pin to report" button; on a click, pins ``make()`` and says where it went."""
    where = container if container is not None else st
    if not where.button("Pin to report", key=key, icon=":material/push_pin:",
                        help=help or f"Add this {what} to the current report (Report page)"):
        return None
    try:
        item = _add(make())
        name = report_store().current()
    except (ReportError, OSError) as exc:
        st.error(f"Could not pin the {what}: {literal(exc)}")
        return None
    st.toast(f"Pinned to report {literal(name)}: {literal(item.title or what)}")
    return item


def pin_table_button(title: str, frame: pd.DataFrame, *, key: str, caption: str = "",
                     page: str | None = None, container: Any = None) -> ReportItem | None:
    """A button that pins ``frame`` to the current report; returns the item when clicked.
    ``page`` defaults to the first part of ``key`` (``"significance.table.pin"`` ->
    ``significance``)."""
    return _pin_button(lambda: ReportItem.of_table(title, frame, caption=caption,
                                                   page=page or key.split(".")[0]),
                       key=key, what="table", container=container)


def pin_text_button(title: str, text: str, *, key: str, page: str | None = None,
                    caption: str = "", container: Any = None) -> ReportItem | None:
    """A button that pins ``text`` (e.g. the page's summary sentence) to the current
    report; returns the item when clicked."""
    return _pin_button(lambda: ReportItem.of_text(title, text, caption=caption,
                                                  page=page or key.split(".")[0]),
                       key=key, what="text", container=container)


# ---------------------------------------------------------------------------------------
# The figure frame


def _pack(parts: list[str], width: int) -> list[str]:
    """Greedy lines of at most ``width`` characters from ``parts`` joined by " · "; a part
    longer than a line is wrapped on its own."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        elif len(part) <= width:
            lines.append(part)
        else:
            lines.extend(textwrap.wrap(part, width=width, break_long_words=True))
    return lines


def subtitle_lines(caption: str, width: int = SUBTITLE_CHARS,
                   max_lines: int = SUBTITLE_LINES) -> tuple[list[str], bool]:
    """``caption`` wrapped into subtitle lines of at most ``width`` characters (breaking at
    its " · " separators where it can, so a list of seeds stays on one line), and whether
    it had to be shortened (more than ``max_lines`` lines; the last line then ends in …)."""
    text = " ".join(caption.split())
    lines = _pack([p for p in text.split(" · ") if p], width) if text else []
    if len(lines) <= max_lines:
        return lines, False
    lines = lines[:max_lines]
    last = lines[-1]
    lines[-1] = (last if len(last) <= width - 2 else last[: width - 2].rstrip()) + " …"
    return lines, True


def legend_entries(fig: go.Figure) -> int:
    """How many entries the figure's legend shows (0 when it shows none)."""
    if fig.layout.showlegend is False:
        return 0
    shown = [t for t in fig.data if t.showlegend is True
             or (t.showlegend is None and t.type not in NO_LEGEND_BY_DEFAULT)]
    if fig.layout.showlegend is None and len(shown) < 2:
        return 0  # plotly's default: no legend for a single trace
    return len({(t.legendgroup or "", t.name or "") for t in shown})


def with_caption(fig: go.Figure, caption: str, *, copy: bool = True) -> go.Figure:
    """A copy of ``fig`` whose subtitle is the caption (escaped, wrapped), with the top
    margin sized to the title, the subtitle and what sits above the plot (subplot titles,
    a legend placed over it), so that none of them sits on another. ``copy=False`` sets
    them on ``fig`` itself (for a figure built for this one use: copying a figure copies
    every point of its traces)."""
    if copy:
        fig = go.Figure(fig)
    lines, _ = subtitle_lines(caption)
    fig.update_layout(
        # The caption holds data names: plotly would read tags in it as its pseudo-HTML.
        title_subtitle_text="<br>".join(html.escape(line, quote=False) for line in lines),
        title_subtitle_font={"size": 12, "color": "#555"},
        title_y=1, title_yref="container", title_yanchor="top", title_pad_t=14,
    )
    if not fig.layout.font.family:
        # An installed font, not the page's web font: a PNG export draws the SVG without
        # the page's fonts, and text measured in one font and drawn in a wider one is cut
        # (legend entries at the right edge).
        fig.update_layout(font_family=FONT_FAMILY)
    # Subplot titles sit just above the plotting area, inside the top margin: leave them a
    # line of their own below the subtitle; a legend placed above the plot gets its own
    # row too.
    titled = any((a.yref == "paper" or str(a.yref or "").endswith("domain"))
                 and a.y is not None and a.y >= 1 and (a.yanchor or "auto") != "top"
                 for a in fig.layout.annotations)
    legend = fig.layout.legend
    legend_on_top = (fig.layout.showlegend is not False and legend.y is not None
                     and legend.y >= 1 and (legend.yanchor or "auto") != "top")
    top = fig.layout.margin.t or 80
    needed = (TITLE_PX + 14 + SUBTITLE_LINE_PX * len(lines) + (24 if titled else 0)
              + (28 if legend_on_top else 0) + 10)
    # The room the subtitle takes is added to the figure's height, so the plot keeps the
    # height its builder gave it (a five-line subtitle would otherwise squash it); and a
    # legend beside the plot gets the height of all its entries (a short bar chart showed
    # two of four verdicts, the rest scrolled out of sight, and cut in the PNG).
    height = (fig.layout.height or 450) + max(0, needed - top)
    margin_t = max(top, needed)
    entries = legend_entries(fig)
    if entries and (legend.orientation or "v") == "v" and not legend_on_top:
        plot = height - margin_t - (fig.layout.margin.b or 80)
        height += max(0, LEGEND_TITLE_PX + LEGEND_ENTRY_PX * entries - plot)
    fig.update_layout(margin_t=margin_t, height=height)
    if not fig.layout.title.font.family:
        fig.update_layout(title_font_family=FONT_FAMILY)
    return fig


def export_config(fig: go.Figure, key: str, fmt: str = "png") -> dict[str, Any]:
    """The plotly config of a shown figure: the camera icon exports ``fmt`` at twice the
    resolution, at :data:`EXPORT_WIDTH` px wide and the figure's own height (plus what a
    legend below the plot needs), so the export shows what the page shows."""
    title = fig.layout.title.text or key
    filename = "".join(ch if ch.isalnum() else "_" for ch in title).strip("_")[:60] or key
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": fmt or "png", "filename": filename, "scale": 2,
                                 "height": fig.layout.height or 450, "width": EXPORT_WIDTH},
    }


def show_figure(fig: go.Figure, *, key: str, caption: str, page: str | None = None,
                note: str | None = None, on_select: str = "ignore",
                selection_mode: str | tuple = ("points",)) -> Any:
    """Render a plotly figure with its caption as subtitle, an export format toggle (the
    camera icon in the chart's toolbar downloads it as PNG or SVG through plotly's own
    export) and a "Pin to report" button. ``note`` is shown under the chart (as text) and
    pinned with the figure; the full caption is shown there too when the subtitle had to
    shorten it. With ``on_select='rerun'`` returns the chart's selection state.
    """
    # Pages build a figure on each run and hand it over: captioned in place, not copied.
    fig = with_caption(fig, caption, copy=False)
    _, shortened = subtitle_lines(caption)
    below = " ".join(t for t in ((caption if shortened else ""), note or "") if t)
    # A right-aligned row that wraps: in a narrow column the controls move onto a second
    # line instead of being cut off (fixed-ratio columns truncated them).
    bar = st.container(horizontal=True, horizontal_alignment="right", wrap=True)
    fmt = bar.segmented_control("Export", FORMATS, default="png", key=f"{key}.format",
                                label_visibility="collapsed",
                                help="Format of the camera icon's download")
    config = export_config(fig, key, fmt or "png")
    _pin_button(lambda: ReportItem.of_figure(fig, caption=" ".join(
                    t for t in (caption, note or "") if t), page=page or key.split(".")[0]),
                key=f"{key}.pin", what="figure", container=bar,
                help="Add this figure and its caption to the current report (Report page)")
    if on_select == "ignore":
        state = st.plotly_chart(fig, key=key, config=config)
    else:
        state = st.plotly_chart(fig, key=key, config=config, on_select=on_select,
                                selection_mode=selection_mode)
    if below:
        st.text(below)
    return state
