"""Runs: start background fine-tuning runs, watch them, and find their predictions.

A grid form (sizes x pretraining seeds x fine-tuning seeds) with a preview of the jobs it
makes and which already exist; launching queues the new jobs on the chosen executor (the
local worker pool, or Slurm with the home's ``slurm.json`` defaults and the page's
overrides). The queue and the selected job's details refresh themselves together, after
the queue has been brought up to date (dead workers reaped, Slurm jobs followed and their
finished runs registered).
"""

from __future__ import annotations

import streamlit as st

from seedlab.analyses.jobs import (
    EXECUTOR_LABELS,
    OFFLINE_MODEL_SIZES,
    follow_model,
    job_rows,
    launch,
    refresh,
    run_metrics,
)
from seedlab.errors import SeedlabError
from seedlab.runs import catalogue, queue, slurm, spec
from seedlab.runs.executor import default_executor
from seedlab.ui.data import selected_store
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import current

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Runs")
st.caption("Fine-tune models on this machine (GPUs or the CPU) or on Slurm, in the"
           " background; finished runs' predictions appear in every analysis page.")

selection = current()
store = selected_store("No seedlab store to run into. Choose a seedlab home in the sidebar"
                       " (`seedlab import ...` or `seedlab demo` makes one).")
NOTICE = "runs.notice"  # what the last launch did, shown on the next run
JOB_NOTICE = "runs.job_notice"  # what the last cancel or retry did, shown in the queue view


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.replace("\n", ",").split(",") if x.strip()]


MODELS, SIZES, SUGGESTED = "runs.models", "runs.sizes", "runs.sizes.suggested"
st.session_state.setdefault(MODELS, catalogue.DEFAULT_MODEL)
# The Sizes field follows the model until the user writes a size of their own (the form
# sends both at once, so this runs before they are drawn again).
st.session_state[SIZES], st.session_state[SUGGESTED] = follow_model(
    st.session_state[MODELS], st.session_state.get(SIZES), st.session_state.get(SUGGESTED))

st.subheader("New runs")
with st.form("grid"):
    left, right = st.columns(2)
    task = left.text_input("Task", value=selection.task or "rotten_tomatoes",
                           help="rotten_tomatoes is built in; other tasks need a data path")
    data = right.text_input("Data path", value="", help="GLUE/HANS folder or CSV/JSONL file")
    models = st.text_area(
        "Model(s)", key=MODELS,
        help=f"{catalogue.MINILM} and {catalogue.TINY_BERT} work offline; also a local folder,"
             " a Hugging Face id (from its cache when offline) or a catalogue name such as"
             " multiberts-seed_0. One line per pretraining seed, or one line with"
             " {pretrain_seed} / {size} placeholders.")
    c1, c2, c3 = st.columns(3)
    sizes = c1.text_input("Sizes", key=SIZES,
                          help="The label the runs get in the store, one per model size;"
                               " it follows the model until you change it (the offline"
                               " models: " + ", ".join(
                                   f"{m} {s}" for m, s in OFFLINE_MODEL_SIZES.items()) + ")")
    pretrain = c2.text_input("Pretraining seeds", value="0")
    finetune = c3.text_input("Fine-tuning seeds", value="1, 2")
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", value=2.0, min_value=0.1, step=0.5)
    checkpoints = c2.text_input("Checkpoints (epochs)", value="1, 2")
    learning_rate = c3.number_input("Learning rate", value=2e-5, format="%.1e", step=1e-5)
    batch_size = c4.number_input("Batch size", value=32, min_value=1)
    c1, c2, c3, c4 = st.columns(4)
    max_len = c1.number_input("Max sequence length", value=128, min_value=8)
    max_train = c2.number_input("Max train examples (0 = all)", value=0, min_value=0)
    max_eval = c3.number_input("Max eval examples (0 = all)", value=0, min_value=0)
    prune = c4.checkbox("Prune heads and MLPs")
    inter_task = st.text_input("Intermediate task (STILTs, optional)", value="")
    inter_data = st.text_input("Intermediate task data path", value="")
    st.form_submit_button("Preview")

grid = jobs = None
if models.strip():
    try:  # every step from the form's text to the job list: a bad field is a message
        grid = spec.grid_from_fields({
            "task": task, "model": _list(models) if "\n" in models.strip() else [models],
            "size": _list(sizes), "pretrain_seed": _list(pretrain),
            "finetune_seeds": _list(finetune), "checkpoints": _list(checkpoints),
            "epochs": epochs, "learning_rate": learning_rate, "batch_size": int(batch_size),
            "max_seq_length": int(max_len), "data": data, "intermediate_task": inter_task,
            "intermediate_data": inter_data, "max_train_examples": int(max_train) or None,
            "max_eval_examples": int(max_eval) or None, "prune": prune}, "the form")
        jobs = grid.expand()
    except (SeedlabError, ValueError) as exc:
        st.error(str(exc))
        grid = jobs = None
else:
    st.info("Name a model to preview the grid.")

st.markdown("**Where the jobs run**")
executor = st.radio("Executor", list(EXECUTOR_LABELS), key="runs.executor", horizontal=True,
                    format_func=EXECUTOR_LABELS.get, label_visibility="collapsed")
options = None
# Asked only when Slurm is chosen: squeue may take a while to answer, or time out.
unavailable = slurm.unavailable_reason() if executor == "slurm" else None
if unavailable:
    st.warning(f"Slurm cannot be used from here: {unavailable}.")
elif executor == "slurm":
    try:
        config = slurm.load_config(selection.home)
    except SeedlabError as exc:
        st.error(f"{exc}; the built-in Slurm defaults are shown instead.")
        config = slurm.SlurmOptions()
    st.caption(f"Defaults from {slurm.config_path(selection.home)} (or built in); what you"
               " change here applies to this launch only. Blank text keeps the default.")
    c1, c2, c3, c4 = st.columns(4)
    given = {
        "partition": c1.text_input("Partition", value=config.partition or "",
                                   key="runs.slurm.partition"),
        "gpus_per_job": int(c2.number_input("GPUs per job", value=config.gpus_per_job,
                                            min_value=0, key="runs.slurm.gpus")),
        "cpus_per_job": int(c3.number_input("CPUs per job", value=config.cpus_per_job,
                                            min_value=1, key="runs.slurm.cpus")),
        "mem": c4.text_input("Memory per job", value=f"{config.mem_mb}M",
                             key="runs.slurm.mem", help="4096 (MiB), 4096M or 16G"),
    }
    c1, c2, c3, c4 = st.columns(4)
    given |= {
        "time": c1.text_input("Time limit", value=str(config.time_min), key="runs.slurm.time",
                              help="minutes, H:MM:SS or D-HH:MM:SS"),
        "account": c2.text_input("Account", value=config.account or "",
                                 key="runs.slurm.account"),
        "qos": c3.text_input("QoS", value=config.qos or "", key="runs.slurm.qos"),
        "constraint": c4.text_input("Constraint", value=config.constraint or "",
                                    key="runs.slurm.constraint"),
    }
    try:
        options = slurm.parse_options({k: (v.strip() or None) if isinstance(v, str) else v
                                       for k, v in given.items()},
                                      "the Slurm options on the Runs page", base=config)
    except SeedlabError as exc:
        st.error(str(exc))


def _launch(new_jobs: list[spec.JobSpec], executor: str, options) -> None:
    """Launch button callback: runs before the page is drawn again, so the preview drawn
    after it is computed against the queue that now holds the launched jobs."""
    try:
        st.session_state[NOTICE] = ("success", launch(store, new_jobs, executor,
                                                      options).message)
    except (SeedlabError, ValueError) as exc:
        st.session_state[NOTICE] = ("error", f"Nothing was launched: {exc}")


if jobs is not None:
    table = queue.preview(store, jobs)
    counts = table["status"].value_counts()
    st.markdown(f"**{len(jobs)} jobs** in the grid: {counts.get('in store', 0)} already in the"
                f" store, {counts.get('queued or running', 0)} queued or running,"
                f" **{counts.get('new', 0)} new**.")
    st.dataframe(table, hide_index=True, key="preview")
    new = [j for j, s in zip(jobs, table["status"]) if s == "new"]
    ready = executor == "local" or options is not None
    st.button("Launch new jobs", type="primary", disabled=not new or not ready,
              on_click=_launch, args=(new, executor, options))
if NOTICE in st.session_state:
    kind, text = st.session_state.pop(NOTICE)
    (st.success if kind == "success" else st.error)(text)


def _act(action, job_id: int) -> None:
    """Cancel / Retry button callback (``slurm.cancel``/``retry`` also handle local jobs)."""
    try:
        st.session_state[JOB_NOTICE] = ("success", f"job {job_id}: {action(store, job_id)}")
    except (SeedlabError, KeyError) as exc:
        st.session_state[JOB_NOTICE] = ("error", f"job {job_id}: {exc}")


st.subheader("Queue")


@st.fragment(run_every=3)
def queue_view() -> None:
    """The queue and the selected job's details, drawn from one fresh read of the queue
    (so the details never show a state the table has left)."""
    for warning in refresh(store):
        st.warning(warning)
    if JOB_NOTICE in st.session_state:
        kind, text = st.session_state.pop(JOB_NOTICE)
        (st.success if kind == "success" else st.error)(text)
    frame = queue.jobs(store)
    if frame.empty:
        st.caption("No jobs yet.")
        return
    workers = default_executor().workers(store)
    st.caption(f"{len(workers)} local worker(s) alive: "
               + (", ".join(workers["device"]) if len(workers) else "none"))
    st.dataframe(job_rows(frame), hide_index=True, key="jobs", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
        "eta_s": st.column_config.NumberColumn("ETA (s)", format="%.0f"),
        "slurm_id": st.column_config.TextColumn("Slurm id"),
        "slurm_state": st.column_config.TextColumn("Slurm state"),
        "created_at": st.column_config.TextColumn("queued at"),
        "finished_at": st.column_config.TextColumn("ended at"),
    })

    st.subheader("Job details")
    rows = frame.set_index("id")
    job_id = st.selectbox("Job", rows.index.tolist(), key="runs.job",
                          format_func=lambda i: f"{i}: " + " ".join(str(v) for v in rows.loc[
                              i, ["task", "size", "pretrain_seed", "finetune_seed", "state"]]))
    row = rows.loc[job_id]
    c1, c2 = st.columns(2)
    c1.button("Cancel", disabled=row["state"] not in queue.ACTIVE, key="runs.cancel",
              on_click=_act, args=(slurm.cancel, int(job_id)))
    c2.button("Retry", disabled=row["state"] not in ("failed", "cancelled"), key="runs.retry",
              on_click=_act, args=(slurm.retry, int(job_id)))
    where = f" (Slurm {row['slurm_id']}: {row['slurm_state']})" \
        if row["executor"] == "slurm" and row["slurm_id"] else ""
    message = row["message"] if isinstance(row["message"], str) and row["message"] else ""
    st.text(f"{row['state']}{where}" + (f": {message}" if message else ""))
    with st.expander("Log", expanded=row["state"] in ("running", "failed")):
        st.code(slurm.logs(store, int(job_id), tail_bytes=20_000) or "(no log yet)")
    if row["state"] == "finished" and row["run_dir"]:
        metrics = run_metrics(row["run_dir"])
        if metrics is not None:
            st.dataframe(metrics, hide_index=True, key="metrics")
    st.dataframe(queue.events(store, int(job_id)), hide_index=True, key="events")


queue_view()
