"""The simulator: shapes, reproducibility, planted structure, the store and Zhong writers,
the CLI, and recovery of the planted truth by ``seedlab.stats``."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from seedlab.cli import main
from seedlab.errors import DuplicateRunError, InputError
from seedlab.simulate import (
    SimulationParams,
    checkpoint_values,
    simulate,
    write_study,
    write_zhong_release,
)
from seedlab.store import Store

SIZES5 = ["mini", "small", "medium", "base", "large"]


@pytest.fixture(scope="module")
def five_sizes():
    """2,000 instances, 5 sizes, 6 x 5 seeds, 4 checkpoints (defaults otherwise)."""
    return simulate(2000, SIZES5, 6, 5, 4, seed=11)


# -- shapes and names ----------------------------------------------------------------------


def test_checkpoints_are_zhongs_epochs():
    assert checkpoint_values(4) == pytest.approx([3.0, 10 / 3, 11 / 3, 4.0])
    assert checkpoint_values(1) == [4.0]
    with pytest.raises(ValueError, match="between 1 and 12"):
        checkpoint_values(13)


def test_shapes_names_and_planted_counts():
    study = simulate(300, ["mini", "large"], 3, 2, 4, n_classes=3, decaying_share=0.1,
                     wrong_label_share=0.05, seed=2, task="sim-nli")
    a = study.arrays("large")
    assert a.p_correct.shape == a.pred.shape == a.correct.shape == (300, 3, 2, 4)
    assert a.p_correct.dtype == np.float32
    probs = study.probs("mini")
    assert probs.shape == (300, 3, 2, 4, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-6)
    assert study.pretrain_seeds == ["0", "1", "2"]
    assert study.finetune_seeds == [1, 2]
    assert study.label_list == ["contradiction", "entailment", "neutral"]
    # Exact planted counts, disjoint groups; a wrong gold label is the confuser class.
    assert study.decaying.sum() == 30 and study.wrong_label.sum() == 15
    assert not (study.decaying & study.wrong_label).any()
    assert (study.labels[study.wrong_label] != study.true_labels[study.wrong_label]).all()
    assert (study.labels[~study.wrong_label] == study.true_labels[~study.wrong_label]).all()
    # 3 classes default to sentence pairs; texts are short non-empty strings.
    assert study.text_b is not None and all(0 < len(t) < 80 for t in study.text_b)
    single = simulate(50, ["base"], 2, 2, 1, seed=2)
    assert single.text_b is None and single.label_list == ["0", "1"]
    assert single.arrays("base").p_correct.shape == (50, 2, 2, 1)


def test_scores_follow_from_probabilities():
    study = simulate(400, ["small", "large"], 2, 3, 2, n_classes=3, seed=5)
    probs = study.probs("large")
    a = study.arrays("large")
    np.testing.assert_array_equal(a.pred, probs.argmax(axis=-1))
    gold = study.labels[:, None, None, None]
    np.testing.assert_array_equal(a.correct, a.pred == gold)
    gold_probs = np.take_along_axis(probs, gold[..., None], -1)[..., 0]
    np.testing.assert_array_equal(a.p_correct, gold_probs)
    run = study.run("large", 1, 2)
    np.testing.assert_array_equal(run.p_correct, a.p_correct[:, 1, 2])
    np.testing.assert_array_equal(run.probs, probs[:, 1, 2])


def test_decimals_round_the_probabilities_and_keep_sums():
    study = simulate(300, ["base"], 2, 2, 2, n_classes=3, decimals=2, seed=6)
    probs = study.probs("base").astype(np.float64)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs, np.round(probs, 2), atol=1e-6)
    exact = simulate(300, ["base"], 2, 2, 2, n_classes=3, seed=6)
    assert np.abs(probs - exact.probs("base")).max() < 0.011
    with pytest.raises(ValueError, match="decimals"):
        simulate(10, ["base"], 2, 2, 1, decimals=0)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="decaying_share"):
        simulate(10, ["base"], 2, 2, 1, decaying_share=1.5)
    with pytest.raises(ValueError, match="not a valid name"):
        simulate(10, ["base"], 2, 2, 1, task="a b")
    with pytest.raises(ValueError, match="repeat"):
        simulate(10, ["base", "base"], 2, 2, 1)
    with pytest.raises(ValueError, match="n_classes"):
        simulate(10, ["base"], 2, 2, 1, n_classes=1)


# -- reproducibility -----------------------------------------------------------------------


def test_same_seed_same_study_other_seed_other_study():
    one = simulate(200, ["mini", "large"], 3, 2, 2, seed=7)
    two = simulate(200, ["mini", "large"], 3, 2, 2, seed=7)
    other = simulate(200, ["mini", "large"], 3, 2, 2, seed=8)
    for name in ("difficulty", "labels", "decaying", "wrong_label"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    np.testing.assert_array_equal(one.arrays("large").p_correct, two.arrays("large").p_correct)
    assert list(one.text_a) == list(two.text_a)
    assert not np.array_equal(one.difficulty, other.difficulty)
    assert not np.array_equal(one.arrays("large").p_correct, other.arrays("large").p_correct)


def test_adding_pretraining_seeds_keeps_the_existing_ones():
    few = simulate(150, ["base"], 2, 3, 2, seed=4)
    more = simulate(150, ["base"], 4, 3, 2, seed=4)
    np.testing.assert_array_equal(few.arrays("base").p_correct,
                                  more.arrays("base").p_correct[:, :2])


# -- planted structure ---------------------------------------------------------------------


def test_larger_sizes_are_better_on_ordinary_instances(five_sizes):
    study = five_sizes
    ordinary = ~study.decaying & ~study.wrong_label
    acc = [study.arrays(s).correct[ordinary].mean() for s in SIZES5]
    assert all(b > a + 0.005 for a, b in itertools.pairwise(acc)), acc
    # The closed-form expected accuracy agrees with the sampled one.
    for size in ("mini", "large"):
        sampled = study.arrays(size).correct.mean()
        assert abs(study.expected_accuracy(size).mean() - sampled) < 0.01


def test_decaying_instances_get_worse_with_size(five_sizes):
    study = five_sizes
    acc = [study.arrays(s).correct[study.decaying].mean() for s in SIZES5]
    assert all(b < a - 0.03 for a, b in itertools.pairwise(acc)), acc
    assert acc[0] > 0.9 and acc[-1] < 0.3
    # Per instance: most planted decaying instances are worse for large than for mini.
    per_instance = (study.arrays("large").correct.mean(axis=(1, 2, 3))
                    - study.arrays("mini").correct.mean(axis=(1, 2, 3)))
    assert (per_instance[study.decaying] < 0).mean() > 0.9
    assert study.truly_decaying("mini", "large")[study.decaying].all()


def test_wrong_label_instances_are_mostly_incorrect(five_sizes):
    study = five_sizes
    for size in SIZES5:
        assert study.arrays(size).correct[study.wrong_label].mean() < 0.35, size
    assert study.arrays("large").correct[study.wrong_label].mean() < 0.15
    # Larger models agree more with the true label, so less with the wrong gold one.
    assert (study.arrays("large").correct[study.wrong_label].mean()
            < study.arrays("mini").correct[study.wrong_label].mean())


def test_pretraining_variance_grows_with_pretrain_sd():
    def spread(pretrain_sd: float) -> tuple[float, float]:
        study = simulate(1500, ["base"], 8, 4, 1, pretrain_sd=pretrain_sd, seed=21)
        per_seed = study.arrays("base").p_correct[..., 0].mean(axis=2)  # (N, P)
        truth = study.true_components("base", "p_correct")["var_pretrain"].mean()
        return float(per_seed.var(axis=1, ddof=1).mean()), float(truth)

    low, high = spread(0.2), spread(1.2)
    assert high[0] > 3 * low[0]
    assert high[1] > 3 * low[1]


def test_true_components_match_a_large_sample():
    """The quadrature truth against the plain sample estimates of many seeds."""
    study = simulate(60, ["base"], 300, 30, 3, difficulty_sd=1.0, seed=9)
    a = study.arrays("base")
    for score in ("correct", "p_correct"):
        x = getattr(a, score).astype(np.float64)
        truth = study.true_components("base", score, checkpoints="all")
        var_checkpoint = x.var(axis=3, ddof=1).mean(axis=(1, 2))
        cell = x.mean(axis=3)  # (N, P, F)
        var_finetune = (cell.var(axis=2, ddof=1) - x.var(axis=3, ddof=1).mean(axis=2) / 3).mean(1)
        var_pretrain = cell.mean(axis=2).var(axis=1, ddof=1)
        for name, est in (("var_checkpoint", var_checkpoint), ("var_finetune", var_finetune),
                          ("var_pretrain", var_pretrain)):
            true_mean = truth[name].mean()
            assert abs(est.mean() - true_mean) < 0.1 * true_mean + 1e-4, (score, name)
        loss = ((1 - x) ** 2).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(loss.mean(), truth["loss"].mean(), rtol=0.02)
        last = study.true_components("base", score)
        x3 = x[..., -1]
        np.testing.assert_allclose(x3.mean(axis=2).var(axis=1, ddof=1).mean()
                                   - x3.var(axis=2, ddof=1).mean() / 30,
                                   last["var_pretrain"].mean(), rtol=0.1)
        np.testing.assert_allclose(x3.var(axis=2, ddof=1).mean(), last["var_finetune"].mean(),
                                   rtol=0.1)


# -- the store -----------------------------------------------------------------------------


def _small_study(**kwargs):
    args = {"n_classes": 3, "decaying_share": 0.1, "wrong_label_share": 0.05, "seed": 3,
            "task": "sim-nli"}
    args.update(kwargs)
    return simulate(150, ["mini", "large"], 2, 2, 4, **args)


def test_write_study_then_store_arrays_are_the_same_numbers(store):
    study = _small_study()
    summary = write_study(store, study)
    assert summary["runs_added"] == 8 and summary["instances"] == 150
    for size in study.sizes:
        got = store.arrays("sim-nli", size, checkpoint="all")
        want = study.arrays(size)
        assert list(got.instance_ids) == list(study.instance_ids)
        assert got.pretrain_seeds == ["0", "1"] and got.finetune_seeds == [1, 2]
        assert got.checkpoints == pytest.approx(study.checkpoints)
        np.testing.assert_array_equal(got.labels, study.labels)
        np.testing.assert_array_equal(got.correct, want.correct.astype(float))
        np.testing.assert_array_equal(got.pred, want.pred)
        np.testing.assert_array_equal(got.p_correct, want.p_correct.astype(np.float64))
    preds = store.predictions(task="sim-nli", size="large", pretrain_seed="1", finetune_seed=2,
                              checkpoint=4.0)
    order = np.argsort(preds["instance_id"].to_numpy())
    stored = np.stack(preds["probs"].to_numpy()[order])
    np.testing.assert_array_equal(stored, study.probs("large")[:, 1, 1, 3])

    task = store.tasks().set_index("task").loc["sim-nli"]
    assert bool(task["simulated"]) and "Simulated data" in task["description"]
    instances = store.instances(task="sim-nli")
    assert (instances["planted"] == "decaying").sum() == 15
    assert (instances["planted"] == "wrong_label").sum() == 8
    wrong = instances[instances["planted"] == "wrong_label"]
    assert (wrong["label"] != wrong["true_label"]).all()
    runs = store.runs(task="sim-nli")
    assert json.loads(runs["provenance"].iloc[0])["params"]["seed"] == 3


def test_write_study_again_is_unchanged_and_a_different_study_is_refused(store):
    write_study(store, _small_study())
    again = write_study(store, SimulationParams(
        n_instances=150, sizes=("mini", "large"), pretrain_seeds=2, finetune_seeds=2,
        checkpoints=4, n_classes=3, decaying_share=0.1, wrong_label_share=0.05, seed=3,
        task="sim-nli", pair=True))
    assert again["runs_unchanged"] == 8 and again["runs_added"] == 0
    version = store.version()
    # Other noise, same instances and labels: refused unless replace=True.
    with pytest.raises(DuplicateRunError, match="--replace"):
        write_study(store, _small_study(pretrain_sd=1.0))
    assert store.version() == version
    assert write_study(store, _small_study(pretrain_sd=1.0), replace=True)["runs_replaced"] == 8
    # Another seed draws other gold labels: the store refuses to relabel its instances.
    version = store.version()
    with pytest.raises(InputError, match="gold label"):
        write_study(store, _small_study(seed=4), replace=True)
    assert store.version() == version


def test_an_interrupted_write_leaves_the_store_as_it_was(store):
    def stop(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_study(store, _small_study(), progress=stop)
    assert store.runs().empty and store.instances().empty
    assert not list((store.home / ".staging").glob("*/*"))
    assert not (store.home / "predictions").exists()


# -- Zhong release layout ------------------------------------------------------------------


def test_zhong_release_layout(tmp_path):
    study = _small_study(task="simnli")
    folder = write_zhong_release(study, tmp_path / "release")
    data = json.loads((folder / "data.json").read_text())
    assert data["label_list"] == study.label_list and data["train"] == []
    assert len(data["predict"]) == 150
    first = data["predict"][0]
    assert first["guid"] == study.instance_ids[0] and first["text_b"] == study.text_b[0]
    assert first["label"] == study.label_list[study.labels[0]]
    files = sorted(p.name for p in (folder / "results").iterdir())
    assert len(files) == 2 * 2 * 2 * 4
    assert "slargep1f2epoch12over3.tsv" in files and "sminip0f1epoch9over3.tsv" in files
    values = np.loadtxt(folder / "results" / "slargep1f2epoch10over3.tsv", delimiter="\t")
    assert values.shape == (150, 3)
    np.testing.assert_array_equal(values.astype(np.float32), study.probs("large")[:, 1, 1, 1])


def test_zhong_release_round_trips_through_the_importer(tmp_path):
    from seedlab.importers.zhong import import_zhong

    study = simulate(120, ["mini", "large"], 2, 2, 4, n_classes=2, decaying_share=0.1,
                     wrong_label_share=0.05, seed=13, task="simsst")
    write_zhong_release(study, tmp_path / "release")
    store = Store(tmp_path / "home")
    import_zhong(store, tmp_path / "release")
    for size in study.sizes:
        got = store.arrays("simsst", size, checkpoint="all")
        want = study.arrays(size)
        assert list(got.instance_ids) == list(study.instance_ids)
        assert got.pretrain_seeds == study.pretrain_seeds
        assert got.checkpoints == pytest.approx(study.checkpoints, abs=1e-4)
        np.testing.assert_array_equal(got.labels, study.labels)
        np.testing.assert_array_equal(got.pred, want.pred)
        np.testing.assert_array_equal(got.correct, want.correct.astype(float))
        np.testing.assert_array_equal(got.p_correct, want.p_correct.astype(np.float64))


# -- command line --------------------------------------------------------------------------


def test_cli_simulate_then_info(tmp_path, capsys):
    home = tmp_path / "home"
    code = main(["--home", str(home), "simulate", "--instances", "120", "--sizes", "mini,large",
                 "--pretrain-seeds", "2", "--finetune-seeds", "3", "--checkpoints", "2",
                 "--task", "sim-cli", "--classes", "3", "--decaying-share", "0.1",
                 "--wrong-label-share", "0.05", "--seed", "5"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["runs_added"] == 12
    assert main(["--home", str(home), "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["tasks"]["sim-cli"]
    assert info == {"instances": 120, "runs": 12, "predictions": 120 * 12 * 2, "masks": 0,
                    "annotations": 0, "sizes": ["mini", "large"], "simulated": True}
    study = simulate(120, ["mini", "large"], 2, 3, 2, n_classes=3, decaying_share=0.1,
                     wrong_label_share=0.05, seed=5, task="sim-cli")
    got = Store(home).arrays("sim-cli", "large", checkpoint="all")
    np.testing.assert_array_equal(got.p_correct, study.arrays("large").p_correct.astype(float))


def test_cli_zhong_release_and_bad_flags(tmp_path, capsys):
    home = tmp_path / "home"
    out = tmp_path / "release"
    assert main(["--home", str(home), "simulate", "--instances", "30", "--sizes", "base",
                 "--pretrain-seeds", "2", "--finetune-seeds", "2", "--checkpoints", "4",
                 "--task", "qqpsim", "--zhong-release", str(out)]) == 0
    assert len(list((out / "qqpsim" / "results").glob("*.tsv"))) == 16
    assert not home.exists()  # the release goes to the folder, not the store
    assert main(["--home", str(home), "simulate", "--checkpoints", "13"]) == 2
    assert "checkpoints must be between 1 and 12" in capsys.readouterr().err
    assert not home.exists()


# -- recovery by seedlab.stats -------------------------------------------------------------


def test_decay_bounds_recover_the_planted_share():
    """The lower bound comes back near the planted share: no wrong labels here, so the
    truly decaying instances are exactly the planted ones (tolerance 0.02 above; at least
    70% of it below, since it is a lower bound from 10 x 5 runs)."""
    from seedlab.stats import decay_bounds

    study = simulate(3000, ["small", "large"], 10, 5, 1, decaying_share=0.08,
                     wrong_label_share=0.0, seed=3)
    assert study.truly_decaying("small", "large").mean() == pytest.approx(0.08)
    result = decay_bounds(study.arrays("small").last().correct.astype(float),
                          study.arrays("large").last().correct.astype(float))
    assert 0.7 * 0.08 < result.decaying < 0.08 + 0.02
    # With no decaying instances planted (and no wrong labels) the bound is near zero.
    none = simulate(3000, ["small", "large"], 10, 5, 1, decaying_share=0.0,
                    wrong_label_share=0.0, seed=3)
    result = decay_bounds(none.arrays("small").last().correct.astype(float),
                          none.arrays("large").last().correct.astype(float))
    assert result.decaying < 0.02


@pytest.mark.parametrize("score", ["correct", "p_correct"])
def test_decompose_recovers_the_planted_variance(score):
    """Mean var_pretrain / var_finetune (and var_checkpoint) from ``decompose`` against
    the planted model's truth, within 10% (plus 1e-4)."""
    from seedlab.stats import decompose

    study = simulate(3000, ["large"], 10, 5, 4, pretrain_sd=0.8, finetune_sd=0.4, seed=17)
    x = getattr(study.arrays("large"), score).astype(np.float64)
    for checkpoints, data in (("last", x[..., -1]), ("all", x)):
        truth = study.true_components("large", score, checkpoints=checkpoints)
        est = decompose(data)
        names = ["var_pretrain", "var_finetune", "loss", "bias2"]
        if checkpoints == "all":
            names.append("var_checkpoint")
        for name in names:
            want = truth[name].mean()
            got = float(np.mean(getattr(est, name)))
            assert abs(got - want) < 0.1 * want + 1e-4, (checkpoints, name, got, want)
        ratio = np.mean(est.var_pretrain) / np.mean(est.var_finetune)
        true_ratio = truth["var_pretrain"].mean() / truth["var_finetune"].mean()
        assert ratio == pytest.approx(true_ratio, rel=0.2)
