"""The Slurm executor's parts that need no cluster: options and the home's slurm.json, how
each way Slurm ends a job becomes a seedlab state and reason, fetching models first."""

from __future__ import annotations

import json

import pytest

from seedlab.cli import main as cli
from seedlab.errors import InputError
from seedlab.runs import catalogue, queue, slurm, spec


def test_options_come_from_slurm_json_and_flags_override_them(tmp_path):
    assert slurm.load_config(tmp_path) == slurm.SlurmOptions()  # no file: built-in defaults
    (tmp_path / "slurm.json").write_text(json.dumps({
        "partition": "gpu", "gpus_per_job": 1, "cpus_per_job": 4, "mem": "16G",
        "time": "2:00:00", "account": "nlp-lab", "qos": "normal", "constraint": "a100|h100"}))
    options = slurm.load_config(tmp_path)
    assert options == slurm.SlurmOptions(partition="gpu", gpus_per_job=1, cpus_per_job=4,
                                         mem_mb=16384, time_min=120, account="nlp-lab",
                                         qos="normal", constraint="a100|h100")
    assert options.sbatch_parameters() == {
        "cpus_per_task": 4, "mem": "16384M", "time": 120, "signal_delay_s": 90,
        "gpus_per_node": 1,
        "partition": "gpu", "account": "nlp-lab", "qos": "normal", "constraint": "a100|h100"}
    over = slurm.parse_options({"qos": "high", "time": "1-00:00:00", "mem": None}, "command line",
                               base=options)
    assert (over.qos, over.time_min, over.mem_mb, over.partition) == ("high", 1440, 16384, "gpu")
    assert slurm.SlurmOptions.from_json(over.to_json()) == over
    # a job without GPUs does not ask for any, and never for the whole node's memory
    assert slurm.SlurmOptions().sbatch_parameters() == {"cpus_per_task": 1, "mem": "4096M",
                                                        "time": 60, "signal_delay_s": 90}
    # a 1-minute limit is warned 15 s before its end, not before the job has started
    assert slurm.SlurmOptions(time_min=1).sbatch_parameters()["signal_delay_s"] == 15


@pytest.mark.parametrize("value, minutes", [(90, 90), ("90", 90), ("1:30:00", 90),
                                            ("0:00:30", 1), ("2-0", 2880), ("1-01:30", 1530),
                                            ("1-00:00:00", 1440), ("10:30", 11)])
def test_time_limits_in_slurms_forms(value, minutes):
    assert slurm.parse_time(value) == minutes


@pytest.mark.parametrize("value, mib", [(4096, 4096), ("4096M", 4096), ("4G", 4096),
                                        ("1.5G", 1536), ("1T", 1048576), ("512MB", 512),
                                        ("2GiB", 2048)])
def test_memory_in_mib(value, mib):
    assert slurm.parse_memory(value) == mib


@pytest.mark.parametrize("data, field, says", [
    ({"mem": "lots"}, "mem", "'lots' is not an amount of memory"),
    ({"mem": 0}, "mem", "out of range"),
    ({"time": "soon"}, "time", "'soon' is not a time limit"),
    ({"time": 0}, "time", "out of range"),
    ({"gpus_per_job": -1}, "gpus_per_job", "is not a count"),
    ({"cpus_per_job": 0}, "cpus_per_job", "is not a count"),
    ({"cpus_per_job": True}, "cpus_per_job", "is not a count"),
    ({"partition": "gpu; rm -rf /"}, "partition", "characters Slurm names do not have"),
    ({"gpus": 2}, "gpus", "unknown Slurm option 'gpus'"),
])
def test_bad_options_name_the_file_and_field(tmp_path, data, field, says):
    (tmp_path / "slurm.json").write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        slurm.load_config(tmp_path)
    assert err.value.path == str(tmp_path / "slurm.json") and err.value.field == field
    assert says in str(err.value)


def test_a_slurm_json_that_is_not_json_names_its_line(tmp_path):
    (tmp_path / "slurm.json").write_text('{\n "mem": "4G",\n}\n')
    with pytest.raises(InputError) as err:
        slurm.load_config(tmp_path)
    assert err.value.line == 3 and "not JSON" in str(err.value)


def test_runs_submit_with_a_bad_flag_exits_2_and_queues_nothing(store, tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"task": "t", "model": "m", "size": "s", "pretrain_seed": "0",
                                "finetune_seeds": [1]}))
    code = cli(["--home", str(store.home), "runs", "submit", "--spec", str(grid), "--executor",
                "slurm", "--mem", "plenty"])
    assert code == 2
    assert "command line, field 'mem': 'plenty' is not an amount of memory" in \
        capsys.readouterr().err
    assert queue.jobs(store).empty


def test_models_are_fetched_before_anything_is_submitted(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    local = tmp_path / "model"
    local.mkdir()
    (local / "config.json").write_text("{}")
    jobs = [spec.JobSpec(task="t", model=str(local), size="s", pretrain_seed="0",
                         finetune_seed=f) for f in (1, 2)]
    assert slurm.prefetch_models(jobs) == {str(local): local.resolve()}
    missing = [*jobs, spec.JobSpec(task="t", model="nobody/not-cached", size="s",
                                   pretrain_seed="1", finetune_seed=1)]
    with pytest.raises(catalogue.ModelSourceError, match="nobody/not-cached is not in the local"):
        slurm.prefetch_models(missing)


def _submitted(store, n: int) -> list[int]:
    specs = [spec.JobSpec(task="t", model="m", size="s", pretrain_seed="0", finetune_seed=i)
             for i in range(n)]
    ids = queue.submit(store, specs, executor="slurm")
    options = slurm.SlurmOptions(mem_mb=1500, time_min=30).to_json()
    for i, job_id in enumerate(ids):
        assert queue.set_external(store, job_id, slurm_id=f"40_{i}", options=options)
    return ids


def test_each_way_slurm_ends_a_job_becomes_a_state_and_a_reason(store, monkeypatch, capsys):
    ids = _submitted(store, 8)
    said = {
        "40_0": slurm.SlurmState("OUT_OF_MEMORY", "OutOfMemory", "node7"),
        "40_1": slurm.SlurmState("NODE_FAIL", "NodeDown", "node3"),
        "40_2": slurm.SlurmState("PREEMPTED", "None", "node1"),
        "40_3": slurm.SlurmState("TIMEOUT", "TimeLimit", "node1"),
        "40_4": slurm.SlurmState("PENDING", "Resources", ""),
        "40_5": slurm.SlurmState("CANCELLED", "None", "node2"),
        "40_6": slurm.SlurmState("FAILED", "NonZeroExitCode", "node2"),
        # 40_7: Slurm has forgotten it
    }
    monkeypatch.setattr(slurm, "query_states", lambda slurm_ids: {
        i: said[i] for i in slurm_ids if i in said})
    # The job itself said why it failed: that is the reason shown.
    cell = slurm.cell_dir(store.home, ids[6])
    cell.mkdir(parents=True)
    (cell / "outcome.json").write_text(json.dumps({
        "slurm_id": "40_6", "state": "failed",
        "reason": "could not load model m from /models/m: no config.json"}))
    # A job Slurm ended wrote that it got SIGTERM: Slurm's reason is the one shown.
    timed_out = slurm.cell_dir(store.home, ids[3])
    timed_out.mkdir(parents=True)
    (timed_out / "outcome.json").write_text(json.dumps({
        "slurm_id": "40_3", "state": "failed", "reason": "Slurm stopped the job (SIGTERM)"}))
    # An outcome from an earlier Slurm attempt of the job is not this attempt's.
    old = slurm.cell_dir(store.home, ids[7])
    old.mkdir(parents=True)
    (old / "outcome.json").write_text(json.dumps({"slurm_id": "39_7", "state": "failed",
                                                  "reason": "an older attempt"}))

    changed = dict(slurm.sync(store))
    jobs = queue.jobs(store).set_index("id")
    expect = {
        ids[0]: ("failed", ("Slurm killed the job for using more than its memory (1500 MB):"
                 " raise the memory (--mem) or lower batch_size / max_seq_length")),
        ids[1]: ("failed", "the node running the job failed (node3): retry it"),
        ids[2]: ("failed", ("Slurm preempted the job (a higher-priority job took its node):"
                 " retry it")),
        ids[3]: ("failed", ("Slurm stopped the job at its time limit (30 min): raise the time"
                 " limit (--time) and retry")),
        ids[4]: ("queued", "waiting in Slurm as 40_4 (Resources)"),
        ids[5]: ("cancelled", "cancelled in Slurm (40_5)"),
        ids[6]: ("failed", "could not load model m from /models/m: no config.json"),
        ids[7]: ("failed", ("Slurm no longer knows job 40_7 and it left no outcome (it ended"
                 " before it could start, or long ago); retry it")),
    }
    assert {i: (jobs.loc[i, "state"], jobs.loc[i, "message"]) for i in ids} == expect
    assert changed == {i: s for i, (s, _) in expect.items() if s != "queued"}
    assert jobs.loc[ids[0], "slurm_state"] == "OUT_OF_MEMORY"
    assert jobs.loc[ids[7], "slurm_state"] == "GONE"
    # Ended jobs stay ended: a second sync (here through the CLI) changes nothing.
    capsys.readouterr()
    assert cli(["--home", str(store.home), "runs", "sync"]) == 0
    assert capsys.readouterr().out == "0 job(s) changed\n"
    assert queue.jobs(store).set_index("id").loc[ids, "state"].tolist() == [
        s for s, _ in expect.values()]


def test_a_running_slurm_job_shows_its_node_and_the_progress_it_wrote(store, monkeypatch):
    [job_id] = _submitted(store, 1)
    monkeypatch.setattr(slurm, "query_states", lambda ids: {
        "40_0": slurm.SlurmState("RUNNING", "None", "node9")})
    cell = slurm.cell_dir(store.home, job_id)
    cell.mkdir(parents=True)
    (cell / "status.json").write_text(json.dumps({"slurm_id": "40_0", "phase": "target",
                                                  "step": 7, "total": 20, "loss": 0.61,
                                                  "eta_s": 13.0}))
    assert slurm.sync(store) == [(job_id, "running")]
    row = queue.jobs(store).iloc[0]
    assert (row["state"], row["device"], row["phase"], row["step"], row["total"]) == (
        "running", "slurm:node9", "target", 7, 20)
    assert row["message"] == "running in Slurm as 40_0 on node9" and row["started_at"]
    events = queue.events(store, job_id)
    assert list(events["state"]) == ["queued", "queued", "running"]


def test_a_finished_outcome_naming_a_folder_outside_the_home_is_not_registered(store,
                                                                                 monkeypatch,
                                                                                 tmp_path):
    [job_id] = _submitted(store, 1)
    monkeypatch.setattr(slurm, "query_states", lambda ids: {
        "40_0": slurm.SlurmState("COMPLETED", "None", "node9")})
    cell = slurm.cell_dir(store.home, job_id)
    cell.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / "job-1-t-s-p0-f0"
    (cell / "outcome.json").write_text(json.dumps({"slurm_id": "40_0", "state": "finished",
                                                   "run_dir": str(elsewhere)}))
    assert slurm.sync(store) == [(job_id, "failed")]
    assert queue.get(store, job_id).message == (
        f"the job's outcome names {elsewhere}, which is not a run folder in"
        f" {store.home.resolve() / 'runs'}")
    assert store.runs().empty


@pytest.mark.parametrize(("rc", "stdout", "up"), [
    (0, "Slurmctld(primary) at vm is UP\n", True),
    (1, "Slurmctld(primary) at vm is DOWN\n*****\n** RESTORE SLURMCTLD DAEMON TO SERVICE **\n",
     False),
    (1, "", False),
])
def test_slurm_counts_as_available_only_when_the_controller_answers(monkeypatch, rc, stdout,
                                                                     up):
    import subprocess

    calls = []

    def run(argv, **_kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, rc, stdout, "")

    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(slurm.subprocess, "run", run)
    reason = slurm.unavailable_reason()
    assert calls == [["scontrol", "ping"]]
    assert (reason is None) is up
    if not up:
        assert reason.startswith("slurmctld does not answer")
        assert "DOWN" in reason or "no reply" in reason
