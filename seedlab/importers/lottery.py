"""Prasanna, Rogers & Rumshisky (2020), "When BERT Plays the Lottery, All Tickets Are Winning":
pruning masks and the evaluations of masked models.

Layout (the authors' repository, folders ``masks/`` and ``evaluate_masked/``)::

    masks/<setting>/<task>/seed_<seed>/head_mask.npy         (L, H) 1 = head kept, 0 = pruned
    masks/<setting>/<task>/seed_<seed>/mlp_mask.npy          (L,)   1 = MLP kept
    masks/<setting>/<task>/seed_<seed>/head_importance.npy   (L, H) optional
    masks/<setting>/<task>/seed_<seed>/mlp_importance.npy    (L,)   optional
    evaluate_masked/<experiment>/[<variant>/...]results.json {task: {metric: [mean, std]}}

Each mask becomes rows ``(setting, task, seed, component, layer, head, kept, importance)``:
L * H rows for a head mask, L rows (head = -1) for an MLP mask. A setting may hold only head
masks (``heads``) or only MLP masks (``mlps``). Other files in a seed folder
(``attn_entropy.npy``) are not masks and are ignored. Task folders are stored under
``schema.canonical_task`` of their name (the release already uses GLUE's spelling).

Importing masks of a (setting, task) that the store already holds with other values is
refused unless ``replace`` is given (as for runs); the same masks again change nothing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seedlab import schema
from seedlab.errors import InputError
from seedlab.importers import inputs
from seedlab.store import Store

SEED_FOLDER = re.compile(r"seed_(-?\d{1,19})")  # fullmatch: "seed_1\n" is not a seed folder
# A mask is (layers, heads) booleans or floats; 1 GiB is far beyond any BERT.
MASK_LIMIT = 1 << 30
COMPONENT_DIMS = {"head": 2, "mlp": 1}
COMPONENT_SHAPES = {"head": "(layers, heads), e.g. (12, 12)", "mlp": "(layers,), e.g. (12,)"}


def load_mask(path: Path, component: str, root: Path | None = None) -> np.ndarray:
    """Load one mask file as a boolean array: ``(L, H)`` for heads, ``(L,)`` for MLPs.

    float32, float64, int and bool files are accepted; every value must be 0 or 1. With
    ``root``, the file (links resolved) must lie inside it.
    """
    array = inputs.load_npy(path, limit=MASK_LIMIT, root=root)
    _check_dims(path, array, component)
    if array.dtype.kind not in "biuf":
        raise InputError(path, f"mask has dtype {array.dtype}", expected="numbers 0 or 1")
    values = np.asarray(array, dtype=np.float64)
    bad = ~((values == 0) | (values == 1))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            path,
            f"mask value {values[where]!r} at index {where} is not 0 or 1",
            expected="a 0/1 mask (1 = kept, 0 = pruned)",
        )
    return values.astype(bool)


def load_importance(path: Path, component: str, mask_shape: tuple[int, ...],
                    root: Path | None = None) -> np.ndarray:
    """Load an importance file; its shape must equal the mask's. Returns float64."""
    array = inputs.load_npy(path, limit=MASK_LIMIT, root=root)
    _check_dims(path, array, component)
    if array.shape != mask_shape:
        raise InputError(
            path,
            f"importance has shape {array.shape} but the mask beside it has shape {mask_shape}",
            expected=f"shape {mask_shape}, the same as {component}_mask.npy",
        )
    if array.dtype.kind not in "biuf":
        raise InputError(path, f"importance has dtype {array.dtype}", expected="numbers")
    values = np.asarray(array, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError(path, "importance holds NaN or infinite values", expected="finite numbers")
    return values


def mask_rows(seed: int, component: str, kept: np.ndarray,
              importance: np.ndarray | None) -> pd.DataFrame:
    """Long rows of one mask. ``kept``: (L, H) for heads or (L,) for MLPs.

    Returns columns seed, component, layer, head (-1 for MLPs), kept, importance (NaN when
    there is no importance file).
    """
    if component == "head":
        layers, heads = np.meshgrid(np.arange(kept.shape[0]), np.arange(kept.shape[1]),
                                    indexing="ij")
        layer, head = layers.ravel(), heads.ravel()
    else:
        layer = np.arange(kept.shape[0])
        head = np.full(kept.shape[0], -1)
    imp = importance.ravel() if importance is not None else np.full(kept.size, np.nan)
    return pd.DataFrame({
        "seed": np.full(kept.size, seed, dtype=np.int64),
        "component": component,
        "layer": layer.astype(np.int32),
        "head": head.astype(np.int32),
        "kept": kept.ravel(),
        "importance": imp,
    })


def read_masks(masks_root: Path, release: Path | None = None
               ) -> tuple[dict[tuple[str, str], pd.DataFrame], dict[str, Any]]:
    """Read ``masks/<setting>/<task>/seed_<s>/``. Returns frames keyed by (setting, task) and
    counts: settings, tasks (distinct setting/task pairs), seed folders, head and MLP masks,
    the seed folders that held no mask file, and ``released_tasks`` (canonical task name ->
    the folder names it was read from, where they differ). Every file must lie inside
    ``release`` (default ``masks_root``) once links are resolved."""
    release = release or masks_root
    frames: dict[tuple[str, str], pd.DataFrame] = {}
    counts: dict[str, Any] = {"settings": 0, "setting_tasks": 0, "seed_folders": 0,
                              "head_masks": 0, "mlp_masks": 0, "empty_seed_folders": [],
                              "released_tasks": {}}
    for setting_dir in sorted(p for p in masks_root.iterdir() if p.is_dir()):
        setting = _name(setting_dir, "setting")
        counts["settings"] += 1
        for task_dir in sorted(p for p in setting_dir.iterdir() if p.is_dir()):
            task = _name(task_dir, "task")
            if task != task_dir.name:
                counts["released_tasks"].setdefault(task, [])
                counts["released_tasks"][task] = sorted({*counts["released_tasks"][task],
                                                         task_dir.name})
            if (setting, task) in frames:
                raise InputError(task_dir, f"a second folder for task {task!r} of setting"
                                 f" {setting!r}", expected="one folder per task")
            parts = []
            for seed_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
                match = SEED_FOLDER.fullmatch(seed_dir.name)
                seed = inputs.as_int64(match.group(1)) if match else None
                if seed is None:
                    raise InputError(seed_dir, "folder name is not a seed folder",
                                     expected="seed_<integer of at most 64 bits>, e.g. seed_42")
                counts["seed_folders"] += 1
                found = False
                for component in ("head", "mlp"):
                    mask_path = seed_dir / f"{component}_mask.npy"
                    imp_path = seed_dir / f"{component}_importance.npy"
                    if not mask_path.exists():
                        if imp_path.exists():
                            raise InputError(imp_path, "importance file without a mask beside it",
                                             expected=f"{mask_path.name} in the same folder")
                        continue
                    kept = load_mask(mask_path, component, release)
                    importance = (load_importance(imp_path, component, kept.shape, release)
                                  if imp_path.exists() else None)
                    parts.append(mask_rows(seed, component, kept, importance))
                    counts[f"{component}_masks"] += 1
                    found = True
                if not found:
                    counts["empty_seed_folders"].append(str(seed_dir))
            if parts:
                frames[(setting, task)] = pd.concat(parts, ignore_index=True)
                counts["setting_tasks"] += 1
    return frames, counts


def read_evaluations(root: Path, release: Path | None = None) -> pd.DataFrame:
    """Read every ``results.json`` under ``root`` (``evaluate_masked/``).

    ``experiment`` is the first folder below ``root``, ``variant`` the rest of the folder
    path ('' when results.json sits directly in the experiment folder). Returns columns
    ``schema.EVALUATION_COLUMNS``. Every file must lie inside ``release`` (default
    ``root``) once links are resolved.
    """
    rows = []
    for path in sorted(root.rglob("results.json")):
        rel = path.parent.relative_to(root).parts
        if not rel:
            raise InputError(path, "results.json directly under evaluate_masked/",
                             expected="evaluate_masked/<experiment>/[...]/results.json")
        experiment, variant = rel[0], "/".join(rel[1:])
        payload = inputs.read_json(path, root=release or root, limit=inputs.SIDECAR_LIMIT,
                                   what="{task: {metric: [mean, std]}}")
        if not isinstance(payload, dict):
            raise InputError(path, f"top level is {type(payload).__name__}",
                             expected="{task: {metric: [mean, std]}}")
        for task, metrics in payload.items():
            if not isinstance(metrics, dict):
                raise InputError(path, f"task {task!r} maps to {type(metrics).__name__}",
                                 field=task, expected="{metric: [mean, std]}")
            for metric, value in metrics.items():
                mean, std = _mean_std(path, task, metric, value)
                rows.append((experiment, variant, schema.canonical_task(str(task)), str(metric),
                             mean, std))
    return pd.DataFrame(rows, columns=schema.EVALUATION_COLUMNS)


def import_lottery(store: Store, path: str | Path, replace: bool = False) -> dict[str, Any]:
    """Import a bert-experiments folder (holding ``masks/`` and/or ``evaluate_masked/``), or
    a ``masks/`` folder itself. Everything is read and checked first, then written in one
    transaction; importing the same files again changes nothing. Masks of a (setting, task)
    the store holds with other values are an InputError unless ``replace``.

    Returns the store's summary plus counts of what was found on disk.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(root, "not a folder", expected="a folder holding masks/ and/or"
                         " evaluate_masked/")
    masks_root = root / "masks" if (root / "masks").is_dir() else None
    evals_root = root / "evaluate_masked" if (root / "evaluate_masked").is_dir() else None
    if masks_root is None and evals_root is None:
        if root.name == "masks":
            masks_root = root
        elif root.name == "evaluate_masked":
            evals_root = root
        else:
            raise InputError(root, "holds neither masks/ nor evaluate_masked/",
                             expected="the bert-experiments folder of Prasanna et al. (2020)")
    frames, counts = read_masks(masks_root, root) if masks_root else ({}, {})
    evaluations = read_evaluations(evals_root, root) if evals_root else pd.DataFrame()
    if not replace:
        _refuse_changed_masks(store, masks_root, frames)
    with store.transaction("lottery", str(root), replace=replace) as tx:
        for (setting, task), frame in frames.items():
            tx.add_masks(setting, task, frame)
        if len(evaluations):
            tx.add_evaluations(evaluations)
    summary: dict[str, Any] = dict(tx.summary)
    summary.update(counts)
    summary["evaluation_rows"] = len(evaluations)
    summary["evaluation_files"] = (len(list(evals_root.rglob("results.json")))
                                   if evals_root else 0)
    return summary


# ---------------------------------------------------------------------------------------

MASK_KEY = ["seed", "component", "layer", "head"]


def _refuse_changed_masks(store: Store, masks_root: Path | None,
                          frames: dict[tuple[str, str], pd.DataFrame]) -> None:
    """An InputError for the first (setting, task) whose stored masks differ from ``frames``
    (another seed set, shape, kept flag or importance). One sorted comparison of all rows,
    not one per (setting, task): the real release has 117 of them."""
    if not frames:
        return
    group = ["setting", "task"]
    stored = store.masks(setting=sorted({s for s, _ in frames}),
                         task=sorted({t for _, t in frames}))
    if stored.empty:
        return
    stored = stored[pd.MultiIndex.from_frame(stored[group]).isin(list(frames))]
    held = set(map(tuple, stored[group].drop_duplicates().to_numpy(dtype=object)))
    if not held:
        return
    new = pd.concat([f for key, f in frames.items() if key in held], ignore_index=True)
    sizes = [len(f) for key, f in frames.items() if key in held]
    keys = [key for key in frames if key in held]
    new["setting"] = np.repeat([s for s, _ in keys], sizes)
    new["task"] = np.repeat([t for _, t in keys], sizes)
    old_n, new_n = stored.groupby(group).size(), new.groupby(group).size()
    counts = old_n.to_frame("old").join(new_n.to_frame("new"))
    changed = [key for key, row in counts.iterrows() if row["old"] != row["new"]]
    if not changed:
        order = group + MASK_KEY
        a = stored.sort_values(order, kind="stable").reset_index(drop=True)
        b = new[stored.columns].sort_values(order, kind="stable").reset_index(drop=True)
        differs = np.zeros(len(a), dtype=bool)
        for column in MASK_KEY + ["kept"]:
            differs |= a[column].astype(str).to_numpy() != b[column].astype(str).to_numpy()
        ia, ib = a["importance"].to_numpy(float), b["importance"].to_numpy(float)
        differs |= ~((ia == ib) | (np.isnan(ia) & np.isnan(ib)))
        if differs.any():
            first = int(np.argmax(differs))
            changed = [(a["setting"].iloc[first], a["task"].iloc[first])]
    if changed:
        setting, task = changed[0]
        folder = masks_root / setting if masks_root else setting
        raise InputError(folder, f"the store already holds other masks for setting"
                         f" {setting!r}, task {task!r} ({int(old_n[(setting, task)])} rows; this"
                         f" import has {int(new_n[(setting, task)])})", field=task,
                         expected="the same masks, or --replace to replace them")


def _check_dims(path: Path, array: np.ndarray, component: str) -> None:
    if array.ndim != COMPONENT_DIMS[component] or 0 in array.shape:
        raise InputError(path, f"has shape {array.shape}",
                         expected=f"a {component} array of shape {COMPONENT_SHAPES[component]}")


def _name(folder: Path, kind: str) -> str:
    name = schema.canonical_task(folder.name) if kind == "task" else folder.name
    try:
        return schema.check_name(kind, name)
    except ValueError:
        raise InputError(folder, f"{kind} folder name {inputs.quote(name)} is not a valid name",
                         field=kind, expected=schema.NAME_RULE) from None


def _mean_std(path: Path, task: str, metric: str, value: Any) -> tuple[float, float]:
    ok = (isinstance(value, list) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    if not ok:
        raise InputError(path, f"{task} / {metric} is {value!r}", field=f"{task}.{metric}",
                         expected="[mean, std], two numbers")
    mean, std = float(value[0]), float(value[1])
    if math.isnan(mean):
        raise InputError(path, f"{task} / {metric} mean is NaN", field=f"{task}.{metric}",
                         expected="a number")
    return mean, std
