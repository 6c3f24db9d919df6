"""Agreement: instance-level agreement (or Cohen's kappa) between every pair of runs."""

import streamlit as st

from seedlab.analyses import AgreementQuery, disagreements
from seedlab.figures.agreement import agreement_heatmap
from seedlab.markup import code_span
from seedlab.ui import data
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import set_url_param, url_param, url_radio, url_toggle
from seedlab.ui.tables import show_table

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Agreement between runs")
sel, ds = data.selected_data(
    "No runs to compare. Choose a seedlab home and a task with runs in the sidebar.")

c1, c2 = st.columns(2)
with c1:
    metric = url_radio("Measure", ["agreement", "kappa"], "agreement.metric", horizontal=True,
                       help="Share of instances with the same predicted label, or Cohen's"
                            " kappa (agreement corrected for chance).")
with c2:
    blocks = url_toggle("Aggregate into size x pretraining-seed blocks", "agreement.blocks")

with st.spinner("Computing agreement between every pair of runs ..."):
    query = data.query(sel, AgreementQuery, metric=metric)
    runs = data.run_predictions(ds, query)
    if len(runs.runs) < 2:
        st.info(f"Agreement needs at least 2 runs; the selection has {len(runs.runs)}. Select"
                " more sizes or seeds in the sidebar.")
        st.stop()
    result = data.agreement(ds, query)
names = runs.names
if runs.left_out:
    shown = ", ".join(f"{code_span(name)} ({why})" for name, why in runs.left_out[:8])
    more = f" and {len(runs.left_out) - 8} more" if len(runs.left_out) > 8 else ""
    st.warning(f"{len(runs.left_out)} selected run(s) left out of every table and the heatmap,"
               f" since each run is compared on all {len(runs.instance_ids)} shared instances:"
               f" {shown}{more}. Deselect their seeds in the sidebar, or complete the runs.")
caption = (f"{sel.describe()} · {len(runs.runs)} runs · N = {len(runs.instance_ids)} shared"
           " instances.")

st.subheader("Same vs different pretraining seed")
if len(result.summary):
    # short headers, so that the seven columns fit a laptop's width
    show_table(result.summary, key="agreement.summary", column_config={
        f"{long} pretraining seed: {stat}": st.column_config.NumberColumn(
            f"{short}: {stat}", format="%d" if stat == "pairs" else "%.4f",
            help=f"{stat} over the pairs of runs with {long} pretraining seed")
        for long, short in (("same", "same seed"), ("different", "other seed"))
        for stat in ("mean", "std", "pairs")})
else:
    st.info("Each size has a single run: no same-size pairs to summarise.")

st.subheader("Within and across pretraining seeds")
if len(result.within_across):
    show_table(result.within_across, key="agreement.within_across")
    st.caption("Mean absolute difference in correctness between runs; a gap across > within"
               " means the pretraining seed matters beyond fine-tuning noise.")
if result.not_within_across:
    st.caption(f"Not computed for {', '.join(result.not_within_across)}: needs complete runs"
               " with at least 2 pretraining and 2 fine-tuning seeds.")

st.subheader("Heatmap")
if blocks:
    shown, labels_shown = result.blocks()
    fig = agreement_heatmap(shown, labels_shown, f"{sel.task}: mean {metric} between blocks",
                            metric)
    fig.update_xaxes(title_text="size / pretraining seed")
    fig.update_yaxes(title_text="size / pretraining seed")
    state = show_figure(fig, key="agreement.heatmap", page="Agreement",
                        caption=caption + " Blocks average the pairs of different runs.")
else:
    fig = agreement_heatmap(result.matrix, names, f"{sel.task}: {metric} between runs", metric)
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
pair = disagreements(result, ds.instances(sel.task), ds.label_list(sel.task), a, b)
st.metric("Instances they disagree on", f"{pair.count} of {pair.total}",
          help=f"{metric} between the two runs: {pair.value:.3f}")
show_table(pair.table, key="agreement.disagree")
