"""The Pruning masks page: which heads and MLPs survive structured pruning (Prasanna,
Rogers & Rumshisky 2020), across seeds and tasks.

``mask_choices`` lists the settings, tasks and components a store holds. ``masks`` takes
one setting and component: per task, the dense masks ``(S, components)`` (heads
flattened, then MLPs) on the seeds that task has, their survival, pairwise Jaccard and
overlap against random masks of the same sizes; over the tasks, on the seeds every task
has, how many tasks keep each component, the stable ones and the task x task overlap.
``mask_evaluations`` gives the good / random / bad subnetworks' scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seedlab import stats
from seedlab.analyses.query import Reader

COMPONENTS = {"both": "heads and MLPs", "head": "heads", "mlp": "MLPs"}
RANDOM_DRAWS, RANDOM_SEED = 2000, 0
# The metric shown per task when a task reports several (first match wins).
METRIC_PREFERENCE = ["acc", "mnli_acc", "mcc", "spearmanr", "pearson", "f1", "accuracy"]
GOOD_RANDOM_BAD = ["head_mlp", "head_mlp_random", "head_mlp_bad"]


@dataclass(frozen=True)
class MaskChoices:
    """``settings`` (sorted); per setting its ``tasks`` (sorted), ``components`` (the
    options: ``both`` when it has heads and MLPs, then each present one) and
    ``head_shape`` ``(layers, heads)`` (heads 0 when it has no head masks).
    ``default_setting``: the one the page opens on (``informative_setting``)."""

    settings: list[str]
    tasks: dict[str, list[str]]
    components: dict[str, list[str]]
    head_shape: dict[str, tuple[int, int]]
    default_setting: str = ""


MAIN_SETTING = "heads_mlps"  # the lottery release's 'good' subnetworks, what the paper shows


def seed_jaccard(frame: pd.DataFrame) -> float:
    """Mean over tasks of the Jaccard across seeds (``stats.mask_jaccard``) of one
    setting's masks in long format (``Store.masks`` rows), on the seeds that have every
    component; NaN when no task has two such seeds."""
    values = []
    for _, rows in frame.groupby("task"):
        kept = rows.pivot_table(index="seed", columns=["component", "layer", "head"],
                                values="kept", aggfunc="max").dropna()
        if len(kept) >= 2:
            values.append(stats.mask_jaccard(kept.to_numpy(dtype=np.int8)))
    return float(np.mean(values)) if values else float("nan")


def informative_setting(frame: pd.DataFrame) -> str:
    """The setting the Pruning masks page opens on, from masks in long format.

    The rule: the lottery release's main setting ``heads_mlps`` when present (the good
    subnetworks the paper reports; its controls have as many components); otherwise the
    setting with the most components (heads + MLPs: the largest model's), and among
    those the one whose seeds' masks overlap least (lowest mean Jaccard across seeds,
    ``seed_jaccard``), since where every seed keeps the same components there is nothing
    to compare; then by name. A smallest model's setting of 2 heads where every Jaccard
    is 1 is chosen only when nothing else is there.
    """
    settings = sorted(frame["setting"].unique().tolist())
    if MAIN_SETTING in settings:
        return MAIN_SETTING
    sizes = frame.groupby("setting")[["component", "layer", "head"]].apply(
        lambda rows: len(rows.drop_duplicates()))
    largest = [s for s in settings if sizes[s] == sizes.max()]
    if len(largest) == 1:
        return largest[0]
    overlap = {s: seed_jaccard(frame[frame["setting"] == s]) for s in largest}
    # NaN (no two seeds to compare) sorts after every measured overlap
    return min(largest, key=lambda s: (np.isnan(overlap[s]), overlap[s], s))


def mask_choices(reader: Reader) -> MaskChoices | None:
    """What the store's masks offer, or None when it holds none."""
    frame = reader.masks()
    if frame is None or frame.empty:
        return None
    settings = sorted(frame["setting"].unique().tolist())
    tasks, components, shapes = {}, {}, {}
    for setting in settings:
        rows = frame[frame["setting"] == setting]
        tasks[setting] = sorted(rows["task"].unique().tolist())
        present = sorted(rows["component"].unique().tolist())
        components[setting] = (["both"] if len(present) == 2 else []) + present
        shapes[setting] = (int(rows["layer"].max()) + 1,
                           int(rows.loc[rows["component"] == "head", "head"].max()) + 1
                           if "head" in present else 0)
    return MaskChoices(settings, tasks, components, shapes, informative_setting(frame))


@dataclass(frozen=True)
class MaskQuery:
    """One setting (a folder under ``masks/``), the component (``both``, ``head`` or
    ``mlp``) and the (L, H) head grid of the setting (``MaskChoices.head_shape``).
    ``min_tasks``: a component is stable when kept in more than this many tasks, on
    average over seeds (``stats.stable_components``); None: more than half of the tasks.
    The lottery paper's notebook used more than 5 of its 9 tasks (``min_tasks=5``: 60
    heads on the release's heads_mlps masks, against 83 above half)."""

    setting: str
    component: str
    head_shape: tuple[int, int]
    min_tasks: float | None = None


@dataclass(frozen=True)
class TaskMasks:
    """One task: ``rows (S, components)`` 0/1 and its ``seeds`` (S)."""

    rows: np.ndarray
    seeds: list[int]

    def survival(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over seeds of each component ``(components,)``."""
        return stats.survival(self.rows)

    def pairwise(self) -> np.ndarray:
        """``(S, S)`` Jaccard between the seeds' masks."""
        return stats.pairwise_jaccard(self.rows)


@dataclass(frozen=True)
class Masks:
    """``tasks``: per task its ``TaskMasks``. ``common_seeds``: the seeds every task has.
    ``task_count`` ``(components,)``: tasks keeping each component, mean over the common
    seeds; ``stable``: components kept in more than ``stable_threshold`` tasks (the
    query's ``min_tasks``, default half of the tasks); ``task_overlap``:
    ``(T, T)`` mean and std over common seeds of the components both tasks keep (None
    for one task or no common seed). ``overlap``: per task with 2+ seeds, its Jaccard
    across seeds, the random-mask baseline (``RANDOM_DRAWS`` draws, seed
    ``RANDOM_SEED``) and Fleiss' kappa. ``notes``: degenerate masks, per task."""

    query: MaskQuery
    tasks: dict[str, TaskMasks]
    common_seeds: list[int]
    task_count: np.ndarray | None
    stable: np.ndarray | None
    task_overlap: tuple[np.ndarray, np.ndarray] | None
    overlap: pd.DataFrame = field(repr=False)
    notes: dict[str, list[str]]
    stable_threshold: float = 0.0

    @property
    def n_head(self) -> int:
        layers, heads = self.query.head_shape
        return layers * heads if self.query.component in ("both", "head") else 0

    def split(self, values: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(components,)`` values back into the (L, H) head grid and the (L,) MLP strip
        (None for a part the component leaves out, or when ``values`` is None)."""
        if values is None:
            return None, None
        head = values[:self.n_head].reshape(self.query.head_shape) if self.n_head else None
        mlp = values[self.n_head:] if self.query.component in ("both", "mlp") else None
        return head, mlp


def task_rows(reader: Reader, setting: str, task: str, component: str
              ) -> tuple[np.ndarray, list[int]]:
    """Masks of one task as ``(S, components)`` rows (heads flattened, then MLPs) on the
    seeds its heads and MLPs both have, and those seeds."""
    loaded = {name: reader.mask_arrays(setting, task, name)
              for name in (["head", "mlp"] if component == "both" else [component])}
    loaded = {name: (array, seeds) for name, (array, seeds) in loaded.items() if seeds}
    if not loaded:
        return np.zeros((0, 0)), []
    common = sorted(set.intersection(*(set(seeds) for _, seeds in loaded.values())))
    if any(seeds != common for _, seeds in loaded.values()):
        loaded = {name: reader.mask_arrays(setting, task, name, seeds=common)
                  for name in loaded}
    return np.concatenate([array.reshape(len(common), -1) for array, _ in loaded.values()],
                          axis=1), common


def degenerate_notes(task: str, rows: np.ndarray, seeds: list[int]) -> list[str]:
    """Which seeds' masks keep nothing, or everything."""
    kept = rows.sum(axis=1)
    notes = []
    empty = [str(s) for s, k in zip(seeds, kept) if k == 0]
    full = [str(s) for s, k in zip(seeds, kept) if k == rows.shape[1]]
    if empty:
        notes.append(f"{task}: seed(s) {', '.join(empty)} keep no component")
    if full:
        notes.append(f"{task}: seed(s) {', '.join(full)} keep every component")
    return notes


def on_seeds(rows: np.ndarray, seeds: list[int], wanted: Sequence[int]) -> np.ndarray:
    """The rows of ``wanted`` seeds, in that order."""
    return rows[[seeds.index(s) for s in wanted]]


def masks(reader: Reader, query: MaskQuery, tasks: Sequence[str]) -> Masks:
    """Every view of the masks of ``tasks`` in ``query.setting`` (see the module
    docstring)."""
    per_task: dict[str, TaskMasks] = {}
    notes: dict[str, list[str]] = {}
    overlap_rows = []
    for task in tasks:
        rows, seeds = task_rows(reader, query.setting, task, query.component)
        per_task[task] = TaskMasks(rows, seeds)
        notes[task] = degenerate_notes(task, rows, seeds)
        if len(seeds) >= 2:
            baseline = stats.random_jaccard(rows, draws=RANDOM_DRAWS, rng=RANDOM_SEED)
            overlap_rows.append({
                "task": task, "n_seeds": len(seeds), "components": rows.shape[1],
                "kept per seed": " / ".join(str(int(k)) for k in rows.sum(axis=1)),
                "observed": stats.mask_jaccard(rows), "baseline": baseline["mean"],
                "baseline_std": baseline["std"], "fleiss_kappa": stats.fleiss_kappa(rows),
            })
    common = sorted(set.intersection(*(set(t.seeds) for t in per_task.values())))
    count = stable = both = None
    if common:
        stack = np.stack([on_seeds(t.rows, t.seeds, common)
                          for t in per_task.values()])  # (T, S, components)
        count = stats.task_count(stack)
        stable = stats.stable_components(stack, min_tasks=query.min_tasks)
        if len(per_task) >= 2:
            both = stats.task_overlap(stack)
    threshold = len(per_task) / 2 if query.min_tasks is None else float(query.min_tasks)
    return Masks(query, per_task, common, count, stable, both, pd.DataFrame(overlap_rows),
                 notes, threshold)


@dataclass(frozen=True)
class MaskEvaluations:
    """``arms``: the evaluation rows with an ``arm`` column (experiment, or
    experiment/variant); ``arm_names`` sorted; ``default_arms``: good, random and bad
    where present, else the first six."""

    arms: pd.DataFrame = field(repr=False)
    arm_names: list[str]
    default_arms: list[str]

    def picked(self, chosen: Sequence[str]) -> pd.DataFrame:
        """The rows of the ``chosen`` arms (without the arm column)."""
        return self.arms[self.arms["arm"].isin(chosen)].drop(columns="arm")

    def shown(self, chosen: Sequence[str]) -> pd.DataFrame:
        """One metric per task (the first of METRIC_PREFERENCE it reports, else the first
        by name), for the ``chosen`` arms in that order, with ``experiment`` = the arm."""
        picked = self.arms[self.arms["arm"].isin(chosen)]
        metric_rows = []
        for _, rows in picked.groupby("task"):
            metrics = rows["metric"].unique().tolist()
            metric = next((m for m in METRIC_PREFERENCE if m in metrics), min(metrics))
            metric_rows.append(rows[rows["metric"] == metric])
        shown = pd.concat(metric_rows).assign(experiment=lambda f: f["arm"])
        shown = shown.set_index("experiment").loc[[a for a in chosen if a in set(shown["arm"])]]
        return shown.reset_index()


def mask_evaluations(reader: Reader) -> MaskEvaluations | None:
    """The store's mask evaluation results, or None when it holds none."""
    evaluations = reader.evaluations()
    if evaluations is None or evaluations.empty:
        return None
    arms = evaluations.assign(arm=[e if v in ("", "baseline") else f"{e}/{v}"
                                   for e, v in zip(evaluations["experiment"],
                                                   evaluations["variant"])])
    names = sorted(arms["arm"].unique().tolist())
    default = [a for a in GOOD_RANDOM_BAD if a in names] or names[:6]
    return MaskEvaluations(arms, names, default)
