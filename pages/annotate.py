"""Annotate: read decaying instances and judge their gold labels.

A focused queue of decaying instances (or, in blind mode, decaying instances mixed with
controls and shuffled, with the group hidden, as in Zhong et al. 2021). One click records
Correct / Reasonable / Wrong / Unsure under the annotator's name in the append-only log;
progress, agreement between annotators and exports follow from that log.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from seedlab import annotate as an
from seedlab.analyses import AccuracyQuery, QueueQuery
from seedlab.errors import StoreError
from seedlab.figures import annotate as fig_annotate
from seedlab.markup import code_span
from seedlab.ui.data import annotation_queue, current_data, instance_accuracy, query
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import (
    current,
    set_url_param,
    url_number,
    url_param,
    url_radio,
    url_selectbox,
    url_slider,
    url_text,
    url_toggle,
)

ensure_frame()  # a fresh server's first run may bypass app.py

SOURCE_DECAY, SOURCE_GROUP = "decay", "group"
SOURCE_LABELS = {SOURCE_DECAY: "Decaying between two sizes",
                 SOURCE_GROUP: "Imported groups (treatment / control)"}
VERDICT_HELP = {
    "correct": "The gold label is right.",
    "reasonable": "The gold label is defensible, though another label would be too.",
    "wrong": "The gold label is wrong.",
    "unsure": "Cannot tell.",
}

st.title("Annotate gold labels")
st.caption("Read the instances a larger model gets wrong more often than a smaller one, and"
           " judge the gold label. Every click is appended to the annotation log: two tabs"
           " or two annotators at once lose nothing, and a reload shows what is recorded.")

selection = current()
data = current_data()
if data is None or selection.task is None:
    st.info("No data loaded. Choose a seedlab home in the sidebar, or import data with"
            " `seedlab import ...`.")
    st.stop()
task = selection.task
instances = data.instances(task)
if instances.empty:
    st.info(f"Task `{task}` has no instance table (text and gold labels), so there is"
            " nothing to read. Import its instances first.")
    st.stop()

# --- which instances ---------------------------------------------------------------------
has_groups = an.has_groups(instances)
sizes = selection.sizes
sources = ([SOURCE_DECAY] if len(sizes) >= 2 else []) + ([SOURCE_GROUP] if has_groups else [])
if not sources:
    st.info(
        f"Nothing to queue for `{task}`: finding decaying instances needs two sizes with runs"
        f" (selected: {', '.join(sizes) or 'none'}; pick more in the sidebar), or instances"
        " imported with a treatment / control group (Zhong et al.'s decaying pickles)."
    )
    st.stop()

settings = st.columns([2, 1, 1, 1])
with settings[0]:
    annotator = url_text("Your name", "annotate.annotator", "",
                         help="Verdicts are recorded under this name.").strip()
    source = url_radio("Queue", sources, "annotate.source", sources[0], horizontal=True,
                       format_func=SOURCE_LABELS.get)
splits = an.splits(instances)
with settings[1]:
    blind = url_toggle("Blind mode", "annotate.blind", False,
                       help="Mix in control instances, shuffle, and hide the group, the"
                            " accuracies and other annotators' verdicts until you vote.")
    split = url_selectbox("Split", ["all", *splits], "annotate.split", "all")
small = large = None
min_drop = 0.0
if source == SOURCE_DECAY:
    with settings[2]:
        small = url_selectbox("Smaller size", sizes[:-1], "annotate.small", sizes[0])
        larger = sizes[sizes.index(small) + 1:]
        large = url_selectbox("Larger size", larger, "annotate.large", larger[-1])
    with settings[3]:
        min_drop = url_slider("Minimum drop in accuracy", "annotate.min_drop", 0.25, float,
                              0.0, 1.0, step=0.05,
                              help="Queue instances whose accuracy over runs is lower for"
                                   " the larger size by more than this.")
control_seed = 0
control_ratio = 1.0
if blind:
    with settings[3]:
        control_seed = url_number("Control seed", "annotate.seed", 0, int, 0, 2**31 - 1,
                                  help="Seed of the control draw and the shuffle.")
        control_ratio = url_number("Controls per decaying instance", "annotate.controls",
                                   1.0, float, 0.0, 5.0, step=0.5)

split_arg = None if split == "all" else [split]
accuracy = None
if sizes:
    try:
        with st.spinner("Computing each instance's accuracy per size..."):
            accuracy = instance_accuracy(data, query(selection, AccuracyQuery, split=split_arg))
    except StoreError as exc:
        st.warning(f"Accuracies per size are not available: {exc}")
try:
    if source == SOURCE_DECAY:
        if accuracy is None or small not in accuracy or large not in accuracy:
            st.info(f"No predictions for {small} and {large} with the selected seeds.")
            st.stop()
        queue = annotation_queue(data, query(
            selection, QueueQuery, split=split_arg, small=small, large=large,
            min_drop=min_drop, blind=blind, control_ratio=control_ratio, seed=control_seed))
    else:
        queue = annotation_queue(data, query(
            selection, QueueQuery, split=split_arg, blind=blind, control_ratio=control_ratio,
            seed=control_seed))
except StoreError as exc:
    st.info(str(exc))
    st.stop()

if len(queue) == 0:
    if source == SOURCE_DECAY:
        st.info(f"No instance of `{task}` ({code_span(split)}) loses more than"
                f" {min_drop:.2f} accuracy"
                f" from {small} to {large} with the selected seeds. Lower the minimum drop or"
                " pick other sizes.")
    else:
        st.info(f"No instance of `{task}` ({code_span(split)}) is in the treatment"
                " group.")
    st.stop()
for note in queue.notes:
    st.caption(note)

# --- where we are ----------------------------------------------------------------------
log = data.annotations(task, current=True)
signature = (task, source, small, large, min_drop, split, blind, control_seed, control_ratio)
if st.session_state.get("_annotate_signature") not in (None, signature):
    # The queue changed under the user: go to its first instance not yet judged.
    set_url_param("annotate.pos", an.next_position(queue, log, task, annotator or "?"))
st.session_state["_annotate_signature"] = signature
position = url_param("annotate.pos", an.next_position(queue, log, task, annotator or "?"), int)
position = min(max(int(position), 0), len(queue) - 1)
set_url_param("annotate.pos", position)

done, total = an.progress(queue, log, task, annotator) if annotator else (0, len(queue))
describe = (f"{queue.n_focus} decaying" if source == SOURCE_DECAY else f"{queue.n_focus} treatment")
if blind:
    describe += f" + {queue.n_controls} controls, shuffled with seed {control_seed}"
st.progress(done / total if total else 0.0,
            text=f"{code_span(annotator) if annotator else 'Nobody'}: {done} of {total} judged · queue of"
                 f" {describe}")

nav = st.columns([1, 1, 1, 3])
if nav[0].button("Previous", icon=":material/arrow_back:", disabled=position == 0,
                 key="annotate.prev"):
    set_url_param("annotate.pos", position - 1)
    st.rerun()
if nav[1].button("Next", icon=":material/arrow_forward:", disabled=position >= len(queue) - 1,
                 key="annotate.next"):
    set_url_param("annotate.pos", position + 1)
    st.rerun()
if nav[2].button("Next unjudged", icon=":material/skip_next:", disabled=not annotator,
                 key="annotate.next_open"):
    set_url_param("annotate.pos", an.next_position(queue, log, task, annotator, position + 1))
    st.rerun()

# --- the instance ----------------------------------------------------------------------
item = queue.items.iloc[position]
instance_id = str(item["instance_id"])
row = an.instance_row(instances, instance_id)
mine, others = an.verdicts_on(log, instance_id, annotator)

# Ids, splits, labels and texts come from the released files: shown as text, never as
# Markdown (an image in a text would make the browser fetch its URL).
left, right = st.columns([3, 2])
with left, st.container(border=True):
    header = (f"**Instance {position + 1} of {len(queue)}** · {code_span(instance_id)}"
              f" · split {code_span(row['split'])}")
    if not blind:
        header += f" · group **{item['group']}**"  # decaying, treatment or control
        if source == SOURCE_DECAY:
            header += f" · accuracy change {item['decay']:+.2f}"
    st.markdown(header)
    for column, heading in (("text_a", "**Text A**"), ("text_b", "**Text B**")):
        text = row.get(column)
        if pd.notna(text) and str(text).strip():  # missing text is None or NaN
            st.markdown(heading)
            st.text(str(text))
    st.markdown(f"**Gold label:** {code_span(row['label'])}")
with right:
    if blind:
        st.caption("Accuracies per size are hidden in blind mode: they would tell decaying"
                   " instances from controls.")
    elif accuracy is not None and instance_id in accuracy.index:
        values = accuracy.loc[instance_id].to_dict()
        show_figure(fig_annotate.accuracy_bars(values, instance_id=instance_id),
                    key="annotate.accuracy", page="annotate",
                    caption="Share of runs right on this instance; "
                            f"{selection.describe(list(values))}")

# --- the verdict -------------------------------------------------------------------------
if not annotator:
    st.warning("Enter your name above to record verdicts.")
note = st.text_input("Note (optional)", key=f"annotate.note.{task}.{instance_id}",
                     placeholder="why, in a few words", disabled=not annotator)
buttons = st.columns(len(an.VERDICTS))
for column, verdict in zip(buttons, an.VERDICTS):
    if column.button(verdict.capitalize(), key=f"annotate.verdict.{verdict}", width="stretch",
                     disabled=not annotator, help=VERDICT_HELP[verdict],
                     type="primary" if len(mine) and mine.iloc[-1]["verdict"] == verdict
                     else "secondary"):
        data.annotate(task, instance_id, annotator, verdict, note)
        # Read the log again (the version changed) to find where to go next.
        fresh = data.store.annotations(task=task, annotator=annotator, current=True)
        set_url_param("annotate.pos", an.next_position(queue, fresh, task, annotator, position))
        st.toast(f"Recorded: {code_span(instance_id)} is {verdict}"
                 f" ({code_span(annotator)})")
        st.rerun()
if len(mine):
    last = mine.iloc[-1]
    st.success(f"Your verdict: **{last['verdict']}**"
               + (f" ({code_span(last['note'])})" if last["note"] else "")
               + f" · recorded {str(last['at'])[:19].replace('T', ' ')} UTC."
               " Click another verdict to change it; the log keeps both.")
if len(others):
    if blind and not len(mine):
        st.caption(f"{len(others)} other annotator(s) judged this instance; their verdicts"
                   " show once you have voted.")
    else:
        st.dataframe(others[["annotator", "verdict", "note", "at"]], hide_index=True)

# --- agreement, counts, export -----------------------------------------------------------
st.divider()
st.subheader("Agreement between annotators")
everyone = data.annotations(task, current=True)
if everyone.empty:
    st.info(f"No verdicts on `{task}` yet: they appear here after the first click.")
else:
    result = an.agreement(everyone, task)
    st.markdown(result.message)
    caption = f"{task} · current verdicts of {len(result.annotators)} annotator(s)"
    cols = st.columns(2)
    with cols[0]:
        show_figure(fig_annotate.verdict_counts(everyone, title=f"Verdicts per annotator: {task}"),
                    key="annotate.counts", page="annotate",
                    caption=f"{caption}, {len(everyone)} verdicts")
    with cols[1]:
        if len(result.annotators) >= 2:
            show_figure(fig_annotate.kappa_heatmap(
                result.pairwise, result.annotators, result.pair_n,
                title=f"Cohen's kappa per annotator pair: {task}"),
                key="annotate.kappa", page="annotate",
                caption=f"{caption}; n = instances both judged")
    grouped = an.verdicts_by_group(everyone, queue)
    if (not blind or done == total) and len(grouped):
        show_figure(fig_annotate.verdict_counts(grouped, by="group",
                                                title=f"Verdicts by group in this queue: {task}"),
                    key="annotate.by_group", page="annotate",
                    caption=f"{caption}; {describe}")

st.subheader("Export verdicts")
full_log = st.toggle("Every click (the whole log), not just current verdicts",
                     key="annotate.export_log")
export = an.export_frame(data.store, task, current=not full_log)
cols = st.columns(3)
cols[0].download_button("Download CSV", an.to_csv(export), file_name=f"verdicts-{task}.csv",
                        mime="text/csv", icon=":material/download:", key="annotate.csv")
cols[1].download_button("Download JSONL", an.to_jsonl(export),
                        file_name=f"verdicts-{task}.jsonl", mime="application/jsonl",
                        icon=":material/download:", key="annotate.jsonl")
cols[2].caption(f"{len(export)} rows: task, instance, split, gold label, texts, annotator,"
                " verdict, note, time.")

with st.expander(f"The queue ({len(queue)} instances)"):
    shown = queue.shown()
    if annotator:
        shown["judged by you"] = shown["instance_id"].isin(an.done_ids(log, task, annotator))
    st.dataframe(shown, hide_index=True)
