"""Bias and variance: Zhong et al.'s decomposition of each instance's loss across seeds."""

from dataclasses import replace

import streamlit as st

from seedlab.analyses import DecompositionQuery
from seedlab.figures.bias_variance import decomposition_figure, variance_by_bias_figure
from seedlab.ui import data
from seedlab.ui.figure import pin_table_button, show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import url_number, url_radio, url_toggle
from seedlab.ui.tables import checkpoint_text, show_table

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Bias and variance")
sel, ds = data.selected_data(
    "No runs to decompose. Choose a seedlab home and a task with runs in the sidebar.")
if len(sel.pretrain_seeds) < 2 or len(sel.finetune_seeds) < 2:
    st.info("The decomposition separates pretraining from fine-tuning variance, so it needs at"
            " least 2 pretraining seeds and 2 fine-tuning seeds. Select more seeds in the"
            f" sidebar (now: {len(sel.pretrain_seeds)} pretraining,"
            f" {len(sel.finetune_seeds)} fine-tuning).")
    st.stop()

c1, c2, c3 = st.columns(3)
with c1:
    score = url_radio("Loss", ["0/1 loss", "squared loss"], "bias_variance.loss",
                      horizontal=True,
                      help="0/1 loss uses correctness; squared loss the gold-label probability.")
with c2:
    with_ckpt = url_toggle("Checkpoint variance", "bias_variance.checkpoints",
                           False, disabled=len(sel.checkpoints) < 2,
                           help="Treat all the checkpoints as a third source of variance"
                                " (4-D), instead of the sidebar's one checkpoint.")
with c3:
    nboot = url_number("Bootstrap replicates (CIs over instances)", "bias_variance.nboot",
                       500, int, 100, 5000, step=100)
checkpoint = sel.checkpoints if with_ckpt and len(sel.checkpoints) >= 2 else sel.checkpoint_arg

with st.spinner(f"Decomposing {len(sel.sizes)} sizes (bootstrap CIs: {nboot} replicates) ..."):
    result = data.decomposition(ds, data.query(sel, DecompositionQuery, checkpoint=checkpoint,
                                               score=score, nboot=nboot))
for note in result.notes:
    st.warning(note)
if not result.sizes:
    st.info("No size could be decomposed with this selection.")
    st.stop()

summary = result.summary
shown = replace(sel, checkpoint=checkpoint_text(sel.checkpoint))  # 3.33, not 3.33333
desc = shown.describe(list(result.sizes))
n_text = (f"N = {result.n_instances} instances, {len(sel.pretrain_seeds)} x"
          f" {len(sel.finetune_seeds)} seeds" + (f" x {len(sel.checkpoints)} checkpoints"
                                                 if with_ckpt else ""))
show_figure(
    decomposition_figure(summary[summary["term"] != "loss"],
                         f"{sel.task}: bias-variance decomposition ({score})",
                         "mean over instances"),
    key="bias_variance.stacked", page="Bias and variance",
    caption=f"{desc} · {n_text} · error bars: {nboot}-replicate bootstrap"
            " 95% CIs over instances (seed 0).")

st.caption("Mean of each term over instances with its 95% bootstrap interval over instances"
           f" ({nboot} replicates, seed 0); expected loss = bias² + the variances.")
show_table(result.table, key="bias_variance.summary", height="content")
pin_table_button("Bias and variance: the decomposition", result.table,
                 key="bias_variance.summary.pin", caption=f"{desc} · {n_text}")

st.subheader("Variance conditioned on bias")
show_figure(variance_by_bias_figure(result.by_bias, f"{sel.task}: variance by bias²"),
            key="bias_variance.by_bias", page="Bias and variance",
            caption=f"{desc} · {n_text} · instances binned by bias² (width 0.025), one line"
                    " per size.")

st.subheader("Per-instance terms")
st.caption("Click a column header to sort by that term. Unbiased variance terms can be"
           " negative for a single instance.")
show_table(result.instance_table, key="bias_variance.instances")
