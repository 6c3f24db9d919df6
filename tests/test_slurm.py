"""The Slurm executor against a real slurmctld/slurmd on this machine.

The module starts a single-node Slurm with ``scripts/slurm_start.sh`` when it can (root,
apt-get) and skips, saying why, when it cannot. Jobs fine-tune tiny local BERTs on a few
Rotten Tomatoes snippets; nothing downloads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("submitit")

from seedlab.cli import main as cli
from seedlab.runs import queue, slurm, tasks, tiny
from seedlab.store import Store

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "scripts" / "slurm_start.sh"
BASE = {"task": "rotten_tomatoes", "size": "tiny", "epochs": 1, "batch_size": 16,
        "max_seq_length": 32, "learning_rate": 2e-3, "max_train_examples": 48,
        "max_eval_examples": 24}
# A job that trains far longer than its 1-minute time limit (and is cheap per step).
LONG = {**BASE, "epochs": 100000, "batch_size": 8, "max_train_examples": 16,
        "max_eval_examples": 8, "max_seq_length": 16}


@pytest.fixture(scope="module")
def cluster() -> None:
    """A Slurm that answers: already running, or started here; otherwise the tests skip."""
    reason = slurm.unavailable_reason()
    if reason is None:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"no Slurm here ({reason}); starting one needs root and apt-get")
    out = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600,
                         check=False)
    if out.returncode != 0:
        pytest.fail(f"scripts/slurm_start.sh failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    reason = slurm.unavailable_reason()
    if reason is not None:
        pytest.fail(f"Slurm still does not answer after scripts/slurm_start.sh: {reason}")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    rt = tasks.load_task("rotten_tomatoes", max_train=200)
    root = tmp_path_factory.mktemp("models")
    return {p: tiny.build_tiny_bert(root / f"p{p}", rt.train["text_a"], seed=int(p),
                                    hidden_size=16, layers=1, heads=2, n_words=200)
            for p in ("0", "1")}


@pytest.fixture
def home(tmp_path) -> Path:
    store = Store(tmp_path / "home")
    # Small jobs: two share the node's cores and memory.
    (store.home / "slurm.json").write_text(json.dumps({"mem": "1500M", "time": 10,
                                                       "cpus_per_job": 1}))
    return store.home


def _wait(store: Store, until, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        slurm.sync(store)
        frame = queue.jobs(store)
        if until(frame):
            return frame
        time.sleep(2)
    frame = queue.jobs(store)
    logs = "\n".join(slurm.logs(store, int(i))[-3000:] for i in frame["id"])
    raise AssertionError(f"timed out waiting for {what}:\n"
                         f"{frame[['id', 'state', 'slurm_id', 'slurm_state', 'message']]}\n{logs}")


def _grid_file(tmp_path: Path, grid: dict) -> str:
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid))
    return str(path)


def test_a_2x2_grid_runs_as_slurm_jobs_and_its_runs_land_in_the_store(
        cluster, models, home, tmp_path, capsys):
    grid = {**BASE, "model": [str(models["0"]), str(models["1"])], "pretrain_seed": ["0", "1"],
            "finetune_seeds": [11, 12], "checkpoints": [0.5, 1]}
    spec_file = _grid_file(tmp_path, grid)
    assert cli(["--home", str(home), "runs", "submit", "--spec", spec_file, "--executor",
                "slurm", "--mem", "1G"]) == 0
    out = capsys.readouterr().out
    assert "4 to queue" in out and out.count("submitted job") == 4
    store = Store(home)
    jobs = queue.jobs(store)
    assert set(jobs["executor"]) == {"slurm"} and jobs["slurm_id"].notna().all()
    # One job array: ids <array>_0 .. <array>_3, each asking for the 1 GiB given here.
    arrays = {s.split("_")[0] for s in jobs["slurm_id"]}
    assert len(arrays) == 1
    assert sorted(s.split("_")[1] for s in jobs["slurm_id"]) == ["0", "1", "2", "3"]
    shown = subprocess.run(["scontrol", "-o", "show", "job", jobs["slurm_id"].iloc[0]],
                           capture_output=True, text=True, check=True).stdout
    assert "MinMemoryNode=1G" in shown or "mem=1G" in shown or "mem=1024M" in shown
    # Nothing is registered by the compute side: the store has no runs until the head syncs.
    done = _wait(store, lambda f: set(f["state"]) == {"finished"}
                 and set(f["slurm_state"]) == {"COMPLETED"}, 300, "4 finished, completed jobs")

    runs = store.runs(task="rotten_tomatoes")
    assert sorted(zip(runs["size"], runs["pretrain_seed"], runs["finetune_seed"])) == [
        ("tiny", "0", 11), ("tiny", "0", 12), ("tiny", "1", 11), ("tiny", "1", 12)]
    assert set(runs["source"]) == {"seedlab-run"}
    arrays = store.arrays("rotten_tomatoes", "tiny", checkpoint="all")
    assert arrays.shape == (24, 2, 2, 2) and arrays.checkpoints == [0.5, 1.0]
    for row in done.itertuples():
        folder = Path(row.run_dir)
        assert folder.parent == home / "runs" and (folder / "predictions.parquet").exists()
        assert json.loads((folder / "config.json").read_text())["job_id"] == row.id
        # the trainer's log says it ran inside the Slurm job
        assert f"Slurm job {row.slurm_id} on" in (folder / "log.txt").read_text()
    assert not list((home / "runs").glob(".tmp-*"))

    assert cli(["--home", str(home), "runs", "list"]) == 0
    listing = capsys.readouterr().out
    for slurm_id in done["slurm_id"]:
        assert f"{slurm_id} COMPLETED" in listing
    assert "nan" not in listing
    assert cli(["--home", str(home), "runs", "logs", str(done["id"].iloc[0])]) == 0
    logs = capsys.readouterr().out
    assert "== seedlab log" in logs and "== Slurm out" in logs and "eval accuracy" in logs
    # Submitting the same grid again submits nothing.
    assert cli(["--home", str(home), "runs", "submit", "--spec", spec_file, "--executor",
                "slurm"]) == 0
    assert "4 already in the store" in capsys.readouterr().out


def test_a_cancelled_job_ends_cancelled_and_a_job_over_its_time_limit_fails_with_why(
        cluster, models, home, tmp_path, capsys):
    grid = {**LONG, "model": str(models["0"]), "pretrain_seed": "0", "finetune_seeds": [1, 2]}
    spec_file = _grid_file(tmp_path, grid)
    assert cli(["--home", str(home), "runs", "submit", "--spec", spec_file, "--executor",
                "slurm", "--time", "1"]) == 0
    store = Store(home)
    jobs = _wait(store, lambda f: (f["state"] == "running").all() and f["step"].fillna(0).gt(0)
                 .all(), 120, "2 running jobs with progress")
    assert all(d.startswith("slurm:") for d in jobs["device"])
    to_cancel, to_time_out = sorted(jobs["id"])
    slurm_id = queue.get(store, to_cancel).slurm_id

    assert cli(["--home", str(home), "runs", "cancel", str(to_cancel)]) == 0
    assert f"job {to_cancel}: cancelled" in capsys.readouterr().out
    deadline = time.time() + 60
    while slurm.query_states([slurm_id])[slurm_id].state != "CANCELLED":
        assert time.time() < deadline, "Slurm did not cancel the job"
        time.sleep(1)

    ended = _wait(store, lambda f: (f.set_index("id").loc[to_time_out, "state"] == "failed"),
                  180, "the job over its time limit to fail")
    row = ended.set_index("id").loc[to_time_out]
    assert row["slurm_state"] == "TIMEOUT"
    assert row["message"] == ("Slurm stopped the job at its time limit (1 min): raise the time"
                              " limit (--time) and retry")
    cancelled = ended.set_index("id").loc[to_cancel]
    assert cancelled["state"] == "cancelled" and cancelled["message"] == "cancelled while running"
    assert store.runs(task="rotten_tomatoes").empty
    assert not list((home / "runs").glob(".tmp-*"))
    # Stopped by SIGTERM, each job removed its node-local scratch store.
    deadline = time.time() + 30
    while left := [p for i in jobs["id"] for p in Path(tempfile.gettempdir()).glob(
            f"seedlab-job{i}-*")]:
        inside = [sorted(map(str, p.rglob("*"))) for p in left]
        assert time.time() < deadline, f"stopped jobs left scratch folders: {left} {inside}"
        time.sleep(1)
    outcome = json.loads((slurm.cell_dir(home, to_time_out) / "outcome.json").read_text())
    assert outcome == {"slurm_id": row["slurm_id"], "state": "failed", "reason":
                       "Slurm stopped the job (SIGTERM: cancelled, out of time or preempted)"}

    # retry resubmits: a new Slurm id, the same seedlab job; then cancel it to finish.
    assert cli(["--home", str(home), "runs", "retry", str(to_time_out)]) == 0
    again = queue.get(store, to_time_out)
    assert again.state == "queued" and again.slurm_id not in (None, row["slurm_id"])
    assert f"job {to_time_out}: queued (Slurm {again.slurm_id})" in capsys.readouterr().out
    assert json.loads(again.slurm_options)["time_min"] == 1
    assert slurm.cancel(store, to_time_out) == "cancelled"
    events = queue.events(store, to_time_out)
    assert list(events["state"]) == ["queued", "queued", "running", "failed", "queued",
                                     "queued", "cancelled"]
