"""``spec.grid_from_fields``: the one reading of form and command-line fields into a grid
(the Runs page and ``seedlab runs submit`` both build their grids with it)."""

from __future__ import annotations

import argparse

import pytest

from seedlab.errors import InputError
from seedlab.runs import cli, spec


def test_blank_and_missing_fields_take_the_spec_defaults():
    grid = spec.grid_from_fields({
        "task": " rotten_tomatoes ", "model": ["tiny-bert"], "size": ["L2-H032"],
        "pretrain_seed": ["0"], "finetune_seeds": ["1", "2"], "checkpoints": ["0.5", "1"],
        "epochs": 1.0, "data": "  ", "intermediate_task": "", "max_train_examples": None,
        "prune": False}, "the form")
    assert grid == spec.parse_grid({
        "task": "rotten_tomatoes", "model": "tiny-bert", "size": ["L2-H032"],
        "pretrain_seed": ["0"], "finetune_seeds": [1, 2], "checkpoints": [0.5, 1.0],
        "epochs": 1.0}, "the form")
    assert grid.options["checkpoints"] == (0.5, 1.0)
    assert "data" not in grid.options and "prune" not in grid.options
    assert [j.finetune_seed for j in grid.expand()] == [1, 2]


def test_several_models_stay_a_list_one_per_pretraining_seed():
    grid = spec.grid_from_fields({"task": "t", "model": ["a", "b"], "size": ["s"],
                                  "pretrain_seed": ["0", "1"], "finetune_seeds": [1],
                                  "prune": True}, "the form")
    assert [j.model for j in grid.expand()] == ["a", "b"]
    assert grid.options["prune"] == spec.DEFAULT_PRUNE


@pytest.mark.parametrize("checkpoint", ["nan", "inf", "-inf", float("nan")])
def test_a_checkpoint_that_is_not_finite_is_refused_with_its_field(checkpoint):
    with pytest.raises(InputError) as err:
        spec.grid_from_fields({"task": "t", "model": "m", "size": ["s"], "pretrain_seed": ["0"],
                               "finetune_seeds": [1], "checkpoints": [1, checkpoint]},
                              "the form")
    assert err.value.field == "checkpoints"
    assert "is not a finite number" in str(err.value)


def test_the_command_line_reads_its_flags_through_the_same_helper():
    args = argparse.Namespace(
        spec=None, task="rotten_tomatoes", data=None, model=["tiny-bert"], size=["L2-H032"],
        pretrain_seed=["0"], finetune_seeds=[1, 2], checkpoints=[0.5, 1.0], epochs=1.0,
        learning_rate=None, batch_size=None, max_seq_length=None, warmup=None,
        max_train_examples=None, max_eval_examples=None, intermediate_task=None,
        intermediate_data=None, prune=False)
    assert cli._grid_from_args(args) == spec.grid_from_fields({
        "task": "rotten_tomatoes", "model": ["tiny-bert"], "size": ["L2-H032"],
        "pretrain_seed": ["0"], "finetune_seeds": ["1", "2"], "checkpoints": ["0.5", "1"],
        "epochs": 1.0}, "command line")
