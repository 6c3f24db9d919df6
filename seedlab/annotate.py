"""Annotation of gold labels: queues of decaying instances, blind mode, agreement, export.

Zhong et al. (2021) read the instances that a larger model gets wrong more often than a
smaller one ("decaying" instances) and judged whether the gold label is Correct,
Reasonable, Wrong or Unsure. To keep the judgement honest they mixed in random control
instances and hid which was which. This module holds that workflow without Streamlit:

* ``instance_accuracy`` / ``decay_table``: per-instance accuracy per size, and the decay
  ``d = acc_large - acc_small`` (``d < 0`` is decaying).
* ``build_queue``: the instances to read, in order: decaying ones (most decaying first),
  or, in blind mode, decaying ones mixed with sampled controls and shuffled by a seed.
* ``progress`` / ``next_position``: what one annotator has done in a queue, from the log.
* ``cohen_kappa`` / ``agreement``: agreement between annotators on their current
  verdicts (Cohen's kappa for two, Fleiss' kappa, ``seedlab.stats.fleiss_kappa_counts``,
  for more).
* ``export_frame`` / ``to_csv`` / ``to_jsonl`` / ``read_verdicts``: verdicts out and back.

The annotation log itself is ``Store.annotate`` / ``Store.annotations``: append-only, so
two annotators (or two browser tabs) writing at once never overwrite each other.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seedlab import schema, stats
from seedlab.align import align_instances
from seedlab.errors import InputError, StoreError
from seedlab.importers.inputs import json_lines
from seedlab.store import Store

VERDICTS: tuple[str, ...] = schema.VERDICTS
# Group names of a queue item. Zhong's pickles call them treatment / control.
FOCUS_GROUPS = ("treatment", "decaying")
CONTROL_GROUP = "control"

EXPORT_COLUMNS = [
    "task", "instance_id", "split", "label", "text_a", "text_b", "annotator", "verdict",
    "note", "at",
]


# ---------------------------------------------------------------------------------------
# Which instances to read


def instance_accuracy(
    store: Store | Any,
    task: str,
    sizes: Sequence[str],
    pretrain_seeds: Sequence[Any] | None = None,
    finetune_seeds: Sequence[int] | None = None,
    checkpoint: Any = "last",
    split: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Accuracy of each instance for each size: the mean correctness over the runs
    (pretraining x fine-tuning seeds) of that size.

    ``store``: a ``Store``, or anything with its ``arrays`` method (the dashboard passes its
    cached ``seedlab.ui.data.Data``). Returns a frame indexed by ``instance_id`` with one
    float column per size that has runs with those seeds (sizes without runs are left
    out), in the order given. Instances are those predicted by every kept size
    (``seedlab.align.align_instances``), in the first kept size's order.
    """
    loaded = []
    for size in sizes:
        try:
            loaded.append(store.arrays(task, size, pretrain_seeds=pretrain_seeds,
                                       finetune_seeds=finetune_seeds, checkpoint=checkpoint,
                                       split=split))
        except StoreError:
            continue
    if not loaded:
        return pd.DataFrame(index=pd.Index([], name="instance_id", dtype=str))
    aligned = align_instances(loaded)
    columns: dict[str, np.ndarray] = {}
    for arrays in aligned.arrays:
        correct = arrays.correct.reshape(len(aligned), -1)  # (N, runs)
        with np.errstate(invalid="ignore"):
            observed = np.isfinite(correct).sum(axis=1)
            columns[arrays.size] = np.where(
                observed > 0, np.nansum(correct, axis=1) / np.maximum(observed, 1), np.nan)
    return pd.DataFrame(columns, index=pd.Index(aligned.instance_ids, name="instance_id"))


def decay_table(accuracy: pd.DataFrame, small: str, large: str) -> pd.DataFrame:
    """``acc_small``, ``acc_large`` and ``decay = acc_large - acc_small`` per instance
    (index ``instance_id``), most decaying first. ``accuracy`` is ``instance_accuracy``'s
    frame; a size it lacks raises ``KeyError`` naming it."""
    for size in (small, large):
        if size not in accuracy.columns:
            raise KeyError(f"no accuracy for size {size!r}: it has no runs with these seeds")
    out = pd.DataFrame({"acc_small": accuracy[small], "acc_large": accuracy[large]})
    out["decay"] = out["acc_large"] - out["acc_small"]
    return out.sort_values("decay", kind="stable")


@dataclass
class Queue:
    """The instances an annotator reads, in order.

    ``items`` has one row per position: ``position`` (0-based), ``instance_id``, ``group``
    (``decaying`` / ``treatment`` or ``control``) and ``decay`` (NaN where unknown).
    In blind mode the page shows ``shown()``, which carries neither group nor decay.
    """

    items: pd.DataFrame
    blind: bool
    seed: int | None
    source: str  # 'decay' (from accuracies) or 'group' (from the instances' group field)
    n_focus: int = 0
    n_controls: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def instance_ids(self) -> list[str]:
        return self.items["instance_id"].tolist()

    def shown(self) -> pd.DataFrame:
        """What an annotator may see of the queue: in blind mode, positions and ids only."""
        if self.blind:
            return self.items[["position", "instance_id"]].copy()
        return self.items.copy()


def build_queue(
    instances: pd.DataFrame,
    *,
    decay: pd.Series | None = None,
    min_drop: float = 0.0,
    blind: bool = False,
    control_ratio: float = 1.0,
    seed: int = 0,
    limit: int | None = None,
) -> Queue:
    """Build an annotation queue.

    ``instances``: the task's instance table (``Store.instances``; needs ``instance_id``,
    and ``group`` when ``decay`` is None). ``decay``: per-instance ``acc_large - acc_small``
    indexed by instance id (``decay_table(...)["decay"]``).

    * With ``decay``: the focus is instances with ``decay < -min_drop`` (most decaying
      first); controls are drawn from instances with ``decay >= 0``.
    * Without: the focus is instances whose ``group`` is ``treatment`` (as imported from
      Zhong's decaying pickles), in table order; controls are those with ``control``.

    ``limit`` keeps the first ``limit`` focus instances. In blind mode,
    ``round(control_ratio * n_focus)`` controls (at most as many as exist) are drawn
    without replacement with ``numpy.random.default_rng(seed)`` and the whole queue is
    shuffled with the same generator, so the same seed gives the same queue.
    """
    notes: list[str] = []
    ids = instances["instance_id"].astype(str)
    if decay is not None:
        decay = decay.copy()
        decay.index = decay.index.astype(str)
        decay = decay[decay.index.isin(set(ids))].dropna()
        focus = decay[decay < -abs(min_drop)].sort_values(kind="stable")
        focus_frame = pd.DataFrame({"instance_id": focus.index.astype(str), "group": "decaying",
                                    "decay": focus.to_numpy(dtype=float)})
        pool = decay[decay >= 0]
        # Table order for the pool, so the draw does not depend on the accuracy sort.
        pool = pool.reindex([i for i in ids if i in pool.index])
        pool_frame = pd.DataFrame({"instance_id": pool.index.astype(str), "group": CONTROL_GROUP,
                                   "decay": pool.to_numpy(dtype=float)})
        source = "decay"
    else:
        if "group" not in instances.columns:
            raise StoreError("these instances have no 'group' field: choose two sizes to find"
                             " decaying instances from the predictions instead")
        group = instances["group"].astype("string").fillna("")
        focus_frame = pd.DataFrame({"instance_id": ids[group.isin(FOCUS_GROUPS)].to_numpy(),
                                    "group": "treatment", "decay": np.nan})
        pool_frame = pd.DataFrame({"instance_id": ids[group == CONTROL_GROUP].to_numpy(),
                                   "group": CONTROL_GROUP, "decay": np.nan})
        source = "group"
    if limit is not None and len(focus_frame) > limit:
        notes.append(f"showing the first {limit} of {len(focus_frame)} focus instances")
        focus_frame = focus_frame.iloc[:limit]

    n_controls = 0
    if blind:
        rng = np.random.default_rng(seed)
        wanted = round(control_ratio * len(focus_frame))
        n_controls = min(wanted, len(pool_frame))
        if n_controls < wanted:
            notes.append(f"only {len(pool_frame)} control instances exist ({wanted} wanted)")
        picked = np.sort(rng.choice(len(pool_frame), size=n_controls, replace=False))
        items = pd.concat([focus_frame, pool_frame.iloc[picked]], ignore_index=True)
        items = items.iloc[rng.permutation(len(items))].reset_index(drop=True)
    else:
        items = focus_frame.reset_index(drop=True)
    items.insert(0, "position", np.arange(len(items), dtype=np.int64))
    items["instance_id"] = items["instance_id"].astype(str)
    items["decay"] = items["decay"].astype(float)
    return Queue(items=items, blind=blind, seed=seed if blind else None, source=source,
                 n_focus=len(focus_frame), n_controls=n_controls, notes=notes)


def has_groups(instances: pd.DataFrame) -> bool:
    """Whether the instance table has imported focus groups (treatment / decaying) to
    queue without predictions."""
    return "group" in instances.columns and bool(instances["group"].isin(FOCUS_GROUPS).any())


def splits(instances: pd.DataFrame) -> list[str]:
    """The splits of an instance table, sorted."""
    return sorted(instances["split"].dropna().astype(str).unique().tolist())


def instance_row(instances: pd.DataFrame, instance_id: str) -> pd.Series:
    """The instance-table row of one instance (text, gold label, split, extra fields)."""
    return instances[instances["instance_id"].astype(str) == instance_id].iloc[0]


def verdicts_on(current: pd.DataFrame, instance_id: str, annotator: str
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(annotator's, everyone else's)`` verdicts on one instance (``current``: the log)."""
    on = current["instance_id"].astype(str) == instance_id
    return (current[on & (current["annotator"] == annotator)],
            current[on & (current["annotator"] != annotator)])


def verdicts_by_group(current: pd.DataFrame, queue: Queue) -> pd.DataFrame:
    """The verdicts on instances of ``queue`` with each instance's queue group."""
    in_queue = current[current["instance_id"].astype(str).isin(queue.instance_ids)]
    return in_queue.merge(queue.items[["instance_id", "group"]], on="instance_id")


# ---------------------------------------------------------------------------------------
# Progress through a queue


def done_ids(current: pd.DataFrame, task: str, annotator: str) -> set[str]:
    """Instance ids ``annotator`` has a verdict for in ``task`` (``current``: the log)."""
    if current.empty:
        return set()
    mine = current[(current["task"] == task) & (current["annotator"] == annotator.strip())]
    return set(mine["instance_id"].astype(str))


def progress(queue: Queue, current: pd.DataFrame, task: str, annotator: str) -> tuple[int, int]:
    """``(annotated, total)``: how many queue instances ``annotator`` has judged."""
    done = done_ids(current, task, annotator)
    return sum(i in done for i in queue.instance_ids), len(queue)


def next_position(queue: Queue, current: pd.DataFrame, task: str, annotator: str,
                  start: int = 0) -> int:
    """The first position at or after ``start`` (wrapping round) that ``annotator`` has not
    judged, or ``start`` when every instance is done (or the queue is empty)."""
    n = len(queue)
    if n == 0:
        return 0
    done = done_ids(current, task, annotator)
    ids = queue.instance_ids
    start = min(max(int(start), 0), n - 1)
    for step in range(n):
        pos = (start + step) % n
        if ids[pos] not in done:
            return pos
    return start


# ---------------------------------------------------------------------------------------
# Agreement between annotators


def cohen_kappa(a: Sequence[Any], b: Sequence[Any],
                categories: Sequence[Any] = VERDICTS) -> float:
    """Cohen's kappa of two annotators' verdicts on the same N items.

    ``a``, ``b``: (N,) labels. ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the share of
    equal verdicts and ``p_e = sum_k pa_k pb_k`` the agreement expected from the two
    annotators' own verdict frequencies. NaN when undefined (no items, or both annotators
    always give the one same verdict, so that ``p_e = 1``).
    """
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two (N,) label arrays expected, got {a.shape} and {b.shape}")
    if len(a) == 0:
        return float("nan")
    cats = {c: k for k, c in enumerate(dict.fromkeys([*categories, *a.tolist(), *b.tolist()]))}
    codes = np.array([[cats[v] for v in a], [cats[v] for v in b]], dtype=np.int64)  # (2, N)
    return float(stats.kappa_matrix(codes)[0, 1])


def _fleiss_kappa_unequal(counts: np.ndarray) -> float:
    """Fleiss' kappa of an ``(N, K)`` count table whose items have different numbers of
    raters (each at least two): ``P_i = sum_k n_ik (n_ik - 1) / (n_i (n_i - 1))``,
    ``P_bar = mean_i P_i``, ``p_k = sum_i n_ik / sum_i n_i``, ``P_e = sum_k p_k^2``,
    ``kappa = (P_bar - P_e) / (1 - P_e)``; NaN where ``P_e = 1``. The usual extension of
    Fleiss (1971), which averages each item's pairwise agreement; with equal numbers of
    raters it equals ``seedlab.stats.fleiss_kappa_counts``, which ``agreement`` uses then.
    """
    n_i = counts.sum(axis=1)
    p_bar = float(((counts * (counts - 1)).sum(axis=1) / (n_i * (n_i - 1))).mean())
    p_k = counts.sum(axis=0) / n_i.sum()
    p_e = float((p_k**2).sum())
    # 1 - p_e is exactly 0 or at least about 2 / total (p_k are counts over the total), so
    # undefined only below a bound that scales with 1 / total, as stats.fleiss_kappa_counts:
    # a relative tolerance would call a nearly unanimous, large table undefined.
    if 1.0 - p_e < 0.5 / (counts.shape[1] * n_i.sum()):
        return float("nan")
    return (p_bar - p_e) / (1.0 - p_e)


@dataclass
class Agreement:
    """Agreement between annotators on the items that two or more of them judged.

    ``method``: ``'cohen'`` (two annotators), ``'fleiss'`` (more) or None (fewer than two
    annotators, or no shared item). ``kappa``: the chosen statistic (NaN if undefined);
    ``observed``: the share of agreeing annotator pairs over shared items;
    ``n_items``: shared items; ``pairwise``: (A, A) Cohen's kappa per annotator pair on the
    items both judged (diagonal 1), ``pair_n``: (A, A) number of such items;
    ``table``: items x annotators verdicts (NaN where not judged).
    """

    annotators: list[str]
    method: str | None
    kappa: float
    observed: float
    n_items: int
    pairwise: np.ndarray
    pair_n: np.ndarray
    table: pd.DataFrame

    @property
    def message(self) -> str:
        """A one-line reading for the page."""
        if len(self.annotators) < 2:
            return ("Agreement needs verdicts from two or more annotators; so far "
                    f"{len(self.annotators)} annotator(s) judged these instances.")
        if self.method is None:
            return "No instance has been judged by two or more annotators yet."
        name = "Cohen's kappa" if self.method == "cohen" else "Fleiss' kappa"
        if np.isnan(self.kappa):
            value = "undefined (every verdict is the same, so chance agreement is 1)"
        else:
            value = f"{self.kappa:.3f}"
        return (f"{name} = {value} over {self.n_items} instances judged by two or more of "
                f"{len(self.annotators)} annotators; raw agreement {self.observed:.1%}.")


def agreement(current: pd.DataFrame, task: str | None = None,
              instance_ids: Sequence[str] | None = None) -> Agreement:
    """Agreement on current verdicts (``Store.annotations(current=True)``).

    Restricted to ``task`` and to ``instance_ids`` when given. Two annotators: Cohen's
    kappa on the items both judged. More: Fleiss' kappa on the items two or more judged.
    """
    frame = current
    if task is not None:
        frame = frame[frame["task"] == task]
    if instance_ids is not None:
        frame = frame[frame["instance_id"].astype(str).isin([str(i) for i in instance_ids])]
    key = frame["task"].astype(str) + "\x1f" + frame["instance_id"].astype(str)
    table = (frame.assign(item=key).pivot_table(index="item", columns="annotator",
                                                values="verdict", aggfunc="last")
             if len(frame) else pd.DataFrame())
    annotators = sorted(table.columns.tolist()) if len(table) else []
    table = table[annotators] if annotators else table
    a = len(annotators)
    pairwise = np.eye(a)
    pair_n = np.zeros((a, a), dtype=np.int64)
    for i in range(a):
        for j in range(a):
            both = table[[annotators[i], annotators[j]]].dropna()
            pair_n[i, j] = len(both)
            if i < j:
                k = cohen_kappa(both.iloc[:, 0], both.iloc[:, 1]) if len(both) else np.nan
                pairwise[i, j] = pairwise[j, i] = k
    shared = table[table.notna().sum(axis=1) >= 2] if a >= 2 else table.iloc[:0]
    if a < 2 or shared.empty:
        return Agreement(annotators, None, float("nan"), float("nan"), 0, pairwise, pair_n,
                         table)
    counts = np.stack([(shared == v).sum(axis=1).to_numpy() for v in VERDICTS], axis=1)
    n_i = counts.sum(axis=1)
    observed = float(((counts * (counts - 1)).sum(axis=1) / (n_i * (n_i - 1))).mean())
    if a == 2:
        both = shared.dropna()
        method, kappa = "cohen", cohen_kappa(both.iloc[:, 0], both.iloc[:, 1])
    else:
        raters = counts.sum(axis=1)
        method = "fleiss"
        kappa = (stats.fleiss_kappa_counts(counts) if np.all(raters == raters[0])
                 else _fleiss_kappa_unequal(counts.astype(float)))
    return Agreement(annotators, method, kappa, observed, len(shared), pairwise, pair_n, table)


# ---------------------------------------------------------------------------------------
# Export and import


def export_frame(store: Store, task: str | None = None, *, current: bool = True,
                 annotator: str | None = None) -> pd.DataFrame:
    """The verdicts with the instance they judge: ``EXPORT_COLUMNS``, one row per current
    verdict (``current=True``) or per log entry, in log order."""
    log = store.annotations(task=task, annotator=annotator, current=current)
    if log.empty:
        return pd.DataFrame({c: pd.Series(dtype="string") for c in EXPORT_COLUMNS})
    parts = []
    for name, rows in log.groupby("task", sort=False):
        inst = store.instances(task=name)
        cols = [c for c in ("instance_id", "split", "label", "text_a", "text_b") if c in inst]
        inst = inst[cols].astype({"instance_id": str})
        parts.append(rows.astype({"instance_id": str}).merge(inst, on="instance_id", how="left"))
    merged = pd.concat(parts).sort_values("id", kind="stable")
    for column in EXPORT_COLUMNS:
        if column not in merged:
            merged[column] = pd.NA
    return merged[EXPORT_COLUMNS].reset_index(drop=True)


def to_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV with a header row (every field quoted where needed)."""
    return frame.to_csv(index=False, quoting=csv.QUOTE_MINIMAL).encode("utf-8")


def to_jsonl(frame: pd.DataFrame) -> bytes:
    """One JSON object per line; missing values are ``null``."""
    lines = []
    for record in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        lines.append(json.dumps(record, ensure_ascii=False))
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


def read_verdicts(source: str | Path | bytes, fmt: str | None = None,
                  name: str | None = None) -> pd.DataFrame:
    """Read verdicts written by ``to_csv`` / ``to_jsonl`` (or by hand) back into a frame.

    ``source``: a path, or the bytes of a file (then ``name`` names it in errors and ``fmt``
    is ``'csv'`` or ``'jsonl'``). Needs ``task``, ``instance_id``, ``annotator`` and
    ``verdict`` (one of ``VERDICTS``, any case); raises ``InputError`` naming the file,
    line and field otherwise. Every column is read as text.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        data = path.read_bytes()
        name = name or str(path)
        fmt = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".json") else "csv")
    else:
        data = source
        name = name or "<upload>"
    if fmt not in ("csv", "jsonl"):
        raise InputError(name, f"unknown format {fmt!r}", expected="csv or jsonl")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(name, "the file is not UTF-8 text", expected="UTF-8") from exc
    required = ["task", "instance_id", "annotator", "verdict"]
    if fmt == "csv":
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise InputError(name, f"the header lacks column {missing[0]!r}", line=1,
                             field=missing[0], expected=", ".join(required))
        first_line = 2  # data starts after the header
    else:
        records, numbers = json_lines(name, text.splitlines())
        for record, number in zip(records, numbers):
            for column in required:
                if record.get(column) in (None, ""):
                    raise InputError(name, f"{column} is missing", line=number, field=column,
                                     expected="a value")
            record["_line"] = number
        frame = pd.DataFrame.from_records(records)
        if frame.empty:
            frame = pd.DataFrame(columns=[*required, "_line"])
        lines = frame.pop("_line").tolist()
        frame = frame.astype(object).where(frame.notna(), None)
        for column in frame.columns:
            frame[column] = [None if v is None else str(v) for v in frame[column]]
        frame = frame.astype("string")
        first_line = None
    frame = frame.astype("string")
    for row, (_, record) in enumerate(frame.iterrows()):
        line = lines[row] if first_line is None else first_line + row
        for column in required:
            value = record[column]
            if pd.isna(value) or str(value).strip() == "":
                raise InputError(name, f"{column} is empty", line=line, field=column,
                                 expected="a value")
        verdict = str(record["verdict"]).strip().lower()
        if verdict not in VERDICTS:
            raise InputError(name, f"verdict {record['verdict']!r} is not known", line=line,
                             field="verdict", expected=" | ".join(VERDICTS))
    frame["verdict"] = frame["verdict"].str.strip().str.lower()
    return frame.reset_index(drop=True)
