"""Fast checks of the runs package: specs, catalogue, task loaders, concurrent claims, the
queue's executor columns; one test trains two tiny jobs side by side (``--jobs-per-gpu``)."""

from __future__ import annotations

import threading

import pytest

from seedlab.errors import InputError
from seedlab.runs import catalogue, queue, spec, tasks


def test_grid_expands_sizes_x_pretrain_x_finetune_with_one_model_per_pretraining_seed():
    grid = spec.parse_grid({"task": "rotten_tomatoes", "model": ["multiberts-seed_0",
                            "multiberts-seed_1"], "size": ["base"], "pretrain_seed": [0, 1],
                            "finetune_seeds": [1, 2], "epochs": 4,
                            "checkpoints": [3, 3.33, 3.67, 4]})
    jobs = grid.expand()
    assert [(j.pretrain_seed, j.finetune_seed, j.model) for j in jobs] == [
        ("0", 1, "multiberts-seed_0"), ("0", 2, "multiberts-seed_0"),
        ("1", 1, "multiberts-seed_1"), ("1", 2, "multiberts-seed_1")]
    assert jobs[0].checkpoints == (3.0, 3.33, 3.67, 4.0)
    assert spec.JobSpec.from_json(jobs[0].to_json()) == jobs[0]
    template = spec.parse_grid({"task": "t", "model": "multiberts-seed_{pretrain_seed}",
                                "size": "base", "pretrain_seed": ["3"], "finetune_seeds": [1]})
    assert template.expand()[0].model == "multiberts-seed_3"


@pytest.mark.parametrize("bad, field", [
    ({"checkpoints": [5]}, "checkpoints"),
    ({"finetune_seeds": ["x"]}, "finetune_seeds"),
    ({"model": ["a", "b", "c"]}, "model"),
    ({"batch_size": 0}, "batch_size"),
    ({"model": {"large": "m"}}, "model"),  # no model for size 'base': refused before expand
    ({"colour": 1}, "colour"),
])
def test_bad_specs_name_the_field(bad, field):
    data = {"task": "t", "model": "m", "size": "base", "pretrain_seed": ["0", "1"],
            "finetune_seeds": [1], "epochs": 4, **bad}
    with pytest.raises(InputError) as err:
        spec.parse_grid(data, "spec.json")
    assert err.value.path == "spec.json" and field in str(err.value)


def test_catalogue_builds_ids_of_the_studies_families():
    assert catalogue.multiberts_id(24) == "google/multiberts-seed_24"
    assert catalogue.hub_id("multiberts-seed_4-step_1500k") == "google/multiberts-seed_4-step_1500k"
    assert catalogue.hub_id("bert-L12-H768") == "google/bert_uncased_L-12_H-768_A-12"
    assert catalogue.hub_id("mini") == "google/bert_uncased_L-4_H-256_A-4"
    assert catalogue.hub_id("some/other") is None
    with pytest.raises(catalogue.ModelSourceError):
        catalogue.multiberts_id(5, 200)  # intermediate checkpoints exist for seeds 0..4 only
    with pytest.raises(catalogue.ModelSourceError):
        catalogue.multiberts_id(0, 250)
    names = catalogue.catalogue_names()
    assert len([n for n in names if "-step_" in n]) == 5 * 29


def test_rotten_tomatoes_split_is_fixed_and_clean():
    task = tasks.load_rotten_tomatoes()
    assert len(task.eval) == 2000 and task.label_list == ["rotten", "fresh"]
    assert set(task.eval["label"]) == {"rotten", "fresh"}
    assert task.eval["instance_id"].is_monotonic_increasing
    assert not set(task.eval["text_a"]) & set(task.train["text_a"])
    assert task.train["text_a"].str.len().min() > 0
    again = tasks.load_task("rotten_tomatoes", max_eval=50)
    assert again.eval["instance_id"].isin(task.eval["instance_id"]).all()


def test_glue_folder_loads_sst2_and_mnli_and_reports_bad_rows(tmp_path):
    sst = tmp_path / "glue" / "SST-2"
    sst.mkdir(parents=True)
    (sst / "train.tsv").write_text("sentence\tlabel\na fine film \t1\ndull\t0\n")
    (sst / "dev.tsv").write_text("sentence\tlabel\ngreat\t1\n")
    task = tasks.load_task("SST-2", tmp_path / "glue")
    assert task.label_list == ["0", "1"] and list(task.eval["instance_id"]) == ["dev-0"]
    mnli = tmp_path / "glue" / "MNLI"
    mnli.mkdir()
    header = "index\tsentence1\tsentence2\tgold_label\n"
    (mnli / "train.tsv").write_text(header + '0\tA "quoted" man.\tA man.\tentailment\n')
    (mnli / "dev_matched.tsv").write_text(header + "0\tx\ty\tneutral\n")
    (mnli / "dev_mismatched.tsv").write_text(header + "0\tx\ty\tmaybe\n")
    with pytest.raises(InputError) as err:
        tasks.load_task("MNLI", tmp_path / "glue")
    assert "dev_mismatched.tsv, line 2" in str(err.value) and "maybe" in str(err.value)


def test_concurrent_claims_take_each_job_once(store):
    specs = [spec.JobSpec(task="t", model="m", size="s", pretrain_seed="0", finetune_seed=i)
             for i in range(30)]
    assert len(queue.submit(store, specs)) == 30
    assert queue.submit(store, specs) == []  # already queued
    taken: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (job := queue.claim(store, name)) is not None:
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=work, args=(f"h:{i}:cpu",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(1, 31))
    assert queue.counts(store)["running"] == 30


def test_local_pool_starts_one_cpu_worker_finds_it_again_and_it_exits_when_idle(store):
    import time

    from seedlab.runs.executor import LocalPool

    pool = LocalPool(gpus=[], idle_exit_s=2, heartbeat_s=0.5)
    started = pool.start(store)
    assert list(started["device"]) == ["cpu"]
    assert len(pool.start(store)) == 1  # found again, not started twice
    deadline = time.time() + 60
    while time.time() < deadline and len(pool.workers(store)):
        time.sleep(0.5)
    assert pool.workers(store).empty


@pytest.mark.parametrize("model, says", [
    ("x{foo}", "{foo} in 'x{foo}' is not a placeholder"),
    ("{size.__class__.__mro__}", "{size.__class__.__mro__} in"),
    ("m-{pretrain_seed!r}", "{pretrain_seed!r} in"),
    ("m-{size:>10}", "{size:>10} in"),
    ("m-{0}", "{0} in"),
    ("m-{size", "unbalanced braces"),
    ({"base": "m{x}"}, "{x} in 'm{x}'"),
    (["ok", "bad{y}"], "{y} in 'bad{y}'"),
])
def test_model_templates_substitute_only_the_two_placeholders(model, says):
    data = {"task": "t", "model": model, "size": "base", "pretrain_seed": ["0", "1"],
            "finetune_seeds": [1]}
    with pytest.raises(InputError) as err:
        spec.parse_grid(data, "the form")
    assert err.value.field == "model" and says in str(err.value)
    assert str(err.value).startswith("the form, field 'model': ")


def test_model_templates_fill_size_and_pretrain_seed_and_keep_literal_braces():
    grid = spec.parse_grid({"task": "t", "model": "/m/{size}-p{pretrain_seed}-{{x}}",
                            "size": ["mini", "base"], "pretrain_seed": ["3"],
                            "finetune_seeds": [1]})
    assert [j.model for j in grid.expand()] == ["/m/mini-p3-{x}", "/m/base-p3-{x}"]
    assert spec.fill_template("a{size}", size="s", pretrain_seed="p") == "as"


@pytest.mark.parametrize("bad, field, says", [
    ({"checkpoints": [float("nan")]}, "checkpoints", "is not a finite number"),
    ({"checkpoints": ["nan"]}, "checkpoints", "is not a finite number"),
    ({"epochs": float("inf")}, "epochs", "is not a finite number"),
    ({"learning_rate": "nan"}, "learning_rate", "is not a finite number"),
    ({"batch_size": 2.5}, "batch_size", "is not a whole number"),
    ({"batch_size": True}, "batch_size", "is not a number"),
    ({"finetune_seeds": [1e30]}, "finetune_seeds", "out of range"),
    ({"finetune_seeds": [-1]}, "finetune_seeds", "out of range"),
    ({"finetune_seeds": [1.5]}, "finetune_seeds", "is not a whole number"),
    ({"prune": {"threshold": "x"}}, "prune", "is not a number"),
])
def test_non_finite_and_out_of_range_numbers_are_refused(bad, field, says):
    data = {"task": "t", "model": "m", "size": "base", "pretrain_seed": ["0"],
            "finetune_seeds": [1], "epochs": 4, **bad}
    with pytest.raises(InputError) as err:
        spec.parse_grid(data, "spec.json")
    assert err.value.field == field and says in str(err.value)


def test_spec_is_pure_and_planners_live_in_plan():
    import ast
    from pathlib import Path

    from seedlab.runs import plan

    source = Path(spec.__file__).read_text()
    imported = {n.module for n in ast.walk(ast.parse(source))
                if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.startswith("seedlab.runs") or m == "seedlab.store"}
    assert not hasattr(spec, "missing_jobs") and callable(plan.missing_jobs)


def test_runs_list_prints_blank_not_nan_and_separates_progress_from_message(store, capsys):
    from seedlab.cli import main as cli

    specs = [spec.JobSpec(task="t", model="m", size="s", pretrain_seed="0", finetune_seed=i)
             for i in (1, 2)]
    first, _ = queue.submit(store, specs)
    job = queue.claim(store, "h:1:cpu")
    assert job is not None and job.id == first
    queue.progress(store, first, "h:1:cpu", phase="target", step=1, total=1000, loss=0.5,
                   eta_s=976.4)
    with queue.connect(store) as con:  # a message beside the progress column
        con.execute("UPDATE jobs SET message = 'slow node' WHERE id = ?", (first,))
    assert cli(["--home", str(store.home), "runs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "nan" not in "\n".join(lines)
    running = next(line for line in lines if line.lstrip().startswith(f"{first} "))
    assert "target 1/1000, ETA 976s slow node" in " ".join(running.split())
    queued = next(line for line in lines if line.lstrip().startswith(f"{first + 1} "))
    assert queued.split() == [str(first + 1), "queued", "t", "s", "0", "2"]  # no "nan"


def test_a_job_failed_for_good_leaves_no_half_written_run_folder(store):
    from seedlab.runs import trainer, worker

    [job_id] = queue.submit(store, [spec.JobSpec(task="t", model="m", size="s",
                                                 pretrain_seed="0", finetune_seed=1)])
    [other] = queue.submit(store, [spec.JobSpec(task="t", model="m", size="s",
                                                pretrain_seed="0", finetune_seed=2)])
    root = trainer.runs_root(store)
    for attempt in range(3):
        claimed = queue.claim(store, f"elsewhere:{attempt}:cpu")
        assert claimed is not None and claimed.id == job_id
        (root / f".tmp-job{job_id}-{attempt:08x}").mkdir(parents=True)  # killed mid-job
        with queue.connect(store) as con:  # its worker stopped answering
            con.execute("UPDATE jobs SET heartbeat = 0 WHERE id = ?", (job_id,))
        if attempt < 2:
            assert worker.reap(store, stale_s=60, max_attempts=3) == [(job_id, "queued")]
            # still queued: its half-written folder is the next attempt's to clear
            assert (root / f".tmp-job{job_id}-{attempt:08x}").exists()
            (root / f".tmp-job{job_id}-{attempt:08x}").rmdir()
    (root / f".tmp-job{other}-0000beef").mkdir()  # a queued job's: left alone
    assert worker.reap(store, stale_s=60, max_attempts=3) == [(job_id, "failed")]
    assert queue.get(store, job_id).message.endswith("gave up after 3 attempts")
    assert sorted(p.name for p in root.glob(".tmp-*")) == [f".tmp-job{other}-0000beef"]


def test_old_catalogues_gain_the_executor_columns(tmp_path):
    import sqlite3

    from seedlab.store import Store

    store = Store(tmp_path / "home")
    con = sqlite3.connect(store.catalog_path)
    con.executescript("CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, spec TEXT NOT"
                      " NULL, task TEXT NOT NULL, size TEXT NOT NULL, pretrain_seed TEXT NOT NULL,"
                      " finetune_seed INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'queued',"
                      " attempts INTEGER NOT NULL DEFAULT 0, worker TEXT, device TEXT, heartbeat"
                      " REAL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, phase"
                      " TEXT, step INTEGER, total INTEGER, loss REAL, eta_s REAL, message TEXT,"
                      " run_dir TEXT, run_id TEXT);")
    job = spec.JobSpec(task="t", model="m", size="s", pretrain_seed="0", finetune_seed=1)
    con.execute("INSERT INTO jobs (spec, task, size, pretrain_seed, finetune_seed, created_at)"
                " VALUES (?, 't', 's', '0', 1, 'then')", (job.to_json(),))
    con.commit()
    con.close()
    frame = queue.jobs(store)
    assert list(frame["executor"]) == ["local"] and frame["slurm_id"].isna().all()
    assert queue.claim(store, "h:1:cpu").id == 1  # a local job, claimed as before


def test_local_workers_never_claim_or_reap_slurm_jobs(store):
    [slurm_job] = queue.submit(store, [spec.JobSpec(task="t", model="m", size="s",
                                                    pretrain_seed="0", finetune_seed=1)],
                               executor="slurm")
    assert queue.claim(store, "h:1:cpu") is None
    assert queue.set_external(store, slurm_job, slurm_id="77_0", options="{}")
    assert queue.external_update(store, slurm_job, "slurm:77_0", state="running",
                                 slurm_state="RUNNING")
    assert queue.reap_stale(store, timeout_s=0) == []  # no heartbeat: Slurm's to judge
    assert not queue.external_update(store, slurm_job, "slurm:other", state="failed")
    job = queue.get(store, slurm_job)
    assert (job.state, job.slurm_id, job.slurm_state, job.worker) == (
        "running", "77_0", "RUNNING", "slurm:77_0")
    with pytest.raises(ValueError, match="executor 'ray'"):
        queue.submit(store, [], executor="ray")


def test_jobs_per_gpu_makes_n_slots_per_device():
    from seedlab.runs.executor import LocalPool, slot_threads

    assert LocalPool(gpus=["0", "1"], jobs_per_gpu=3).slots() == ["cuda:0"] * 3 + ["cuda:1"] * 3
    assert LocalPool(gpus=[], jobs_per_gpu=2).slots() == ["cpu", "cpu"]
    assert LocalPool(gpus=["0"]).slots() == ["cuda:0"]
    assert slot_threads(1) == {}
    share = slot_threads(2)["OMP_NUM_THREADS"]
    assert int(share) == max(1, (__import__("os").cpu_count() or 1) // 2)
    with pytest.raises(ValueError, match="at least 1"):
        LocalPool(gpus=[], jobs_per_gpu=0)


def test_worker_with_jobs_per_gpu_runs_n_jobs_side_by_side(store, tmp_path):
    """On a machine without a GPU ``--jobs-per-gpu 2`` starts two CPU workers; two jobs
    then run at the same time (their running intervals overlap), one on each."""
    import os
    import subprocess
    import sys
    from datetime import datetime

    pytest.importorskip("torch")
    from seedlab.runs import tiny

    rt = tasks.load_task("rotten_tomatoes", max_train=100)
    model = tiny.build_tiny_bert(tmp_path / "m", rt.train["text_a"], hidden_size=16, layers=1)
    grid = spec.parse_grid({"task": "rotten_tomatoes", "model": str(model), "size": "tiny",
                            "pretrain_seed": "0", "finetune_seeds": [1, 2], "epochs": 2,
                            "batch_size": 8, "max_seq_length": 16, "max_train_examples": 32,
                            "max_eval_examples": 16})
    ids = queue.submit(store, grid.expand())
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-m", "seedlab", "--home", str(store.home), "worker",
                          "--jobs-per-gpu", "2", "--once", "--heartbeat", "0.5"], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("worker ") >= 2 and out.stdout.count(": finished") == 2
    jobs = queue.jobs(store).set_index("id")
    assert list(jobs.loc[ids, "state"]) == ["finished", "finished"]
    assert jobs.loc[ids[0], "worker"] != jobs.loc[ids[1], "worker"]
    spans = []
    for job_id in ids:
        ev = queue.events(store, job_id).set_index("state")["at"]
        spans.append((datetime.fromisoformat(ev["running"]),
                      datetime.fromisoformat(ev["finished"])))
    assert max(s for s, _ in spans) < min(f for _, f in spans)  # they overlapped
