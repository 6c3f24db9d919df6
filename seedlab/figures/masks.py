"""Figures of the Pruning-masks page: data in, ``go.Figure`` out, no Streamlit, no queries.

Masks follow Prasanna et al. (2020): heads are ``(layers, heads)`` arrays (12 x 12 for
BERT-base), MLPs ``(layers,)``; a value is the share (or count) of seeds or tasks in which
the component survives pruning. Layers are numbered from 1 in every label, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _fmt(value: float, fmt: str) -> str:
    return "n/a" if not np.isfinite(value) else format(value, fmt)


def survival_figure(
    head: np.ndarray | None,
    mlp: np.ndarray | None = None,
    *,
    head_std: np.ndarray | None = None,
    mlp_std: np.ndarray | None = None,
    zmax: float = 1.0,
    title: str = "Survival across seeds",
    colorbar_title: str = "share of seeds",
    value_format: str = ".2f",
    marks_head: np.ndarray | None = None,
    marks_mlp: np.ndarray | None = None,
    mark_label: str = "stable",
) -> go.Figure:
    """The ``(L, H)`` head heatmap with the ``(L,)`` MLP strip beside it, on one colour scale.

    ``head`` / ``mlp``: the value drawn per component (e.g. mean survival over seeds), either
    may be None (a setting with heads only or MLPs only); ``head_std`` / ``mlp_std``: the
    same shapes, shown in the hover; ``marks_*``: boolean arrays of the same shapes, drawn as
    a star (e.g. stable components). Cells show the value; layer 1 is the bottom row.
    """
    has_head = head is not None and np.size(head) > 0
    has_mlp = mlp is not None and np.size(mlp) > 0
    if not has_head and not has_mlp:
        raise ValueError("survival_figure needs head or MLP values")
    layers = np.shape(head)[0] if has_head else np.size(mlp)
    y = [f"layer {i + 1}" for i in range(layers)]
    columns = [c for c, present in (("attention heads", has_head), ("MLP", has_mlp)) if present]
    heads = np.shape(head)[1] if has_head else 0
    fig = make_subplots(rows=1, cols=len(columns), shared_yaxes=True,
                        column_widths=[heads, 1.6] if len(columns) == 2 else None,
                        horizontal_spacing=0.03, subplot_titles=columns)

    def cell_text(values: np.ndarray, marks: np.ndarray | None) -> np.ndarray:
        text = np.vectorize(lambda v: _fmt(v, value_format), otypes=[object])(values)
        if marks is not None:
            text = np.where(np.asarray(marks, dtype=bool).reshape(values.shape), text + "★",
                            text)
        return text

    def hover(values: np.ndarray, std: np.ndarray | None) -> np.ndarray:
        if std is None:
            return np.vectorize(lambda v: _fmt(v, ".3f"), otypes=[object])(values)
        return np.vectorize(lambda v, s: f"{_fmt(v, '.3f')} ± {_fmt(s, '.3f')} (std)",
                            otypes=[object])(values, np.asarray(std, dtype=float)
                                             .reshape(values.shape))

    if has_head:
        head = np.asarray(head, dtype=float)
        fig.add_trace(go.Heatmap(
            z=head, x=[str(h + 1) for h in range(heads)], y=y, zmin=0, zmax=zmax,
            colorscale="Viridis", text=cell_text(head, marks_head), texttemplate="%{text}",
            textfont={"size": 9}, customdata=hover(head, head_std),
            colorbar={"title": colorbar_title},
            hovertemplate="%{y}, head %{x}: %{customdata}<extra></extra>",
        ), row=1, col=1)
        fig.update_xaxes(title_text="head", type="category", row=1, col=1)
    if has_mlp:
        mlp = np.asarray(mlp, dtype=float).reshape(-1, 1)
        fig.add_trace(go.Heatmap(
            z=mlp, x=["MLP"], y=y[: len(mlp)], zmin=0, zmax=zmax, colorscale="Viridis",
            text=cell_text(mlp, marks_mlp), texttemplate="%{text}", textfont={"size": 9},
            customdata=hover(mlp, mlp_std), showscale=not has_head,
            colorbar={"title": colorbar_title},
            hovertemplate="%{y} MLP: %{customdata}<extra></extra>",
        ), row=1, col=len(columns))
    fig.update_yaxes(title_text="layer", row=1, col=1)
    annotation = f" ★ = {mark_label}" if marks_head is not None or marks_mlp is not None else ""
    fig.update_layout(title=title + annotation, height=560,
                      margin={"l": 70, "r": 20, "t": 110, "b": 50})
    return fig


def pairwise_jaccard_heatmap(matrix: np.ndarray, seeds: Sequence[int | str], *,
                             title: str = "Pairwise Jaccard across seeds") -> go.Figure:
    """Heatmap of the ``(S, S)`` Jaccard similarity of the seeds' masks."""
    names = [f"seed {s}" for s in seeds]
    matrix = np.asarray(matrix, dtype=float)
    text = np.vectorize(lambda v: _fmt(v, ".2f"))(matrix)
    fig = go.Figure(go.Heatmap(
        z=matrix, x=names, y=names, zmin=0, zmax=1, colorscale="Blues", text=text,
        texttemplate="%{text}", colorbar_title="Jaccard",
        hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(title=title, height=300 + 30 * len(names),
                      yaxis_autorange="reversed", xaxis_title="seed", yaxis_title="seed")
    return fig


def jaccard_vs_baseline(frame: pd.DataFrame, *,
                        title: str = "Mask overlap across seeds vs random masks") -> go.Figure:
    """Grouped bars per task: the observed Jaccard across all seeds' masks and the expected
    Jaccard of random masks with the same kept counts (error bar: its std under randomness).

    ``frame``: one row per task with ``task``, ``observed``, ``baseline``, ``baseline_std``
    and ``n_seeds``.
    """
    fig = go.Figure()
    hover_n = frame["n_seeds"].astype(int).astype(str).to_numpy()
    fig.add_trace(go.Bar(
        x=frame["task"], y=frame["observed"], name="observed (kept by all / kept by any)",
        marker_color="#1565c0", customdata=hover_n,
        hovertemplate="%{x}: %{y:.3f} over %{customdata} seeds<extra>observed</extra>",
    ))
    fig.add_trace(go.Bar(
        x=frame["task"], y=frame["baseline"], name="random masks, same kept counts (± std)",
        error_y={"type": "data", "array": frame["baseline_std"].fillna(0).to_numpy()},
        marker_color="#bdbdbd",
        hovertemplate="%{x}: %{y:.3f}<extra>random baseline</extra>",
    ))
    fig.update_layout(title=title, barmode="group", yaxis_range=[0, 1.05],
                      xaxis_title="task", yaxis_title="Jaccard across seeds", height=420,
                      legend={"orientation": "h", "y": -0.25})
    return fig


def task_overlap_heatmap(mean: np.ndarray, std: np.ndarray, tasks: Sequence[str], *,
                         title: str = "Components kept in both tasks") -> go.Figure:
    """``(T, T)`` heatmap of the number of components two tasks both keep, mean over the
    seeds they share, with the std in each cell (the diagonal is a task's own count)."""
    mean = np.asarray(mean, dtype=float)
    std = np.asarray(std, dtype=float)
    text = np.vectorize(lambda m, s: f"{_fmt(m, '.1f')}<br>±{_fmt(s, '.1f')}")(mean, std)
    fig = go.Figure(go.Heatmap(
        z=mean, x=list(tasks), y=list(tasks), colorscale="Greens", text=text,
        texttemplate="%{text}", textfont={"size": 10}, colorbar_title="components",
        hovertemplate="%{y} & %{x}: %{text}<extra></extra>",
    ))
    fig.update_layout(title=title, height=300 + 35 * len(tasks), yaxis_autorange="reversed",
                      xaxis_title="task", yaxis_title="task")
    return fig


def evaluation_bars(frame: pd.DataFrame, *, title: str = "Masked models: good, random, bad"
                    ) -> go.Figure:
    """Grouped bars of mask evaluation results: one group per task, one bar per experiment,
    error bars = std over seeds.

    ``frame``: ``experiment``, ``task``, ``metric``, ``mean``, ``std`` (one metric per task).
    """
    fig = go.Figure()
    for experiment, rows in frame.groupby("experiment", sort=False):
        fig.add_trace(go.Bar(
            x=rows["task"], y=rows["mean"], name=str(experiment),
            error_y={"type": "data", "array": rows["std"].fillna(0).to_numpy()},
            customdata=rows["metric"],
            hovertemplate="%{x} %{customdata}: %{y:.3f}<extra>" + str(experiment) + "</extra>",
        ))
    fig.update_layout(title=title, barmode="group", xaxis_title="task",
                      yaxis_title="score (task's metric)", height=460,
                      legend={"orientation": "h", "y": -0.25})
    return fig
