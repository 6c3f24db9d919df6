"""Shared styling of seedlab figures."""

from __future__ import annotations

import plotly.graph_objects as go

# A qualitative palette that stays readable when printed (Okabe-Ito).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000"]


def styled(fig: go.Figure, title: str, x: str | None = None, y: str | None = None,
           height: int = 450) -> go.Figure:
    """Give ``fig`` a readable title, axis labels and a white template."""
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 17}},
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 30, "t": 80, "b": 60},
        font={"size": 13},
        colorway=PALETTE,
        legend={"title": {"text": ""}},
    )
    if x is not None:
        fig.update_xaxes(title_text=x)
    if y is not None:
        fig.update_yaxes(title_text=y)
    return fig


def vline(fig: go.Figure, x: float, line: dict) -> None:
    """A vertical line at ``x`` across the plot: the shape ``fig.add_vline`` adds, without
    its search over every subplot (a few ms a line on each page run)."""
    fig.add_shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1, yref="y domain", line=line)


def hline(fig: go.Figure, y: float, line: dict) -> None:
    """A horizontal line at ``y`` across the plot (the shape of ``fig.add_hline``)."""
    fig.add_shape(type="line", x0=0, x1=1, xref="x domain", y0=y, y1=y, yref="y", line=line)


def empty_figure(message: str) -> go.Figure:
    """A blank figure that says why it is empty."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper", font={"size": 15})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return styled(fig, "", height=250)
