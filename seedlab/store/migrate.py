"""Bring a store written before tasks had one name to the canonical names.

Importers before this round stored the Zhong and MultiBERTs tasks in lower case (``mnli``,
``sst-2``) and the lottery release's in GLUE's spelling (``MNLI``, ``SST-2``), so one task
could sit in a store twice, its masks, predictions and verdicts never meeting. Today every
importer stores ``seedlab.schema.canonical_task(name)``. :func:`canonical_tasks` moves what
a store holds under any other spelling to the canonical one, in one transaction:

* the task's label list, description and instances (merged with the canonical task's,
  which must have the same label list);
* its runs (same predictions, new run ids; the name they were stored under is kept in
  each run's provenance as ``released_task``) and mask settings;
* its verdicts, copied under the canonical name with their annotator, time and note
  (the annotation log is append-only, so the old rows stay in it under the old name).

Jobs in the queue keep the name they were submitted with. ``seedlab migrate`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from seedlab.errors import StoreError
from seedlab.schema import canonical_task
from seedlab.store.tables import RUN_METADATA_KEY, RunData


@dataclass(frozen=True)
class Renamed:
    """One task moved to its canonical name, with what moved."""

    old: str
    new: str
    runs: int
    mask_settings: int
    verdicts: int


def pending(store: Any) -> dict[str, str]:
    """The tasks of ``store`` stored under a name that is not canonical: old -> new."""
    return {t: canonical_task(t) for t in store.tasks()["task"].astype(str)
            if canonical_task(t) != t}


def canonical_tasks(store: Any) -> list[Renamed]:
    """Move every task of ``store`` stored under a non-canonical spelling to its canonical
    name, in one transaction (see the module docstring). Refuses, changing nothing, when
    the two spellings carry different label lists."""
    import json

    renames = pending(store)
    if not renames:
        return []
    done: list[Renamed] = []
    with store.transaction("migrate", "canonical task names") as tx:
        for old, new in sorted(renames.items()):
            old_row, new_row = store.task_row(old), store.task_row(new)
            if new_row is not None and old_row["label_list"] != new_row["label_list"]:
                raise StoreError(
                    f"task {old!r} and task {new!r} are one task by name but have different"
                    f" label lists ({old_row['label_list']} and {new_row['label_list']});"
                    " nothing was renamed")
            description = (new_row or old_row)["description"] or ""
            tx.set_task(new, old_row["label_list"], simulated=old_row["simulated"],
                        source=(new_row or old_row)["source"], description=description)
            for task in (new, old):
                instances = store.instances(task=task)
                if len(instances):
                    tx.add_instances(new, instances.drop(columns=["task"]))
            runs = store.runs(task=old)
            for row in runs.itertuples():
                file = pq.ParquetFile(store.home / str(row.file))
                meta = json.loads(file.schema_arrow.metadata[RUN_METADATA_KEY])
                provenance = {**meta.get("provenance", {}), "released_task": old}
                tx.add_run(RunData(task=new, size=meta["size"],
                                   pretrain_seed=meta["pretrain_seed"],
                                   finetune_seed=meta["finetune_seed"], table=file.read(),
                                   source=meta.get("source", ""), model=meta.get("model", ""),
                                   hyperparameters=meta.get("hyperparameters", {}),
                                   provenance=provenance))
                tx.remove_run(old, str(row.size), str(row.pretrain_seed),
                              int(row.finetune_seed))
            masks = store.masks(task=old)
            settings = sorted(masks["setting"].unique()) if len(masks) else []
            for setting in settings:
                frame = pd.concat([store.masks(setting=str(setting), task=new),
                                   masks[masks["setting"] == setting]], ignore_index=True)
                frame = frame.drop(columns=["setting", "task"]).drop_duplicates(
                    subset=["seed", "component", "layer", "head"], keep="first")
                tx.add_masks(str(setting), new, frame)
                tx.remove_masks(str(setting), old)
            verdicts = store.annotations(task=old, current=False)
            if len(verdicts):
                frame = verdicts.copy()
                frame["task"] = new
                keep = [c for c in ("task", "instance_id", "annotator", "verdict", "note", "at")
                        if c in frame]
                tx.add_annotations(frame[keep])
            tx.remove_task(old)
            done.append(Renamed(old, new, len(runs), len(settings), len(verdicts)))
    return done
