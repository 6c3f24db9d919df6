"""One self-contained HTML file of a report's figures, tables and texts (no Streamlit).

The file is inert: every text that came from data (titles, captions, table cells and
headers, summary sentences, page names) is HTML-escaped, so a task name or an instance
text holding ``<script>``, ``<img onerror=...>`` or Markdown stays text. The only scripts
are the ones written here (plotly.js, inlined once, and one ``Plotly.newPlot`` call per
figure, whose data plotly encodes with ``<`` and ``/`` escaped); nothing is fetched from the
network when the file opens.
"""

from __future__ import annotations

import copy
import html
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from seedlab.reports import ReportItem

__all__ = ["ReportItem", "inert_figure", "report_html", "table_html"]

DECIMALS = 4  # as ``seedlab.ui.tables`` shows floats on the pages
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222}figure{margin:2em 0;border-bottom:1px solid #ddd;padding-bottom:1.5em}"
    "h2{font-size:1.15em;margin:0 0 .5em}figcaption{color:#444;font-size:.95em;margin-top:.5em}"
    ".text{font-size:1.05em;white-space:pre-wrap;background:#f6f8fa;padding:.8em 1em;"
    "border-left:3px solid #0072B2}.meta{color:#888;font-size:.8em}"
    "table{border-collapse:collapse;font-size:.9em;display:block;overflow-x:auto}"
    "th,td{border:1px solid #ddd;padding:.25em .6em;white-space:nowrap}th{background:#f3f3f3}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
)
# Plotly renders a small set of tags inside its own texts; of those only <a href> is
# active (a link). Texts in a pinned figure come from data: show such tags as text.
_PLOTLY_LINK = re.compile(r"<(/?\s*a\b)", re.IGNORECASE)


def _inert_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _PLOTLY_LINK.sub(r"&lt;\1", value)
    if isinstance(value, list):
        return [_inert_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _inert_strings(v) for k, v in value.items()}
    return value


def inert_figure(figure: go.Figure | dict) -> dict:
    """The figure as a plotly dict with nothing in it that acts or fetches: links in its
    texts become text, and layout images are kept only when embedded (``data:`` URIs)."""
    spec = copy.deepcopy(figure.to_plotly_json() if isinstance(figure, go.Figure) else figure)
    layout = spec.get("layout", {})
    if "images" in layout:
        layout["images"] = [im for im in layout["images"]
                            if str(im.get("source", "")).startswith("data:image/")]
    return _inert_strings(spec)


def _cell_text(value: Any) -> tuple[str, bool]:
    """A table cell as shown (escaped) and whether it is a number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", False
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        return (f"{value:.{DECIMALS}f}" if math.isfinite(value) else str(value)), True
    return html.escape(str(value)), False


def table_html(item: ReportItem) -> str:
    """An HTML table of a table item: headers and cells escaped, floats with
    :data:`DECIMALS` decimals."""
    frame = item.table
    if frame is None:
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.astype(object).itertuples(index=False, name=None):
        cells = []
        for value in row:
            if hasattr(value, "item") and not isinstance(value, str):
                value = value.item()  # numpy scalar -> Python
            text, numeric = _cell_text(value)
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def report_html(items: Sequence[ReportItem], title: str = "seedlab report") -> str:
    """An HTML page with every item in order: figures (interactive, plotly.js inlined
    once, so the file opens offline), tables and texts, each with its caption."""
    n_figures = sum(item.kind == "figure" for item in items)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        (f'<p class="meta">{len(items)} item(s), {n_figures} figure(s), exported from'
        " seedlab.</p>"),
    ]
    numbers = {"figure": 0, "table": 0, "text": 0}
    plotly_inlined = False
    for item in items:
        numbers[item.kind] = numbers.get(item.kind, 0) + 1
        label = {"figure": "Figure", "table": "Table", "text": "Note"}.get(item.kind, "Item")
        number = numbers[item.kind]
        parts.append("<figure>")
        if item.title:
            parts.append(f"<h2>{label} {number}. {html.escape(item.title)}</h2>")
        if item.kind == "figure":
            parts.append(pio.to_html(
                inert_figure(json.loads(item.figure_json or "{}")),
                include_plotlyjs=not plotly_inlined, full_html=False,
                config={"displaylogo": False, "responsive": True},
                div_id=f"figure-{number}", validate=False,
            ))
            plotly_inlined = True
        elif item.kind == "table":
            parts.append(table_html(item))
        else:
            parts.append(f'<p class="text">{html.escape(item.text)}</p>')
        caption = f"<b>{label} {number}.</b> " if not item.title else ""
        if item.caption:
            caption += html.escape(item.caption)
        parts.append(f"<figcaption>{caption}<br><span class=\"meta\">"
                     f"{html.escape(item.page)} · {html.escape(item.at)}</span></figcaption>")
        parts.append("</figure>")
    if not items:
        parts.append("<p>Nothing was pinned.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
