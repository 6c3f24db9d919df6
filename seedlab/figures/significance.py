"""Multi-Bootstrap figure: the bootstrap distribution of the difference."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from seedlab.figures.common import PALETTE, styled, vline


def bootstrap_figure(delta: np.ndarray, low: float, high: float, title: str,
                     x_label: str) -> go.Figure:
    """Histogram of ``delta (nboot,)`` with zero and the percentile interval marked.

    The interval's labels sit inside the plot, in headroom kept above the tallest bar
    (the low one left of its line, the high one right of it), so that they never touch
    the subtitle above the plot or each other when the interval is narrow.
    """
    delta = np.asarray(delta, dtype=float)
    edges = np.histogram_bin_edges(delta, bins=60)
    counts, _ = np.histogram(delta, bins=edges)
    width = float(edges[1] - edges[0])
    fig = go.Figure(go.Histogram(
        x=delta, xbins={"start": float(edges[0]), "end": float(edges[-1]) + width / 2,
                        "size": width},
        marker_color=PALETTE[0], opacity=0.8, name="bootstrap replicates"))
    vline(fig, 0, {"color": "black", "width": 1})
    for value, label, side in ((low, "low", "right"), (high, "high", "left")):
        vline(fig, value, {"color": PALETTE[3], "dash": "dash"})
        fig.add_annotation(x=value, y=1, xref="x", yref="paper", yanchor="top",
                           xanchor=side, xshift=-4 if side == "right" else 4,
                           text=f"{label} {value:+.4f}", showarrow=False,
                           font={"color": PALETTE[3], "size": 12},
                           bgcolor="rgba(255,255,255,0.85)")
    fig.update_layout(showlegend=False, bargap=0.02)
    fig.update_yaxes(range=[0, max(int(counts.max()), 1) * 1.2])
    return styled(fig, title, x=x_label, y="replicates", height=380)


def reading(result: dict, baseline: str, treatment: str, metric: str,
            p_text: str | None = None) -> str:
    """A one-sentence plain-language reading of a ``multibootstrap`` result. ``p_text``:
    the p-value as the page writes it (e.g. ``< 0.001`` at the 1/nboot floor); default
    three significant digits."""
    delta = result["delta"]
    level = round(100 * result.get("confidence", 0.95))
    design = "paired" if result.get("paired", True) else "unpaired"
    seeds = result.get("seeds", {})
    names = {"base": baseline, "expt": treatment}
    n_seeds = " and ".join(f"{len(v)} pretraining seeds ({', '.join(map(str, v))}) for"
                           f" {names.get(k, k)}" for k, v in seeds.items()) \
        if isinstance(seeds, dict) else ""
    direction = "higher" if delta["mean"] > 0 else "lower"
    p = p_text or f"{delta['p']:.3g}"
    p = p if p.startswith("<") else f"= {p}"
    sure = "" if delta["low"] > 0 or delta["high"] < 0 else " but the interval includes zero, so"\
        " the seeds do not settle the direction"
    return (f"With a {design} Multi-Bootstrap over {n_seeds or 'the selected seeds'} and"
            f" {result.get('n_examples', '?')} examples ({result.get('nboot')} replicates,"
            f" seed {result.get('seed')}), {treatment} scores {abs(delta['mean']):.4f} {direction}"
            f" {metric} than {baseline} ({level}% interval {delta['low']:+.4f} to"
            f" {delta['high']:+.4f}, one-sided p {p}){sure}.")
