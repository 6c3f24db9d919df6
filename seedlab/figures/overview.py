"""Overview figures: run coverage and accuracy across seeds."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from seedlab.figures.common import PALETTE, styled

STATUS_COLORS = {"missing": "#e8e8e8", "present": "#009E73", "running": "#56B4E9",
                 "queued": "#F0E442", "failed": "#D55E00"}


def coverage_figure(coverage: pd.DataFrame, title: str) -> go.Figure:
    """Heatmap of run status.

    ``coverage``: one row per (size, pretrain_seed, finetune_seed) with a ``status`` column
    (present, missing, running, queued, failed); rows of the figure are size / pretraining
    seed, columns fine-tuning seeds.
    """
    statuses = [s for s in STATUS_COLORS if s in set(coverage["status"])] or ["missing"]
    code = {s: i for i, s in enumerate(statuses)}
    frame = coverage.assign(row=coverage["size"].astype(str) + " / p" +
                            coverage["pretrain_seed"].astype(str))
    rows = list(dict.fromkeys(frame["row"]))
    cols = sorted(frame["finetune_seed"].astype(int).unique().tolist())
    z = frame.pivot_table(index="row", columns="finetune_seed", values="status",
                          aggfunc="first").reindex(index=rows, columns=cols)
    zc = z.map(lambda s: code.get(s, 0) if isinstance(s, str) else 0)
    n = len(statuses)
    scale = []
    for i, status in enumerate(statuses):
        scale += [(i / n, STATUS_COLORS[status]), ((i + 1) / n, STATUS_COLORS[status])]
    fig = go.Figure(go.Heatmap(
        z=zc.to_numpy(), x=[f"f{c}" for c in cols], y=rows, text=z.to_numpy(),
        hovertemplate="%{y}, %{x}: %{text}<extra></extra>", colorscale=scale,
        zmin=-0.5, zmax=n - 0.5, xgap=2, ygap=2,
        colorbar={"tickvals": list(range(n)), "ticktext": statuses, "title": "status"},
    ))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return styled(fig, title, x="fine-tuning seed", y="size / pretraining seed",
                  height=max(300, 22 * len(rows) + 150))


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
    if len(seeds) > 12:
        fig.update_layout(showlegend=False)
    return styled(fig, title, x="size", y="accuracy")
