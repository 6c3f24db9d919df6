"""Seed data map: dataset cartography with seeds in place of epochs."""

import streamlit as st

from seedlab.analyses import DataMapQuery, NotEnoughData
from seedlab.figures.datamap import data_map_figure
from seedlab.ui import data
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import url_multiselect, url_selectbox, url_slider, url_toggle
from seedlab.ui.tables import show_table

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Seed data map")
sel, ds = data.selected_data(
    "No runs to map. Choose a seedlab home and a task with runs in the sidebar.")
runs_selected = len(sel.pretrain_seeds) * len(sel.finetune_seeds)

c1, c2, c3 = st.columns(3)
with c1:
    size = url_selectbox("Size", sel.sizes, "datamap.size", sel.sizes[-1])
    all_ckpts = url_toggle("Use every checkpoint as a run", "datamap.checkpoints", False,
                           disabled=len(sel.checkpoints) < 2)
with c2:
    variability = url_slider("Ambiguous from variability", "datamap.variability", 0.2, float,
                             0.0, 0.5, step=0.01)
with c3:
    confidence = url_slider("Easy from confidence", "datamap.confidence", 0.5, float, 0.0,
                            1.0, step=0.05)
checkpoint = sel.checkpoints if all_ckpts and len(sel.checkpoints) >= 2 else sel.checkpoint_arg
n_runs = runs_selected * (len(sel.checkpoints) if all_ckpts else 1)
if n_runs < 2:
    st.info("A data map needs at least 2 runs (or checkpoints) to measure variability; select"
            " more seeds in the sidebar or turn on 'Use every checkpoint as a run'.")
    st.stop()
try:
    with st.spinner("Computing confidence and variability per instance ..."):
        result = data.data_map(ds, data.query(sel, DataMapQuery, sizes=(), checkpoint=checkpoint,
                                              size=size, variability=variability,
                                              confidence=confidence))
except NotEnoughData as exc:
    st.warning(str(exc))
    st.stop()

frame = result.frame
m = st.columns(3)
for col, (region, count) in zip(m, result.counts.items()):
    col.metric(region.capitalize(), f"{count}", help=f"of {len(frame)} instances")
state = show_figure(
    data_map_figure(frame, f"{sel.task} ({size}): seed data map", variability, confidence),
    key="datamap.map", page="Seed data map", on_select="rerun",
    selection_mode=("box", "lasso", "points"),
    caption=f"{sel.describe([size])} · {n_runs} runs{' and checkpoints' if all_ckpts else ''}"
            f" · N = {len(frame)} instances · box- or lasso-select points to browse them.")

st.subheader("Instance browser")
regions = url_multiselect("Regions", ["easy", "ambiguous", "hard"], "datamap.regions",
                          ["ambiguous", "hard"])
picked = result.picked_ids([p.get("point_index") for p in
                            (state or {}).get("selection", {}).get("points", [])])
view = result.browser(ds.instances(sel.task), regions, picked)
if picked:
    st.caption(f"{len(view)} instances selected on the map (clear the selection to go back to"
               " the regions).")
show_table(view, key="datamap.browser")
