"""Multi-Bootstrap figure: the bootstrap distribution of the difference."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from seedlab.figures.common import PALETTE, styled


def bootstrap_figure(delta: np.ndarray, low: float, high: float, title: str,
                     x_label: str) -> go.Figure:
    """Histogram of ``delta (nboot,)`` with zero and the percentile interval marked."""
    fig = go.Figure(go.Histogram(x=delta, nbinsx=60, marker_color=PALETTE[0], opacity=0.8,
                                 name="bootstrap replicates"))
    fig.add_vline(x=0, line={"color": "black", "width": 1})
    for value, label in ((low, "low"), (high, "high")):
        fig.add_vline(x=value, line={"color": PALETTE[3], "dash": "dash"},
                      annotation_text=f"{label} {value:+.4f}", annotation_position="top")
    fig.update_layout(showlegend=False, bargap=0.02)
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
