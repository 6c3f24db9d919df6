"""Agreement figures: run x run heatmap of instance-level agreement or kappa."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from seedlab.figures.common import styled


def agreement_heatmap(matrix: np.ndarray, labels: list[str], title: str, metric: str
                      ) -> go.Figure:
    """Heatmap of an ``(R, R)`` agreement or kappa matrix; ``labels`` name the R rows
    (runs, or size / pretraining-seed blocks)."""
    fig = go.Figure(go.Heatmap(
        z=matrix, x=labels, y=labels, colorscale="Viridis", colorbar={"title": metric},
        hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category", tickfont={"size": 10})
    fig.update_xaxes(type="category", tickangle=-60, tickfont={"size": 10})
    side = min(900, max(450, 14 * len(labels) + 200))
    fig = styled(fig, title, x="run (size / pretraining seed / fine-tuning seed)", y="run",
                 height=side)
    # room for the title and a three-line subtitle above the cells
    fig.update_layout(margin_t=140)
    return fig
