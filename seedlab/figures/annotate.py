"""Figures of the Annotate page: data in, ``go.Figure`` out, no Streamlit, no queries.

Titles, instance ids, annotator names and groups are plain text: their markup is shown as
characters (``seedlab.markup.plotly_text``), never rendered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from seedlab.markup import plotly_text
from seedlab.schema import VERDICTS

# One colour per verdict, the same on every figure.
VERDICT_COLORS = {
    "correct": "#2e7d32",
    "reasonable": "#9e9d24",
    "wrong": "#c62828",
    "unsure": "#757575",
}


def accuracy_bars(accuracy: Mapping[str, float], *, instance_id: str | None = None,
                  title: str = "Accuracy per size", height: int = 340) -> go.Figure:
    """Small bar chart of one instance's accuracy (share of runs right, 0..1) per size.

    ``accuracy``: size -> accuracy, in the order to draw (smallest size first);
    ``instance_id``: named under the axis (not in the title, which other code reads as
    Markdown).
    """
    sizes = list(accuracy)
    values = [float(accuracy[s]) for s in sizes]
    fig = go.Figure(go.Bar(
        x=sizes, y=values, marker_color="#1565c0",
        text=[f"{v:.0%}" if np.isfinite(v) else "n/a" for v in values], textposition="outside",
        hovertemplate="size %{x}: %{y:.1%} of runs right<extra></extra>",
    ))
    fig.update_layout(title=plotly_text(title), height=height,
                      margin={"l": 40, "r": 10, "t": 50, "b": 30},
                      xaxis_title="size" if instance_id is None
                      else f"size · instance {plotly_text(instance_id)}",
                      yaxis_title="accuracy over runs",
                      yaxis_range=[0, 1.15], yaxis_tickformat=".0%", showlegend=False)
    return fig


def verdict_counts(current: pd.DataFrame, *, by: str = "annotator",
                   title: str = "Verdicts per annotator") -> go.Figure:
    """Stacked horizontal bars: how many current verdicts of each kind per ``by`` value.

    ``current``: one row per (instance, annotator) with ``verdict`` and the ``by`` column.
    """
    fig = go.Figure()
    if current.empty:
        fig.update_layout(title=plotly_text(title), height=200)
        return fig
    table = (current.groupby([by, "verdict"]).size().unstack(fill_value=0)
             .reindex(columns=list(VERDICTS), fill_value=0))
    for verdict in VERDICTS:
        fig.add_trace(go.Bar(
            y=[plotly_text(v) for v in table.index], x=table[verdict], name=verdict, orientation="h",
            marker_color=VERDICT_COLORS[verdict],
            hovertemplate=f"%{{y}}: %{{x}} {verdict}<extra></extra>",
        ))
    # The legend goes in one row under the axis, in the figure's own bottom margin: beside
    # a short chart a vertical legend of four entries was clipped to two.
    fig.update_layout(title=plotly_text(title), barmode="stack", xaxis_title="instances",
                      yaxis_title=by, height=230 + 40 * len(table),
                      legend={"title": {"text": "verdict"}, "orientation": "h",
                              "xref": "container", "x": 0.0, "xanchor": "left",
                              "yref": "container", "y": 0.0, "yanchor": "bottom",
                              "traceorder": "normal"},
                      margin={"l": 80, "r": 10, "t": 60, "b": 105})
    return fig


def kappa_heatmap(pairwise: np.ndarray, annotators: Sequence[str], pair_n: np.ndarray, *,
                  title: str = "Cohen's kappa between annotators") -> go.Figure:
    """Heatmap of Cohen's kappa for each annotator pair.

    ``pairwise``: (A, A) kappa (NaN where undefined); ``pair_n``: (A, A) shared items.
    """
    names = [plotly_text(a) for a in annotators]
    text = [[("n/a" if not np.isfinite(pairwise[i, j]) else f"{pairwise[i, j]:.2f}")
             + f"<br>n={int(pair_n[i, j])}" for j in range(len(names))]
            for i in range(len(names))]
    fig = go.Figure(go.Heatmap(
        z=pairwise, x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu",
        text=text, texttemplate="%{text}", colorbar_title="kappa",
        hovertemplate="%{y} vs %{x}: %{text}<extra></extra>",
    ))
    fig.update_layout(title=plotly_text(title), xaxis_title="annotator", yaxis_title="annotator",
                      height=260 + 40 * len(names), yaxis_autorange="reversed")
    return fig
