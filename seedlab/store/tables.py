"""The store's values and table builders: run and instance tables as written to
Parquet, the run-metadata dict, the catalogue's run rows, and the dense ``SeedArrays``."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seedlab import schema
from seedlab.errors import InputError, StoreError
from seedlab.keys import digest

RUN_METADATA_KEY = b"seedlab.run"
# The folders of a home that hold data; the catalogue is rebuilt from them when missing.
DATA_FOLDERS = ("predictions", "instances", "masks", "evaluations", "tasks")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def run_id_for(task: str, size: str, pretrain_seed: str, finetune_seed: int) -> str:
    """The stable id of a run: a digest of its key, so the same run always has the same id."""
    return digest(task, size, str(pretrain_seed), str(int(finetune_seed)))[:16]


def table_digest(table: pa.Table) -> str:
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(None), sink, compression="none")
    return digest(sink.getvalue())


def as_list(value: Any) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, int, float, np.integer, np.floating)):
        return [value]
    return list(value)


def in_clause(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    return f"{column} IN ({', '.join('?' for _ in values)})", list(values)


# ---------------------------------------------------------------------------------------
# Dense arrays for seedlab.stats


@dataclass
class SeedArrays:
    """Dense per-instance scores of one task and size, ready for ``seedlab.stats``.

    Shapes: ``correct``, ``p_correct`` and ``pred`` are ``(N, P, F)`` for one checkpoint or
    ``(N, P, F, E)`` for several. Missing runs are NaN in the float arrays and -1 in
    ``pred``; ``missing`` lists the ``(pretrain_seed, finetune_seed)`` pairs with no run.
    """

    task: str
    size: str
    instance_ids: np.ndarray
    labels: np.ndarray  # (N,) gold label index into label_list (-1 where not in it)
    label_list: list[str]
    pretrain_seeds: list[str]
    finetune_seeds: list[int]
    checkpoints: list[float]
    correct: np.ndarray
    p_correct: np.ndarray
    pred: np.ndarray
    missing: list[tuple[str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not np.isnan(self.correct).any()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.correct.shape


# ---------------------------------------------------------------------------------------
# Staged writes


@dataclass
class RunData:
    """One run's predictions, ready to be written.

    ``table`` has the columns ``checkpoint, instance_id, pred, correct, p_correct, probs``
    (one row per checkpoint and instance).
    """

    task: str
    size: str
    pretrain_seed: str
    finetune_seed: int
    table: pa.Table
    source: str = ""
    model: str = ""
    hyperparameters: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)



def run_metadata(run: RunData, run_id: str) -> dict[str, Any]:
    """What identifies and describes a run: kept in its Parquet file's schema metadata
    (``RUN_METADATA_KEY``) and, with its statistics, in the catalogue's ``runs`` row."""
    return {
        "run_id": run_id,
        "task": run.task,
        "size": run.size,
        "pretrain_seed": str(run.pretrain_seed),
        "finetune_seed": int(run.finetune_seed),
        "source": run.source,
        "model": run.model,
        "hyperparameters": run.hyperparameters,
        "provenance": run.provenance,
    }


def prediction_table(run: RunData, run_id: str) -> pa.Table:
    t = run.table
    required = ["checkpoint", "instance_id", "pred", "correct", "p_correct", "probs"]
    missing = [c for c in required if c not in t.column_names]
    if missing:
        raise StoreError(f"run table lacks columns {missing}")
    n = t.num_rows
    table = pa.table(
        {
            # Constant columns without Python lists of n values (318k per run at QQP scale).
            "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
            "pretrain_seed": pa.repeat(pa.scalar(str(run.pretrain_seed), pa.string()), n),
            "finetune_seed": pa.repeat(pa.scalar(int(run.finetune_seed), pa.int64()), n),
            "checkpoint": t["checkpoint"].cast(pa.float64()),
            "instance_id": t["instance_id"].cast(pa.string()),
            "pred": t["pred"].cast(pa.int32()),
            "correct": t["correct"].cast(pa.bool_()),
            "p_correct": t["p_correct"].cast(pa.float32()),
            "probs": t["probs"].cast(pa.list_(pa.float32())),
        },
        schema=schema.PREDICTION_FILE_SCHEMA,
    )
    meta = run_metadata(run, run_id)
    return table.replace_schema_metadata({RUN_METADATA_KEY: json.dumps(meta, default=str)})


@dataclass
class SpilledRun:
    """A staged run whose table is already written to ``path`` (``add_run(spill=True)``)."""

    path: Path
    stats: tuple[list[float], int, float | None, int]


def run_stats(table: pa.Table) -> tuple[list[float], int, float | None, int]:
    """(checkpoints, n_instances, accuracy at the last checkpoint, n_rows) of a run table."""
    checkpoints = sorted(pa.compute.unique(table["checkpoint"]).to_pylist())
    n_instances = len(pa.compute.unique(table["instance_id"])) if table.num_rows else 0
    last = table.filter(pa.compute.equal(table["checkpoint"], checkpoints[-1])) if checkpoints else table
    accuracy = float(np.mean(last["correct"].to_numpy(zero_copy_only=False))) if last.num_rows else None
    return checkpoints, n_instances, accuracy, table.num_rows


def run_row(run: RunData, run_id: str, table: pa.Table | SpilledRun, digest: str, rel: str,
            now: str) -> tuple:
    """The catalogue's ``runs`` row (``schema.RUN_COLUMNS``) of a run written to ``rel``."""
    stats = table.stats if isinstance(table, SpilledRun) else run_stats(table)
    checkpoints, n_instances, accuracy, n_rows = stats
    meta = run_metadata(run, run_id)
    values = {
        **meta,
        "hyperparameters": json.dumps(meta["hyperparameters"], default=str),
        "provenance": json.dumps(meta["provenance"], default=str),
        "checkpoints": json.dumps(checkpoints),
        "n_instances": n_instances,
        "n_predictions": n_rows,
        "accuracy": accuracy,
        "content_hash": digest,
        "file": rel,
        "created_at": now,
    }
    return tuple(values[c] for c in schema.RUN_COLUMNS)


def instance_table(frame: pd.DataFrame) -> pa.Table:
    core = ["instance_id", "split", "guid", "text_a", "text_b", "label"]
    extras = [c for c in frame.columns if c not in core and c not in ("task", "extra")]
    out = pd.DataFrame({c: frame.get(c) for c in core})
    for c in core:
        out[c] = out[c].map(lambda v: None if _is_missing(v) else str(v)).astype(object)
    base_extra = frame["extra"] if "extra" in frame else pd.Series([None] * len(frame), index=frame.index)
    extra_json = []
    # Column-wise records, not iterrows: each value keeps its column's type, and 80k rows
    # take a second, not twenty.
    records = frame[extras].to_dict("records") if extras else [{}] * len(frame)
    for raw, record in zip(base_extra.tolist(), records):
        payload = json.loads(raw) if isinstance(raw, str) and raw else {}
        for c, v in record.items():
            if not _is_missing(v):
                payload[c] = v.item() if isinstance(v, np.generic) else v
        extra_json.append(json.dumps(payload, sort_keys=True, default=str) if payload else None)
    out["extra"] = extra_json
    return pa.Table.from_pandas(out, schema=schema.INSTANCE_FILE_SCHEMA, preserve_index=False)


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return v is pd.NA


def merge_instances(old: pd.DataFrame, new: pd.DataFrame, source: str) -> pd.DataFrame:
    """Union of two instance frames keyed by instance_id: new ids are appended, known ids
    keep their fields and gain the new ones; a different gold label is an error."""
    old = flatten_extra(old)
    new = flatten_extra(new)
    old_idx = old.set_index("instance_id")
    new_idx = new.set_index("instance_id")
    common = old_idx.index.intersection(new_idx.index)
    if len(common) and "label" in new_idx and "label" in old_idx:
        a = old_idx.loc[common, "label"].astype(str)
        b = new_idx.loc[common, "label"].astype(str)
        clash = (a != b) & new_idx.loc[common, "label"].notna() & old_idx.loc[common, "label"].notna()
        if clash.any():
            iid = clash[clash].index[0]
            raise InputError(
                source,
                f"instance {iid!r} has gold label {b[iid]!r} here but {a[iid]!r} in the store",
                field="label",
                expected="the same gold label for an instance in every import",
            )
    merged = new_idx.combine_first(old_idx)  # new values win, old fill the gaps
    order = list(old_idx.index) + [i for i in new_idx.index if i not in old_idx.index]
    merged = merged.loc[order].reset_index()
    return merged


def flatten_extra(frame: pd.DataFrame) -> pd.DataFrame:
    if "extra" not in frame:
        return frame
    frame = frame.copy()
    extras = frame.pop("extra")
    parsed = [json.loads(x) if isinstance(x, str) and x else {} for x in extras]
    keys = sorted({k for d in parsed for k in d})
    for k in keys:
        if k not in frame:
            frame[k] = [d.get(k) for d in parsed]
    return frame


def mask_table(frame: pd.DataFrame) -> pa.Table:
    frame = frame.copy()
    if "importance" not in frame:
        frame["importance"] = np.nan
    bad = ~frame["component"].isin(schema.MASK_COMPONENTS)
    if bad.any():
        raise StoreError(f"mask component {frame['component'][bad].iloc[0]!r} is not head or mlp")
    frame = frame.sort_values(["seed", "component", "layer", "head"], kind="stable")
    return pa.Table.from_pandas(
        frame[["seed", "component", "layer", "head", "kept", "importance"]],
        schema=schema.MASK_FILE_SCHEMA,
        preserve_index=False,
    )


