"""Seed data map: confidence against variability across runs, per instance."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from seedlab.figures.common import hline, styled, vline
from seedlab.markup import plotly_texts


def data_map_figure(frame: pd.DataFrame, title: str, variability_threshold: float,
                    confidence_threshold: float) -> go.Figure:
    """Scatter of ``variability`` (x) against ``confidence`` (y), coloured by
    ``correctness``; ``frame`` has one row per instance (``stats.seed_data_map`` plus
    ``instance_id``), drawn in its order (a selected point's ``point_index`` is its row).
    Dotted lines mark the region boundaries."""
    fig = go.Figure(go.Scattergl(
        x=frame["variability"], y=frame["confidence"], mode="markers",
        marker={"color": frame["correctness"], "colorscale": "RdYlBu", "cmin": 0, "cmax": 1,
                "size": 7, "opacity": 0.8, "colorbar": {"title": "correctness"}},
        # "id (region)", the id as plotly draws it: markup in an id is shown, not rendered.
        # One string per point (plotly copies a figure's text arrays element by element, a
        # cost at 80,000 points). A selection names its points by position in ``frame``
        # (point_index), not by this text.
        hovertext=(plotly_texts(frame["instance_id"]) + " ("
                   + frame["region"].astype(str).to_numpy(dtype=object) + ")"),
        hovertemplate="%{hovertext}: variability %{x:.3f}, confidence %{y:.3f}<extra></extra>",
    ))
    vline(fig, variability_threshold, {"dash": "dot", "color": "#666"})
    hline(fig, confidence_threshold, {"dash": "dot", "color": "#666"})
    x_max = max(float(frame["variability"].max()) if len(frame) else 0.5, 0.5)
    for text, x, y in (("easy", 0.02, 0.98), ("hard", 0.02, 0.02),
                       ("ambiguous", variability_threshold + 0.02, 0.98)):
        fig.add_annotation(text=text, x=x, y=y, showarrow=False, xanchor="left",
                           font={"size": 14, "color": "#555"})
    fig.update_xaxes(range=[0, x_max * 1.05])
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(dragmode="select")
    fig = styled(fig, title, x="variability (std of gold-label probability across runs)",
                 y="confidence (mean gold-label probability)", height=580)
    fig.update_layout(margin_t=130)  # the title and up to three subtitle lines
    return fig
