"""Crash safety of the store: a writer killed at every step of a commit, then a reindex
(with the catalogue kept, and with it deleted), shows all or none of the transaction, and
the next import works; orphans of killed writers are swept, a live writer's never."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seedlab.store import RunData, Store, commit

REPO = Path(__file__).resolve().parents[1]
IDS = [f"i{i}" for i in range(6)]
GOLD = np.array([0, 1, 0, 1, 0, 1])


def run_table(seed: int, ids: list[str] = IDS) -> pa.Table:
    rng = np.random.default_rng(seed)
    gold = np.resize(GOLD, len(ids))
    pred = np.where(rng.random(len(ids)) < 0.7, gold, 1 - gold)
    probs = np.where(pred[:, None] == np.arange(2)[None, :], 0.8, 0.2)
    return pa.table({"checkpoint": [1.0] * len(ids), "instance_id": ids, "pred": pred,
                     "correct": pred == gold, "p_correct": probs[np.arange(len(ids)), gold],
                     "probs": list(probs)})


def masks(seed: int) -> pd.DataFrame:
    return pd.DataFrame({"seed": seed, "component": "head", "layer": [0, 0, 1, 1],
                         "head": [0, 1, 0, 1], "kept": [True, False, True, seed % 2 == 0]})


def first_import(store: Store) -> None:
    with store.transaction("test", "first") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_instances("toy", pd.DataFrame({"instance_id": IDS[:4], "split": "dev",
                                              "label": ["neg", "pos", "neg", "pos"]}))
        for f in (1, 2):
            tx.add_run(RunData("toy", "small", "0", f, run_table(f, IDS[:4])))
        tx.add_masks("heads", "toy", masks(0))


# The transaction that is killed: every staged kind at once, replacing a run and the
# instance file (so there are old files to delete) and adding three runs.
SECOND_IMPORT = textwrap.dedent("""
    import numpy as np, pandas as pd
    from seedlab.store import RunData
    def second_import(store, run_table, masks, IDS):
        with store.transaction("test", "second", replace=True) as tx:
            tx.set_task("toy", ["neg", "pos"])
            tx.add_instances("toy", pd.DataFrame({"instance_id": IDS, "split": "dev",
                             "label": ["neg", "pos"] * 3}))
            tx.add_run(RunData("toy", "small", "0", 1, run_table(99, IDS[:4])))
            for f in (1, 2, 3):
                tx.add_run(RunData("toy", "large", "0", f, run_table(10 + f)))
            tx.add_masks("heads", "toy", masks(1))
            tx.add_evaluations(pd.DataFrame({"experiment": ["e"], "variant": ["v"],
                               "task": ["toy"], "metric": ["acc"], "mean": [0.5],
                               "std": [0.1]}))
            tx.add_annotations(pd.DataFrame({"task": ["toy"], "instance_id": ["i1"],
                               "annotator": ["ana"], "verdict": ["wrong"]}))
""")
namespace: dict = {}
exec(SECOND_IMPORT, namespace)  # noqa: S102 - the same code the killed child runs
second_import = namespace["second_import"]

def child(home: Path, kill_at: int) -> subprocess.CompletedProcess:
    """Run ``second_import`` into ``home`` in a forked process that SIGKILLs itself after
    step ``kill_at`` of the commit (0: never); its stdout is the steps it went through."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            seen: list[str] = []

            def hook(name: str) -> None:
                seen.append(name)
                if len(seen) == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            commit.STEP_HOOK = hook
            second_import(Store(home), run_table, masks, IDS)
            os.write(write, json.dumps(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        out = pipe.read()
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return subprocess.CompletedProcess([], code, out, "")


def state(store: Store) -> tuple:
    """What a reader sees: the runs with their content, instances, masks, verdicts."""
    runs = store.runs()
    return (tuple(zip(runs["size"], runs["finetune_seed"], runs["content_hash"])),
            len(store.instances()), int(store.masks()["kept"].sum()),
            len(store.evaluations()), len(store.annotations()))


def unlisted_files(store: Store) -> list[str]:
    listed = set(store.runs()["file"])
    with store._read() as con:
        for table in ("instance_files", "mask_files", "evaluation_files", "tasks"):
            listed |= {r[0] for r in con.execute(f"SELECT file FROM {table}")}
    found = [str(p.relative_to(store.home)) for pattern in
             ("predictions/*/*/*.parquet", "instances/*/*.parquet", "masks/*/*/*.parquet",
              "evaluations/*.parquet", "tasks/*.json") for p in store.home.glob(pattern)]
    return sorted(set(found) - listed)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """The state before and after the second import, and its steps (from a child that
    runs it to the end)."""
    root = tmp_path_factory.mktemp("crash")
    base = root / "base"
    first_import(Store(base))
    done = root / "done"
    shutil.copytree(base, done)
    proc = child(done, 0)
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"root": root, "base": base, "before": state(Store(base)),
            "after": state(Store(done)), "steps": steps}


def test_the_commit_has_the_steps_the_kill_test_walks(outcomes):
    steps = outcomes["steps"]
    # 7 files (the task is unchanged; instances, 4 runs, masks, evaluations: 7 moves)
    assert steps.count("staged") == steps.count("moved") == 7
    assert steps.count("intended") == steps.count("journaled") == steps.count("catalogued") == 1
    assert steps.count("unlinked") == 3  # the replaced run, instance file and mask file
    assert outcomes["before"] != outcomes["after"]


def test_a_kill_at_every_step_then_reindex_shows_all_or_none(outcomes):
    steps, before, after = outcomes["steps"], outcomes["before"], outcomes["after"]
    journaled = steps.index("journaled") + 1
    for k in range(1, len(steps) + 1):
        home = outcomes["root"] / f"kill-{k}"
        shutil.copytree(outcomes["base"], home)
        proc = child(home, k)
        assert proc.returncode == -signal.SIGKILL, (k, proc.stderr)
        lost = outcomes["root"] / f"kill-{k}-lost"
        shutil.copytree(home, lost)

        # The catalogue kept: a writer killed before its SQLite commit changed nothing.
        store = Store(home)
        store.reindex()
        expected = before if k <= journaled else after
        assert state(store) == expected, (k, steps[k - 1])

        # The catalogue lost: rebuilt from the journal; a record written is committed.
        for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
            (lost / name).unlink(missing_ok=True)
        rebuilt = Store(lost)
        expected = before if k < journaled else after
        assert state(rebuilt) == expected, (k, steps[k - 1])

        for again in (store, rebuilt):  # the next import works and sweeps the leftovers
            second_import(again, run_table, masks, IDS)
            assert state(again) == after, k
            assert unlisted_files(again) == []
            assert not [p for p in (again.home / ".staging").iterdir()]


def test_a_crash_during_the_first_commit_of_a_home_without_journal(tmp_path):
    """A home written before journals: the first commit starts the journal with a baseline
    before anything moves, so a kill mid-move is still ignored by a rebuild."""
    home = tmp_path / "home"
    first_import(Store(home))
    shutil.rmtree(home / "journal")
    before = state(Store(home))
    proc = child(home, 3)  # after 3 staged files, nothing moved yet: then the kill
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    proc = child(home, 11)  # after 3 of 7 files are moved (7 staged, the intent, 3 moves)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    os.remove(home / "catalog.sqlite")
    assert state(Store(home)) == before


LIVE_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_store_crash import run_table
    from seedlab.store import RunData, Store
    store = Store(sys.argv[1])
    with store.transaction("test", "slow") as tx:
        tx.add_run(RunData("toy", "small", "7", 1, run_table(7, ["i0", "i1", "i2", "i3"])),
                   spill=True)
        print("staged", flush=True)
        while not __import__("os").path.exists(sys.argv[2]):
            time.sleep(0.05)
    print("committed", flush=True)
""")

DEAD_WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_store_crash import run_table
    from seedlab.store import RunData, Store
    store = Store(sys.argv[1])
    with store.transaction("test", "killed") as tx:
        tx.add_run(RunData("toy", "small", "8", 1, run_table(8, ["i0", "i1", "i2", "i3"])),
                   spill=True)
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sweep_removes_a_killed_writers_leftovers_and_never_a_live_writers(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    first_import(store)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")])}
    tests = str(REPO / "tests")
    dead = subprocess.run([sys.executable, "-c", DEAD_WRITER.format(tests=tests), str(home)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert dead.returncode == -signal.SIGKILL, dead.stderr
    # A kill after a file was moved into place, before the journal: an unlisted data file.
    assert child(home, 9).returncode == -signal.SIGKILL  # 7 staged, the intent, 1 move
    orphans = unlisted_files(store)
    assert len(orphans) == 1 and orphans[0].startswith("instances/")
    staged_before = sorted(p.name for p in (home / ".staging").iterdir())
    assert len(staged_before) == 4  # two dead writers: a folder and its lock each

    go = tmp_path / "go"
    live = subprocess.Popen([sys.executable, "-c", LIVE_WRITER.format(tests=tests), str(home),
                             str(go)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "staged"
        live_files = {p.name for p in (home / ".staging").iterdir()} - set(staged_before)
        assert len(live_files) == 2
        # An ordinary write sweeps: the dead writers' folders go, the live one stays.
        store.annotate("toy", "i0", "ana", "correct")
        with store.transaction("test", "third") as tx:
            tx.add_run(RunData("toy", "small", "0", 3, run_table(3, IDS[:4])))
        assert {p.name for p in (home / ".staging").iterdir()} == live_files
        live_folder = next(p for p in (home / ".staging").iterdir() if p.is_dir())
        assert len(list(live_folder.iterdir())) == 1  # its spilled run, untouched
        assert unlisted_files(store) == []
        # An explicit sweep leaves it too.
        store.sweep(older_than_s=0)
        assert {p.name for p in (home / ".staging").iterdir()} == live_files
    finally:
        go.touch()
        live.wait(timeout=120)
    assert live.returncode == 0
    assert ("7", 1) in set(zip(store.runs()["pretrain_seed"], store.runs()["finetune_seed"]))
    assert list((home / ".staging").iterdir()) == []


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_a_repeated_or_refused_import_leaves_the_catalogue_byte_identical(tmp_path):
    store = Store(tmp_path / "home")
    first_import(store)
    files = [store.catalog_path, store.home / "catalog.sqlite-wal", store.journal.path]
    before = [digest(p) for p in files]
    n_imports = len(store.sql("SELECT 1").index)  # a DuckDB read between, as the app does
    time.sleep(0.01)
    first_import(store)  # the same data again: a no-op
    assert [digest(p) for p in files] == before
    from seedlab.errors import DuplicateRunError

    with pytest.raises(DuplicateRunError), store.transaction("test", "other") as tx:
        tx.add_run(RunData("toy", "small", "0", 1, run_table(5, IDS[:4])))
    assert [digest(p) for p in files] == before
    with store._read() as con:
        assert con.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 1
    assert n_imports == 1


def test_files_the_store_never_wrote_are_registered_by_reindex_and_never_swept(tmp_path):
    """A `git pull` of data/ brings run files no journal names: a write leaves them, and
    reindex registers them (where their run is not registered already)."""
    other = Store(tmp_path / "other")
    with other.transaction("test", "elsewhere") as tx:
        tx.set_task("toy", ["neg", "pos"])
        tx.add_run(RunData("toy", "small", "5", 1, run_table(5, IDS[:4])))
    home = tmp_path / "home"
    store = Store(home)
    first_import(store)
    pulled = home / other.runs()["file"].iloc[0]
    pulled.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(other.home / other.runs()["file"].iloc[0], pulled)
    with store.transaction("test", "third") as tx:  # a write sweeps, but not this file
        tx.add_run(RunData("toy", "small", "0", 3, run_table(3, IDS[:4])))
    assert pulled.exists()
    assert ("5", 1) not in set(zip(store.runs()["pretrain_seed"], store.runs()["finetune_seed"]))
    store.reindex()
    runs = store.runs()
    assert set(zip(runs["pretrain_seed"], runs["finetune_seed"])) == {("0", 1), ("0", 2),
                                                                      ("0", 3), ("5", 1)}
    assert runs.loc[runs["pretrain_seed"] == "5", "content_hash"].iloc[0] == \
        other.runs()["content_hash"].iloc[0]
