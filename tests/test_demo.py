"""The default study: ``seedlab demo --quick`` end to end (masked-LM pretraining jobs, then
fine-tuning and pruning jobs, all through the queue and ``seedlab worker --once``, on the
real Rotten Tomatoes snippets), and the pretraining job kind on its own. Nothing downloads.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from seedlab import demo
from seedlab.cli import main as cli
from seedlab.runs import queue
from seedlab.runs.pretrain import (
    PRETRAIN_SLOT,
    mask_tokens,
    parse_size,
    pretrain_spec,
    run_pretrain_job,
)
from seedlab.runs.trainer import JobFailed
from seedlab.store import Store

Q = demo.QUICK


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """``seedlab demo --quick`` run once through the CLI into a temporary home."""
    root = tmp_path_factory.mktemp("demo")
    out, work = root / "home", root / "work"
    code = cli(["--home", str(out), "demo", "--quick", "--work", str(work)])
    assert code == 0
    return {"out": out, "work": work}


def test_quick_demo_registers_every_run_with_its_key(built):
    store = Store(built["out"])
    runs = store.runs(task=demo.TASK)
    keys = {(r.size, r.pretrain_seed, int(r.finetune_seed)) for r in runs.itertuples()}
    want = set(itertools.product(Q.sizes, [str(p) for p in Q.pretrain_seeds], Q.finetune_seeds))
    assert keys == want
    assert set(runs["source"]) == {"seedlab-run"}
    provenance = [json.loads(p) if isinstance(p, str) else p for p in runs["provenance"]]
    assert all(p["demo"] == "quick" and p["job_id"] > 0 for p in provenance)

    preds = store.predictions(task=demo.TASK)
    n_eval = Q.max_eval_examples
    assert len(preds) == len(want) * len(Q.checkpoints) * n_eval
    assert sorted(round(c, 4) for c in preds["checkpoint"].unique()) == \
        [round(c, 4) for c in Q.checkpoints]
    probs = np.stack(preds["probs"].to_numpy())
    assert probs.shape == (len(preds), 2)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (preds["pred"].to_numpy() == probs.argmax(1)).all()
    # The eval instances are the real snippets, with their gold labels.
    instances = store.instances(task=demo.TASK)
    assert len(instances) == n_eval and instances["instance_id"].str.startswith("rt-").all()
    assert set(instances["label"]) == {"fresh", "rotten"}


def test_quick_demo_made_models_by_pretraining_jobs(built):
    work = Store(built["work"])
    jobs = queue.jobs(work)
    pre = jobs[jobs["finetune_seed"] == PRETRAIN_SLOT]
    assert len(pre) == len(Q.sizes) * len(Q.pretrain_seeds)
    assert set(pre["state"]) == {"finished"} and set(jobs["state"]) == {"finished"}
    vocabs, weights = [], {}
    for size, p in itertools.product(Q.sizes, Q.pretrain_seeds):
        folder = demo.model_dir(built["work"], size, p)
        summary = json.loads((folder / "pretrain.json").read_text())
        layers, hidden = parse_size(size)
        assert (summary["layers"], summary["hidden"], summary["seed"]) == (layers, hidden, p)
        assert summary["n_texts"] == Q.max_pretrain_examples
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == ["BertForMaskedLM"]
        vocabs.append(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"])
        from safetensors.numpy import load_file

        weights[size, p] = load_file(folder / "model.safetensors")
    # One WordPiece vocabulary for every model; the seed changes the weights.
    assert all(v == vocabs[0] for v in vocabs) and len(vocabs[0]) > 500
    name = "bert.embeddings.word_embeddings.weight"
    size = Q.sizes[0]
    assert not np.allclose(weights[size, 0][name], weights[size, 1][name])


def test_quick_demo_writes_masks_for_the_pruned_seed(built):
    """One pruned fine-tuning seed per model, published per size with the pretraining seed
    as the mask's seed, so the masks page compares pretraining seeds; the work store keeps
    the runner's per-model settings."""
    store = Store(built["out"])
    masks = store.masks(task=demo.TASK)
    assert set(masks["setting"]) == {f"seedlab-heads_mlps-{s}" for s in Q.sizes}
    assert set(masks["seed"]) == set(Q.pretrain_seeds)
    work = Store(built["work"])
    for size in Q.sizes:
        layers, hidden = parse_size(size)
        heads, seeds = store.mask_arrays(f"seedlab-heads_mlps-{size}", demo.TASK, "head")
        assert heads.shape == (len(Q.pretrain_seeds), layers, hidden // 32)
        assert seeds == list(Q.pretrain_seeds)
        mlps, _ = store.mask_arrays(f"seedlab-heads_mlps-{size}", demo.TASK, "mlp")
        assert mlps.shape == (len(Q.pretrain_seeds), layers)
        for p in Q.pretrain_seeds:  # the same masks as the runner wrote for that model
            model, n = work.mask_arrays(f"seedlab-heads_mlps-{size}-p{p}", demo.TASK, "head")
            assert n == [Q.prune_seed]
            np.testing.assert_array_equal(heads[seeds.index(p)], model[0])


def test_quick_demo_manifest_and_banner(built):
    out = Store(built["out"])
    manifest = json.loads((built["out"] / demo.MANIFEST).read_text())
    assert manifest["command"] == (f"seedlab --home {built['out']} demo --quick"
                                   f" --work {built['work']}")
    assert manifest["seeds"] == {"pretrain": list(Q.pretrain_seeds),
                                 "finetune": list(Q.finetune_seeds), "pruned": Q.prune_seed}
    assert {"torch", "transformers", "tokenizers", "duckdb"} <= set(manifest["versions"])
    assert "git_commit" in manifest and manifest["seconds"] > 0
    assert manifest["n_runs"] == len(Q.sizes) * len(Q.pretrain_seeds) * len(Q.finetune_seeds)
    # The accuracy of each size is the mean and std over its runs at the last checkpoint.
    acc = out.run_accuracy(demo.TASK)
    for size in Q.sizes:
        values = acc[acc["size"] == size]["accuracy"].to_numpy()
        row = manifest["sizes"][size]["accuracy"]
        assert row["n"] == len(values) == len(Q.pretrain_seeds) * len(Q.finetune_seeds)
        assert row["mean"] == pytest.approx(values.mean(), abs=1e-4)
        assert row["std"] == pytest.approx(values.std(ddof=1), abs=1e-4)
        assert 0 < manifest["sizes"][size]["mlm_accuracy"]["mean"] < 1
    labels = out.instances(task=demo.TASK)["label"]
    assert manifest["majority_class_rate"] == pytest.approx(
        labels.value_counts(normalize=True).max(), abs=1e-4)
    task = out.tasks().set_index("task").loc[demo.TASK]
    assert not bool(task["simulated"])
    assert task["description"].startswith(f"Miniature study, {Q.max_eval_examples} instances")
    assert ", ".join(Q.sizes) in task["description"]
    assert "| size | runs |" in demo.accuracy_table(manifest)
    # The app opens on the published study; a home without a manifest has no default.
    assert demo.default_task(built["out"], ["sim-x", demo.TASK]) == demo.TASK
    assert demo.default_task(built["out"], ["sim-x"]) is None
    assert demo.default_task(built["work"] / "runs", [demo.TASK]) is None


def test_rebuilding_resumes_and_leaves_other_tasks_alone(built, tmp_path):
    # A second build in the same work home queues nothing and publishes the same runs.
    import pandas as pd

    out = tmp_path / "other"
    with Store(out).transaction("import", "test") as tx:
        tx.set_task("sim-other", ["a", "b"], simulated=True, description="simulated")
        tx.add_instances("sim-other", pd.DataFrame({"instance_id": ["x"], "split": ["dev"],
                                                    "label": ["a"], "text_a": ["t"]}))
    manifest = demo.run_demo(out, Q, work=built["work"], log=lambda m: None)
    assert manifest["n_runs"] == Store(built["out"]).runs(task=demo.TASK).shape[0]
    tasks = Store(out).tasks().set_index("task")
    assert set(tasks.index) == {"sim-other", demo.TASK}
    assert tasks.loc["sim-other", "description"] == "simulated"
    assert len(Store(out).instances(task="sim-other")) == 1
    before = queue.counts(Store(built["work"]))["finished"]
    assert before == len(queue.jobs(Store(built["work"])))
    with pytest.raises(demo.DemoError, match="must differ"):
        demo.run_demo(built["work"], Q, work=built["work"], log=lambda m: None)


def test_pretraining_seed_sets_weights_and_data_order(store, tmp_path):
    def run(seed: int, name: str, job: int):
        spec = pretrain_spec("rotten_tomatoes", "L1-H032", seed, tmp_path / name, epochs=1.0,
                             batch_size=16, max_seq_length=24, max_train_examples=64)
        return run_pretrain_job(store, job, spec, progress=lambda *a: True)

    from safetensors.numpy import load_file

    a, b, c = run(3, "a", 1), run(3, "b", 2), run(4, "c", 3)
    wa, wb, wc = (load_file(r.run_dir / "model.safetensors") for r in (a, b, c))
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)  # same seed: same model
    assert a.accuracy == b.accuracy
    assert any(not np.allclose(wa[k], wc[k]) for k in wa)
    # A finished folder is kept, not trained again.
    again = run(3, "a", 4)
    assert again.run_dir == a.run_dir and again.accuracy == a.accuracy


def test_masking_and_size_names():
    import torch

    ids = torch.arange(5, 5 + 4000).reshape(200, 20)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    g = torch.Generator().manual_seed(0)
    inputs, labels = mask_tokens(ids, special, 4005, g)
    chosen = labels != -100
    assert not chosen[:, 0].any()
    assert 0.13 < chosen.float().mean() / 0.95 < 0.17
    assert torch.equal(labels[chosen], ids[chosen])
    masked = (inputs == 4) & chosen
    assert 0.75 < masked.sum() / chosen.sum() < 0.85
    assert torch.equal(inputs[~chosen], ids[~chosen])
    assert parse_size("L4-H128") == (4, 128) and parse_size("L2-H064") == (2, 64)
    with pytest.raises(JobFailed, match="multiple of 32"):
        parse_size("L2-H50")


def test_publish_only_copies_a_finished_study(built, tmp_path):
    other = tmp_path / "published"
    assert cli(["--home", str(other), "demo", "--publish-only", "--work", str(built["work"])]) == 0
    a, b = Store(built["out"]), Store(other)
    assert len(b.runs(task=demo.TASK)) == len(a.runs(task=demo.TASK))
    pa_, pb = (s.predictions(task=demo.TASK).sort_values(["size", "pretrain_seed",
                                                          "finetune_seed", "checkpoint",
                                                          "instance_id"])
               for s in (a, b))
    np.testing.assert_array_equal(pa_["p_correct"].to_numpy(), pb["p_correct"].to_numpy())
    assert json.loads((other / demo.MANIFEST).read_text()) == \
        json.loads((built["work"] / demo.MANIFEST).read_text())
    assert cli(["--home", str(tmp_path / "x"), "demo", "--publish-only",
                "--work", str(tmp_path / "nothing")]) == 2


def test_app_opens_on_the_published_study(built):
    pytest.importorskip("streamlit")
    from app_support import app_test

    at = app_test(built["out"])
    task = next(w for w in at.sidebar.selectbox if w.label == "Task")
    assert task.value == demo.TASK
    banner = [i.value for i in at.info if "Miniature study" in i.value]
    assert banner and f"{Q.max_eval_examples} instances" in banner[0]
    assert not any("Simulated data" in w.value for w in at.warning)


def test_the_shipped_study_is_what_its_manifest_says(tmp_path):
    """``data/`` (as git ships it: no catalogue, no cache) holds the full recipe's study,
    and the manifest's accuracy table is what its predictions give."""
    import shutil

    repo_data = Path(__file__).resolve().parents[1] / "data"
    manifest = json.loads((repo_data / demo.MANIFEST).read_text())
    home = tmp_path / "data"
    shutil.copytree(repo_data, home, ignore=shutil.ignore_patterns("catalog.sqlite*", "cache",
                                                                    ".write.lock"))
    shipped = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
    assert shipped < 20 * 2**20
    recipe = manifest["recipe"]
    full = demo.FULL
    assert recipe["sizes"] == list(full.sizes) and recipe["name"] == "full"
    assert recipe["finetune_epochs"] == full.finetune_epochs
    assert recipe["finetune_learning_rate"] == full.finetune_learning_rate
    store = Store(home)
    runs = store.runs(task=demo.TASK)
    assert len(runs) == len(full.sizes) * len(full.pretrain_seeds) * len(full.finetune_seeds)
    acc = store.run_accuracy(demo.TASK, checkpoint="all")
    last = acc[acc["checkpoint"] == max(full.checkpoints)]
    assert sorted(acc["checkpoint"].round(4).unique()) == [round(c, 4) for c in full.checkpoints]
    assert len(last) == len(runs)
    assert (last["n"] == manifest["n_eval_instances"]).all()
    majority = manifest["majority_class_rate"]
    assert (last["accuracy"] > majority + 0.1).all()  # every run learned
    means = {}
    for size, group in last.groupby("size"):
        stated = manifest["sizes"][size]["accuracy"]
        assert stated["n"] == len(group) == 25
        assert stated["mean"] == pytest.approx(group["accuracy"].mean(), abs=1e-4)
        assert stated["std"] == pytest.approx(group["accuracy"].std(ddof=1), abs=1e-4)
        means[size] = group["accuracy"].mean()
    assert max(means, key=means.get) == full.sizes[-1]  # the largest size is the best
    masks = store.masks(task=demo.TASK)
    for size in full.sizes:
        kept = masks[masks["setting"] == f"seedlab-heads_mlps-{size}"]
        assert sorted(kept["seed"].unique()) == list(full.pretrain_seeds)


def test_a_rebuild_reuses_the_published_vocabulary_and_reproduces_the_models(built, tmp_path):
    """The WordPiece trainer breaks frequency ties differently in every process; the
    published vocabulary is reused by a rebuild, which then gives the same predictions."""
    import shutil

    out = built["out"]
    published = sorted((out / demo.VOCABULARIES).iterdir())
    assert len(published) == 1 and (published[0] / "tokenizer.json").is_file()
    manifest = json.loads((out / demo.MANIFEST).read_text())
    assert manifest["vocabulary"]["names"] == [published[0].name]
    again = tmp_path / "home"
    shutil.copytree(out / demo.VOCABULARIES, again / demo.VOCABULARIES)
    assert cli(["--home", str(again), "demo", "--quick", "--work", str(tmp_path / "work")]) == 0
    rebuilt = json.loads((again / demo.MANIFEST).read_text())
    assert rebuilt["vocabulary"]["reused_from_destination"] is True
    model = tmp_path / "work" / "models" / f"{demo.TASK}-{Q.sizes[0]}-p{Q.pretrain_seeds[0]}"
    assert (model / "tokenizer.json").read_bytes() == (
        built["work"] / "models" / model.name / "tokenizer.json").read_bytes()
    first, second = Store(out), Store(again)
    keys = ["size", "pretrain_seed", "finetune_seed", "checkpoint", "instance_id"]
    a = first.predictions(task=demo.TASK).sort_values(keys).reset_index(drop=True)
    b = second.predictions(task=demo.TASK).sort_values(keys).reset_index(drop=True)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a["pred"], b["pred"])
    np.testing.assert_allclose(a["p_correct"], b["p_correct"], rtol=0, atol=1e-6)
