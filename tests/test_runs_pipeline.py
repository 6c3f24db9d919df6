"""End-to-end runs on CPU: tiny local BERTs, real Rotten Tomatoes snippets, the queue and
``seedlab worker --once``. Nothing downloads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from seedlab.cli import main as cli
from seedlab.runs import finetune, plan, queue, spec, tasks, tiny
from seedlab.runs.worker import Worker, WorkerConfig
from seedlab.store import Store

N_TRAIN, N_EVAL = 160, 80
BASE = {"task": "rotten_tomatoes", "size": "tiny", "epochs": 1, "batch_size": 32,
        "max_seq_length": 32, "learning_rate": 2e-3, "max_train_examples": N_TRAIN,
        "max_eval_examples": N_EVAL}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny BERTs (pretraining seeds 0 and 1) with a vocabulary from the snippets."""
    rt = tasks.load_task("rotten_tomatoes", max_train=400)
    root = tmp_path_factory.mktemp("models")
    return {p: tiny.build_tiny_bert(root / f"p{p}", rt.train["text_a"], seed=int(p))
            for p in ("0", "1")}


def _run_worker(store: Store, **kw) -> list[tuple[int, str]]:
    worker = Worker(store, WorkerConfig(once=True, heartbeat_s=0.5, **kw))
    worker.run()
    return worker.ran


def test_grid_runs_end_to_end_through_queue_and_cli_worker(store, models, tmp_path, capsys):
    grid = {**BASE, "model": [str(models["0"]), str(models["1"])], "pretrain_seed": ["0", "1"],
            "finetune_seeds": [11, 12], "checkpoints": [0.5, 1]}
    spec_file = tmp_path / "grid.json"
    spec_file.write_text(json.dumps(grid))
    home = str(store.home)
    assert cli(["--home", home, "runs", "submit", "--spec", str(spec_file)]) == 0
    assert "4 jobs in the grid: 0 already in the store, 0 already queued or running, 4 to queue" \
        in capsys.readouterr().out
    assert cli(["--home", home, "worker", "--once", "--heartbeat", "0.5"]) == 0
    out = capsys.readouterr().out
    assert out.count(": finished") == 4

    jobs = queue.jobs(store)
    assert sorted(jobs["state"]) == ["finished"] * 4
    runs = store.runs(task="rotten_tomatoes")
    assert sorted(zip(runs["pretrain_seed"], runs["finetune_seed"])) == [
        ("0", 11), ("0", 12), ("1", 11), ("1", 12)]
    assert set(runs["size"]) == {"tiny"} and set(runs["source"]) == {"seedlab-run"}
    arrays = store.arrays("rotten_tomatoes", "tiny", checkpoint="all")
    assert arrays.shape == (N_EVAL, 2, 2, 2)
    assert arrays.checkpoints == [0.5, 1.0]
    assert arrays.complete
    assert arrays.label_list == ["rotten", "fresh"]
    assert set(np.unique(arrays.labels)) <= {0, 1}
    # Predictions agree with stored probabilities and gold labels.
    preds = store.predictions(task="rotten_tomatoes")
    row = preds.iloc[0]
    assert int(np.argmax(row["probs"])) == row["pred"]
    assert abs(float(np.sum(row["probs"])) - 1) < 1e-4
    # Each run folder is whole: config, log, metrics, predictions.
    for run_dir in jobs["run_dir"]:
        names = {p.name for p in Path(run_dir).iterdir()}
        assert {"config.json", "log.txt", "metrics.jsonl", "predictions.parquet"} <= names
    assert not list((store.home / "runs").glob(".tmp-*"))
    # Submitting the same grid again queues nothing.
    assert cli(["--home", home, "runs", "submit", "--spec", str(spec_file)]) == 0
    assert "4 already in the store" in capsys.readouterr().out
    assert plan.missing_jobs(store, grid) == []


def _rt_length_csv(path: Path) -> Path:
    """An intermediate task built from the snippets: is the snippet long or short?"""
    rt = tasks.load_rotten_tomatoes()
    frame = pd.concat([rt.train.head(160).assign(split="train"),
                       rt.eval.head(60)[["text_a", "text_b", "label"]].assign(split="dev")])
    frame["label"] = np.where(frame["text_a"].str.len() > 110, "long", "short")
    frame[["text_a", "label", "split"]].to_csv(path, index=False)
    return path


def test_stilts_chain_loads_the_intermediate_encoder_not_its_classifier(store, models, tmp_path):
    data = _rt_length_csv(tmp_path / "length.csv")
    grid = {**BASE, "model": str(models["0"]), "pretrain_seed": "0", "finetune_seeds": [3],
            "intermediate_task": "rt_length", "intermediate_data": str(data)}
    queue.submit(store, spec.parse_grid(grid).expand())
    assert _run_worker(store) == [(1, "finished")]
    run_dir = Path(queue.jobs(store)["run_dir"].iloc[0])
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["phase"] for m in metrics] == ["intermediate", "target"]
    assert metrics[0]["task"] == "rt_length"
    log = (run_dir / "log.txt").read_text()
    assert "encoder saved, classifier dropped" in log
    assert not (run_dir / "intermediate-encoder").exists()
    runs = store.runs(task="rotten_tomatoes")
    assert len(runs) == 1 and json.loads(runs["hyperparameters"][0])["intermediate_task"] == "rt_length"


def test_stilts_encoder_has_no_classifier_weights(models, tmp_path):
    from safetensors.numpy import load_file
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(models["0"], num_labels=3,
                                                               ignore_mismatched_sizes=True)
    model.base_model.save_pretrained(tmp_path / "enc")
    keys = load_file(str(tmp_path / "enc" / "model.safetensors")).keys()
    assert not any("classifier" in k for k in keys)
    assert any("encoder.layer.0" in k for k in keys)


def test_pruning_job_writes_masks(store, models):
    grid = {**BASE, "model": str(models["1"]), "pretrain_seed": "1", "finetune_seeds": [7],
            "prune": {"threshold": 0.9, "step": 0.25}}
    queue.submit(store, spec.parse_grid(grid).expand())
    assert _run_worker(store) == [(1, "finished")]
    setting = "seedlab-heads_mlps-tiny-p1"
    masks = store.masks(setting=setting, task="rotten_tomatoes")
    assert len(masks) == 2 * 2 + 2  # 2 layers x 2 heads, 2 MLPs
    assert set(masks["seed"]) == {7}
    heads, seeds = store.mask_arrays(setting, "rotten_tomatoes", "head")
    assert heads.shape == (1, 2, 2) and seeds == [7]
    assert heads.sum() >= 1
    assert (masks.loc[masks["component"] == "mlp", "head"] == -1).all()
    run_dir = Path(queue.jobs(store)["run_dir"].iloc[0])
    history = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    pruning = [h for h in history if h["phase"] == "pruning"]
    base = pruning[0]["score"]
    assert all(h["score"] >= 0.9 * base - 1e-9 for h in pruning)


def test_cancel_and_failure_end_as_described_and_queue_moves_on(store, models, monkeypatch):
    good = {**BASE, "model": str(models["0"]), "pretrain_seed": "0"}
    missing = {**good, "model": str(models["0"]) + "-missing", "pretrain_seed": "9"}
    offline = {**good, "model": "multiberts-seed_24", "pretrain_seed": "24"}
    ids = queue.submit(store, [*spec.parse_grid({**good, "finetune_seeds": [1, 2]}).expand(),
                               *spec.parse_grid({**missing, "finetune_seeds": [1]}).expand(),
                               *spec.parse_grid({**offline, "finetune_seeds": [1]}).expand()])
    assert queue.cancel(store, ids[0]) == "cancelled"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ran = dict(_run_worker(store))
    assert ran == {ids[1]: "finished", ids[2]: "failed", ids[3]: "failed"}
    jobs = queue.jobs(store).set_index("id")
    assert jobs.loc[ids[0], "state"] == "cancelled"
    assert "does not exist" in jobs.loc[ids[2], "message"]
    assert "google/multiberts-seed_24" in jobs.loc[ids[3], "message"]
    assert queue.cancel(store, ids[1]) == "finished"  # finished jobs stay finished
    assert len(store.runs()) == 1
    # Retry brings the cancelled job back; it then runs.
    assert queue.retry(store, ids[0]) == "queued"
    assert _run_worker(store) == [(ids[0], "finished")]
    assert list(queue.events(store, ids[0])["state"]) == ["queued", "cancelled", "queued",
                                                          "running", "finished"]


def test_crash_mid_write_leaves_nothing(store, models, monkeypatch):
    grid = {**BASE, "model": str(models["0"]), "pretrain_seed": "0", "finetune_seeds": [5]}
    queue.submit(store, spec.parse_grid(grid).expand())

    def crash(_task):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(finetune, "instances_frame", crash)  # after predictions.parquet
    assert _run_worker(store) == [(1, "failed")]
    assert "disk full" in queue.jobs(store)["message"].iloc[0]
    assert list((store.home / "runs").glob("job-*")) == []
    assert list((store.home / "runs").glob(".tmp-*")) == []
    assert store.runs().empty


def test_killed_worker_is_detected_and_its_job_requeued_then_run_once(store, models):
    grid = {**BASE, "model": str(models["0"]), "pretrain_seed": "0", "finetune_seeds": [8],
            "epochs": 30, "checkpoints": [30], "max_train_examples": 320}
    [job_id] = queue.submit(store, spec.parse_grid(grid).expand())
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, "-m", "seedlab", "--home", str(store.home), "worker",
                             "--once", "--heartbeat", "0.5"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            row = queue.jobs(store).iloc[0]
            if row["state"] == "running" and (row["step"] or 0) >= 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the worker never started the job")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert queue.jobs(store)["state"].iloc[0] == "running"  # nobody knows yet
    dead_worker = queue.jobs(store)["worker"].iloc[0]
    # The dead worker's process is gone: detected at once on this host.
    assert queue.reap_stale(store, timeout_s=3600) == [(job_id, "queued")]
    assert "exited while running" in queue.jobs(store)["message"].iloc[0]
    # The old worker can no longer touch the job.
    assert not queue.heartbeat(store, job_id, dead_worker)
    assert not queue.finish(store, job_id, dead_worker, run_dir="x", run_id="y")
    assert list((store.home / "runs").glob("job-*")) == []
    # A new worker claims it (second attempt); only the new worker may write to it.
    again = queue.claim(store, "test:1:cpu")
    assert again is not None and again.id == job_id and again.attempts == 2
    assert queue.heartbeat(store, job_id, "test:1:cpu")
    assert not queue.heartbeat(store, job_id, dead_worker)
    assert queue.claim(store, "test:2:cpu") is None  # never two workers on one job
    assert queue.cancel(store, job_id) == "cancelled"
    assert store.runs().empty


def test_stale_heartbeat_requeues_then_fails_after_max_attempts(store):
    job = spec.JobSpec(task="t", model="m", size="s", pretrain_seed="0", finetune_seed=1)
    [job_id] = queue.submit(store, [job])
    remote = "otherhost:123:cuda:0"  # not this host: only the heartbeat can tell
    for attempt in (1, 2):
        claimed = queue.claim(store, remote)
        assert claimed.attempts == attempt
        assert queue.reap_stale(store, timeout_s=60, max_attempts=2) == []  # fresh heartbeat
        time.sleep(0.05)
        changed = queue.reap_stale(store, timeout_s=0.01, max_attempts=2)
        assert changed == [(job_id, "queued" if attempt == 1 else "failed")]
    final = queue.get(store, job_id)
    assert final.state == "failed" and "gave up after 2 attempts" in final.message
