"""The journal beside catalog.sqlite: every verdict and the import log survive the loss or
corruption of the catalogue; what cannot be recovered is said on stderr."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa

from seedlab.runs import queue
from seedlab.store import RunData, Store

COLUMNS = ["task", "instance_id", "annotator", "verdict", "note", "at", "source"]


def fill(store: Store) -> None:
    ids = [f"i{i}" for i in range(50)]
    with store.transaction("test", "fixture") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_instances("toy", pd.DataFrame({"instance_id": ids, "label": ["neg", "pos"] * 25}))
        tx.add_run(RunData("toy", "small", "0", 1, pa.table({
            "checkpoint": [1.0] * 50, "instance_id": ids, "pred": [0] * 50,
            "correct": [i % 2 == 0 for i in range(50)], "p_correct": [0.6] * 50,
            "probs": [[0.6, 0.4]] * 50})))


def verdicts(store: Store) -> pd.DataFrame:
    return store.annotations()[COLUMNS].reset_index(drop=True)


def test_thousands_of_verdicts_survive_deleting_the_catalogue(tmp_path, capfd):
    store = Store(tmp_path / "home")
    fill(store)
    rng = np.random.default_rng(0)
    kinds = ["correct", "reasonable", "wrong", "unsure"]
    for k in range(400):  # from the Annotate page, one at a time
        store.annotate("toy", f"i{k % 50}", f"annotator-{k % 7}", kinds[rng.integers(4)],
                       note=f"note {k}" if k % 3 else "")
    bulk = pd.DataFrame({  # an imported annotation file
        "task": "toy", "instance_id": [f"i{k % 50}" for k in range(3600)],
        "annotator": [f"imported-{k % 11}" for k in range(3600)],
        "verdict": [kinds[k % 4] for k in range(3600)], "note": [f"n{k}" for k in range(3600)],
        "at": [f"2024-01-01T00:00:{k % 60:02d}.{k:06d}+00:00" for k in range(3600)]})
    with store.transaction("pickle", "verdicts.pkl") as tx:
        tx.add_annotations(bulk)
    with queue.connect(store) as con:  # a queued job: lives only in the catalogue
        con.execute("INSERT INTO jobs (spec, task, size, pretrain_seed, finetune_seed,"
                    " created_at) VALUES ('{}', 'toy', 'small', '0', 2, 'now')")
    before = verdicts(store)
    imports = store.sql("SELECT 1")  # noqa: F841 - a DuckDB handle open meanwhile
    with store._read() as con:
        log_before = con.execute("SELECT * FROM imports ORDER BY at").fetchall()
    assert len(before) == 4000
    capfd.readouterr()

    for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
        (store.home / name).unlink(missing_ok=True)
    reopened = Store(store.home)
    err = capfd.readouterr().err
    pd.testing.assert_frame_equal(verdicts(reopened), before)
    assert list(reopened.annotations()["id"]) == list(range(1, 4001))
    current = reopened.annotations(current=True)
    assert len(current) == len(store.annotations(current=True))
    with reopened._read() as con:
        assert con.execute("SELECT * FROM imports ORDER BY at").fetchall() == log_before
    assert reopened.info()["totals"]["runs"] == 1
    assert "4000 verdicts" in err and "2 import-log entries" in err
    assert "the job queue" in err and "not recoverable" in err.lower()
    # new verdicts go on from there, and survive a second loss too
    reopened.annotate("toy", "i0", "late", "wrong")
    os.remove(store.catalog_path)
    assert len(Store(store.home).annotations()) == 4001


def test_a_corrupt_catalogue_is_set_aside_and_rebuilt(tmp_path, capfd):
    store = Store(tmp_path / "home")
    fill(store)
    store.annotate("toy", "i3", "ana", "wrong", "typo in the label")
    before = verdicts(store)
    for name in ("catalog.sqlite-wal", "catalog.sqlite-shm"):
        (store.home / name).unlink(missing_ok=True)
    store.catalog_path.write_bytes(b"this is not a database" * 100)
    capfd.readouterr()
    reopened = Store(store.home)
    err = capfd.readouterr().err
    assert "could not be read" in err and "catalog.sqlite.unreadable-1" in err
    assert (store.home / "catalog.sqlite.unreadable-1").read_bytes().startswith(b"this is not")
    pd.testing.assert_frame_equal(verdicts(reopened), before)
    assert reopened.info()["totals"]["runs"] == 1


def test_a_torn_journal_line_is_ignored_and_cut_by_the_next_write(tmp_path):
    store = Store(tmp_path / "home")
    fill(store)
    store.annotate("toy", "i1", "ana", "correct")
    with open(store.journal.path, "ab") as fh:  # a writer killed mid-append
        fh.write(b'{"type":"annotation","row":["toy","i2","bo","wro')
    store.annotate("toy", "i2", "bo", "unsure")
    lines = store.journal.path.read_bytes().splitlines()
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines)
    os.remove(store.catalog_path)
    rebuilt = Store(store.home)
    assert list(rebuilt.annotations()["verdict"]) == ["correct", "unsure"]


def test_a_deleted_journal_is_started_again_from_the_catalogue(tmp_path):
    store = Store(tmp_path / "home")
    fill(store)
    store.annotate("toy", "i1", "ana", "correct")
    os.remove(store.journal.path)
    store.annotate("toy", "i2", "ana", "wrong")  # starts a new journal: baseline + this
    os.remove(store.catalog_path)
    rebuilt = Store(store.home)
    assert list(rebuilt.annotations()["verdict"]) == ["correct", "wrong"]
    assert rebuilt.info()["totals"]["runs"] == 1


def test_a_home_without_journal_is_indexed_from_its_files_and_reimports_unchanged(tmp_path):
    """A fresh clone of data/ (no catalogue, no journal): the files are indexed, and
    importing the same runs again changes nothing (the digests agree)."""
    store = Store(tmp_path / "home")
    fill(store)
    os.remove(store.catalog_path)
    os.remove(store.journal.path)
    clone = Store(store.home)
    assert clone.info()["totals"]["runs"] == 1
    version = clone.version()
    again = Store(store.home)
    with again.transaction("test", "fixture") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_run(RunData("toy", "small", "0", 1, pa.table({
            "checkpoint": [1.0] * 50, "instance_id": [f"i{i}" for i in range(50)],
            "pred": [0] * 50, "correct": [i % 2 == 0 for i in range(50)],
            "p_correct": [0.6] * 50, "probs": [[0.6, 0.4]] * 50})))
    assert tx.summary["runs_unchanged"] == 1 and tx.summary["runs_added"] == 0
    assert again.version() == version
    assert not again.journal.exists()  # nothing written, so no journal started either


def test_verdict_times_given_as_datetimes_are_kept_as_before(tmp_path):
    store = Store(tmp_path / "home")
    fill(store)
    with store.transaction("pickle", "verdicts.pkl") as tx:
        tx.add_annotations(pd.DataFrame({
            "task": "toy", "instance_id": ["i1", "i2", "i3"], "annotator": "ana",
            "verdict": "wrong",
            "at": [pd.Timestamp("2021-05-01 12:30:00", tz="UTC"), None, "2021-05-02"]}))
    log = store.annotations()
    assert log["at"].iloc[0] == "2021-05-01 12:30:00+00:00"
    assert log["at"].iloc[1].startswith("20") and log["at"].iloc[2] == "2021-05-02"
    os.remove(store.catalog_path)
    assert Store(store.home).annotations()["at"].tolist() == log["at"].tolist()


def test_a_catalogue_deleted_under_a_running_process_is_rebuilt_by_its_next_write(tmp_path):
    store = Store(tmp_path / "home")
    fill(store)
    store.annotate("toy", "i1", "ana", "correct")
    for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
        (store.home / name).unlink(missing_ok=True)
    store.annotate("toy", "i2", "ana", "wrong")  # the same Store object, lock held inside
    assert list(store.annotations()["verdict"]) == ["correct", "wrong"]
    assert store.info()["totals"]["runs"] == 1
