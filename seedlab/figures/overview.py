"""Overview figures: run coverage and accuracy across seeds."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from seedlab.figures.common import PALETTE, styled

STATUS_COLORS = {"missing": "#e8e8e8", "present": "#009E73", "running": "#56B4E9",
                 "queued": "#F0E442", "failed": "#D55E00"}


def coverage_figure(coverage: pd.DataFrame, title: str) -> go.Figure:
    """Grid of run status, one discrete colour per status with a legend naming it.

    ``coverage``: one row per (size, pretrain_seed, finetune_seed) with a ``status`` column
    (present, missing, running, queued, failed); rows of the figure are size / pretraining
    seed, columns fine-tuning seeds. Each status is its own one-colour heatmap layer (cells
    of other statuses empty), so the colours are categories, not a scale; a square marker
    per status draws its legend entry.
    """
    frame = coverage.assign(row=coverage["size"].astype(str) + " / p" +
                            coverage["pretrain_seed"].astype(str))
    rows = list(dict.fromkeys(frame["row"]))
    cols = sorted(frame["finetune_seed"].astype(int).unique().tolist())
    z = frame.pivot_table(index="row", columns="finetune_seed", values="status",
                          aggfunc="first").reindex(index=rows, columns=cols)
    x = [f"f{c}" for c in cols]
    present = set(coverage["status"])
    fig = go.Figure()
    for status, color in STATUS_COLORS.items():
        if status not in present:
            continue
        layer = z.map(lambda s, status=status: 1.0 if s == status else None)
        fig.add_trace(go.Heatmap(
            z=layer.to_numpy(dtype=float), x=x, y=rows, name=status, legendgroup=status,
            colorscale=[(0, color), (1, color)], showscale=False, showlegend=False, zmin=0,
            zmax=1,
            xgap=2, ygap=2, hovertemplate=f"%{{y}}, %{{x}}: {status}<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=status, legendgroup=status,
            marker={"symbol": "square", "size": 14, "color": color,
                    "line": {"color": "#999", "width": 1}}))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    fig = styled(fig, title, x="fine-tuning seed", y="size / pretraining seed",
                 height=max(300, 22 * len(rows) + 190))
    # The legend names every status, even when the grid holds one, in one row at the
    # bottom of the figure (placed in pixels, so that a short grid does not cut it and a
    # tall one does not push it away).
    fig.update_layout(showlegend=True, margin_b=100, legend={
        "title": {"text": "status"}, "orientation": "h", "x": 0, "xanchor": "left",
        "yref": "container", "y": 0, "yanchor": "bottom", "itemclick": False,
        "itemdoubleclick": False})
    return fig


def accuracy_strip_figure(accuracy: pd.DataFrame, sizes: list[str], title: str) -> go.Figure:
    """One point per run: accuracy per size, coloured by pretraining seed, with the mean.

    ``accuracy``: one row per run with ``size``, ``pretrain_seed``, ``finetune_seed``,
    ``accuracy``.
    """
    fig = go.Figure()
    seeds = list(dict.fromkeys(accuracy["pretrain_seed"].astype(str)))
    x_of = {s: i for i, s in enumerate(sizes)}
    for k, seed in enumerate(seeds):
        part = accuracy[accuracy["pretrain_seed"].astype(str) == seed]
        offset = (k - (len(seeds) - 1) / 2) * (0.5 / max(len(seeds), 1))
        fig.add_trace(go.Scatter(
            x=[x_of[s] + offset for s in part["size"]], y=part["accuracy"], mode="markers",
            name=f"pretraining seed {seed}",
            marker={"size": 8, "color": PALETTE[k % len(PALETTE)], "opacity": 0.8},
            customdata=part[["size", "finetune_seed"]].to_numpy(),
            hovertemplate=("size %{customdata[0]}, pretraining seed " + seed +
                           ", fine-tuning seed %{customdata[1]}: %{y:.4f}<extra></extra>"),
        ))
    means = accuracy.groupby("size")["accuracy"].mean()
    fig.add_trace(go.Scatter(
        x=[x_of[s] for s in sizes if s in means], y=[means[s] for s in sizes if s in means],
        mode="markers", name="mean over runs",
        marker={"symbol": "line-ew-open", "size": 36, "color": "black",
                "line": {"width": 2}},
    ))
    fig.update_xaxes(tickvals=list(range(len(sizes))), ticktext=sizes)
    fig = styled(fig, title, x="size", y="accuracy")
    # Below the plot, in rows: at the right a legend of long names was cut off in narrow
    # windows and in the exported PNG.
    fig.update_layout(legend={"orientation": "h", "x": 0, "xanchor": "left",
                              "yref": "container", "y": 0, "yanchor": "bottom"},
                      margin_b=110)
    if len(seeds) > 12:
        fig.update_layout(showlegend=False)
    return fig
