"""Decaying-instance figures: CDF of the observed difference against the random baseline."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from seedlab.figures.common import PALETTE, styled


def decay_cdf_figure(grid: np.ndarray, cdf_diff: np.ndarray, cdf_baseline: np.ndarray,
                     decaying: float, improving: float, title: str, small: str, large: str
                     ) -> go.Figure:
    """Empirical CDFs (each ``(200,)`` on ``grid``) of the observed per-instance accuracy
    difference (large - small) and of the random-seed baseline, with the two lower bounds
    marked where the gap between the curves is largest."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=grid, y=cdf_diff, mode="lines", line={"color": PALETTE[3]},
                             name=f"observed: acc({large}) - acc({small})",
                             line_shape="hv"))
    fig.add_trace(go.Scatter(x=grid, y=cdf_baseline, mode="lines", name="random-seed baseline",
                             line={"color": PALETTE[0], "dash": "dash"}, line_shape="hv"))
    gap = cdf_diff - cdf_baseline
    # Each label stands where the curves seldom are, with an arrow to its gap: a CDF of
    # differences is low for t < 0 and high for t > 0, so the decaying label goes in the
    # upper left (below the legend) and the improving label in the lower right, on a white
    # box that keeps it readable whatever crosses it.
    spots = {"decaying": (-0.55, 0.62), "improving": (0.55, 0.35)}
    for side, bound, label in ((grid < 0, decaying, "decaying"), (grid >= 0, improving,
                                                                   "improving")):
        if bound <= 0 or not side.any():
            continue
        values = np.where(side, np.abs(gap), -np.inf)
        t = int(np.argmax(values))
        fig.add_shape(type="line", x0=grid[t], x1=grid[t], y0=cdf_baseline[t], y1=cdf_diff[t],
                      line={"color": "black", "width": 2})
        x_text, y_text = spots[label]
        fig.add_annotation(x=grid[t], y=(cdf_baseline[t] + cdf_diff[t]) / 2,
                           text=f"{label} ≥ {bound:.1%}", showarrow=True, arrowhead=2,
                           axref="x", ayref="y", ax=x_text, ay=y_text,
                           bgcolor="rgba(255,255,255,0.9)", bordercolor="#888",
                           borderpad=3)
    fig.update_layout(legend={"x": 0.01, "y": 0.99, "bgcolor": "rgba(255,255,255,0.9)"})
    fig = styled(fig, title, x="per-instance accuracy difference t",
                 y="share of instances ≤ t", height=480)
    fig.update_layout(margin_t=130)  # the title and up to three subtitle lines
    return fig


def bh_figure(qs: np.ndarray, discoveries: np.ndarray, n: int, title: str) -> go.Figure:
    """BH discoveries per FDR level q, as the bound ``(k_q / N)(1 - q)``."""
    bound = discoveries / max(n, 1) * (1 - qs)
    fig = go.Figure(go.Scatter(x=qs, y=bound, mode="lines", line={"color": PALETTE[2]},
                               customdata=discoveries,
                               hovertemplate="q %{x:.2f}: %{customdata} discoveries, bound"
                                             " %{y:.3f}<extra></extra>", name="(k_q/N)(1-q)"))
    fig = styled(fig, title, x="FDR level q", y="(k_q / N) (1 - q)", height=380)
    fig.update_layout(margin_t=130)  # the title and up to three subtitle lines
    return fig
