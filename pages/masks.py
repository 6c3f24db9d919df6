"""Pruning masks: which heads and MLPs survive structured pruning, across seeds and tasks.

Prasanna, Rogers & Rumshisky (2020): survival frequency of each of the 12 x 12 heads and
12 MLPs across fine-tuning seeds; how much the seeds' masks overlap (Jaccard) compared with
random masks of the same size; how much tasks share; which components are stable; and how
the good, random and bad subnetworks score when evaluated.
"""

from __future__ import annotations

import streamlit as st

from seedlab.analyses.masks import COMPONENTS, RANDOM_DRAWS, RANDOM_SEED, MaskQuery
from seedlab.figures import masks as fig_masks
from seedlab.ui.data import current_data, mask_choices, mask_evaluations, masks
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import current, url_multiselect, url_number, url_radio, url_selectbox
from seedlab.ui.tables import show_table

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Pruning masks")
st.caption("Which attention heads and MLPs survive structured pruning (Prasanna et al. 2020),"
           " and how much that depends on the fine-tuning seed and the task.")

selection = current()
data = current_data()
choices = mask_choices(data) if data is not None else None
evaluations = mask_evaluations(data) if data is not None else None
if choices is None:
    st.info("No pruning masks in this store. Import the masks of Prasanna et al. (2020) with"
            " `seedlab import lottery <bert-experiments folder>` (it reads `masks/` and"
            " `evaluate_masked/`), or choose another seedlab home in the sidebar.")
    if evaluations is None:
        st.stop()

if choices is not None:
    settings = choices.settings
    # The setting names of a real release are long (seedlab-heads_mlps-L4-H128): give the
    # setting the widest column so that a 1280 px window shows it whole.
    top = st.columns([3, 2, 2, 2])
    with top[0]:
        setting = url_selectbox("Setting", settings, "masks.setting",
                                choices.default_setting or settings[0],
                                help="The folder under masks/: heads_mlps are the 'good'"
                                     " subnetworks, *_random and *_bad the controls. The"
                                     " page opens on heads_mlps, else on the setting with"
                                     " the most components (then the least overlap"
                                     " across seeds).")
    tasks = choices.tasks[setting]
    component_options = choices.components[setting]
    with top[1]:
        view = url_radio("Survival", ["task", "summed"], "masks.view", "task", horizontal=True,
                         format_func={"task": "one task", "summed": "summed over tasks"}.get)
    with top[2]:
        task = url_selectbox("Task", tasks, "masks.task",
                             selection.task if selection.task in tasks else tasks[0])
    with top[3]:
        component = url_selectbox("Components", component_options, "masks.component",
                                  component_options[0], format_func=COMPONENTS.get)

    min_tasks = None
    if view == "summed":
        half = len(tasks) / 2
        with st.columns([2, 3])[0]:
            min_tasks = url_number(
                f"Stable: kept in more than this many of the {len(tasks)}"
                f" task{'s' if len(tasks) != 1 else ''}",
                "masks.min_tasks", half, float, 0.0, float(len(tasks)), step=0.5, format="%g",
                help=f"On average over the shared seeds. Default {half:g}: more than half of"
                     " the tasks. The lottery paper's notebook used more than 5 of its 9"
                     " tasks: 5 gives its 60 stable heads on the release's heads_mlps masks,"
                     " where more than half (4.5) gives 83.")

    # Dense masks per task; what compares tasks is on the seeds every task has.
    result = masks(data, MaskQuery(setting, component, choices.head_shape[setting], min_tasks),
                   tasks)
    common_seeds = result.common_seeds

    # --- survival -------------------------------------------------------------------------
    st.subheader("Survival across seeds")
    if view == "task":
        seeds = result.tasks[task].seeds
        mean, std = result.tasks[task].survival()
        head, mlp = result.split(mean)
        head_std, mlp_std = result.split(std)
        caption = (f"Lottery masks · setting {setting} · task {task} · {COMPONENTS[component]}"
                   f" · share of {len(seeds)} seeds keeping each component (seeds"
                   f" {', '.join(map(str, seeds))}); hover for the std over seeds")
        title = f"Survival across seeds: {task} ({setting})"
        zmax, bar_title, marks, mark_label = 1.0, "share of seeds", None, "stable"
    else:
        if not common_seeds:
            st.info(f"The tasks of {setting} share no seed, so their masks cannot be summed.")
            st.stop()
        marks = result.stable
        head, mlp = result.split(result.task_count)
        head_std = mlp_std = None
        caption = (f"Lottery masks · setting {setting} · {len(tasks)} tasks"
                   f" ({', '.join(tasks)}) · {COMPONENTS[component]} · number of tasks keeping"
                   f" each component, mean over {len(common_seeds)} shared seeds"
                   f" ({', '.join(map(str, common_seeds))}); ★ = stable: kept in more than"
                   f" {result.stable_threshold:g} of the {len(tasks)}"
                   f" task{'s' if len(tasks) != 1 else ''}"
                   f"{' (more than half)' if result.stable_threshold == len(tasks) / 2 else ''}"
                   f" ({int(marks.sum())} components)")
        title = f"Tasks keeping each component: {setting}"
        mark_label = (f"stable (kept in more than {result.stable_threshold:g}"
                      f" task{'s' if result.stable_threshold != 1 else ''})")
        zmax, bar_title = float(len(tasks)), "tasks (mean over seeds)"
    marks_head, marks_mlp = result.split(marks)
    show_figure(fig_masks.survival_figure(
        head, mlp, head_std=head_std, mlp_std=mlp_std, zmax=zmax, title=title,
        colorbar_title=bar_title, marks_head=marks_head, marks_mlp=marks_mlp,
        value_format=".1f" if view == "summed" else ".2f", mark_label=mark_label),
        key="masks.survival", caption=caption, page="masks")
    for note in (n for t in (tasks if view == "summed" else [task]) for n in result.notes[t]):
        st.caption(f"Degenerate masks: {note}.")

    # --- overlap across seeds ------------------------------------------------------------
    st.subheader("Overlap across seeds")
    if result.overlap.empty:
        st.info("Overlap needs two or more seeds per task; this setting has one.")
    else:
        overlap = result.overlap
        caption = (f"Lottery masks · setting {setting} · {COMPONENTS[component]} · Jaccard ="
                   " components kept by every seed / kept by any; baseline = the same for"
                   f" random masks with each seed's kept count ({RANDOM_DRAWS} draws, seed"
                   f" {RANDOM_SEED}, exact for 2 seeds); N = seeds per task as listed")
        # One below the other, at the page's width: side by side, the columns were too
        # narrow for the titles and subtitles at 1280 px.
        show_figure(fig_masks.jaccard_vs_baseline(
            overlap, title=f"Jaccard across seeds vs random masks: {setting}"),
            key="masks.jaccard", caption=caption, page="masks")
        seeds = result.tasks[task].seeds
        if len(seeds) >= 2:
            show_figure(fig_masks.pairwise_jaccard_heatmap(
                result.tasks[task].pairwise(), seeds,
                title=f"Pairwise Jaccard: {task} ({setting})"),
                key="masks.pairwise", page="masks",
                caption=f"Lottery masks · setting {setting} · task {task} ·"
                        f" {COMPONENTS[component]} · {len(seeds)} seeds")
        show_table(overlap.rename(columns={"n_seeds": "seeds",
                                           "observed": "Jaccard (all seeds)",
                                           "baseline": "random baseline",
                                           "baseline_std": "baseline std",
                                           "fleiss_kappa": "Fleiss' kappa (seeds)"}),
                   key="masks.overlap")
        st.caption("Fleiss' kappa treats the seeds as raters of each component (kept or"
                   " pruned); it is undefined (empty) when every seed keeps or prunes"
                   " everything.")

    # --- task x task -----------------------------------------------------------------------
    st.subheader("Overlap between tasks")
    if len(tasks) < 2:
        st.info(f"Setting {setting} holds one task ({tasks[0]}); overlap needs two.")
    elif not common_seeds:
        st.info(f"The tasks of {setting} share no seed; overlap compares the same seed.")
    else:
        both_mean, both_std = result.task_overlap
        show_figure(fig_masks.task_overlap_heatmap(
            both_mean, both_std, tasks, title=f"Components kept by both tasks: {setting}"),
            key="masks.tasks", page="masks",
            caption=f"Lottery masks · setting {setting} · {COMPONENTS[component]} · mean ± std"
                    f" over {len(common_seeds)} shared seeds ({', '.join(map(str, common_seeds))});"
                    " the diagonal is each task's own kept count")

# --- evaluations ---------------------------------------------------------------------------
st.subheader("Good, random and bad subnetworks")
if evaluations is None:
    st.info("No evaluation results of masked models in this store (`evaluate_masked/**/"
            "results.json` of the lottery release, imported with `seedlab import lottery`).")
    st.stop()
chosen = url_multiselect("Experiments", evaluations.arm_names, "masks.experiments",
                         evaluations.default_arms)
if not chosen:
    st.info("Choose one or more experiments to compare.")
    st.stop()
shown = evaluations.shown(chosen)
show_figure(fig_masks.evaluation_bars(shown, title="Masked BERT: score per task and experiment"),
            key="masks.evaluations", page="masks",
            caption="Lottery evaluate_masked results · mean ± std over the release's seeds · one"
                    " metric per task: " + ", ".join(
                        f"{t} {m}" for t, m in shown.groupby("task")["metric"].first().items()))
with st.expander("All evaluation results"):
    show_table(evaluations.picked(chosen), key="masks.evaluation_table")
