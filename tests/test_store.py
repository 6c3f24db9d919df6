"""The store: atomic commits, idempotent imports, catalogue rebuild, annotations, arrays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seedlab.errors import DuplicateRunError, InputError
from seedlab.store import RunData, Store

GOLD = np.array([0, 1, 0, 1, 0])
IDS = [f"i{i}" for i in range(5)]


def run_table(correct_rows: dict[float, list[int]]) -> pa.Table:
    """A run's table from correctness per checkpoint (probabilities 0.9 / 0.1)."""
    parts = []
    for ckpt, correct in correct_rows.items():
        correct = np.array(correct, dtype=bool)
        pred = np.where(correct, GOLD, 1 - GOLD)
        probs = np.where(pred[:, None] == np.arange(2)[None, :], 0.9, 0.1)
        parts.append(pa.table({
            "checkpoint": [ckpt] * 5, "instance_id": IDS, "pred": pred, "correct": correct,
            "p_correct": probs[np.arange(5), GOLD], "probs": list(probs),
        }))
    return pa.concat_tables(parts)


def fill(store: Store, replace: bool = False, flip: bool = False) -> dict:
    with store.transaction("test", "fixture", replace=replace) as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_instances("toy", pd.DataFrame({
            "instance_id": IDS, "split": "dev", "text_a": list("abcde"),
            "label": ["neg", "pos", "neg", "pos", "neg"], "group": ["treatment"] * 5}))
        for p in ["0", "1"]:
            for f in [1, 2]:
                last = [1, 1, 0, 0, 1] if not (flip and p == "1" and f == 2) else [0, 0, 0, 0, 0]
                tx.add_run(RunData("toy", "small", p, f, run_table({1.0: [1, 0, 0, 0, 1], 2.0: last})))
    return tx.summary


def test_arrays_have_the_planted_values(store):
    fill(store)
    a = store.arrays("toy", "small")
    assert a.correct.shape == (5, 2, 2)
    assert a.checkpoints == [2.0]
    np.testing.assert_array_equal(a.correct[:, 0, 0], [1, 1, 0, 0, 1])
    np.testing.assert_array_equal(a.labels, GOLD)
    np.testing.assert_allclose(a.p_correct[:, 1, 1], [0.9, 0.9, 0.1, 0.1, 0.9], rtol=1e-6)
    a4 = store.arrays("toy", "small", checkpoint="all")
    assert a4.correct.shape == (5, 2, 2, 2)
    np.testing.assert_array_equal(a4.correct[:, 0, 0, 0], [1, 0, 0, 0, 1])
    sub = store.arrays("toy", "small", pretrain_seeds=["1"], finetune_seeds=[2, 3])
    assert sub.correct.shape == (5, 1, 2)
    assert sub.missing == [("1", 3)]
    assert np.isnan(sub.correct[:, 0, 1]).all()


def test_importing_twice_does_not_duplicate(store):
    first = fill(store)
    second = fill(store)
    assert first["runs_added"] == 4
    assert second["runs_added"] == 0 and second["runs_unchanged"] == 4
    assert store.info()["totals"]["predictions"] == 40
    assert len(store.instances("toy")) == 5


def test_a_different_run_with_the_same_key_is_refused_and_store_unchanged(store):
    fill(store)
    before = store.predictions(task="toy").sort_values(["pretrain_seed", "finetune_seed",
                                                        "checkpoint", "instance_id"])
    version = store.version()
    with pytest.raises(DuplicateRunError, match="already has a different run"):
        fill(store, flip=True)
    after = store.predictions(task="toy").sort_values(["pretrain_seed", "finetune_seed",
                                                       "checkpoint", "instance_id"])
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))
    assert store.version() == version
    summary = fill(store, replace=True, flip=True)
    assert summary["runs_replaced"] == 1
    assert store.arrays("toy", "small").correct[:, 1, 1].sum() == 0
    # the replaced run's old file is gone; one file per run remains
    assert len(list((store.home / "predictions").rglob("*.parquet"))) == 4


def test_an_exception_inside_a_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.transaction("test", "fixture") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_run(RunData("toy", "small", "0", 1, run_table({1.0: [1, 1, 1, 1, 1]})))
        raise RuntimeError("boom")
    assert store.info()["totals"]["runs"] == 0
    assert not list(store.home.rglob("*.parquet"))


def test_changed_gold_label_is_an_input_error(store):
    fill(store)
    with (pytest.raises(InputError, match="gold label"),
          store.transaction("test", "other.tsv") as tx):
        tx.add_instances("toy", pd.DataFrame({"instance_id": ["i0"], "label": ["pos"]}))


def test_catalogue_is_rebuilt_from_files(store):
    fill(store)
    os.remove(store.catalog_path)
    fresh = Store(store.home)
    assert fresh.info()["totals"] == {"instances": 5, "runs": 4, "predictions": 40, "masks": 0,
                                      "annotations": 0}
    np.testing.assert_array_equal(fresh.arrays("toy", "small").correct[:, 0, 0], [1, 1, 0, 0, 1])


def test_annotation_log_is_append_only(store):
    fill(store)
    store.annotate("toy", "i1", "ana", "wrong", "label looks off")
    store.annotate("toy", "i1", "ana", "correct")
    store.annotate("toy", "i1", "bo", "unsure")
    log = store.annotations()
    assert list(log["verdict"]) == ["wrong", "correct", "unsure"]
    current = store.annotations(current=True)
    assert dict(zip(current["annotator"], current["verdict"])) == {"ana": "correct", "bo": "unsure"}
    import sqlite3
    con = sqlite3.connect(store.catalog_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE annotations SET verdict = 'wrong'")
    with pytest.raises(ValueError, match="verdict"):
        store.annotate("toy", "i1", "ana", "maybe")


def test_concurrent_annotators_lose_nothing(store):
    fill(store)
    script = textwrap.dedent(f"""
        import sys
        from seedlab.store import Store
        s = Store({str(store.home)!r})
        for k in range(40):
            s.annotate("toy", f"i{{k % 5}}", sys.argv[1], "correct", f"n{{k}}")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b", "c")]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert len(store.annotations()) == 120


def test_killed_writer_leaves_store_as_it_was(store):
    fill(store)
    before = store.info()["totals"]
    # A writer that dies after moving files into place but before the catalogue commit.
    script = textwrap.dedent(f"""
        import os, sqlite3
        import numpy as np, pyarrow as pa
        from seedlab import store as st
        s = st.Store({str(store.home)!r})
        orig = sqlite3.Connection.executemany
        def die(self, sql, rows):
            if "INSERT OR REPLACE INTO runs" in sql:
                os._exit(9)
            return orig(self, sql, rows)
        st.sqlite3.Connection = type("C", (sqlite3.Connection,), {{"executemany": die}})
        s._catalog = lambda: sqlite3.connect(s.catalog_path, timeout=60, factory=st.sqlite3.Connection)
        t = pa.table({{"checkpoint": [1.0], "instance_id": ["i0"], "pred": [0], "correct": [True],
                       "p_correct": [0.9], "probs": [[0.9, 0.1]]}})
        with s.transaction("test", "x") as tx:
            tx.add_run(st.RunData("toy", "large", "0", 1, t))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 9, proc.stderr
    assert Store(store.home).info()["totals"] == before
    assert "large" not in set(store.runs()["size"])


def test_predictions_filters_and_last_checkpoint(store):
    fill(store)
    last = store.predictions(task="toy", checkpoint="last")
    assert len(last) == 20 and set(last["checkpoint"]) == {2.0}
    one = store.predictions(task="toy", pretrain_seed="0", finetune_seed=1, checkpoint=1.0,
                            instance_id=["i0", "i1"])
    assert list(one["correct"]) == [True, False]
    acc = store.run_accuracy("toy")
    assert len(acc) == 4 and np.allclose(acc["accuracy"], 0.6)


def test_info_counts(store):
    fill(store)
    store.annotate("toy", "i2", "ana", "reasonable")
    info = store.info()
    assert info["tasks"]["toy"] == {"instances": 5, "runs": 4, "predictions": 40, "masks": 0,
                                    "annotations": 1, "sizes": ["small"], "simulated": False}
    json.dumps(info)


def test_dense_cube_is_cached_on_disk_and_follows_the_data(store):
    from seedlab import cubes

    fill(store)
    first = store.arrays("toy", "small")
    folders = list((store.home / "cache" / "cubes").glob("task=toy/size=small/*"))
    assert len(folders) == 1 and (folders[0] / "correct.npy").exists()
    cubes.clear_memory()
    again = Store(store.home).arrays("toy", "small")  # a fresh process reads the saved cube
    np.testing.assert_array_equal(first.correct, again.correct)
    # Replacing a run gives a new cube; the old one is removed.
    fill(store, replace=True, flip=True)
    after = store.arrays("toy", "small")
    assert after.correct[:, 1, 1].sum() == 0 and first.correct[:, 1, 1].sum() == 3
    folders_after = list((store.home / "cache" / "cubes").glob("task=toy/size=small/*"))
    assert len(folders_after) == 1 and folders_after != folders


def test_last_checkpoint_differs_between_runs(store):
    with store.transaction("test", "fixture") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_instances("toy", pd.DataFrame({"instance_id": IDS, "label": ["neg", "pos"] * 2
                                              + ["neg"]}))
        tx.add_run(RunData("toy", "small", "0", 1, run_table({1.0: [1, 1, 1, 1, 1],
                                                              2.0: [0, 0, 0, 0, 1]})))
        tx.add_run(RunData("toy", "small", "0", 2, run_table({1.0: [1, 0, 1, 0, 1]})))
    a = store.arrays("toy", "small")              # each run's own last checkpoint
    np.testing.assert_array_equal(a.correct[:, 0, 0], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(a.correct[:, 0, 1], [1, 0, 1, 0, 1])
    at2 = store.arrays("toy", "small", checkpoint=2.0)   # run 2 has no checkpoint 2
    assert np.isnan(at2.correct[:, 0, 1]).all()
    acc = store.run_accuracy("toy")
    assert list(acc["checkpoint"]) == [2.0, 1.0]
    np.testing.assert_allclose(acc["accuracy"], [0.2, 0.6])
    every = store.run_accuracy("toy", checkpoint="all")
    assert len(every) == 3


def test_arrays_by_split_and_instance_ids(store):
    fill(store)
    sub = store.arrays("toy", "small", instance_ids=["i4", "i1"])
    assert list(sub.instance_ids) == ["i1", "i4"]       # table order, not the request's
    np.testing.assert_array_equal(sub.labels, [1, 0])
    assert store.arrays("toy", "small", split="dev").correct.shape == (5, 2, 2)
    assert store.arrays("toy", "small", split="test").correct.shape == (0, 2, 2)


def test_read_only_home_still_answers(store, monkeypatch):
    from seedlab import cubes

    fill(store)
    cubes.clear_memory()
    monkeypatch.setattr(cubes.np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("ro")))
    a = store.arrays("toy", "small")
    assert a.correct.shape == (5, 2, 2)
    assert not list((store.home / "cache").rglob("*.npy"))


def test_masks_can_be_replaced_and_removed(store):
    def masks(seed: int) -> pd.DataFrame:
        return pd.DataFrame({"seed": seed, "component": "head", "layer": [0, 0, 1, 1],
                             "head": [0, 1, 0, 1], "kept": [True, False, True, True]})

    with store.transaction("test", "fixture") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_masks("per-model-p0", "toy", masks(1))
        tx.add_masks("per-model-p1", "toy", masks(1))
    assert sorted(store.masks()["setting"].unique()) == ["per-model-p0", "per-model-p1"]
    version = store.version()
    with store.transaction("test", "regroup") as tx:
        tx.add_masks("per-size", "toy", pd.concat([masks(0), masks(1)]))
        tx.remove_masks("per-model-p0", "toy")
        tx.remove_masks("per-model-p1", "toy")
    frame = store.masks()
    assert list(frame["setting"].unique()) == ["per-size"]
    assert sorted(frame["seed"].unique()) == [0, 1]
    assert store.version() > version
    assert len(list((store.home / "masks").rglob("*.parquet"))) == 1


def test_annotations_move_version_but_not_content_version(store):
    with store.transaction("test", "fixture") as tx:
        tx.set_task("toy", ["neg", "pos"])
    version, content = store.version(), store.content_version()
    store.annotate("toy", "i1", "ann", "wrong")
    assert store.version() == version + 1
    assert store.content_version() == content
    with store.transaction("test", "more") as tx:
        tx.set_task("toy2", ["neg", "pos"])
    assert store.version() == version + 2
    assert store.content_version() == content + 1


def test_a_run_can_be_removed(store):
    with store.transaction("test", "fixture") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_run(RunData("toy", "small", "0", 1, run_table({1.0: [1, 1, 1, 1, 1]})))
        tx.add_run(RunData("toy", "small", "0", 2, run_table({1.0: [1, 0, 1, 0, 1]})))
    runs = store.runs(task="toy")
    gone = store.home / runs.loc[runs["finetune_seed"] == 2, "file"].iloc[0]
    assert gone.exists()
    content = store.content_version()
    with store.transaction("test", "republish") as tx:
        tx.remove_run("toy", "small", "0", 2)
        tx.remove_run("toy", "small", "0", 1)  # re-added below: the new run wins
        tx.add_run(RunData("toy", "small", "0", 1, run_table({1.0: [1, 1, 1, 1, 1]})))
    runs = store.runs(task="toy")
    assert list(runs["finetune_seed"]) == [1]
    assert not gone.exists()
    assert store.content_version() == content + 1
    assert set(store.predictions(task="toy")["finetune_seed"]) == {1}


def test_run_keys_are_the_keys_of_the_run_table(tmp_path):
    from app_support import make_fixture_home

    store = Store(make_fixture_home(tmp_path / "home"))
    for task in store.runs()["task"].unique():
        runs = store.runs(task=task)
        keys = store.run_keys(task)
        assert keys == {(task, str(r.size), str(r.pretrain_seed), int(r.finetune_seed))
                        for r in runs.itertuples()}
        assert len(keys) == len(runs) > 0
    assert store.run_keys("no such task") == set()
