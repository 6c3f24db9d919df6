"""Overview: what is loaded, run coverage, accuracy per size with its spread across seeds."""

from dataclasses import replace

import pandas as pd
import streamlit as st

from seedlab.analyses import run_coverage, task_table
from seedlab.figures.overview import accuracy_strip_figure, coverage_figure
from seedlab.runs import queue
from seedlab.runs.executor import default_executor
from seedlab.runs.plan import relaunch_jobs
from seedlab.ui import data
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.tables import checkpoint_text, show_table

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Overview")
sel, ds = data.selected_data("No data to show yet. Choose a seedlab home in the sidebar, or"
                             " import data with `seedlab import ...` (see the README).",
                             need_sizes=False)

info = ds.info()
totals = info["totals"]
cols = st.columns(5)
cols[0].metric("Tasks", len(info["tasks"]))
cols[1].metric("Runs", f"{totals['runs']:,}")
cols[2].metric("Instances", f"{totals['instances']:,}")
cols[3].metric("Mask rows", f"{totals['masks']:,}")
cols[4].metric("Annotations", f"{totals['annotations']:,}")

st.subheader("Tasks in this store")
show_table(pd.DataFrame(task_table(info)), key="overview.tasks")

st.subheader(f"Coverage of {sel.task}")
runs = ds.runs(sel.task)
if runs.empty:
    st.info(f"Task {sel.task} has instances but no runs yet: import predictions or start runs"
            " on the Runs page.")
    st.stop()
coverage = run_coverage(runs, ds.jobs(sel.task))
st.caption(" · ".join(f"{k}: {v}" for k, v in coverage.counts.items()) +
           f" of {len(coverage.grid)} (size x pretraining seed x fine-tuning seed) cells")
show_figure(coverage_figure(coverage.grid, f"Runs of {sel.task}"), key="overview.coverage",
            caption=f"{sel.task}: run status per size, pretraining seed and fine-tuning seed"
                    f" ({len(runs)} runs present).", page="Overview")

missing = coverage.missing
if len(missing):
    with st.expander(f"Launch the {len(missing)} missing runs"):
        jobs, reasons = relaunch_jobs(ds.store, sel.task, missing)
        st.write(f"{len(jobs)} of {len(missing)} missing cells can be run with the model and"
                 " hyperparameters of the seedlab runs beside them.")
        if reasons:
            show_table(pd.DataFrame({"cannot be launched here": reasons}),
                       key="overview.unlaunchable")
        if jobs and st.button(f"Launch {len(jobs)} runs", key="overview.launch"):
            ids = queue.submit(ds.store, jobs)
            workers = default_executor().start(ds.store)
            st.success(f"Queued {len(ids)} jobs; {len(workers)} worker(s) running. Follow"
                       " them on the Runs page.")

st.subheader("Accuracy per size across seeds")
if not sel.sizes or not sel.pretrain_seeds or not sel.finetune_seeds:
    st.info("Select at least one size, pretraining seed and fine-tuning seed in the sidebar.")
    st.stop()
accuracy = data.run_accuracy(ds, data.query(sel))
shown = replace(sel, checkpoint=checkpoint_text(sel.checkpoint))  # 3.33, not 3.33333
if accuracy is None:
    st.info("No runs match the selected sizes, seeds and checkpoint.")
    st.stop()
table = accuracy.table
show_table(table, key="overview.accuracy")
if (table["N runs"] < 2).any():
    st.caption("A size with one run has no spread across seeds (std is empty).")
show_figure(
    accuracy_strip_figure(accuracy.runs, accuracy.sizes, f"{sel.task}: accuracy of each run"),
    key="overview.strip",
    caption=f"{shown.describe()} · one point per run ({len(accuracy.runs)} runs),"
            f" {accuracy.n_text(info['tasks'][sel.task]['instances'])};"
            " the bar is the mean.",
    page="Overview",
)
