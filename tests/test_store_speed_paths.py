"""The store's fast paths answer exactly as its Parquet scans do.

``predictions(instance_id=...)`` is served from the dense cubes (``seedlab.cubes``) when they
are built and hold every run row for row; ``run_accuracy`` reads per-run counts kept beside
the cube. The store built here has two tasks, sizes with odd names, runs whose files list
rows checkpoint-major, instance-major and shuffled, runs missing checkpoints or instances,
checkpoints stored as 10/3, and a task without an instance table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seedlab import cubes
from seedlab.store import RunData, Store

LABELS = ["a", "b", "c"]
N = 7
IDS = [f"x{i}" for i in range(N)]
GOLD = np.array([0, 1, 2, 0, 1, 2, 0])
KEYS = ["task", "size", "pretrain_seed", "finetune_seed", "checkpoint", "instance_id"]


def run_table(seed: int, checkpoints: list[float], ids: list[str] = IDS,
              order: str = "checkpoint") -> pa.Table:
    """A run over ``ids`` x ``checkpoints`` with random three-class probabilities; rows
    ``order``ed checkpoint-major, instance-major or shuffled."""
    rng = np.random.default_rng(seed)
    rows = [(c, i) for c in checkpoints for i in ids]
    if order == "instance":
        rows = [(c, i) for i in ids for c in checkpoints]
    elif order == "shuffled":
        rows = [rows[k] for k in rng.permutation(len(rows))]
    probs = rng.dirichlet(np.ones(3), size=len(rows)).astype(np.float32)
    gold = np.array([GOLD[IDS.index(i)] for _, i in rows])
    pred = probs.argmax(axis=1)
    return pa.table({
        "checkpoint": [c for c, _ in rows], "instance_id": [i for _, i in rows],
        "pred": pred, "correct": pred == gold, "p_correct": probs[np.arange(len(rows)), gold],
        "probs": list(probs),
    })


def build(store: Store, extra: bool = True) -> None:
    third = 10 / 3
    with store.transaction("test", "fixture") as tx:
        tx.set_task("t1", LABELS)
        tx.add_instances("t1", pd.DataFrame({"instance_id": IDS, "split": "dev",
                                             "text_a": list("abcdefg"),
                                             "label": [LABELS[g] for g in GOLD]}))
        seed = 0
        for size in ("small", "v1.2+x"):
            for p in ("1", "2", "10"):
                for f in (1, 2):
                    seed += 1
                    tx.add_run(RunData("t1", size, p, f, run_table(seed, [1.0, 2.0, third])))
        if extra:
            # another layout, a missing checkpoint, missing instances
            tx.add_run(RunData("t1", "small", "3", 1, run_table(50, [1.0, 2.0, third],
                                                                order="instance")))
            tx.add_run(RunData("t1", "small", "3", 2, run_table(51, [1.0, 2.0])))
            tx.add_run(RunData("t1", "v1.2+x", "3", 1, run_table(52, [1.0, third],
                                                                 ids=IDS[2:])))
        tx.set_task("t2", LABELS)  # no instance table: ids in the cube are sorted
        for f in (1, 2):
            tx.add_run(RunData("t2", "base", "1", f, run_table(60 + f, [5.0])))


def built(store: Store) -> None:
    """Build every cube, as the analysis pages do."""
    for task in ("t1", "t2"):
        for size in store.sizes(task):
            store.arrays(task, size)


def parquet(store: Store, **query) -> pd.DataFrame:
    """The same query answered by the Parquet scan."""
    store.cube_instance_limit = -1
    try:
        return store.predictions(**query)
    finally:
        del store.cube_instance_limit


def assert_same(fast: pd.DataFrame, slow: pd.DataFrame, ordered: bool = True) -> None:
    assert list(fast.columns) == list(slow.columns)
    assert fast.dtypes.to_dict() == slow.dtypes.to_dict()
    if not ordered:  # the Parquet scan's order for checkpoint='last' is not fixed
        fast = fast.sort_values(KEYS).reset_index(drop=True)
        slow = slow.sort_values(KEYS).reset_index(drop=True)
    plain = [c for c in fast.columns if c != "probs"]
    pd.testing.assert_frame_equal(fast[plain], slow[plain], check_exact=True)
    if "probs" in fast.columns:
        assert len(fast) == len(slow)
        for a, b in zip(fast["probs"], slow["probs"]):
            assert a.dtype == b.dtype == np.float32
            np.testing.assert_array_equal(a, b)


def watch(store: Store, monkeypatch) -> list[bool]:
    """Records whether each predictions() call was answered from the cubes."""
    answered: list[bool] = []
    monkeypatch.setattr(store, "cube_probe", lambda result: answered.append(result is not None))
    return answered


@pytest.fixture
def spy(store, monkeypatch):
    return watch(store, monkeypatch)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The store of ``build``, cubes built; only read."""
    store = Store(tmp_path_factory.mktemp("speed") / "home")
    build(store)
    built(store)
    return store


QUERIES = [
    {"task": "t1", "instance_id": "x3"},
    {"task": "t1", "instance_id": ["x6", "x0", "x0"]},
    {"instance_id": "x1"},                                        # every task
    {"task": "t1", "size": "v1.2+x", "instance_id": "x1"},       # x1 missing from one run
    {"task": "t1", "instance_id": "x2", "checkpoint": 10 / 3},
    {"task": "t1", "instance_id": "x2", "checkpoint": [2.0, 3.33333]},
    {"task": "t1", "instance_id": "x4", "pretrain_seed": ["10", "2"], "finetune_seed": 2},
    {"task": "t1", "instance_id": ["x4", "x5"], "columns": ["instance_id", "run_id", "probs"]},
    {"task": "t1", "instance_id": "x5", "columns": ["pred", "correct"]},
    {"task": "t1", "instance_id": "nope"},                       # no rows
    {"task": "t1", "instance_id": "x5", "checkpoint": 7.0},      # no rows
    {"task": "t2", "instance_id": ["x1", "x6"]},
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: json.dumps(q, default=str))
def test_cube_predictions_equal_the_parquet_scan(shared, monkeypatch, query):
    spy = watch(shared, monkeypatch)
    fast = shared.predictions(**query)
    assert spy == [True]
    assert_same(fast, parquet(shared, **query))


def test_last_checkpoint_rows_equal_the_parquet_scan(shared, monkeypatch):
    store, spy = shared, watch(shared, monkeypatch)
    for query in ({"task": "t1", "instance_id": ["x0", "x5"], "checkpoint": "last"},
                  {"instance_id": "x3", "checkpoint": "last"}):
        fast = store.predictions(**query)
        assert_same(fast, parquet(store, **query), ordered=False)
        # each run's own last checkpoint: the run with two checkpoints stops at 2.0
        run = fast[(fast["pretrain_seed"] == "3") & (fast["finetune_seed"] == 2)]
        assert set(run["checkpoint"]) <= {2.0}
    assert spy == [True, False, True, False]  # cubes, then the Parquet scan to compare
    # The cube's order is the file order, run by run.
    one = store.predictions(task="t1", instance_id="x0", checkpoint="last")
    assert list(one["pretrain_seed"].iloc[:2]) == ["1", "1"]


def test_instance_major_and_shuffled_files(store, spy):
    build(store)
    with store.transaction("test", "more") as tx:
        tx.add_run(RunData("t1", "small", "4", 1, run_table(70, [1.0, 2.0], order="shuffled")))
        # instances in another order than the cube's (sorted ids, as t2 has no table)
        tx.add_run(RunData("t2", "large", "1", 1, run_table(71, [1.0], ids=IDS[::-1])))
    built(store)
    query = {"task": "t1", "size": "small", "pretrain_seed": "3", "finetune_seed": 1,
             "instance_id": ["x1", "x2"]}
    fast = store.predictions(**query)  # instance-major: x1's checkpoints, then x2's
    assert spy == [True]
    assert list(fast["instance_id"]) == ["x1"] * 3 + ["x2"] * 3
    assert_same(fast, parquet(store, **query))
    # A shuffled file cannot be reproduced row for row: the Parquet scan answers.
    shuffled = store.predictions(task="t1", size="small", instance_id=["x1", "x2"])
    assert spy[-1] is False
    assert set(shuffled["pretrain_seed"]) == {"1", "2", "3", "4", "10"}
    # ... but only for its task and size.
    other = store.predictions(task="t1", size="v1.2+x", instance_id="x1")
    assert len(other) == 6 * 3  # 6 runs x 3 checkpoints; run 3/1 lacks x1
    assert spy[-1] is True
    query = {"task": "t2", "instance_id": ["x1", "x5"]}
    assert_same(store.predictions(**query), parquet(store, **query))
    assert spy[-1] is False


def test_no_cube_no_build(store, spy):
    build(store)
    got = store.predictions(task="t1", instance_id="x3")
    assert spy == [False]  # the cubes are not built for this: the Parquet scan answers
    assert not (store.home / "cache").exists() or not list((store.home / "cache").rglob("*.npy"))
    assert len(got) == 2 * 6 * 3 + 3 + 2 + 2  # runs x checkpoints where x3 is present


def test_layouts_and_cubes_saved_before_them(store, spy):
    build(store)
    built(store)
    before = store.predictions(task="t1", instance_id="x2")
    folders = sorted((store.home / "cache" / "cubes").glob("task=t1/size=*/*"))
    assert len(folders) == 2
    small = next(f for f in folders if "size=small" in str(f))
    # pretrain seeds 1, 2, 3, 10 (cube order) x fine-tuning seeds 1, 2: run 3/1 was written
    # instance-major, every other checkpoint-major
    assert np.load(small / "layout.npy").tolist() == [[1, 1], [1, 1], [2, 1], [1, 1]]
    for folder in folders:  # an older cube: no layout, no probabilities, no counts
        for name in ("layout.npy", "probs.npy", "counts.npy"):
            (folder / name).unlink()
    cubes.clear_memory()
    fresh = Store(store.home)
    answered = []
    fresh.cube_probe = answered.append
    again = fresh.predictions(task="t1", instance_id="x2")
    assert answered == [None]  # the Parquet scan answers, as before, and nothing is built
    assert_same(again, before)
    assert not any((f / "layout.npy").exists() or (f / "probs.npy").exists() for f in folders)


def test_probabilities_of_unequal_length_fall_back(store, spy):
    build(store, extra=False)
    table = run_table(80, [1.0])
    probs = [list(p) for p in table["probs"].to_pylist()]
    probs[3] = probs[3][:2]
    table = table.set_column(table.column_names.index("probs"), "probs",
                             pa.array(probs, pa.list_(pa.float32())))
    with store.transaction("test", "odd") as tx:
        tx.add_run(RunData("t1", "small", "9", 1, table))
    built(store)
    query = {"task": "t1", "size": "small", "instance_id": "x3"}
    fallback = store.predictions(**query)
    assert spy == [False]
    assert [len(p) for p in fallback["probs"]][-1] == 2
    assert list(cubes.cached_cube(store.cube_source("t1"), "small",
                                     store.runs(task="t1", size="small"))
                .folder.glob("probs.none"))
    # without probabilities the cube answers
    cols = ["size", "pretrain_seed", "checkpoint", "pred", "correct", "p_correct"]
    fast = store.predictions(**query, columns=cols)
    assert spy[-1] is True
    assert_same(fast, parquet(store, **query, columns=cols))


def test_a_new_or_replaced_run_is_seen(store, spy):
    build(store)
    built(store)
    store.predictions(task="t1", instance_id="x0")
    with store.transaction("test", "replace", replace=True) as tx:
        tx.add_run(RunData("t1", "small", "1", 1, run_table(99, [1.0, 2.0, 10 / 3])))
        tx.add_run(RunData("t1", "small", "5", 1, run_table(98, [1.0])))
    assert spy == [True]
    stale = store.predictions(task="t1", instance_id="x0")
    assert spy[-1] is False  # the new data has no cube yet
    built(store)
    fresh = store.predictions(task="t1", instance_id="x0")
    assert spy[-1] is True
    assert_same(fresh, stale)
    assert "5" in set(fresh["pretrain_seed"])


# ---------------------------------------------------------------------------------------
# run_accuracy


def accuracy_from_predictions(store: Store, task: str, checkpoint) -> pd.DataFrame:
    preds = store.predictions(task=task, checkpoint=checkpoint)
    out = preds.groupby(["size", "pretrain_seed", "finetune_seed", "checkpoint"]).agg(
        accuracy=("correct", "mean"), n=("correct", "size")).reset_index()
    return out


@pytest.mark.parametrize("checkpoint", ["last", None, 2.0])
def test_run_accuracy_matches_the_predictions(store, checkpoint):
    build(store)
    got = store.run_accuracy("t1", checkpoint=checkpoint)
    want = accuracy_from_predictions(store, "t1", checkpoint)
    keys = ["size", "pretrain_seed", "finetune_seed", "checkpoint"]
    got = got.sort_values(keys).reset_index(drop=True)
    want = want.sort_values(keys).reset_index(drop=True)
    assert len(got) == len(want) > 0
    for c in keys:
        assert got[c].tolist() == want[c].tolist()
    np.testing.assert_allclose(got["accuracy"], want["accuracy"], rtol=0, atol=1e-12)
    assert got["n"].tolist() == want["n"].tolist()


def test_run_accuracy_counts_are_kept_and_follow_the_data(store):
    build(store)
    first = store.run_accuracy("t1")
    folders = list((store.home / "cache" / "cubes").glob("task=t1/size=*/*"))
    assert all((f / "counts.npy").exists() for f in folders)
    counts = np.load(folders[0] / "counts.npy")
    assert counts.shape[0] == 2 and counts.dtype == np.int64
    # an older cube without counts: computed once from the cube, then saved
    for f in folders:
        (f / "counts.npy").unlink()
    cubes.clear_memory()
    again = Store(store.home).run_accuracy("t1")
    pd.testing.assert_frame_equal(first, again)
    assert all((f / "counts.npy").exists() for f in folders)
    # replace a run with one that is always right; add a run of a new seed
    table = run_table(5, [1.0, 2.0, 10 / 3])
    pred = np.array([GOLD[IDS.index(i)] for i in table["instance_id"].to_pylist()])
    table = table.set_column(2, "pred", pa.array(pred, pa.int64()))
    table = table.set_column(3, "correct", pa.array(np.ones(len(pred), dtype=bool)))
    with store.transaction("test", "replace", replace=True) as tx:
        tx.add_run(RunData("t1", "small", "2", 1, table))
        tx.add_run(RunData("t1", "small", "7", 2, run_table(97, [1.0])))
    after = store.run_accuracy("t1")
    row = after[(after["size"] == "small") & (after["pretrain_seed"] == "2")
                & (after["finetune_seed"] == 1)]
    assert row["accuracy"].tolist() == [1.0]
    before_row = first[(first["size"] == "small") & (first["pretrain_seed"] == "2")
                       & (first["finetune_seed"] == 1)]
    assert before_row["accuracy"].tolist() != [1.0]
    assert len(after) == len(first) + 1
    assert ((after["pretrain_seed"] == "7") & (after["checkpoint"] == 1.0)).sum() == 1
    want = accuracy_from_predictions(store, "t1", "last")
    assert sorted(after["accuracy"].round(12)) == sorted(want["accuracy"].round(12))


def test_probabilities_where_the_cache_cannot_be_written(store, spy, monkeypatch):
    build(store)
    built(store)

    def refuse(*args, **kwargs):
        raise OSError("read-only")

    monkeypatch.setattr(cubes.np.lib.format, "open_memmap", refuse)
    query = {"task": "t1", "instance_id": ["x0", "x6"]}
    fast = store.predictions(**query)
    assert spy == [True]
    assert_same(fast, parquet(store, **query))
    assert not list((store.home / "cache").rglob("probs.npy"))
    assert not list((store.home / "cache").rglob(".tmp-*"))


def test_a_run_with_a_repeated_row_is_left_to_the_parquet_scan(store, spy):
    build(store, extra=False)
    table = run_table(5, [1.0])
    with store.transaction("test", "repeat") as tx:
        tx.add_run(RunData("t1", "small", "8", 1, pa.concat_tables([table, table.slice(2, 1)])))
    built(store)
    got = store.predictions(task="t1", size="small", instance_id="x2")
    assert spy == [False]
    assert ((got["pretrain_seed"] == "8") & (got["instance_id"] == "x2")).sum() == 2
    # the other size has no such run: the cube answers there
    query = {"task": "t1", "size": "v1.2+x", "instance_id": "x2"}
    assert_same(store.predictions(**query), parquet(store, **query))
    assert spy[-2] is True


def test_probs_block_reads_one_run_from_the_file_as_the_memory_map_holds_it(tmp_path):
    from seedlab import cubes

    rng = np.random.default_rng(0)
    probs = rng.random((3, 2, 5, 4, 2), dtype=np.float32)
    np.save(tmp_path / "probs.npy", probs)
    mapped = np.load(tmp_path / "probs.npy", mmap_mode="r")
    for pi in range(3):
        for fi in range(2):
            block = cubes.probs_block(mapped, pi, fi)
            assert not isinstance(block, np.memmap) and block.flags.writeable
            np.testing.assert_array_equal(block, probs[pi, fi])
            # An array in memory and a view of the map take the plain slice.
            np.testing.assert_array_equal(cubes.probs_block(probs, pi, fi), probs[pi, fi])
    view = mapped[1:]
    np.testing.assert_array_equal(cubes.probs_block(view, 1, 0), probs[2, 0])
