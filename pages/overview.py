"""Overview: what is loaded, run coverage, accuracy per size with its spread across seeds."""

import streamlit as st

from seedlab.figures.overview import accuracy_strip_figure, coverage_figure
from seedlab.runs import queue
from seedlab.runs.executor import default_executor
from seedlab.runs.plan import relaunch_jobs
from seedlab.ui import data
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import current

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Overview")
sel = current()
ds = data.current_data()
if ds is None or sel.task is None:
    st.info("No data to show yet. Choose a seedlab home in the sidebar, or import data with"
            " `seedlab import ...` (see the README).")
    st.stop()

info = ds.info()
totals = info["totals"]
cols = st.columns(5)
cols[0].metric("Tasks", len(info["tasks"]))
cols[1].metric("Runs", f"{totals['runs']:,}")
cols[2].metric("Instances", f"{totals['instances']:,}")
cols[3].metric("Mask rows", f"{totals['masks']:,}")
cols[4].metric("Annotations", f"{totals['annotations']:,}")

st.subheader("Tasks in this store")
st.dataframe(
    [{"task": name, "sizes": ", ".join(t["sizes"]), "runs": t["runs"],
      "instances": t["instances"], "predictions": t["predictions"], "masks": t["masks"],
      "annotations": t["annotations"], "simulated": t["simulated"]}
     for name, t in info["tasks"].items()],
    hide_index=True, key="overview.tasks",
)

st.subheader(f"Coverage of {sel.task}")
runs = ds.runs(sel.task)
if runs.empty:
    st.info(f"Task {sel.task} has instances but no runs yet: import predictions or start runs"
            " on the Runs page.")
    st.stop()
grid = data.coverage(runs, ds.jobs(sel.task))
counts = grid["status"].value_counts()
st.caption(" · ".join(f"{k}: {v}" for k, v in counts.items()) +
           f" of {len(grid)} (size x pretraining seed x fine-tuning seed) cells")
show_figure(coverage_figure(grid, f"Runs of {sel.task}"), key="overview.coverage",
            caption=f"{sel.task}: run status per size, pretraining seed and fine-tuning seed"
                    f" ({len(runs)} runs present).", page="Overview")

missing = grid[grid["status"] == "missing"]
if len(missing):
    with st.expander(f"Launch the {len(missing)} missing runs"):
        jobs, reasons = relaunch_jobs(ds.store, sel.task, list(
            missing[["size", "pretrain_seed", "finetune_seed"]].itertuples(index=False,
                                                                            name=None)))
        st.write(f"{len(jobs)} of {len(missing)} missing cells can be run with the model and"
                 " hyperparameters of the seedlab runs beside them.")
        if reasons:
            st.dataframe({"cannot be launched here": reasons}, hide_index=True,
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
acc = ds.run_accuracy(sel.task, sel.sizes, sel.checkpoint_arg)
acc = acc[acc["pretrain_seed"].astype(str).isin(sel.pretrain_seeds)
          & acc["finetune_seed"].astype(int).isin(sel.finetune_seeds)]
if acc.empty:
    st.info("No runs match the selected sizes, seeds and checkpoint.")
    st.stop()
table = data.accuracy_by_size(acc, sel.sizes)
st.dataframe(table, hide_index=True, key="overview.accuracy",
             column_config={c: st.column_config.NumberColumn(format="%.4f")
                            for c in ("mean", "std", "min", "max")})
if (table["N runs"] < 2).any():
    st.caption("A size with one run has no spread across seeds (std is empty).")
n_inst = int(acc["n"].max())
show_figure(
    accuracy_strip_figure(acc, [s for s in sel.sizes if s in set(acc["size"])],
                          f"{sel.task}: accuracy of each run"),
    key="overview.strip",
    caption=f"{sel.describe()} · one point per run ({len(acc)} runs), N = {n_inst}"
            " instances per run; the bar is the mean.",
    page="Overview",
)
