"""The Runs page's executor choice under AppTest: Slurm options from the home's slurm.json
with the page's overrides, the queue's Slurm id and state, and finished Slurm runs picked
up by the page itself (it syncs as ``runs list`` does).

The end-to-end test submits to the real single-node Slurm (``scripts/slurm_start.sh``)
and skips, saying why, when none answers; the others need no Slurm."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from app_support import app_test, fill_runs_grid, make_fixture_home
from streamlit.testing.v1 import AppTest

from seedlab.runs import queue, slurm, spec
from seedlab.store import Store

PAGE = "pages/runs.py"


def open_page(home: Path) -> AppTest:
    at = app_test(home, PAGE)
    assert not at.exception, [e.value for e in at.exception]
    return at


def queue_table(at: AppTest) -> pd.DataFrame:
    [table] = [d.value for d in at.dataframe if "progress" in d.value.columns]
    return table


def preview_grid(at: AppTest, *, task: str, model: str, size: str, finetune: str,
                 pretrain: str = "0", epochs: float = 1.0, checkpoints: str = "1") -> None:
    fill_runs_grid(at, task=task, model=model, size=size, pretrain=pretrain, finetune=finetune,
                   checkpoints=checkpoints, epochs=epochs)


def launch_button(at: AppTest):
    return next(b for b in at.button if b.label == "Launch new jobs")


def test_slurm_unavailable_is_said_and_nothing_can_be_launched(tmp_path, monkeypatch):
    home = make_fixture_home(tmp_path / "home")
    monkeypatch.setattr(slurm, "unavailable_reason",
                        lambda: "the Slurm command 'sbatch' is not installed on this machine")
    at = open_page(home)
    preview_grid(at, task="nli_sim", model="m", size="base", pretrain="9", finetune="1")
    assert not launch_button(at).disabled  # local workers: one new job
    at.radio(key="runs.executor").set_value("slurm")
    at.run()
    assert [w.value for w in at.warning if "Slurm" in w.value] == [
        ("Slurm cannot be used from here: the Slurm command 'sbatch' is not installed on this"
         " machine.")]
    assert launch_button(at).disabled


def test_a_bad_slurm_override_is_named_and_blocks_the_launch(tmp_path, monkeypatch):
    home = make_fixture_home(tmp_path / "home")
    (home / "slurm.json").write_text(json.dumps({"partition": "gpu", "mem": "8G",
                                                 "time": "2:00:00", "qos": "normal"}))
    monkeypatch.setattr(slurm, "unavailable_reason", lambda: None)
    at = open_page(home)
    at.radio(key="runs.executor").set_value("slurm")
    at.run()
    # The home's defaults fill the options.
    assert at.text_input(key="runs.slurm.partition").value == "gpu"
    assert at.text_input(key="runs.slurm.mem").value == "8192M"
    assert at.text_input(key="runs.slurm.time").value == "120"
    assert at.text_input(key="runs.slurm.qos").value == "normal"
    assert at.number_input(key="runs.slurm.cpus").value == 1
    preview_grid(at, task="nli_sim", model="m", size="base", pretrain="9", finetune="1")
    assert not launch_button(at).disabled
    at.text_input(key="runs.slurm.time").set_value("ninety")
    at.run()
    [error] = at.error
    assert error.value == ("the Slurm options on the Runs page, field 'time': 'ninety' is not"
                           " a time limit (expected minutes, 'H:MM:SS' or 'D-HH:MM:SS')")
    assert launch_button(at).disabled


def test_the_page_follows_slurm_jobs_and_shows_their_id_and_state(tmp_path, monkeypatch):
    """The page brings Slurm jobs up to date itself: what Slurm says (here a stand-in for
    squeue) and the job's status.json reach the queue table and the job's details."""
    home = make_fixture_home(tmp_path / "home")
    store = Store(home)
    [job_id] = queue.submit(store, [spec.JobSpec(task="nli_sim", model="m", size="base",
                                                 pretrain_seed="9", finetune_seed=1)],
                            executor="slurm")
    assert queue.set_external(store, job_id, slurm_id="77_0",
                              options=slurm.SlurmOptions().to_json())
    cell = slurm.cell_dir(home, job_id)
    cell.mkdir(parents=True)
    (cell / "status.json").write_text(json.dumps({"slurm_id": "77_0", "phase": "train",
                                                  "step": 5, "total": 20, "loss": 0.7}))
    asked = []

    def squeue(ids):
        asked.append(list(ids))
        return {"77_0": slurm.SlurmState("RUNNING", node="node1")}

    monkeypatch.setattr(slurm, "query_states", squeue)
    at = open_page(home)
    assert asked and asked[0] == ["77_0"]
    row = queue_table(at).iloc[0]
    assert (row["state"], row["executor"], row["slurm_id"], row["slurm_state"]) == (
        "running", "slurm", "77_0", "RUNNING")
    assert row["progress"] == 0.25
    assert at.text[0].value == "running (Slurm 77_0: RUNNING): running in Slurm as 77_0 on node1"


@pytest.fixture
def cluster() -> None:
    reason = slurm.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no Slurm answers here ({reason}); tests/test_slurm.py starts one as root")


def test_a_grid_launched_on_slurm_from_the_page_lands_in_the_store(tmp_path, cluster):
    pytest.importorskip("submitit")
    from seedlab.runs import tasks, tiny

    rt = tasks.load_task("rotten_tomatoes", max_train=200)
    model = tiny.build_tiny_bert(tmp_path / "tiny", rt.train["text_a"], seed=0,
                                 hidden_size=16, layers=1, heads=2, n_words=200)
    store = Store(tmp_path / "home")
    home = store.home
    (home / "slurm.json").write_text(json.dumps({"mem": "1500M", "time": 10,
                                                 "cpus_per_job": 2}))
    try:
        at = open_page(home)
        at.radio(key="runs.executor").set_value("slurm")
        at.run()
        at.number_input(key="runs.slurm.cpus").set_value(1)  # the page overrides the file
        preview_grid(at, task="rotten_tomatoes", model=str(model), size="tiny", finetune="1")
        at.number_input[2].set_value(16)   # batch size
        at.number_input[3].set_value(32)   # max sequence length
        at.number_input[4].set_value(48)   # max train examples
        at.number_input[5].set_value(24)   # max eval examples
        at.number_input[1].set_value(2e-3)  # learning rate
        next(b for b in at.button if b.label == "Preview").click()
        at.run()
        launch_button(at).click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        [job] = [queue.get(store, int(i)) for i in queue.jobs(store)["id"]]
        assert job.executor == "slurm" and job.slurm_id
        assert [s.value for s in at.success] == [
            f"Submitted 1 job(s) to Slurm (array {job.slurm_id.split('_')[0]})."]
        assert slurm.SlurmOptions.from_json(job.slurm_options) == slurm.SlurmOptions(
            mem_mb=1500, time_min=10, cpus_per_job=1)
        assert queue_table(at).iloc[0]["slurm_id"] == job.slurm_id
        # No sync by the test: the page's own reruns register the finished run.
        deadline = time.time() + 240
        while time.time() < deadline and not len(store.runs("rotten_tomatoes")):
            time.sleep(3)
            at.run()
        row = queue_table(at).iloc[0]
        assert row["state"] == "finished", (row.to_dict(), slurm.logs(store, job.id)[-3000:])
        runs = store.runs("rotten_tomatoes")
        assert [(r.size, r.pretrain_seed, int(r.finetune_seed)) for r in runs.itertuples()] \
            == [("tiny", "0", 1)]
        assert row["progress"] == 1.0
    finally:
        for job_id in queue.jobs(store, state=queue.ACTIVE)["id"]:
            slurm.cancel(store, int(job_id))
