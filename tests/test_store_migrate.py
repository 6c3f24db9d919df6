"""Stores written before tasks had one name: `seedlab migrate` brings both spellings together."""

from __future__ import annotations

import pandas as pd
import pytest

from seedlab.cli import main
from seedlab.errors import StoreError
from seedlab.simulate import simulate, write_study
from seedlab.store import Store
from seedlab.store.migrate import canonical_tasks, pending


def _masks(seed: int) -> pd.DataFrame:
    return pd.DataFrame({"seed": [seed] * 4, "component": ["head"] * 4, "layer": [0, 0, 1, 1],
                         "head": [0, 1, 0, 1], "kept": [True, False, True, True],
                         "importance": [0.5, 0.1, 0.4, 0.3]})


def _old_store(tmp_path) -> Store:
    """Predictions and verdicts under `mnli` (the Zhong importer's old spelling) and
    pruning masks under `MNLI` (the lottery importer's), as a store of the last round held."""
    store = Store(tmp_path / "home")
    write_study(store, simulate(30, sizes=("base", "large"), pretrain_seeds=2, finetune_seeds=2,
                                checkpoints=1, n_classes=3, seed=1, task="mnli"))
    labels = store.label_list("mnli")
    with store.transaction("lottery", "old lottery import") as tx:
        tx.set_task("MNLI", labels, source="lottery")
        tx.add_masks("heads", "MNLI", _masks(1))
        tx.add_masks("heads_mlps", "MNLI", _masks(2))
    instance = str(store.instances("mnli")["instance_id"].iloc[3])
    store.annotate("mnli", instance, "ana", "wrong", note="label is off")
    store.annotate("mnli", instance, "ben", "reasonable")
    return store


def test_both_spellings_become_one_task(tmp_path):
    store = _old_store(tmp_path)
    before = store.arrays("mnli", "large")
    assert pending(store) == {"mnli": "MNLI"}

    renamed = canonical_tasks(store)
    assert [(r.old, r.new, r.runs, r.mask_settings, r.verdicts) for r in renamed] == [
        ("mnli", "MNLI", 8, 0, 2)]
    assert list(store.tasks()["task"]) == ["MNLI"]
    assert len(store.runs(task="MNLI")) == 8 and store.runs(task="mnli").empty
    after = store.arrays("MNLI", "large")
    assert (after.correct == before.correct).all()
    assert list(after.instance_ids) == list(before.instance_ids)
    assert sorted(store.masks(task="MNLI")["setting"].unique()) == ["heads", "heads_mlps"]
    verdicts = store.annotations(task="MNLI", current=False).sort_values("annotator")
    assert list(verdicts["annotator"]) == ["ana", "ben"]
    assert list(verdicts["verdict"]) == ["wrong", "reasonable"]
    assert list(verdicts["note"]) == ["label is off", ""]
    provenance = store.runs(task="MNLI")["provenance"].iloc[0]
    assert "mnli" in str(provenance)
    assert not pending(store)
    assert canonical_tasks(store) == []  # a second run changes nothing


def test_a_reopened_store_and_a_rebuilt_catalogue_agree(tmp_path):
    store = _old_store(tmp_path)
    canonical_tasks(store)
    (store.home / "catalog.sqlite").unlink()
    rebuilt = Store(store.home)
    assert list(rebuilt.tasks()["task"]) == ["MNLI"]
    assert len(rebuilt.runs(task="MNLI")) == 8
    assert len(rebuilt.annotations(task="MNLI", current=False)) == 2


def test_different_label_lists_are_refused_and_nothing_changes(tmp_path):
    store = Store(tmp_path / "home")
    write_study(store, simulate(20, sizes=("base",), pretrain_seeds=1, finetune_seeds=1,
                                checkpoints=1, seed=2, task="sst2"))
    with store.transaction("lottery", "x") as tx:
        tx.set_task("SST-2", ["neg", "pos"])
        tx.add_masks("heads", "SST-2", _masks(1))
    version = store.version()
    with pytest.raises(StoreError, match="different label lists"):
        canonical_tasks(store)
    assert store.version() == version
    assert sorted(store.tasks()["task"]) == ["SST-2", "sst2"]


def test_the_command(tmp_path, capsys):
    store = _old_store(tmp_path)
    assert main(["--home", str(store.home), "info"]) == 0
    assert "(mnli -> MNLI): `seedlab migrate`" in capsys.readouterr().out
    assert main(["--home", str(store.home), "migrate"]) == 0
    assert "mnli -> MNLI: 8 runs, 0 mask settings, 2 verdicts" in capsys.readouterr().out
    assert main(["--home", str(store.home), "migrate"]) == 0
    assert "already has its canonical name" in capsys.readouterr().out
