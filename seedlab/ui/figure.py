"""Showing figures: plotly export as PNG or SVG, captions, and pinning to the report.

``show_figure(fig, key=..., caption=...)`` is the one way a page shows a figure. The
caption names the data (task, sizes, seeds, N); it is drawn under the chart and also
written into the figure as its subtitle, so an exported PNG or SVG carries it.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from seedlab.figures.report import ReportItem

REPORT_KEY = "seedlab_report"  # st.session_state[REPORT_KEY]: list[ReportItem]
FORMATS = ["png", "svg"]


def report_items() -> list[ReportItem]:
    """The figures pinned in this session, in order."""
    if REPORT_KEY not in st.session_state:
        st.session_state[REPORT_KEY] = []
    return st.session_state[REPORT_KEY]


def pin(fig: go.Figure, caption: str, page: str) -> ReportItem:
    """Append a figure to the report collection."""
    title = fig.layout.title.text or ""
    item = ReportItem(figure_json=fig.to_json(), caption=caption, page=page,
                      at=datetime.now().strftime("%Y-%m-%d %H:%M:%S"), title=title)
    report_items().append(item)
    return item


def with_caption(fig: go.Figure, caption: str) -> go.Figure:
    """A copy of ``fig`` whose subtitle is the caption (wrapped), so exports carry it."""
    fig = go.Figure(fig)
    lines = textwrap.wrap(caption, width=120)[:3]
    fig.update_layout(title_subtitle_text="<br>".join(lines),
                      title_subtitle_font={"size": 12, "color": "#555"})
    top = fig.layout.margin.t or 80
    # Subplot titles sit just above the plotting area, inside the top margin: leave them a
    # line of their own below the subtitle.
    titled = any(a.yref == "paper" and a.y is not None and a.y >= 1
                 for a in fig.layout.annotations)
    fig.update_layout(margin_t=max(top, 70 + 16 * len(lines) + (24 if titled else 0)))
    return fig


def show_figure(fig: go.Figure, *, key: str, caption: str, page: str | None = None,
                on_select: str = "ignore", selection_mode: str | tuple = ("points",)) -> Any:
    """Render a plotly figure with its caption, an export format toggle (the camera icon in
    the chart's toolbar downloads it as PNG or SVG through plotly's own export) and a
    "Pin to report" button. With ``on_select='rerun'`` returns the chart's selection state.
    """
    fig = with_caption(fig, caption)
    title = fig.layout.title.text or key
    filename = "".join(ch if ch.isalnum() else "_" for ch in title).strip("_")[:60] or key
    # A right-aligned row that wraps: in a narrow column the controls move onto a second
    # line instead of being cut off (fixed-ratio columns truncated them).
    bar = st.container(horizontal=True, horizontal_alignment="right", wrap=True)
    fmt = bar.segmented_control("Export", FORMATS, default="png", key=f"{key}.format",
                                   label_visibility="collapsed",
                                   help="Format of the camera icon's download")
    config = {
        "displaylogo": False,
        "toImageButtonOptions": {"format": fmt or "png", "filename": filename, "scale": 2,
                                 "height": fig.layout.height or 450, "width": 1100},
    }
    if bar.button("Pin to report", key=f"{key}.pin", icon=":material/push_pin:",
                  help="Add this figure and its caption to the Report page"):
        pin(fig, caption, page or key.split(".")[0])
        st.toast(f"Pinned: {title}")
    if on_select == "ignore":
        state = st.plotly_chart(fig, key=key, config=config)
    else:
        state = st.plotly_chart(fig, key=key, config=config, on_select=on_select,
                                selection_mode=selection_mode)
    st.caption(caption)
    return state
