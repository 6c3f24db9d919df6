"""Bias-variance figures: stacked decomposition per size, variance conditioned on bias."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from seedlab.figures.common import PALETTE, styled

TERMS = [("bias2", "bias²"), ("var_pretrain", "pretraining variance"),
         ("var_finetune", "fine-tuning variance"), ("var_checkpoint", "checkpoint variance")]


def decomposition_figure(summary: pd.DataFrame, title: str, y_label: str) -> go.Figure:
    """Stacked bars of the mean terms per size, each with its bootstrap CI as an error bar.

    ``summary``: one row per (size, term) with ``mean``, ``low``, ``high``; terms are
    bias2, var_pretrain, var_finetune and (optionally) var_checkpoint.
    """
    fig = go.Figure()
    sizes = list(dict.fromkeys(summary["size"]))
    for k, (term, label) in enumerate(TERMS):
        part = summary[summary["term"] == term].set_index("size").reindex(sizes)
        if part["mean"].isna().all():
            continue
        fig.add_trace(go.Bar(
            x=sizes, y=part["mean"], name=label, marker_color=PALETTE[k],
            error_y={"type": "data", "symmetric": False,
                     "array": (part["high"] - part["mean"]).to_numpy(),
                     "arrayminus": (part["mean"] - part["low"]).to_numpy(),
                     "color": "#444", "thickness": 1},
            hovertemplate=label + " %{x}: %{y:.4f}<extra></extra>",
        ))
    fig.update_layout(barmode="relative")
    return styled(fig, title, x="size", y=y_label)


def variance_by_bias_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Mean total variance (pretraining + fine-tuning) against mean bias², one line per size.

    ``frame``: ``stats.variance_by_bias`` rows with a ``size`` column added.
    """
    fig = go.Figure()
    for k, (size, part) in enumerate(frame.groupby("size", sort=False)):
        fig.add_trace(go.Scatter(
            x=part["bias2"], y=part["var_pretrain"] + part["var_finetune"], mode="lines+markers",
            name=str(size), line={"color": PALETTE[k % len(PALETTE)]},
            customdata=part["count"], hovertemplate=(
                f"{size}: bias² %{{x:.3f}}, variance %{{y:.4f}}, %{{customdata}} instances"
                "<extra></extra>"),
        ))
    return styled(fig, title, x="bias² (bin mean)", y="variance (pretraining + fine-tuning)")
