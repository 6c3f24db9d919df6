"""Figures of Significance, Overview and Pruning masks fit: labels inside the plot and
clear of each other, categorical colours with a legend, legends where they are not cut.
(The pixels were checked in Chromium at 1280 and 1600 px and in the PNG export; these
tests hold the layout choices that fixed them.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from app_support import app_test

from seedlab.figures.overview import STATUS_COLORS, accuracy_strip_figure, coverage_figure
from seedlab.figures.significance import bootstrap_figure
from seedlab.ui.figure import with_caption


def test_interval_labels_sit_inside_the_plot_clear_of_the_subtitle():
    rng = np.random.default_rng(0)
    delta = rng.normal(0.01, 0.006, 1000)
    low, high = np.percentile(delta, [2.5, 97.5])
    fig = with_caption(bootstrap_figure(delta, low, high, "t: bootstrap", "difference"),
                       "a caption long enough to take two lines of subtitle " * 4)
    labels = {a.text.split()[0]: a for a in fig.layout.annotations}
    assert set(labels) == {"low", "high"}
    for a in labels.values():
        # in the plot's own area (paper y <= 1, hanging down from its top), not in the
        # top margin where the subtitle is
        assert (a.yref, a.y, a.yanchor) == ("paper", 1, "top")
    assert labels["low"].text == f"low {low:+.4f}" and labels["low"].xanchor == "right"
    assert labels["high"].text == f"high {high:+.4f}" and labels["high"].xanchor == "left"
    # headroom above the tallest bar for the labels
    counts, _ = np.histogram(delta, bins=np.histogram_bin_edges(delta, bins=60))
    assert fig.layout.yaxis.range[1] == pytest.approx(counts.max() * 1.2)


def test_a_constant_bootstrap_still_draws():
    fig = bootstrap_figure(np.full(200, 0.4), 0.4, 0.4, "t", "difference")
    assert fig.layout.yaxis.range[1] == pytest.approx(240)


def _coverage(statuses):
    rows = [(size, str(p), f) for size in ("a", "b") for p in range(2) for f in (1, 2)]
    return pd.DataFrame([(*r, statuses[k % len(statuses)]) for k, r in enumerate(rows)],
                        columns=["size", "pretrain_seed", "finetune_seed", "status"])


def test_the_coverage_grid_has_a_colour_and_a_legend_entry_per_status():
    grid = _coverage(["present", "failed", "missing", "queued"])
    fig = coverage_figure(grid, "Runs of t")
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    entries = [t for t in fig.data if t.type == "scatter"]
    assert not any(h.showscale for h in heatmaps)  # no continuous colour bar
    # legend in STATUS_COLORS order, each with the colour of its cells
    assert [e.name for e in entries] == ["missing", "present", "queued", "failed"]
    for entry, heatmap in zip(entries, heatmaps):
        assert entry.marker.color == STATUS_COLORS[entry.name]
        assert heatmap.colorscale[0][1] == heatmap.colorscale[-1][1] == STATUS_COLORS[
            entry.name]
        # the layer fills exactly the cells of its status
        z = np.asarray(heatmap.z, dtype=float)
        wanted = grid.assign(row=grid["size"] + " / p" + grid["pretrain_seed"]).pivot(
            index="row", columns="finetune_seed", values="status") == entry.name
        np.testing.assert_array_equal(~np.isnan(z), wanted.to_numpy())
    assert fig.layout.showlegend is True and fig.layout.legend.yref == "container"
    one = coverage_figure(_coverage(["present"]), "Runs of t")
    assert one.layout.showlegend is True  # one status is still named
    assert [t.name for t in one.data if t.type == "scatter"] == ["present"]


def test_the_strip_legend_is_below_the_plot():
    acc = pd.DataFrame([("a", str(p), f, 0.7 + 0.01 * p) for p in range(3) for f in (1, 2)],
                       columns=["size", "pretrain_seed", "finetune_seed", "accuracy"])
    fig = accuracy_strip_figure(acc, ["a"], "t")
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yref == "container"


def test_mask_overlap_figures_take_the_page_width(tmp_path):
    from app_support import make_fixture_home

    home = make_fixture_home(tmp_path / "home")
    at = app_test(home, "pages/masks.py", {"home": str(home)}, timeout=90)
    assert not at.exception
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Pairwise Jaccard" in t for t in titles)
    assert len(at.columns) >= 4  # the widget row is in columns
    for column in at.columns:  # no figure squeezed into a column
        assert not column.get("plotly_chart")
