"""Runs: start background fine-tuning runs, watch them, and find their predictions.

A grid form (sizes x pretraining seeds x fine-tuning seeds) with a preview of the jobs it
makes and which already exist; launching queues the new jobs and starts the background
worker pool. The queue refreshes itself with live progress; each job has its log,
metrics, cancel and retry.
"""

from __future__ import annotations

import streamlit as st

from seedlab.analyses.jobs import job_rows, run_metrics
from seedlab.errors import SeedlabError
from seedlab.runs import queue, spec, trainer
from seedlab.runs.executor import default_executor
from seedlab.ui.data import selected_store
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import current

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Runs")
st.caption("Fine-tune models on local GPUs (or the CPU) in the background; finished runs'"
           " predictions appear in every analysis page.")

selection = current()
store = selected_store("No seedlab store to run into. Choose a seedlab home in the sidebar"
                       " (`seedlab import ...` or `seedlab demo` makes one).")


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.replace("\n", ",").split(",") if x.strip()]


st.subheader("New runs")
with st.form("grid"):
    left, right = st.columns(2)
    task = left.text_input("Task", value=selection.task or "rotten_tomatoes",
                           help="rotten_tomatoes is built in; other tasks need a data path")
    data = right.text_input("Data path", value="", help="GLUE/HANS folder or CSV/JSONL file")
    models = st.text_area("Model(s)", value="",
                          help="A local folder, a Hugging Face id or a catalogue name such as"
                               " multiberts-seed_0 or bert-mini. One line per pretraining seed,"
                               " or one line with {pretrain_seed} / {size} placeholders.")
    c1, c2, c3 = st.columns(3)
    sizes = c1.text_input("Sizes", value=", ".join(selection.sizes[:1]) or "base")
    pretrain = c2.text_input("Pretraining seeds", value="0")
    finetune = c3.text_input("Fine-tuning seeds", value="1, 2")
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", value=4.0, min_value=0.1, step=0.5)
    checkpoints = c2.text_input("Checkpoints (epochs)", value="3, 3.33, 3.67, 4")
    learning_rate = c3.number_input("Learning rate", value=2e-5, format="%.1e", step=1e-5)
    batch_size = c4.number_input("Batch size", value=32, min_value=1)
    c1, c2, c3, c4 = st.columns(4)
    max_len = c1.number_input("Max sequence length", value=128, min_value=8)
    max_train = c2.number_input("Max train examples (0 = all)", value=0, min_value=0)
    max_eval = c3.number_input("Max eval examples (0 = all)", value=0, min_value=0)
    prune = c4.checkbox("Prune heads and MLPs")
    inter_task = st.text_input("Intermediate task (STILTs, optional)", value="")
    inter_data = st.text_input("Intermediate task data path", value="")
    previewed = st.form_submit_button("Preview")

model_lines = _list(models) if "\n" in models.strip() else [models.strip()]
grid_data = {
    "task": task.strip(), "model": model_lines[0] if len(model_lines) == 1 else model_lines,
    "size": _list(sizes), "pretrain_seed": _list(pretrain),
    "finetune_seeds": _list(finetune), "epochs": epochs, "learning_rate": learning_rate,
    "batch_size": int(batch_size), "max_seq_length": int(max_len),
    "data": data.strip() or None, "intermediate_task": inter_task.strip() or None,
    "intermediate_data": inter_data.strip() or None,
    "max_train_examples": int(max_train) or None, "max_eval_examples": int(max_eval) or None,
    "prune": bool(prune),
}
grid = None
if models.strip():
    try:
        grid_data["checkpoints"] = [float(c) for c in _list(checkpoints)]
        grid = spec.parse_grid(grid_data, "the form")
    except (SeedlabError, ValueError) as exc:
        st.error(str(exc))
else:
    st.info("Name a model to preview the grid.")

if grid is not None:
    jobs = grid.expand()
    table = queue.preview(store, jobs)
    counts = table["status"].value_counts()
    st.markdown(f"**{len(jobs)} jobs** in the grid: {counts.get('in store', 0)} already in the"
                f" store, {counts.get('queued or running', 0)} queued or running,"
                f" **{counts.get('new', 0)} new**.")
    st.dataframe(table, hide_index=True, key="preview")
    if st.button("Launch new jobs", type="primary", disabled=not counts.get("new", 0)):
        new = [j for j, s in zip(jobs, table["status"]) if s == "new"]
        ids = queue.submit(store, new)
        workers = default_executor().start(store)
        st.success(f"Queued {len(ids)} job(s); {len(workers)} worker(s) running.")

st.subheader("Queue")


@st.fragment(run_every=3)
def queue_view() -> None:
    queue.reap_stale(store)
    frame = queue.jobs(store)
    if frame.empty:
        st.caption("No jobs yet.")
        return
    workers = default_executor().workers(store)
    st.caption(f"{len(workers)} worker(s) alive: "
               + (", ".join(workers["device"]) if len(workers) else "none"))
    st.dataframe(job_rows(frame), hide_index=True, key="jobs", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
        "eta_s": st.column_config.NumberColumn("ETA (s)", format="%.0f"),
    })


queue_view()

jobs_now = queue.jobs(store)
if not jobs_now.empty:
    st.subheader("Job details")
    job_id = st.selectbox("Job", jobs_now["id"].tolist(), key="runs.job",
                          format_func=lambda i: f"{i}: " + " ".join(
                              str(v) for v in jobs_now.set_index("id").loc[
                                  i, ["task", "size", "pretrain_seed", "finetune_seed", "state"]]))
    row = jobs_now.set_index("id").loc[job_id]
    c1, c2 = st.columns(2)
    if c1.button("Cancel", disabled=row["state"] not in queue.ACTIVE):
        st.toast(f"job {job_id}: {queue.cancel(store, int(job_id))}")
        st.rerun()
    if c2.button("Retry", disabled=row["state"] not in ("failed", "cancelled")):
        st.toast(f"job {job_id}: {queue.retry(store, int(job_id))}")
        st.rerun()
    if row["message"]:
        st.markdown(f"**{row['state']}**: {row['message']}")
    log = trainer.log_path(store, int(job_id))
    with st.expander("Log", expanded=row["state"] in ("running", "failed")):
        st.code(log.read_text(encoding="utf-8")[-20000:] if log.exists() else "(no log yet)")
    if row["state"] == "finished" and row["run_dir"]:
        metrics = run_metrics(row["run_dir"])
        if metrics is not None:
            st.dataframe(metrics, hide_index=True, key="metrics")
    st.dataframe(queue.events(store, int(job_id)), hide_index=True, key="events")
