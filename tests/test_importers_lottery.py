"""The Prasanna et al. (2020) importer: masks/ and evaluate_masked/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from seedlab.cli import main as cli_main
from seedlab.errors import InputError
from seedlab.importers.lottery import import_lottery


def _write_seed(root: Path, setting: str, task: str, seed: int, *, head=None, mlp=None,
                head_imp=None, mlp_imp=None) -> Path:
    folder = root / "masks" / setting / task / f"seed_{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (("head_mask", head), ("mlp_mask", mlp), ("head_importance", head_imp),
                        ("mlp_importance", mlp_imp)):
        if array is not None:
            np.save(folder / f"{name}.npy", array)
    return folder


@pytest.fixture
def tree(tmp_path) -> Path:
    """A small tree with a 3x4 model: two seeds, float32 and float64, importance on one."""
    root = tmp_path / "bert-experiments"
    rng = np.random.default_rng(0)
    head42 = (rng.random((3, 4)) > 0.5).astype(np.float32)
    _write_seed(root, "heads_mlps", "STS-B", 42, head=head42,
                mlp=np.array([1, 0, 1], dtype=np.float32),
                head_imp=rng.random((3, 4)).astype(np.float32),
                mlp_imp=np.array([0.5, 0.1, 0.9], dtype=np.float32))
    _write_seed(root, "heads_mlps", "STS-B", 7, head=np.zeros((3, 4)), mlp=np.ones(3))
    _write_seed(root, "heads", "HANS_MNLI", 1337, head=np.ones((3, 4)))
    (root / "masks" / "heads" / "HANS_MNLI" / "seed_1337" / "attn_entropy.npy").write_bytes(
        b"not read")
    ev = root / "evaluate_masked" / "head_mlp" / "baseline"
    ev.mkdir(parents=True)
    (ev / "results.json").write_text(json.dumps({"STS-B": {"pearson": [0.8, 0.01]}}))
    top = root / "evaluate_masked" / "freq_baseline"
    top.mkdir(parents=True)
    (top / "results.json").write_text(json.dumps({"RTE": {"acc": [0.52, 0]}}))
    return root


def test_small_tree_rows_and_values(store, tree):
    summary = import_lottery(store, tree)
    assert summary["head_masks"] == 3 and summary["mlp_masks"] == 2
    assert summary["masks"] == 3 * 12 + 2 * 3
    masks = store.masks(setting="heads_mlps", task="STS-B", seed=42)
    head = masks[masks["component"] == "head"].sort_values(["layer", "head"])
    expected = np.load(tree / "masks/heads_mlps/STS-B/seed_42/head_mask.npy").astype(bool)
    assert head["kept"].to_numpy().tolist() == expected.ravel().tolist()
    imp = np.load(tree / "masks/heads_mlps/STS-B/seed_42/head_importance.npy")
    np.testing.assert_allclose(head["importance"].to_numpy(), imp.ravel(), rtol=1e-6)
    mlp = masks[masks["component"] == "mlp"].sort_values("layer")
    assert mlp["head"].tolist() == [-1, -1, -1]
    assert mlp["kept"].tolist() == [True, False, True]
    # seed 7 has no importance files: NaN, not zero
    seven = store.masks(setting="heads_mlps", task="STS-B", seed=7)
    assert seven["importance"].isna().all() and not seven[seven.component == "head"].kept.any()
    # a setting with head masks only
    hans = store.masks(setting="heads", task="HANS_MNLI")
    assert len(hans) == 12 and set(hans["component"]) == {"head"} and hans["kept"].all()
    ev = store.evaluations()
    rows = {(r.experiment, r.variant, r.task, r.metric): (r.mean, r.std)
            for r in ev.itertuples()}
    assert rows == {("head_mlp", "baseline", "STS-B", "pearson"): (0.8, 0.01),
                    ("freq_baseline", "", "RTE", "acc"): (0.52, 0.0)}


def test_import_twice_adds_nothing(store, tree):
    import_lottery(store, tree)
    info, version = store.info(), store.version()
    n_eval = len(store.evaluations())
    import_lottery(store, tree)
    assert store.info() == info
    assert store.version() == version
    assert len(store.evaluations()) == n_eval


def test_changed_masks_need_replace(store, tree, tmp_path):
    """Re-importing a (setting, task) with other masks (here: one seed left) is refused
    without replace, and leaves the stored 2 seeds; with replace the new masks win."""
    import_lottery(store, tree)
    before = store.masks(setting="heads_mlps", task="STS-B")
    assert sorted(before["seed"].unique()) == [7, 42]
    shutil.rmtree(tree / "masks" / "heads_mlps" / "STS-B" / "seed_42")
    with pytest.raises(InputError, match=r"heads_mlps, field 'STS-B': the store already holds other masks for"
                       r" setting 'heads_mlps', task 'STS-B' \(30 rows; this import has 15\)"
                       r".*--replace"):
        import_lottery(store, tree)
    pd.testing.assert_frame_equal(store.masks(setting="heads_mlps", task="STS-B"), before)
    assert cli_main(["--home", str(store.home), "import", "lottery", str(tree), "--replace"]) == 0
    assert store.masks(setting="heads_mlps", task="STS-B")["seed"].unique().tolist() == [7]


def test_task_folders_get_the_canonical_name(store, tmp_path):
    """A folder ``sst2`` (or ``mnli``) is the task SST-2 (MNLI), as every importer names it;
    the folder name is kept in the summary."""
    root = tmp_path / "bert-experiments"
    _write_seed(root, "heads", "sst2", 1, head=np.ones((2, 2)))
    _write_seed(root, "heads", "mnli", 1, head=np.zeros((2, 2)))
    summary = import_lottery(store, root)
    assert summary["released_tasks"] == {"MNLI": ["mnli"], "SST-2": ["sst2"]}
    assert sorted(store.masks()["task"].unique()) == ["MNLI", "SST-2"]
    _write_seed(root, "heads", "SST-2", 2, head=np.ones((2, 2)))
    with pytest.raises(InputError, match="a second folder for task 'SST-2'"):
        import_lottery(store, root)


def _assert_unchanged(store, before_info, before_version):
    assert store.info() == before_info
    assert store.version() == before_version


@pytest.mark.parametrize(
    "name, array, expected",
    [
        ("head_mask", np.ones(12), "head array of shape (layers, heads)"),
        ("mlp_mask", np.ones((3, 4)), "mlp array of shape (layers,)"),
        ("head_mask", np.full((3, 4), 0.5), "0/1 mask"),
        ("head_importance", np.ones((4, 3)), "shape (3, 4), the same as head_mask.npy"),
        ("mlp_importance", np.ones(5), "shape (3,), the same as mlp_mask.npy"),
    ],
)
def test_bad_arrays_name_file_and_expectation(store, tree, name, array, expected):
    import_lottery(store, tree)
    before = store.info(), store.version()
    bad = tree / "masks" / "heads_mlps" / "STS-B" / "seed_7" / f"{name}.npy"
    np.save(bad, array)
    with pytest.raises(InputError) as err:
        import_lottery(store, tree)
    assert str(bad) in str(err.value)
    assert expected in str(err.value)
    _assert_unchanged(store, *before)


def test_pickled_object_array_is_refused(store, tree):
    bad = tree / "masks" / "heads_mlps" / "STS-B" / "seed_7" / "head_mask.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="holds object values"):
        import_lottery(store, tree)
    assert store.info()["totals"]["masks"] == 0


def test_bad_seed_folder_and_results_json(store, tree):
    (tree / "masks" / "heads" / "HANS_MNLI" / "seed_x").mkdir()
    with pytest.raises(InputError, match=r"seed_x.*expected seed_<integer"):
        import_lottery(store, tree)
    (tree / "masks" / "heads" / "HANS_MNLI" / "seed_x").rmdir()
    bad = tree / "evaluate_masked" / "head_mlp" / "baseline" / "results.json"
    bad.write_text(json.dumps({"STS-B": {"pearson": 0.8}}))
    with pytest.raises(InputError) as err:
        import_lottery(store, tree)
    assert str(bad) in str(err.value) and "'STS-B.pearson'" in str(err.value)
    assert "[mean, std]" in str(err.value)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="line 1"):
        import_lottery(store, tree)
    assert store.info()["totals"]["masks"] == 0 and store.version() == 0


def test_real_bert_experiments(store):
    root = shared_path("bert-experiments")
    mask_files = {c: sorted((root / "masks").glob(f"*/*/seed_*/{c}_mask.npy"))
                  for c in ("head", "mlp")}
    settings = {p.name for p in (root / "masks").iterdir() if p.is_dir()}
    pairs = {(p.parent.parent.parent.name, p.parent.parent.name)
             for files in mask_files.values() for p in files}
    seeds = {int(p.parent.name.split("_")[1]) for files in mask_files.values() for p in files}

    summary = import_lottery(store, root)
    assert summary["settings"] == len(settings) == 13
    assert summary["setting_tasks"] == len(pairs)
    assert seeds == {1337, 42, 86, 71, 166}
    n_head, n_mlp = len(mask_files["head"]), len(mask_files["mlp"])
    assert (summary["head_masks"], summary["mlp_masks"]) == (n_head, n_mlp)
    assert store.info()["totals"]["masks"] == 144 * n_head + 12 * n_mlp
    assert {"STS-B", "HANS_MNLI", "WNLI"} <= {t for _, t in pairs}

    # values straight from the files: a float64 mask, a float32 mask, an importance file
    dtypes = {p: np.load(p).dtype for p in mask_files["head"]}
    for path in [next(p for p, d in dtypes.items() if d == np.float64),
                 next(p for p, d in dtypes.items() if d == np.float32)]:
        setting, task, seed = path.parts[-4], path.parts[-3], int(path.parts[-2][5:])
        arrays, seed_list = store.mask_arrays(setting, task, "head")
        np.testing.assert_array_equal(arrays[seed_list.index(seed)], np.load(path))
    imp_path = next((root / "masks").glob("*/*/seed_*/mlp_importance.npy"))
    setting, task, seed = imp_path.parts[-4], imp_path.parts[-3], int(imp_path.parts[-2][5:])
    rows = store.masks(setting=setting, task=task, seed=seed, component="mlp")
    np.testing.assert_allclose(rows.sort_values("layer")["importance"], np.load(imp_path),
                               rtol=1e-6)

    # WNLI's degenerate masks are kept as they are: some keep no head, one keeps all 144
    kept = [int(np.load(p).sum()) for p in mask_files["head"] if p.parts[-3] == "WNLI"]
    stored = store.masks(task="WNLI", component="head")
    per_mask = stored.groupby(["setting", "seed"])["kept"].sum().sort_values().tolist()
    assert sorted(kept) == per_mask and 0 in per_mask

    results = sorted((root / "evaluate_masked").rglob("results.json"))
    expected_rows = sum(len(m) for p in results for m in json.loads(p.read_text()).values())
    ev = store.evaluations()
    assert len(ev) == expected_rows
    hans = ev[(ev.experiment == "head_mlp_hans") & (ev.variant == "finetuned/baseline")]
    payload = json.loads((root / "evaluate_masked/head_mlp_hans/finetuned/baseline/"
                          "results.json").read_text())
    assert hans.set_index(["task", "metric"])["mean"].to_dict() == {
        (t, m): v[0] for t, ms in payload.items() for m, v in ms.items()}
    assert set(ev[ev.experiment == "freq_baseline"]["variant"]) == {""}

    info, version = store.info(), store.version()
    again = import_lottery(store, root)
    assert again["head_masks"] == n_head
    assert store.info() == info and store.version() == version
    assert len(store.evaluations()) == expected_rows
