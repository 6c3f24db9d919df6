"""Decaying instances: instances a larger model gets wrong more often than a smaller one."""

import numpy as np
import pandas as pd
import streamlit as st

from seedlab.figures.decaying import bh_figure, decay_cdf_figure
from seedlab.ui import data
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import current, url_multiselect, url_selectbox

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Decaying instances")
sel = current()
ds = data.current_data()
if ds is None or sel.task is None:
    st.info("No data. Choose a seedlab home and a task in the sidebar.")
    st.stop()
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
        out = data.decay(ds, sel.task, small, large, sel.pretrain_seeds, sel.finetune_seeds)
except data.NotEnoughData as exc:
    st.warning(str(exc))
    st.stop()
result, bh, ids = out["result"], out["bh"], out["instance_ids"]
n = result.n_instances
seeds_text = (f"{len(sel.pretrain_seeds)} pretraining x {len(sel.finetune_seeds)} fine-tuning"
              " seeds, last checkpoint")
m1, m2, m3 = st.columns(3)
m1.metric("Decaying (lower bound)", f"{result.decaying:.1%}",
          help="max over t < 0 of CDF_observed(t) - CDF_baseline(t)")
m2.metric("Improving (lower bound)", f"{result.improving:.1%}")
m3.metric("BH lower bound", f"{bh['bound']:.1%}", help=f"attained at FDR q = {bh['q']:.2f}")
show_figure(
    decay_cdf_figure(result.grid, result.cdf_diff, result.cdf_baseline, result.decaying,
                     result.improving, f"{sel.task}: {small} → {large}", small, large),
    key="decaying.cdf", page="Decaying instances",
    caption=f"{sel.task} · sizes {small} vs {large} · {seeds_text} · N = {n} instances ·"
            " baseline: difference between the two halves of the pretraining seeds.")
with st.expander("Benjamini-Hochberg comparison"):
    show_figure(bh_figure(np.asarray(bh["qs"]), np.asarray(bh["discoveries"]), n,
                          f"{sel.task}: BH bound per FDR level, {small} → {large}"),
                key="decaying.bh", page="Decaying instances",
                caption=f"{sel.task} · {small} vs {large} · {seeds_text} · N = {n} · one-sided"
                        " Fisher exact test per instance on seed-ensemble correctness.")

st.subheader("Instance browser")
instances = ds.instances(sel.task).set_index("instance_id")
per_size = data.instance_accuracy(ds, sel.task, sel.sizes, sel.pretrain_seeds,
                                  sel.finetune_seeds, "last")
acc = {size: (per_size[size].reindex(ids).to_numpy() if size in per_size
              else np.full(len(ids), np.nan)) for size in sel.sizes}
browser = pd.DataFrame({"instance_id": ids, "decay": result.diff,
                        "bh p-value": bh["pvalues"]})
for column in ("split", "group", "text_a", "text_b", "label"):
    if column in instances:
        browser[column] = instances[column].reindex(ids).to_numpy()
browser["accuracy per size"] = np.column_stack(
    [acc[s] for s in sel.sizes]).astype(float).tolist()  # one list of floats per instance
issues = data.label_issue_scores(ds, sel.task, sel.sizes, sel.pretrain_seeds,
                                 sel.finetune_seeds)
if len(issues):
    browser["label-issue score"] = issues.set_index("instance_id")["score"].reindex(
        ids).to_numpy()
annotations = ds.annotations(sel.task, current=True)
verdict = annotations.groupby("instance_id")["verdict"].agg(
    lambda v: v.mode().iloc[0] if len(v) else "") if len(annotations) else pd.Series(dtype=str)
browser["verdict"] = verdict.reindex(ids).fillna("not annotated").to_numpy()

f1, f2, f3 = st.columns(3)
with f1:
    splits = sorted(browser["split"].dropna().unique()) if "split" in browser else []
    chosen_splits = url_multiselect("Split", splits, "decaying.split", splits)
with f2:
    groups = sorted(browser["group"].dropna().unique()) if "group" in browser else []
    chosen_groups = url_multiselect("Group", groups, "decaying.group", groups)
with f3:
    verdicts = sorted(browser["verdict"].unique())
    chosen_verdicts = url_multiselect("Verdict", verdicts, "decaying.verdict", verdicts)
only = url_selectbox("Show", ["decaying (decay < 0)", "all"], "decaying.show")
view = browser
if splits:
    view = view[view["split"].isin(chosen_splits)]
if groups:
    view = view[view["group"].isin(chosen_groups)]
view = view[view["verdict"].isin(chosen_verdicts)]
if only.startswith("decaying"):
    view = view[view["decay"] < 0]
view = view.sort_values("decay")
st.caption(f"{len(view)} of {n} instances · decay = accuracy({large}) - accuracy({small}),"
           f" sorted most decaying first · sizes in the bars: {', '.join(sel.sizes)}")
st.dataframe(
    view, hide_index=True, key="decaying.browser",
    column_config={
        "decay": st.column_config.NumberColumn(format="%.3f"),
        "bh p-value": st.column_config.NumberColumn(format="%.3g"),
        "label-issue score": st.column_config.NumberColumn(format="%.3f"),
        "accuracy per size": st.column_config.BarChartColumn(
            "accuracy per size", y_min=0.0, y_max=1.0,
            help=f"mean correctness over seeds for {', '.join(sel.sizes)}"),
    },
)
