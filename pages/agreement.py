"""Agreement: instance-level agreement (or Cohen's kappa) between every pair of runs."""

import numpy as np
import pandas as pd
import streamlit as st

from seedlab import stats
from seedlab.figures.agreement import agreement_heatmap
from seedlab.ui import data
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import current, set_url_param, url_param, url_radio, url_toggle

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Agreement between runs")
sel = current()
ds = data.current_data()
if ds is None or sel.task is None or not sel.sizes:
    st.info("No runs to compare. Choose a seedlab home and a task with runs in the sidebar.")
    st.stop()

c1, c2 = st.columns(2)
with c1:
    metric = url_radio("Measure", ["agreement", "kappa"], "agreement.metric", horizontal=True,
                       help="Share of instances with the same predicted label, or Cohen's"
                            " kappa (agreement corrected for chance).")
with c2:
    blocks = url_toggle("Aggregate into size x pretraining-seed blocks", "agreement.blocks")

with st.spinner("Computing agreement between every pair of runs ..."):
    preds, runs, ids, labels = data.run_rows(ds, sel.task, sel.sizes, sel.pretrain_seeds,
                                             sel.finetune_seeds, sel.checkpoint_arg)
    if len(runs) < 2:
        st.info(f"Agreement needs at least 2 runs; the selection has {len(runs)}. Select more"
                " sizes or seeds in the sidebar.")
        st.stop()
    matrix = data.agreement(ds, sel.task, sel.sizes, sel.pretrain_seeds, sel.finetune_seeds,
                            sel.checkpoint_arg, metric)
names = [f"{r.size}/p{r.pretrain_seed}/f{r.finetune_seed}" for r in runs.itertuples()]
caption = (f"{sel.describe()} · {len(runs)} runs, N = {len(ids)} instances shared by the"
           " selected sizes · runs ordered by size, pretraining seed, fine-tuning seed.")

st.subheader("Same vs different pretraining seed")
rows = []
for size in sel.sizes:
    in_size = (runs["size"] == size).to_numpy()
    if in_size.sum() < 2:
        continue
    sub = matrix[np.ix_(in_size, in_size)]
    summary = stats.agreement_summary(sub, runs["pretrain_seed"].to_numpy()[in_size],
                                      runs["finetune_seed"].to_numpy()[in_size])
    row = {"size": size}
    for key, label in (("same_seed", "same pretraining seed"),
                       ("different_seed", "different pretraining seed")):
        part = summary[key]
        row[f"{label}: mean"] = part["mean"]
        row[f"{label}: std"] = part["std"]
        row[f"{label}: pairs"] = part["pairs"]
    rows.append(row)
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="agreement.summary",
                 column_config={c: st.column_config.NumberColumn(format="%.4f")
                                for c in rows[0] if c.endswith(("mean", "std"))})
else:
    st.info("Each size has a single run: no same-size pairs to summarise.")

st.subheader("Within and across pretraining seeds")
wa_rows, wa_notes = [], []
for size in sel.sizes:
    arrays = ds.arrays(sel.task, size, sel.pretrain_seeds, sel.finetune_seeds,
                       sel.checkpoint_arg)
    if arrays.missing or len(arrays.pretrain_seeds) < 2 or len(arrays.finetune_seeds) < 2:
        wa_notes.append(size)
        continue
    within, across = data.within_across(ds, sel.task, size, sel.pretrain_seeds,
                                        sel.finetune_seeds, sel.checkpoint_arg)
    wa_rows.append({"size": size, "within (same pretraining seed)": within,
                    "across (different pretraining seeds)": across,
                    "across - within": across - within, "N": arrays.shape[0]})
if wa_rows:
    st.dataframe(pd.DataFrame(wa_rows), hide_index=True, key="agreement.within_across")
    st.caption("Mean absolute difference in correctness between runs; a gap across > within"
               " means the pretraining seed matters beyond fine-tuning noise.")
if wa_notes:
    st.caption(f"Not computed for {', '.join(wa_notes)}: needs complete runs with at least 2"
               " pretraining and 2 fine-tuning seeds.")

st.subheader("Heatmap")
if blocks:
    groups = [f"{r.size}/p{r.pretrain_seed}" for r in runs.itertuples()]
    shown, labels_shown = data.block_mean(matrix, groups)
    fig = agreement_heatmap(shown, labels_shown, f"{sel.task}: mean {metric} between blocks",
                            metric)
    fig.update_xaxes(title_text="size / pretraining seed")
    fig.update_yaxes(title_text="size / pretraining seed")
    state = show_figure(fig, key="agreement.heatmap", page="Agreement",
                        caption=caption + " Blocks average the pairs of different runs.")
else:
    fig = agreement_heatmap(matrix, names, f"{sel.task}: {metric} between runs", metric)
    state = show_figure(fig, key="agreement.heatmap", page="Agreement", caption=caption,
                        on_select="rerun", selection_mode=("points",))

st.subheader("Instances two runs disagree on")
# A clicked cell picks the pair; the two selectboxes show and change it.
points = (state or {}).get("selection", {}).get("points", []) if not blocks else []
if points:
    set_url_param("agreement.run_a", str(points[0].get("y")))
    set_url_param("agreement.run_b", str(points[0].get("x")))
    st.session_state.pop("agreement.pair_a", None)
    st.session_state.pop("agreement.pair_b", None)
run_a = url_param("agreement.run_a", names[0])
run_b = url_param("agreement.run_b", names[1])
c1, c2 = st.columns(2)
a = c1.selectbox("Run A", names, index=names.index(run_a) if run_a in names else 0,
                 key="agreement.pair_a")
b = c2.selectbox("Run B", names, index=names.index(run_b) if run_b in names else 1,
                 key="agreement.pair_b")
set_url_param("agreement.run_a", a)
set_url_param("agreement.run_b", b)
ia, ib = names.index(a), names.index(b)
differ = preds[ia] != preds[ib]
label_list = ds.task_row(sel.task)["label_list"]
instances = ds.instances(sel.task).set_index("instance_id")
table = pd.DataFrame({
    "instance_id": ids[differ],
    "gold": [label_list[g] if 0 <= g < len(label_list) else "?" for g in labels[differ]],
    f"A: {a}": [label_list[p] for p in preds[ia][differ]],
    f"B: {b}": [label_list[p] for p in preds[ib][differ]],
})
for column in ("text_a", "text_b"):
    if column in instances:
        table[column] = instances[column].reindex(table["instance_id"]).to_numpy()
st.metric("Instances they disagree on", f"{int(differ.sum())} of {len(ids)}",
          help=f"{metric} between the two runs: {matrix[ia, ib]:.3f}")
st.dataframe(table, hide_index=True, key="agreement.disagree")
