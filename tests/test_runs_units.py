"""Fast checks of the runs package without training: specs, catalogue, task loaders,
concurrent claims."""

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
