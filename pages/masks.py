"""Pruning masks: which heads and MLPs survive structured pruning, across seeds and tasks.

Prasanna, Rogers & Rumshisky (2020): survival frequency of each of the 12 x 12 heads and
12 MLPs across fine-tuning seeds; how much the seeds' masks overlap (Jaccard) compared with
random masks of the same size; how much tasks share; which components are stable; and how
the good, random and bad subnetworks score when evaluated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from seedlab import stats
from seedlab.figures import masks as fig_masks
from seedlab.ui.data import cached, current_data
from seedlab.ui.figure import show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import current, url_multiselect, url_radio, url_selectbox

ensure_frame()  # a fresh server's first run may bypass app.py

COMPONENTS = {"both": "heads and MLPs", "head": "heads", "mlp": "MLPs"}
RANDOM_DRAWS, RANDOM_SEED = 2000, 0
# The metric shown per task when a task reports several (first match wins).
METRIC_PREFERENCE = ["acc", "mnli_acc", "mcc", "spearmanr", "pearson", "f1", "accuracy"]
GOOD_RANDOM_BAD = ["head_mlp", "head_mlp_random", "head_mlp_bad"]

random_jaccard = cached(stats.random_jaccard)

st.title("Pruning masks")
st.caption("Which attention heads and MLPs survive structured pruning (Prasanna et al. 2020),"
           " and how much that depends on the fine-tuning seed and the task.")

selection = current()
data = current_data()
all_masks = data.masks() if data is not None else None
if all_masks is None or all_masks.empty:
    st.info("No pruning masks in this store. Import the masks of Prasanna et al. (2020) with"
            " `seedlab import lottery <bert-experiments folder>` (it reads `masks/` and"
            " `evaluate_masked/`), or choose another seedlab home in the sidebar.")
    evaluations = data.evaluations() if data is not None else None
    if evaluations is None or evaluations.empty:
        st.stop()
else:
    evaluations = data.evaluations()


def load(setting: str, task: str, component: str) -> tuple[np.ndarray, list[int]]:
    """Masks of one task as (S, components) rows (heads flattened, then MLPs), and seeds."""
    parts, seeds = [], None
    for name in (["head", "mlp"] if component == "both" else [component]):
        array, found = data.mask_arrays(setting, task, name)
        if not found:
            continue
        if seeds is not None and found != seeds:
            common = sorted(set(seeds) & set(found))
            parts = [p[[seeds.index(s) for s in common]] for p in parts]
            array, seeds = array[[found.index(s) for s in common]], common
        seeds = found if seeds is None else seeds
        parts.append(array.reshape(len(found), -1))
    if not parts:
        return np.zeros((0, 0)), []
    return np.concatenate(parts, axis=1), seeds


def seed_notes(task: str, rows: np.ndarray, seeds: list[int]) -> list[str]:
    """Say which seeds' masks are degenerate (keep nothing, or everything)."""
    kept = rows.sum(axis=1)
    notes = []
    empty = [str(s) for s, k in zip(seeds, kept) if k == 0]
    full = [str(s) for s, k in zip(seeds, kept) if k == rows.shape[1]]
    if empty:
        notes.append(f"{task}: seed(s) {', '.join(empty)} keep no component")
    if full:
        notes.append(f"{task}: seed(s) {', '.join(full)} keep every component")
    return notes


if all_masks is not None and not all_masks.empty:
    settings = sorted(all_masks["setting"].unique().tolist())
    top = st.columns([2, 2, 2, 1])
    with top[0]:
        setting = url_selectbox("Setting", settings, "masks.setting",
                                "heads_mlps" if "heads_mlps" in settings else settings[0],
                                help="The folder under masks/: heads_mlps are the 'good'"
                                     " subnetworks, *_random and *_bad the controls.")
    in_setting = all_masks[all_masks["setting"] == setting]
    tasks = sorted(in_setting["task"].unique().tolist())
    present = sorted(in_setting["component"].unique().tolist())
    component_options = (["both"] if len(present) == 2 else []) + present
    with top[1]:
        view = url_radio("Survival", ["task", "summed"], "masks.view", "task", horizontal=True,
                         format_func={"task": "one task", "summed": "summed over tasks"}.get)
    with top[2]:
        task = url_selectbox("Task", tasks, "masks.task",
                             selection.task if selection.task in tasks else tasks[0])
    with top[3]:
        component = url_selectbox("Components", component_options, "masks.component",
                                  component_options[0], format_func=COMPONENTS.get)

    # Dense masks per task, on the seeds every task of the setting has.
    rows_by_task = {t: load(setting, t, component) for t in tasks}
    common_seeds = sorted(set.intersection(*(set(s) for _, s in rows_by_task.values())))
    head_shape = (int(in_setting["layer"].max()) + 1,
                  int(in_setting.loc[in_setting["component"] == "head", "head"].max()) + 1
                  if "head" in present else 0)
    n_head = head_shape[0] * head_shape[1] if component in ("both", "head") else 0

    def split_rows(values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(components,) values back into the (L, H) head grid and the (L,) MLP strip."""
        head = values[:n_head].reshape(head_shape) if n_head else None
        mlp = values[n_head:] if component in ("both", "mlp") else None
        return head, mlp

    notes = [n for t, (rows, seeds) in rows_by_task.items() for n in seed_notes(t, rows, seeds)]

    # --- survival -------------------------------------------------------------------------
    st.subheader("Survival across seeds")
    if view == "task":
        rows, seeds = rows_by_task[task]
        mean, std = stats.survival(rows)
        head, mlp = split_rows(mean)
        head_std, mlp_std = split_rows(std)
        caption = (f"Lottery masks · setting {setting} · task {task} · {COMPONENTS[component]}"
                   f" · share of {len(seeds)} seeds keeping each component (seeds"
                   f" {', '.join(map(str, seeds))}); hover for the std over seeds")
        title = f"Survival across seeds: {task} ({setting})"
        zmax, bar_title, marks = 1.0, "share of seeds", None
    else:
        if not common_seeds:
            st.info(f"The tasks of {setting} share no seed, so their masks cannot be summed.")
            st.stop()
        stack = np.stack([rows[[seeds.index(s) for s in common_seeds]]
                          for rows, seeds in rows_by_task.values()])  # (T, S, components)
        mean, std = stats.task_count(stack), None
        marks = stats.stable_components(stack)
        head, mlp = split_rows(mean)
        head_std = mlp_std = None
        caption = (f"Lottery masks · setting {setting} · {len(tasks)} tasks"
                   f" ({', '.join(tasks)}) · {COMPONENTS[component]} · number of tasks keeping"
                   f" each component, mean over {len(common_seeds)} shared seeds"
                   f" ({', '.join(map(str, common_seeds))}); ★ = stable: kept in more than half"
                   f" of the tasks ({int(marks.sum())} components)")
        title = f"Tasks keeping each component: {setting}"
        zmax, bar_title = float(len(tasks)), "tasks (mean over seeds)"
    marks_head, marks_mlp = split_rows(marks) if marks is not None else (None, None)
    show_figure(fig_masks.survival_figure(
        head, mlp, head_std=head_std, mlp_std=mlp_std, zmax=zmax, title=title,
        colorbar_title=bar_title, marks_head=marks_head, marks_mlp=marks_mlp,
        value_format=".1f" if view == "summed" else ".2f"),
        key="masks.survival", caption=caption, page="masks")
    for note in notes if view == "summed" else [n for n in notes if n.startswith(task + ":")]:
        st.caption(f"Degenerate masks: {note}.")

    # --- overlap across seeds ------------------------------------------------------------
    st.subheader("Overlap across seeds")
    table_rows = []
    with st.spinner(f"Random-mask baselines ({RANDOM_DRAWS} draws per task)..."):
        for t, (rows, seeds) in rows_by_task.items():
            if len(seeds) < 2:
                continue
            baseline = random_jaccard(rows, draws=RANDOM_DRAWS, rng=RANDOM_SEED)
            table_rows.append({
                "task": t, "n_seeds": len(seeds), "components": rows.shape[1],
                "kept per seed": " / ".join(str(int(k)) for k in rows.sum(axis=1)),
                "observed": stats.mask_jaccard(rows), "baseline": baseline["mean"],
                "baseline_std": baseline["std"], "fleiss_kappa": stats.fleiss_kappa(rows),
            })
    if not table_rows:
        st.info("Overlap needs two or more seeds per task; this setting has one.")
    else:
        overlap = pd.DataFrame(table_rows)
        caption = (f"Lottery masks · setting {setting} · {COMPONENTS[component]} · Jaccard ="
                   " components kept by every seed / kept by any; baseline = the same for"
                   f" random masks with each seed's kept count ({RANDOM_DRAWS} draws, seed"
                   f" {RANDOM_SEED}, exact for 2 seeds); N = seeds per task as listed")
        cols = st.columns([3, 2])
        with cols[0]:
            show_figure(fig_masks.jaccard_vs_baseline(
                overlap, title=f"Jaccard across seeds vs random masks: {setting}"),
                key="masks.jaccard", caption=caption, page="masks")
        with cols[1]:
            rows, seeds = rows_by_task[task]
            if len(seeds) >= 2:
                show_figure(fig_masks.pairwise_jaccard_heatmap(
                    stats.pairwise_jaccard(rows), seeds,
                    title=f"Pairwise Jaccard: {task} ({setting})"),
                    key="masks.pairwise", page="masks",
                    caption=f"Lottery masks · setting {setting} · task {task} ·"
                            f" {COMPONENTS[component]} · {len(seeds)} seeds")
        st.dataframe(overlap.rename(columns={"observed": "Jaccard (all seeds)",
                                             "baseline": "random baseline",
                                             "baseline_std": "baseline std",
                                             "fleiss_kappa": "Fleiss' kappa (seeds)"}),
                     hide_index=True)
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
        stack = np.stack([rows[[seeds.index(s) for s in common_seeds]]
                          for rows, seeds in rows_by_task.values()])
        both_mean, both_std = stats.task_overlap(stack)
        show_figure(fig_masks.task_overlap_heatmap(
            both_mean, both_std, tasks, title=f"Components kept by both tasks: {setting}"),
            key="masks.tasks", page="masks",
            caption=f"Lottery masks · setting {setting} · {COMPONENTS[component]} · mean ± std"
                    f" over {len(common_seeds)} shared seeds ({', '.join(map(str, common_seeds))});"
                    " the diagonal is each task's own kept count")

# --- evaluations ---------------------------------------------------------------------------
st.subheader("Good, random and bad subnetworks")
if evaluations is None or evaluations.empty:
    st.info("No evaluation results of masked models in this store (`evaluate_masked/**/"
            "results.json` of the lottery release, imported with `seedlab import lottery`).")
    st.stop()
arms = evaluations.assign(arm=[e if v in ("", "baseline") else f"{e}/{v}"
                               for e, v in zip(evaluations["experiment"],
                                               evaluations["variant"])])
arm_names = sorted(arms["arm"].unique().tolist())
default_arms = [a for a in GOOD_RANDOM_BAD if a in arm_names] or arm_names[:6]
chosen = url_multiselect("Experiments", arm_names, "masks.experiments", default_arms)
if not chosen:
    st.info("Choose one or more experiments to compare.")
    st.stop()
picked = arms[arms["arm"].isin(chosen)]
metric_rows = []
for eval_task, rows in picked.groupby("task"):
    metrics = rows["metric"].unique().tolist()
    metric = next((m for m in METRIC_PREFERENCE if m in metrics), min(metrics))
    metric_rows.append(rows[rows["metric"] == metric])
shown = pd.concat(metric_rows).assign(experiment=lambda f: f["arm"])
shown = shown.set_index("experiment").loc[[a for a in chosen if a in set(shown["arm"])]]
shown = shown.reset_index()
show_figure(fig_masks.evaluation_bars(shown, title="Masked BERT: score per task and experiment"),
            key="masks.evaluations", page="masks",
            caption="Lottery evaluate_masked results · mean ± std over the release's seeds · one"
                    " metric per task: " + ", ".join(
                        f"{t} {m}" for t, m in shown.groupby("task")["metric"].first().items()))
with st.expander("All evaluation results"):
    st.dataframe(picked.drop(columns="arm"), hide_index=True)
