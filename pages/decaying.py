"""Decaying instances: instances a larger model gets wrong more often than a smaller one."""

import streamlit as st

from seedlab.analyses import DecayQuery, NotEnoughData
from seedlab.analyses.decay import ADJUSTED, RAW
from seedlab.figures.decaying import bh_figure, decay_cdf_figure
from seedlab.ui import data
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import url_multiselect, url_selectbox
from seedlab.ui.tables import checkpoint_text, show_table

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Decaying instances")
sel, ds = data.selected_data("No data. Choose a seedlab home and a task in the sidebar.",
                             need_sizes=False)
if len(sel.sizes) < 2:
    st.info("Decay compares two model sizes: select at least two sizes in the sidebar"
            f" (task {sel.task} has {', '.join(sel.all_sizes) or 'none'}).")
    st.stop()
if len(sel.pretrain_seeds) < 2:
    st.info("The random baseline splits the pretraining seeds in two halves: select at least"
            " 2 pretraining seeds.")
    st.stop()

c1, c2 = st.columns(2)
with c1:
    small = url_selectbox("Smaller size", sel.sizes[:-1], "decaying.small", sel.sizes[0])
larger = sel.sizes[sel.sizes.index(small) + 1:]
with c2:
    large = url_selectbox("Larger size", larger, "decaying.large", larger[-1])

try:
    with st.spinner(f"Comparing {small} with {large} (CDFs and Fisher tests per instance) ..."):
        query = data.query(sel, DecayQuery, small=small, large=large)
        out = data.decaying(ds, query)
except NotEnoughData as exc:
    st.warning(str(exc))
    st.stop()
result, bh = out.result, out.bh
n = result.n_instances
checkpoint = ("each run's last checkpoint" if sel.checkpoint == "last"
              else f"checkpoint {checkpoint_text(sel.checkpoint)}")
seeds_text = (f"{len(sel.pretrain_seeds)} pretraining x {len(sel.finetune_seeds)} fine-tuning"
              f" seeds, {checkpoint}")
m1, m2, m3 = st.columns(3)
m1.metric("Decaying (lower bound)", f"{result.decaying:.1%}",
          help="max over t < 0 of CDF_observed(t) - CDF_baseline(t)")
m2.metric("Improving (lower bound)", f"{result.improving:.1%}")
m3.metric("BH lower bound", f"{bh['bound']:.1%}",
          help=f"max over FDR levels q of (k_q / N)(1 - q), attained at q = {bh['q']:.2f}:"
               " k_q instances have a BH-adjusted p-value <= q")
half_a, half_b = (", ".join(half) for half in out.baseline_seeds)
baseline = f"random baseline: pretraining seeds {half_a} against {half_b}"
if out.left_out_seed is not None:
    baseline += (f"; seed {out.left_out_seed} is left out of the comparison (observed and"
                 " baseline), so that the two halves are of equal size")
show_figure(
    decay_cdf_figure(result.grid, result.cdf_diff, result.cdf_baseline, result.decaying,
                     result.improving, f"{sel.task}: {small} → {large}", small, large),
    key="decaying.cdf", page="Decaying instances",
    caption=f"{sel.task} · sizes {small} vs {large} · {seeds_text} · N = {n} instances ·"
            f" {baseline}.")
with st.expander("Benjamini-Hochberg comparison"):
    show_figure(bh_figure(*out.bh_curve, n,
                          f"{sel.task}: BH bound per FDR level, {small} → {large}"),
                key="decaying.bh", page="Decaying instances",
                caption=f"{sel.task} · {small} vs {large} · {seeds_text} · N = {n} · one-sided"
                        " Fisher exact test per instance on seed-ensemble correctness (the"
                        f" argmax of the ensemble's mean {out.bh_input}).")

st.subheader("Instance browser")
browser = data.decay_browser(ds, query)
f1, f2, f3 = st.columns(3)
with f1:
    chosen_splits = url_multiselect("Split", browser.splits, "decaying.split", browser.splits)
with f2:
    chosen_groups = url_multiselect("Group", browser.groups, "decaying.group", browser.groups)
with f3:
    chosen_verdicts = url_multiselect("Verdict", browser.verdicts, "decaying.verdict",
                                      browser.verdicts)
only = url_selectbox("Show", ["decaying (decay < 0)", "all"], "decaying.show")
view = browser.view(chosen_splits, chosen_groups, chosen_verdicts,
                    only_decaying=only.startswith("decaying"))
st.caption(f"{len(view)} of {n} instances · decay = accuracy({large}) - accuracy({small}),"
           f" sorted most decaying first · sizes in the bars: {', '.join(sel.sizes)}")
st.caption(f"p-values: one-sided Fisher exact test per instance on how many pretraining"
           f" seeds' fine-tuning ensembles are right ({small} vs {large}). The BH-adjusted"
           " value is the one the BH bound compares with q; the raw value is before the"
           " adjustment.")
show_table(
    view, key="decaying.browser",
    column_config={
        ADJUSTED: st.column_config.NumberColumn(
            format="%.4f", help="Benjamini-Hochberg adjusted p-value: an instance is a"
                                " discovery at FDR level q when this is <= q"),
        RAW: st.column_config.NumberColumn(
            format="%.4f", help="raw one-sided Fisher exact p-value, before the BH adjustment"),
        "accuracy per size": st.column_config.BarChartColumn(
            "accuracy per size", y_min=0.0, y_max=1.0,
            help=f"mean correctness over seeds for {', '.join(sel.sizes)}"),
        "text_a": st.column_config.TextColumn(width="large"),
        "text_b": st.column_config.TextColumn(width="large"),
    },
)
