"""The Pruning-masks page under Streamlit's AppTest: the fixture home of tests/app_support.py,
and a slice of the real lottery release (WNLI's degenerate masks included)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest
from app_support import app_test, make_fixture_home
from conftest import shared_path
from small_study import figure_captions, plain
from streamlit.testing.v1 import AppTest

from seedlab import stats
from seedlab.store import Store

PAGE = "pages/masks.py"


def open_page(home: Path, params: dict | None = None) -> AppTest:
    at = app_test(home, PAGE, {"home": str(home), **(params or {})}, timeout=90)
    assert not at.exception, [e.value for e in at.exception]
    return at


def values(z: object) -> np.ndarray:
    """A trace's z as a float array (plotly ships numpy arrays as base64 typed arrays)."""
    if isinstance(z, dict) and "bdata" in z:
        flat = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
        shape = z.get("shape")
        if isinstance(shape, str):
            shape = [int(n) for n in shape.split(",")]
        return flat.reshape(shape).astype(float) if shape else flat.astype(float)
    return np.asarray(z, dtype=float)


def figures(at: AppTest) -> dict[str, object]:
    """The page's plotly figures by title (without the ★ note)."""
    out = {}
    for chart in at.get("plotly_chart"):
        fig = pio.from_json(chart.proto.spec)
        out[fig.layout.title.text.split(" ★")[0]] = fig
    return out


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = make_fixture_home(tmp_path / "home")
    monkeypatch.setenv("SEEDLAB_HOME", str(home))
    return home


def test_survival_heatmap_shows_the_stored_masks(home):
    at = open_page(home)
    store = Store(home)
    heads, seeds = store.mask_arrays("lottery", "nli_sim", "head")
    mlps, _ = store.mask_arrays("lottery", "nli_sim", "mlp")
    fig = figures(at)["Survival across seeds: nli_sim (lottery)"]
    head_trace, mlp_trace = fig.data
    np.testing.assert_allclose(values(head_trace.z), stats.survival(heads)[0])
    np.testing.assert_allclose(values(mlp_trace.z).ravel(),
                               stats.survival(mlps)[0])
    assert values(head_trace.z).shape == (12, 12)
    assert any(f"share of {len(seeds)} seeds" in c for c in figure_captions(at))
    # one task: no task x task overlap, said plainly; evaluations of the fixture are drawn
    assert any("overlap needs two" in i.value for i in at.info)
    evaluation = figures(at)["Masked BERT: score per task and experiment"]
    assert sorted(t.name for t in evaluation.data) == ["lottery/bad", "lottery/good",
                                                       "lottery/random"]


def test_widgets_change_the_figures(home):
    at = open_page(home)
    at.selectbox(key="masks.component").set_value("head").run()
    assert not at.exception
    fig = figures(at)["Survival across seeds: nli_sim (lottery)"]
    assert len(fig.data) == 1  # heads only: no MLP strip

    at.radio(key="masks.view").set_value("summed").run()
    assert not at.exception
    summed = figures(at)["Tasks keeping each component: lottery"]
    heads, _ = Store(home).mask_arrays("lottery", "nli_sim", "head")
    np.testing.assert_allclose(values(summed.data[0].z),
                               stats.task_count(heads[None]))
    assert at.query_params["masks.view"] == "summed"
    assert at.query_params["masks.component"] == "head"


def test_query_params_restore_the_view(home):
    at = open_page(home, {"masks.view": "summed", "masks.component": "mlp",
                          "masks.experiments": ["lottery/good", "lottery/bad"]})
    assert at.radio(key="masks.view").value == "summed"
    assert at.selectbox(key="masks.component").value == "mlp"
    assert at.multiselect(key="masks.experiments").value == ["lottery/good", "lottery/bad"]
    evaluation = figures(at)["Masked BERT: score per task and experiment"]
    assert [t.name for t in evaluation.data] == ["lottery/good", "lottery/bad"]


def test_a_store_without_masks_says_so(tmp_path):
    bare = Store(tmp_path / "bare")
    at = open_page(bare.home)
    assert any("No pruning masks in this store" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_real_lottery_masks_with_degenerate_wnli(tmp_path):
    from seedlab.importers.lottery import import_lottery

    real = shared_path("bert-experiments")
    # A slice of the release, copied in its own layout: two tasks of the main setting and
    # the good / random / bad evaluations (a few kilobytes).
    root = tmp_path / "bert-experiments"
    for task in ("RTE", "WNLI"):
        shutil.copytree(real / "masks" / "heads_mlps" / task, root / "masks" / "heads_mlps" / task)
    for experiment in ("head_mlp", "head_mlp_random", "head_mlp_bad"):
        shutil.copytree(real / "evaluate_masked" / experiment,
                        root / "evaluate_masked" / experiment)
    store = Store(tmp_path / "home")
    import_lottery(store, root)

    at = open_page(store.home, {"masks.task": "WNLI"})
    wnli = figures(at)["Survival across seeds: WNLI (heads_mlps)"]
    heads, seeds = store.mask_arrays("heads_mlps", "WNLI", "head")
    assert len(seeds) == 5 and sorted(heads.sum(axis=(1, 2)).tolist()) == [0, 0, 0, 0, 144]
    # four seeds keep no head, one keeps all 144: every head survives in 1 of 5 seeds
    np.testing.assert_allclose(values(wnli.data[0].z), np.full((12, 12), 0.2))
    assert any("WNLI: seed(s)" in c.value and "keep no component" in c.value
               for c in at.caption)
    table = at.dataframe[0].value.set_index("task")
    assert table.loc["WNLI", "Jaccard (all seeds)"] == 0.0
    assert 0 < table.loc["RTE", "Jaccard (all seeds)"] < 1
    overlap = figures(at)["Components kept by both tasks: heads_mlps"]
    assert values(overlap.data[0].z).shape == (2, 2)
    evaluation = figures(at)["Masked BERT: score per task and experiment"]
    assert [t.name for t in evaluation.data] == ["head_mlp", "head_mlp_random", "head_mlp_bad"]


# -- the setting the page opens on -------------------------------------------------------


def _setting_masks(layers: int, heads: int, kept: dict[int, np.ndarray]) -> pd.DataFrame:
    """Long-format masks of one task: per seed, ``kept`` as (layers * heads + layers,)
    0/1 (heads row-major, then one MLP per layer)."""
    rows = []
    for seed, values in kept.items():
        for layer in range(layers):
            for head in range(heads):
                rows.append((seed, "head", layer, head, bool(values[layer * heads + head]), 0.0))
            rows.append((seed, "mlp", layer, -1, bool(values[layers * heads + layer]), 0.0))
    return pd.DataFrame(rows, columns=["seed", "component", "layer", "head", "kept",
                                       "importance"])


def _mask_store(path: Path, settings: dict[str, pd.DataFrame]) -> Store:
    store = Store(path)
    with store.transaction("test", "tests/test_app_masks.py") as tx:
        for setting, frame in settings.items():
            tx.add_masks(setting, "nli_sim", frame)
    return store


def _long(settings: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([f.assign(setting=s, task="nli_sim") for s, f in settings.items()])


# L1-H002: the smallest model's 2 heads and 1 MLP, every seed keeps the same two (Jaccard 1)
SMALLEST = _setting_masks(1, 2, {s: np.array([1, 1, 0]) for s in (1, 2, 3)})
# two settings of 4 x 4 heads + 4 MLPs: one where seeds agree more than the other
AGREEING = _setting_masks(4, 4, {s: np.r_[np.ones(10), np.zeros(10)] for s in (1, 2)}
                          | {3: np.r_[np.ones(9), np.zeros(11)]})
DIFFERING = _setting_masks(4, 4, {1: np.r_[np.ones(10), np.zeros(10)],
                                  2: np.r_[np.zeros(10), np.ones(10)],
                                  3: np.r_[np.ones(5), np.zeros(15)]})


def test_the_informative_setting_rule():
    from seedlab.analyses.masks import informative_setting, seed_jaccard

    assert seed_jaccard(_long({"a": SMALLEST})) == 1.0
    assert seed_jaccard(_long({"a": AGREEING})) == pytest.approx(9 / 10)
    assert seed_jaccard(_long({"a": DIFFERING})) == 0.0
    # the most components wins over a sorted-first smaller setting
    assert informative_setting(_long({"L1-H002": SMALLEST, "L4-H128": AGREEING})) == "L4-H128"
    # among equal sizes, the least overlap across seeds
    assert informative_setting(_long({"L1-H002": SMALLEST, "L4-a": AGREEING,
                                      "L4-b": DIFFERING})) == "L4-b"
    # the lottery release's main setting, whatever its controls look like
    assert informative_setting(_long({"heads_mlps": AGREEING,
                                      "heads_mlps_random": DIFFERING})) == "heads_mlps"
    assert informative_setting(_long({"only": SMALLEST})) == "only"


def test_the_page_opens_on_the_most_informative_setting(tmp_path):
    store = _mask_store(tmp_path / "home", {"L1-H002": SMALLEST, "L4-a": AGREEING,
                                            "L4-b": DIFFERING})
    at = open_page(store.home)
    assert at.selectbox(key="masks.setting").value == "L4-b"
    assert "Survival across seeds: nli_sim (L4-b)" in figures(at)
    table = at.dataframe[0].value.set_index("task")
    assert table.loc["nli_sim", "Jaccard (all seeds)"] == 0.0
    # a link naming a setting still opens it
    at = open_page(store.home, {"masks.setting": "L1-H002"})
    assert at.selectbox(key="masks.setting").value == "L1-H002"


# -- the stable-components threshold ------------------------------------------------------

# 2 x 2 heads + 2 MLPs; component k is kept in 4 - k tasks (every seed alike)
STABLE_TASKS = {name: _setting_masks(2, 2, {s: np.array(kept) for s in (1, 2)})
                for name, kept in (("A", [1, 1, 1, 1, 0, 0]), ("B", [1, 1, 1, 0, 0, 0]),
                                   ("C", [1, 1, 0, 0, 0, 0]), ("D", [1, 0, 0, 0, 0, 0]))}


@pytest.fixture
def four_tasks(tmp_path) -> Store:
    store = Store(tmp_path / "four")
    with store.transaction("test", "tests/test_app_masks.py") as tx:
        for task, frame in STABLE_TASKS.items():
            tx.add_masks("heads_mlps", task, frame)
    return store


def test_stable_components_follow_min_tasks(four_tasks):
    from seedlab.analyses.masks import MaskQuery, masks

    tasks = list(STABLE_TASKS)
    default = masks(four_tasks, MaskQuery("heads_mlps", "both", (2, 2)), tasks)
    np.testing.assert_array_equal(default.task_count, [4, 3, 2, 1, 0, 0])
    assert default.stable_threshold == 2.0  # more than half of 4 tasks
    np.testing.assert_array_equal(default.stable, [1, 1, 0, 0, 0, 0])
    strict = masks(four_tasks, MaskQuery("heads_mlps", "both", (2, 2), min_tasks=3), tasks)
    assert strict.stable_threshold == 3.0
    np.testing.assert_array_equal(strict.stable, [1, 0, 0, 0, 0, 0])
    stack = np.stack([default.tasks[t].rows for t in tasks])
    np.testing.assert_array_equal(strict.stable, stats.stable_components(stack, min_tasks=3))


def _stars(fig) -> int:
    return sum(str(cell).endswith("★") for trace in fig.data
               for row in np.atleast_2d(np.asarray(trace.text, dtype=object)) for cell in row)


def test_the_page_shows_and_sets_the_stable_threshold(four_tasks):
    at = open_page(four_tasks.home, {"masks.view": "summed"})
    box = at.number_input(key="masks.min_tasks")
    assert box.value == 2.0 and "of the 4 tasks" in box.label
    assert "more than 5 of its 9" in box.help
    caption = next(c for c in figure_captions(at) if "★ = stable" in c)
    assert plain("kept in more than 2 of the 4 tasks (more than half) (2 components)") in caption
    summed = figures(at)["Tasks keeping each component: heads_mlps"]
    assert "kept in more than 2 tasks" in summed.layout.title.text
    assert _stars(summed) == 2

    box.set_value(3.0).run()
    assert not at.exception
    caption = next(c for c in figure_captions(at) if "★ = stable" in c)
    assert plain("kept in more than 3 of the 4 tasks (1 components)") in caption
    assert _stars(figures(at)["Tasks keeping each component: heads_mlps"]) == 1
    param = at.query_params["masks.min_tasks"]
    assert float(param[0] if isinstance(param, list) else param) == 3.0

    # a link restores it
    at = open_page(four_tasks.home, {"masks.view": "summed", "masks.min_tasks": "0.5"})
    assert at.number_input(key="masks.min_tasks").value == 0.5
    assert _stars(figures(at)["Tasks keeping each component: heads_mlps"]) == 4


def test_the_papers_60_stable_heads_through_the_page(tmp_path):
    from seedlab.importers.lottery import import_lottery

    real = shared_path("bert-experiments", "masks", "heads_mlps")
    root = tmp_path / "bert-experiments"
    shutil.copytree(real, root / "masks" / "heads_mlps")
    store = Store(tmp_path / "home")
    import_lottery(store, root)
    query = {"masks.view": "summed", "masks.component": "head"}
    at = open_page(store.home, {**query, "masks.min_tasks": "5"})
    caption = next(c for c in figure_captions(at) if "★ = stable" in c)
    assert plain("kept in more than 5 of the 9 tasks (60 components)") in caption
    at = open_page(store.home, query)  # the default, more than half
    caption = next(c for c in figure_captions(at) if "★ = stable" in c)
    assert plain("kept in more than 4.5 of the 9 tasks (more than half) (83 components)") in caption
