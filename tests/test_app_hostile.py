"""Every page opened on a hostile link: homes that are not stores, values that do not parse
or name nothing, long strings, unknown names. The app shows the defaults, says what it
ignored, raises nothing, and writes nothing outside the store it opened."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from app_support import make_fixture_home, navigation_only

REPO = Path(__file__).resolve().parents[1]
PAGES = ["overview", "bias_variance", "agreement", "decaying", "annotate", "masks",
         "significance", "datamap", "runs", "report"]
LONG = "x" * 5000
# A value for every page parameter that is no value it can take: garbage, out of range,
# not finite, or very long.
HOSTILE_PAGE_PARAMS = {
    "agreement.metric": "bogus", "agreement.blocks": "maybe", "agreement.run_a": LONG,
    "agreement.run_b": "huge/p9/f9",
    "annotate.annotator": LONG, "annotate.blind": "2", "annotate.min_drop": "nan",
    "annotate.seed": "-99999999999999999999999", "annotate.pos": "99999999",
    "annotate.small": "huge", "annotate.large": LONG, "annotate.split": "nope",
    "annotate.source": "{}", "annotate.controls": "1e400",
    "bias_variance.loss": "bogus",
    "datamap.size": "huge", "datamap.checkpoints": ["a", "b"], "datamap.confidence": "inf",
    "datamap.variability": "-inf", "datamap.regions": "[[[[[[[[",
    "decaying.group": LONG, "decaying.small": "huge", "decaying.large": "1e400",
    "decaying.split": "nope", "decaying.verdict": "<script>alert(1)</script>",
    "masks.component": "bogus", "masks.experiments": "x", "masks.setting": LONG,
    "masks.task": "../../etc", "masks.view": "bogus",
    "report.title": LONG,
    "significance.base_ckpt": "nan", "significance.base_size": "huge",
    "significance.confidence": "2", "significance.design": "bogus",
    "significance.examples": "-1", "significance.expt_ckpt": "1e400",
    "significance.expt_size": LONG, "significance.rng": "abc", "significance.seeds": "-5",
}
HOSTILE_SHARED = {"task": "no_such_task", "sizes": ["huge", LONG],
                  "pretrain_seeds": ["999", "-1"], "finetune_seeds": ["abc"],
                  "checkpoint": "1e400", "no_such_name": "1", "x" * 300: "y"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store, a plain folder beside it (holding a file), and the start-up environment."""
    root = tmp_path_factory.mktemp("hostile")
    home = make_fixture_home(root / "home")
    plain = root / "plain"
    (plain / "sub").mkdir(parents=True)
    (plain / "notes.txt").write_text("a user's own file\n")
    return root, home, plain


def tree(path: Path) -> dict[str, str]:
    """Every file and folder under ``path``: relative name -> sha256 (or 'dir')."""
    out = {}
    for p in sorted(path.rglob("*")):
        out[str(p.relative_to(path))] = ("dir" if p.is_dir() else
                                         hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def open_page(home: Path, page: str, query: dict, env: dict | None = None):
    """An AppTest of app.py whose first run opens ``page`` on the link ``query``."""
    from streamlit.testing.v1 import AppTest

    navigation_only()
    os.environ["SEEDLAB_HOME"] = str(home)
    for name, value in (env or {}).items():
        os.environ[name] = value
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
        for name, value in query.items():
            at.query_params[name] = value
        at.switch_page(f"pages/{page}.py")
        at.run()
    finally:
        for name in env or {}:
            os.environ.pop(name, None)
    return at


def ignored(at) -> str:
    """The text of the 'Parts of this link were ignored' warning ('' when none)."""
    notes = [w.value for w in at.warning if "Parts of this link were ignored" in w.value]
    return notes[0].replace("\\", "") if notes else ""


def hostile_homes(root: Path, home: Path, plain: Path) -> dict[str, str]:
    return {"non-store folder": str(plain), "missing": "/nonexistent",
            "5,000 characters": "/" + LONG, "dot-dot": f"{home}/../plain/../plain",
            "NUL byte": f"{home}\x00"}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_a_hostile_link_shows_the_defaults_and_says_so(world, page):
    root, home, plain = world
    before = tree(root)
    for case, bad_home in hostile_homes(root, home, plain).items():
        query = {"home": bad_home, **HOSTILE_SHARED,
                 **{k: v for k, v in HOSTILE_PAGE_PARAMS.items() if k.startswith(page + ".")}}
        at = open_page(home, page, query)
        assert not at.exception, (case, [e.value for e in at.exception])
        assert at.title, case
        notes = ignored(at)
        assert "home = " in notes, (case, notes)
        assert f"opened {home} instead" in notes or "longer than 1024" in notes, case
        assert "task = no_such_task: not one of the choices here; using nli_sim" in notes
        assert "finetune_seeds = abc: not whole numbers; using 1, 2, 3" in notes
        assert "pretrain_seeds = 999, -1: not one of the choices here" in notes
        assert "no_such_name = 1: not a setting of this app" in notes
        # the view fell back to the default home's default selection
        labels = {w.label: w.value for w in [*at.sidebar.selectbox, *at.sidebar.multiselect]}
        assert labels["Task"] == "nli_sim" and labels["Checkpoint"] == "last"
        assert labels["Pretraining seeds"] == ["0", "1", "2"]
        assert at.query_params["home"] in (str(home), [str(home)])
        assert "no_such_name" not in at.query_params
    # Nothing was written outside the store: the plain folder and its neighbours as they were
    after = tree(root)
    outside = {k: v for k, v in after.items() if not k.startswith("home")}
    assert outside == {k: v for k, v in before.items() if not k.startswith("home")}
    assert tree(plain) == {"notes.txt": hashlib.sha256(b"a user's own file\n").hexdigest(),
                           "sub": "dir"}
    assert not Path("/nonexistent").exists()


def test_page_parameters_that_do_not_parse_are_named(world):
    _root, home, _plain = world
    at = open_page(home, "agreement", {"agreement.metric": "bogus",
                                       "agreement.blocks": "maybe"})
    assert not at.exception
    notes = ignored(at)
    assert "agreement.metric = bogus: not one of the choices here; using agreement" in notes
    assert "agreement.blocks = maybe: not true or false; using False" in notes
    # a clean link shows no warning
    assert ignored(open_page(home, "agreement", {"agreement.metric": "kappa"})) == ""


def test_a_store_named_by_the_link_is_opened(world, tmp_path):
    """Another store (a real one) opens from the link, and the warning stays away."""
    _root, home, _plain = world
    other = make_fixture_home(tmp_path / "other")
    at = open_page(home, "overview", {"home": str(other / ".." / "other")})
    assert not at.exception and ignored(at) == ""
    assert at.query_params["home"] in (f"{other}/../other", [f"{other}/../other"])
    assert at.sidebar.text_input[0].value == f"{other}/../other"


def test_a_homes_root_confines_the_homes_a_link_may_open(world, tmp_path):
    """With $SEEDLAB_HOMES_ROOT set at start-up, a store outside it (directly or by '..')
    is refused; one inside it opens (and the default home, named at start-up, too)."""
    _root, home, _plain = world
    allowed = tmp_path / "allowed"
    inside = make_fixture_home(allowed / "study")
    make_fixture_home(tmp_path / "outside")
    env = {"SEEDLAB_HOMES_ROOT": str(allowed)}
    for fine in (str(inside), str(home)):
        at = open_page(home, "overview", {"home": fine}, env)
        assert not at.exception and ignored(at) == ""
    for outside in (str(tmp_path / "outside"), f"{inside}/../../outside"):
        at = open_page(home, "overview", {"home": outside}, env)
        assert not at.exception
        assert "outside the folder homes may be opened from ($SEEDLAB_HOMES_ROOT)" in ignored(at)


def test_a_home_typed_in_the_text_box_is_checked_too(world):
    _root, home, plain = world
    before = tree(plain)
    at = open_page(home, "overview", {})
    at.sidebar.text_input[0].set_value(str(plain)).run()
    assert not at.exception
    assert f"home = {plain}: not a seedlab store" in ignored(at)
    assert at.sidebar.text_input[0].value == str(home)
    assert tree(plain) == before and not (plain / "catalog.sqlite").exists()


def test_the_ignored_values_are_shown_as_text_not_markdown(world):
    _root, home, _plain = world
    at = open_page(home, "overview", {"task": "![b](http://127.0.0.1:8600/x.png) `x` <b>"})
    notes = next(w.value for w in at.warning if "Parts of this link were ignored" in w.value)
    assert "![b](" not in notes and "<b>" not in notes and "`x`" not in notes
    assert "\\!\\[b\\]\\(http\\:" in notes and "\\<b\\>" in notes


def test_a_task_alias_in_the_link_opens_the_canonical_task(tmp_path):
    """``task=mnli`` and ``task=sst2`` open the tasks stored as ``MNLI`` and ``SST-2``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from seedlab.store import RunData, Store

    home = tmp_path / "glue"
    store = Store(home)
    with store.transaction("test", "aliases") as tx:
        for task, labels in (("MNLI", ["entailment", "neutral", "contradiction"]),
                             ("SST-2", ["negative", "positive"])):
            ids = [f"{task}-{i}" for i in range(6)]
            tx.set_task(task, labels)
            tx.add_instances(task, pd.DataFrame({
                "instance_id": ids, "split": "dev", "guid": ids, "text_a": "t", "text_b": "",
                "label": [labels[i % len(labels)] for i in range(6)]}))
            probs = np.full((6, len(labels)), 1 / len(labels))
            tx.add_run(RunData(task, "base", "0", 1, pa.table({
                "checkpoint": [1.0] * 6, "instance_id": ids, "pred": [0] * 6,
                "correct": [i % len(labels) == 0 for i in range(6)],
                "p_correct": probs[:, 0].tolist(), "probs": probs.tolist()})))
    for alias, canonical in (("mnli", "MNLI"), ("sst2", "SST-2"), ("sst-2", "SST-2")):
        at = open_page(home, "overview", {"task": alias})
        assert not at.exception
        assert next(w for w in at.sidebar.selectbox if w.label == "Task").value == canonical
        assert at.query_params["task"] in (canonical, [canonical])
        assert ignored(at) == ""


@pytest.mark.parametrize("kind", ["missing", "empty folder"])
def test_every_page_on_a_default_home_without_a_store_creates_nothing(tmp_path, kind):
    """``$SEEDLAB_HOME`` naming a missing or empty folder: each page says there is no store,
    and none is created (the Runs page opened the store unchecked and made one)."""
    home = tmp_path / "home"
    if kind == "empty folder":
        home.mkdir()
    for page in PAGES:
        at = open_page(home, page, {})
        assert not at.exception, (page, [e.value for e in at.exception])
        assert any("No seedlab store" in w.value for w in at.sidebar.warning), page
        assert at.title, page
    assert (sorted(home.iterdir()) == []) if kind == "empty folder" else not home.exists()
