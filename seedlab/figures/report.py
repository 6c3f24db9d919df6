"""One self-contained HTML file of pinned figures, for meetings (no Streamlit)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io as pio


@dataclass
class ReportItem:
    """A pinned figure: the plotly figure as JSON, its caption, the page and the time."""

    figure_json: str
    caption: str
    page: str
    at: str
    title: str = ""

    def figure(self) -> go.Figure:
        return pio.from_json(self.figure_json)


def report_html(items: Sequence[ReportItem], title: str = "seedlab report") -> str:
    """An HTML page with every figure in order and its caption; plotly.js is inlined once,
    so the file opens offline."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        ("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}figure{margin:2em 0;border-bottom:1px solid #ddd;"
        "padding-bottom:1.5em}figcaption{color:#444;font-size:0.95em;margin-top:0.5em}"
        ".meta{color:#888;font-size:0.8em}</style>"),
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{len(items)} figure(s), exported from seedlab.</p>',
    ]
    for index, item in enumerate(items):
        fig_html = pio.to_html(
            item.figure(),
            include_plotlyjs=(index == 0),
            full_html=False,
            config={"displaylogo": False, "responsive": True},
            div_id=f"figure-{index + 1}",
        )
        parts.append("<figure>")
        parts.append(fig_html)
        parts.append(
            f"<figcaption><b>Figure {index + 1}.</b> {html.escape(item.caption)}"
            f'<br><span class="meta">{html.escape(item.page)} · {html.escape(item.at)}'
            "</span></figcaption>"
        )
        parts.append("</figure>")
    if not items:
        parts.append("<p>No figures were pinned.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
