"""Figures of Annotate, Decaying, Agreement and Seed data map leave room for what they
label (issue 15, section 5): checked on the figure objects; the screenshots at 1280 px and
1600 px and the PNG exports were looked at by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seedlab import stats
from seedlab.figures.agreement import agreement_heatmap
from seedlab.figures.annotate import verdict_counts
from seedlab.figures.decaying import decay_cdf_figure
from seedlab.schema import VERDICTS
from seedlab.ui.figure import with_caption


def test_verdict_legend_is_one_row_under_the_chart_with_every_verdict():
    current = pd.DataFrame({"annotator": ["ann", "ann", "bob", "bob"],
                            "verdict": ["wrong", "unsure", "correct", "reasonable"]})
    fig = verdict_counts(current)
    assert [t.name for t in fig.data] == list(VERDICTS)
    legend = fig.layout.legend
    assert (legend.orientation, legend.yref, legend.yanchor, legend.y) == (
        "h", "container", "bottom", 0.0)
    # the bottom margin holds the axis title and the legend row
    assert fig.layout.margin.b >= 100 and fig.layout.height >= 230 + 40 * 2


def _cdf_at(grid: np.ndarray, cdf: np.ndarray, x: float) -> float:
    return float(cdf[np.searchsorted(grid, x)])


def test_decay_labels_stand_off_both_curves():
    rng = np.random.default_rng(0)
    small = (rng.random((400, 4, 3)) < rng.uniform(0.2, 0.9, 400)[:, None, None]).astype(float)
    large = small.copy()
    large[:60] = 0.0  # decaying instances
    large[60:120] = 1.0  # improving ones
    result = stats.decay_bounds(small, large)
    fig = decay_cdf_figure(result.grid, result.cdf_diff, result.cdf_baseline, result.decaying,
                           result.improving, "t", "s", "l")
    labels = {a.text.split(" ")[0]: a for a in fig.layout.annotations}
    assert set(labels) == {"decaying", "improving"}
    for label in labels.values():
        assert (label.axref, label.ayref) == ("x", "y") and label.bgcolor
        for cdf in (result.cdf_diff, result.cdf_baseline):
            assert abs(_cdf_at(result.grid, cdf, label.ax) - label.ay) > 0.1, label.text
    assert labels["decaying"].ax < 0 < labels["improving"].ax


def test_agreement_heatmap_keeps_three_subtitle_lines_above_the_cells():
    names = [f"base/p{p}/f{f}" for p in range(3) for f in range(3)]
    fig = agreement_heatmap(np.eye(9), names, "task: agreement between runs", "agreement")
    shown = with_caption(fig, "x " * 80)  # a caption that wraps to three lines
    assert shown.layout.title.subtitle.text.count("<br>") == 2
    assert shown.layout.margin.t >= 140
