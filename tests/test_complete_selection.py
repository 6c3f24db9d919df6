"""Default selections come from what is complete, and an incomplete size is named.

A complete study (the fixture: 3 sizes x 3 x 3 seeds) plus one extra size a user ran once
(size ``huge``, pretraining seed "0" or a new seed "9", fine-tuning seed 1): the app opens
on the study, Bias and variance, Decaying and Significance work, and selecting the extra
size names it as the thing to deselect."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from app_support import N_NLI, app_test, make_fixture_home

from seedlab.analyses.query import complete_grid, missing_runs_advice
from seedlab.store import RunData, Store


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_fixture_home(tmp_path_factory.mktemp("complete") / "study")


def with_user_runs(study, tmp_path, cells):
    """A copy of the study plus one run of size ``huge`` per (pretraining seed, fine-tuning
    seed) in ``cells``."""
    home = tmp_path / "home"
    shutil.copytree(study, home)
    store = Store(home, create=False)
    ids = [f"nli-{i:03d}" for i in range(N_NLI)]
    probs = np.full((N_NLI, 3), 1 / 3)
    with store.transaction("test", "a user's tiny run") as tx:
        for pretrain_seed, finetune_seed in cells:
            tx.add_run(RunData("nli_sim", "huge", pretrain_seed, finetune_seed, pa.table({
                "checkpoint": [1.0] * N_NLI, "instance_id": ids, "pred": [0] * N_NLI,
                "correct": [True] * N_NLI, "p_correct": probs[:, 0].tolist(),
                "probs": probs.tolist()}), source="user", model="bert-huge"))
    return home


def sidebar_value(at, label):
    return next(w for w in [*at.sidebar.multiselect, *at.sidebar.selectbox]
                if w.label == label).value


def warnings(at):
    return [w.value.replace("\\", "") for w in [*at.warning, *at.sidebar.warning]]


@pytest.mark.parametrize("cell", [("0", 1), ("9", 1)], ids=["known seed", "new seed"])
def test_a_users_one_run_of_a_new_size_stays_out_of_the_default_selection(study, tmp_path,
                                                                          cell):
    home = with_user_runs(study, tmp_path, [cell])
    at = app_test(home)
    assert not at.exception
    assert sidebar_value(at, "Sizes") == ["tiny", "mini", "base"]
    assert sidebar_value(at, "Pretraining seeds") == ["0", "1", "2"]
    assert sidebar_value(at, "Fine-tuning seeds") == [1, 2, 3]
    assert not [w for w in warnings(at) if "deselect" in w]
    for page in ("bias_variance", "decaying", "significance"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page
        assert not [w for w in warnings(at) if "needs every selected" in w], page
    at.switch_page("pages/significance.py").run()
    assert "huge" not in str(next(s for s in at.selectbox
                                  if s.key == "significance.base_size").options)


def test_selecting_the_incomplete_size_names_it_as_the_thing_to_deselect(study, tmp_path):
    home = with_user_runs(study, tmp_path, [("0", 1)])
    at = app_test(home, "pages/bias_variance.py",
                  query={"sizes": ["tiny", "mini", "base", "huge"]})
    assert not at.exception
    advice = ("size huge has runs for only 1 of the 9 selected seed pairs, (p0, f1):"
              " deselect size huge.")
    assert any(w.startswith("Size huge has runs for only 1 of the 9") and "deselect size huge"
               in w for w in warnings(at)), warnings(at)
    page = [w for w in warnings(at) if "needs every selected" in w]
    assert page and page[0].endswith(advice), page
    assert "Deselect those seeds" not in " ".join(warnings(at))


def test_the_published_studys_manifest_gives_the_default_selection(study, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(study, home)
    (home / "demo_manifest.json").write_text(json.dumps({
        "task": "nli_sim", "recipe": {"sizes": ["tiny", "base"]},
        "seeds": {"pretrain": [0, 1], "finetune": [1, 3]}}))
    at = app_test(home)
    assert not at.exception
    assert sidebar_value(at, "Task") == "nli_sim"
    assert sidebar_value(at, "Sizes") == ["tiny", "base"]
    assert sidebar_value(at, "Pretraining seeds") == ["0", "1"]
    assert sidebar_value(at, "Fine-tuning seeds") == [1, 3]


def runs_table(cells):
    return pd.DataFrame(cells, columns=["size", "pretrain_seed", "finetune_seed"])


def full(sizes, pretrain, finetune):
    return [(s, p, f) for s in sizes for p in pretrain for f in finetune]


def test_complete_grid_keeps_the_study_and_leaves_out_partial_sizes_and_seeds():
    cells = full(["a", "b"], ["0", "1"], [1, 2]) + [("c", "0", 1), ("c", "9", 1)]
    grid = complete_grid(runs_table(cells), ["a", "b", "c"], ["0", "1", "9"], [1, 2])
    assert (grid.sizes, grid.pretrain_seeds, grid.finetune_seeds) == (
        ("a", "b"), ("0", "1"), (1, 2))
    # A pretraining seed of the reference size that lacks a fine-tuning seed is left out.
    cells = full(["a"], ["0", "1", "2"], [1, 2]) + [("a", "3", 1)]
    grid = complete_grid(runs_table(cells), ["a"], ["0", "1", "2", "3"], [1, 2])
    assert grid.pretrain_seeds == ("0", "1", "2") and grid.finetune_seeds == (1, 2)
    # The manifest's study wins where the store has all of it.
    study = {"recipe": {"sizes": ["b"]}, "seeds": {"pretrain": [1], "finetune": [2]}}
    grid = complete_grid(runs_table(full(["a", "b"], ["0", "1"], [1, 2])), ["a", "b"],
                         ["0", "1"], [1, 2], study)
    assert (grid.sizes, grid.pretrain_seeds, grid.finetune_seeds) == (("b",), ("1",), (2,))
    # No runs: everything.
    assert complete_grid(runs_table([]), ["a"], ["0"], [1]).sizes == ("a",)


def test_missing_runs_advice_names_the_size_or_the_seeds():
    seeds_p, seeds_f = ["0", "1", "2"], [1, 2, 3]
    everything = [(p, f) for p in seeds_p for f in seeds_f]
    one_run = [c for c in everything if c != ("0", 1)]
    assert missing_runs_advice("huge", seeds_p, seeds_f, one_run) == (
        "size huge has runs for only 1 of the 9 selected seed pairs, (p0, f1):"
        " deselect size huge.")
    assert missing_runs_advice("huge", seeds_p, seeds_f, everything) == (
        "size huge has no runs for the selected seeds: deselect size huge.")
    # One pretraining seed missing every run: deselect it (3 runs), not 2 fine-tuning seeds.
    seed_2 = [("2", 1), ("2", 2), ("2", 3)]
    assert missing_runs_advice("base", seeds_p, seeds_f, seed_2) == (
        "size base lacks 3 of the 9 selected runs ((p2, f1), (p2, f2), (p2, f3)):"
        " deselect pretraining seed 2 (or size base).")
    assert missing_runs_advice("base", seeds_p, seeds_f, [("0", 3), ("1", 3)]) == (
        "size base lacks 2 of the 9 selected runs ((p0, f3), (p1, f3)):"
        " deselect fine-tuning seed 3 (or size base).")
