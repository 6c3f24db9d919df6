"""The fine-tune job and the job infrastructure (runs.finetune, runs.jobs, runs.device,
runs.trainer): dynamic padding, length-sorted evaluation back in instance order, seeds
deciding the result, fractional checkpoints, cancellation, atomic folders, and the
module structure (no import cycles, no private names across modules). CPU only; tiny
local BERTs, real Rotten Tomatoes snippets; nothing downloads."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from seedlab.errors import InputError
from seedlab.runs import device as device_mod
from seedlab.runs import finetune, jobs, queue, spec, tasks, tiny, trainer
from seedlab.runs.spec import JobSpec

N_TRAIN, N_EVAL = 96, 40


@pytest.fixture(scope="module")
def rt() -> tasks.TaskData:
    return tasks.load_task("rotten_tomatoes", max_train=N_TRAIN, max_eval=N_EVAL)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, rt) -> Path:
    return tiny.build_tiny_bert(tmp_path_factory.mktemp("tiny") / "p0", rt.train["text_a"], seed=0)


def _spec(model_dir: Path, **kw) -> JobSpec:
    base = {"task": "rotten_tomatoes", "model": str(model_dir), "size": "tiny",
            "pretrain_seed": "0", "finetune_seed": 3, "epochs": 1.0, "checkpoints": (0.5, 1.0),
            "batch_size": 16, "max_seq_length": 48, "learning_rate": 2e-3,
            "max_train_examples": N_TRAIN, "max_eval_examples": N_EVAL}
    return JobSpec(**{**base, **kw})


def _never_stop(*_args) -> bool:
    return True


def _train(model_dir, rt, **kw) -> finetune.Finetuned:
    job = _spec(model_dir, **kw)
    return finetune.finetune(job, model_dir, rt, phase="target",
                             precision=device_mod.precision_for("cpu"), progress=_never_stop,
                             log=lambda _m: None, checkpoints=job.checkpoints)


def test_encode_pads_the_split_to_its_longest_and_each_batch_to_its_own(model_dir, rt):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    enc = finetune.encode(tokenizer, rt.eval, max_len=48)
    one_by_one = [len(tokenizer(t, truncation=True, max_length=48)["input_ids"])
                  for t in rt.eval["text_a"]]
    assert enc.lengths.tolist() == one_by_one
    assert enc.tensors["input_ids"].shape == (N_EVAL, max(one_by_one))
    rows = torch.tensor([3, 0, 7])
    batch = enc.batch(rows)
    width = max(one_by_one[i] for i in (3, 0, 7))
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        k: (3, width) for k in enc.tensors}
    # The rows keep their tokens; only the padding columns beyond the batch's longest go.
    for j, i in enumerate(rows.tolist()):
        assert batch["attention_mask"][j].sum() == one_by_one[i]
        assert batch["input_ids"][j, :one_by_one[i]].tolist() == tokenizer(
            rt.eval["text_a"][i], truncation=True, max_length=48)["input_ids"]
    # Eval batches: every row once, longest first, each batch at most batch_size.
    order = np.concatenate(list(finetune.eval_batches(enc, 16)))
    assert sorted(order.tolist()) == list(range(N_EVAL))
    assert (np.diff(enc.lengths[order]) <= 0).all()


def test_predict_puts_length_sorted_batches_back_in_instance_order(model_dir, rt):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2).eval()
    enc = finetune.encode(tokenizer, rt.eval, max_len=48)
    probs = finetune.predict(model, enc, batch_size=8, precision=device_mod.precision_for("cpu"))
    assert probs.shape == (N_EVAL, 2) and probs.dtype == np.float32
    with torch.no_grad():
        for i in (0, 5, N_EVAL - 1):
            alone = tokenizer(rt.eval["text_a"][i], truncation=True, max_length=48,
                              return_tensors="pt")
            want = torch.softmax(model(**alone).logits, -1)[0].numpy()
            np.testing.assert_allclose(probs[i], want, atol=1e-5)


def test_eval_steps_put_fractional_checkpoints_on_the_nearest_step():
    assert finetune.eval_steps((0.5, 1.0), steps_per_epoch=6, total=6) == {3: [0.5], 6: [1.0]}
    assert finetune.eval_steps((3, 3.33, 3.67, 4), 3, 12) == {9: [3], 10: [3.33], 11: [3.67],
                                                               12: [4]}
    # Two checkpoints on one step share its predictions; none before step 1 or after the end.
    assert finetune.eval_steps((0.01, 0.02, 9.0), 10, 20) == {1: [0.01, 0.02], 20: [9.0]}


def test_the_same_spec_gives_the_same_predictions_and_the_seed_changes_them(model_dir, rt):
    first = _train(model_dir, rt)
    again = _train(model_dir, rt)
    assert sorted(first.evals) == [0.5, 1.0]
    for c in (0.5, 1.0):
        np.testing.assert_array_equal(first.evals[c], again.evals[c])
    assert not np.array_equal(first.evals[0.5], first.evals[1.0])  # it trained in between
    other = _train(model_dir, rt, finetune_seed=4)
    assert not np.allclose(other.evals[1.0], first.evals[1.0])


def test_progress_sees_every_step_and_cancelling_stops_the_job_leaving_nothing(store, model_dir):
    job = _spec(model_dir)
    [job_id] = queue.submit(store, [job])
    seen = []

    def stop_at_four(phase, step, total, loss):
        seen.append((phase, step, total, loss is not None))
        return step < 4

    with pytest.raises(jobs.JobCancelled):
        trainer.run_job(store, job_id, job, progress=stop_at_four)
    assert seen == [("target", s, 6, True) for s in range(1, 5)]
    root = jobs.runs_root(store)
    assert not list(root.glob("job-*")) and not list(root.glob(".tmp-*"))
    assert store.runs().empty


def test_run_job_writes_the_folder_registers_it_and_records_the_precision(store, model_dir):
    job = _spec(model_dir)
    [job_id] = queue.submit(store, [job])
    steps = []
    result = trainer.run_job(store, job_id, job,
                             progress=lambda p, s, t, loss: steps.append(s) or True)
    assert steps == list(range(1, 7))
    assert result.run_dir == finetune.final_dir(store, job_id, job)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["device"] == "cpu" and config["precision"] == "fp32"
    assert config["spec"]["checkpoints"] == [0.5, 1.0]
    arrays = store.arrays("rotten_tomatoes", "tiny", checkpoint="all")
    assert arrays.shape == (N_EVAL, 1, 1, 2) and arrays.checkpoints == [0.5, 1.0]
    provenance = json.loads(store.runs()["provenance"][0])
    assert provenance["precision"] == "fp32" and provenance["job_id"] == job_id
    # Registering the same folder again changes nothing.
    assert finetune.register(store, result.run_dir).run_id == result.run_id
    assert len(store.runs()) == 1


def test_unknown_job_kind_is_refused_in_plain_words(store):
    job = JobSpec(task="t", model="m", size="s", pretrain_seed="0", finetune_seed=1, kind="rl")
    with pytest.raises(jobs.JobFailed, match="job kind 'rl' is not supported"):
        trainer.run_job(store, 1, job, progress=_never_stop)


def test_loss_meter_reads_late_on_request_and_fails_on_a_non_finite_loss():
    meter = device_mod.LossMeter("target", "cpu", every=3)
    assert meter.add(1, torch.tensor(1.0)) is None and meter.add(2, torch.tensor(2.0)) is None
    assert meter.add(3, torch.tensor(3.0)) == pytest.approx(0.9 * (0.9 * 1 + 0.1 * 2) + 0.3)
    meter.add(4, torch.tensor(1.0))
    assert meter.read() == pytest.approx(0.9 * 1.29 + 0.1)
    meter.add(5, torch.tensor(float("nan")))
    with pytest.raises(jobs.JobFailed, match="target: the loss became nan at step 5; lower the"
                                             " learning rate"):
        meter.read()
    assert device_mod.LossMeter("x", "cuda").every > 1  # the GPU is not waited for each step


def test_precision_on_cpu_is_fp32_without_pinning_or_scaler():
    p = device_mod.precision_for("cpu")
    assert (p.dtype, p.pin, p.cuda, p.scaler()) == ("fp32", False, False, None)
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long)}
    assert p.to_device(batch)["input_ids"] is batch["input_ids"]
    with p.autocast():
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_adamw_leaves_biases_and_layernorms_undecayed(model_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    opt = device_mod.adamw(model, 1e-3, 0.01, "cpu")
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in opt.param_groups[0]["params"]}
    undecayed = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert opt.param_groups[0]["weight_decay"] == 0.01 and opt.param_groups[1]["weight_decay"] == 0
    assert all(n.endswith(("bias", "LayerNorm.weight")) for n in undecayed)
    assert "classifier.weight" in decayed and "classifier.bias" in undecayed
    assert opt.defaults["fused"] is True
    assert device_mod.adamw(model, 1e-3, 0.01, "cpu", fused=False).defaults["fused"] in (None,
                                                                                          False)


def test_atomic_folder_moves_into_place_or_leaves_nothing(tmp_path):
    final = tmp_path / "out" / "model"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".tmp-model-dead").mkdir()  # an earlier attempt's leftovers
    with jobs.atomic_folder(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".tmp-model-")
        (tmp / "a.txt").write_text("x")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "x"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model"]
    with pytest.raises(RuntimeError), jobs.atomic_folder(tmp_path / "out" / "other") as tmp:
        (tmp / "b.txt").write_text("y")
        raise RuntimeError("crash")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model"]
    # A second writer of a folder that exists loses: OSError, its temporary folder removed.
    with pytest.raises(OSError), jobs.atomic_folder(final, clean_stale=False) as tmp:
        (tmp / "c.txt").write_text("z")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model"]


def test_read_json_names_the_file_and_what_it_should_hold(tmp_path):
    path = tmp_path / "config.json"
    with pytest.raises(InputError, match=r"config.json: missing \(expected a run config\)"):
        jobs.read_json(path, "a run config")
    path.write_text("{\n  'job_id': 1\n}")
    with pytest.raises(InputError, match=r"config.json, line 2: not JSON"):
        jobs.read_json(path, "a run config")
    path.write_text("[1]")
    with pytest.raises(InputError, match="holds a list, not an object"):
        jobs.read_json(path, "a run config")
    path.write_text('{"job_id": 1}')
    assert jobs.read_json(path, "a run config") == {"job_id": 1}


# ---------------------------------------------------------------------------------------
# Structure (issue 14): the job modules import one way, and only public names.

RUNS = Path(finetune.__file__).parent
MINE = {"trainer", "finetune", "jobs", "device", "pretrain", "catalogue", "tiny", "pruning",
        "tasks"}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in ``path``, function-local ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def _runs_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in RUNS.glob("*.py"):
        edges = set()
        for module, names in _imports(path):
            if module.startswith("seedlab.runs."):
                edges.add(module.split(".")[2])
            elif module == "seedlab.runs":
                edges.update(n for n in names if (RUNS / f"{n}.py").exists())
        graph[path.stem] = edges - {path.stem}
    return graph


def test_no_import_cycle_through_the_job_modules():
    graph = _runs_graph()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(m for m in MINE if m in graph and reaches(m, m, {m}))
    assert cycles == []
    assert "trainer" not in graph["pretrain"] and "trainer" not in graph["finetune"]
    assert graph["jobs"] == set()  # the shared infrastructure depends on no job


def test_job_modules_take_no_private_names_from_other_modules():
    offenders = []
    for name in sorted(MINE):
        tree = ast.parse((RUNS / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seedlab"):
                offenders += [f"{name}: from {node.module} import {a.name}" for a in node.names
                              if a.name.startswith("_") and a.name != "__version__"]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
                    and node.value.id in MINE | {"queue", "spec", "worker", "store", "executor"}):
                offenders.append(f"{name}: {node.value.id}.{node.attr}")
    assert offenders == []


def test_spec_grid_of_an_offline_name_expands(tmp_path):
    grid = spec.parse_grid({"task": "rotten_tomatoes", "model": "tiny-bert", "size": "tiny",
                            "pretrain_seed": "0", "finetune_seeds": [1, 2]})
    assert [j.model for j in grid.expand()] == ["tiny-bert", "tiny-bert"]
