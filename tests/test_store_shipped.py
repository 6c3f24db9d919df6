"""The user home beside the shipped study: a copy that stays in step, never written back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from seedlab.simulate import simulate, write_study
from seedlab.store import Store
from seedlab.store import shipped as homes

REPO = Path(__file__).resolve().parents[1]


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _shipped(tmp_path: Path, *tasks: str) -> Path:
    """A published study: one small simulated task per name, without its catalogue
    (a fresh clone has none)."""
    shipped = tmp_path / "data"
    store = Store(shipped)
    for i, task in enumerate(tasks):
        write_study(store, simulate(40, sizes=("small", "large"), pretrain_seeds=2,
                                    finetune_seeds=2, checkpoints=2, seed=i, task=task))
    for path in shipped.glob("catalog.sqlite*"):
        path.unlink()
    (shipped / ".write.lock").unlink(missing_ok=True)
    return shipped


def _sync(shipped: Path, home: Path) -> homes.SyncResult:
    return homes.sync_shipped(Store(shipped), Store(home))


def _runs(store: Store) -> pd.DataFrame:
    cols = ["task", "size", "pretrain_seed", "finetune_seed"]
    return store.runs()[cols].sort_values(cols).reset_index(drop=True)


def test_first_sync_copies_the_study_and_reads_the_same(tmp_path):
    shipped = _shipped(tmp_path, "sim-a")
    before = _tree_digest(shipped)
    result = _sync(shipped, tmp_path / "home")
    assert result.synced and len(result.added) == 8 and not result.removed
    user = Store(tmp_path / "home")
    pd.testing.assert_frame_equal(_runs(user), _runs(Store(shipped)))
    a = user.arrays("sim-a", "large")
    b = Store(shipped).arrays("sim-a", "large")
    assert (a.correct == b.correct).all() and a.correct.shape == (40, 2, 2)  # last checkpoint
    # the shipped files are untouched by opening and reading (only its catalogue and caches,
    # which git ignores, is made)
    after = {k: v for k, v in _tree_digest(shipped).items() if not k.startswith(("catalog", ".", "cache/"))}
    assert after == before


def test_second_sync_is_a_no_op(tmp_path):
    shipped = _shipped(tmp_path, "sim-a")
    _sync(shipped, tmp_path / "home")
    Store(tmp_path / "home")
    again = _sync(shipped, tmp_path / "home")
    assert not again.synced and not again.changed


def test_user_work_goes_to_the_home_and_survives_a_new_publish(tmp_path):
    shipped = _shipped(tmp_path, "sim-a")
    home = tmp_path / "home"
    _sync(shipped, home)
    user = Store(home)
    # the user's own work: a task of their own and a verdict on a shipped instance
    write_study(user, simulate(30, sizes=("tiny",), pretrain_seeds=1, finetune_seeds=2,
                               checkpoints=1, seed=7, task="mine"))
    instance = str(user.instances("sim-a")["instance_id"].iloc[0])
    user.annotate("sim-a", instance, "ann", "wrong")
    shipped_before = _tree_digest(shipped)

    # a new publish (git pull): sim-a is replaced by sim-b
    for path in list(shipped.rglob("*")):
        if path.is_file():
            path.unlink()
    fresh = _shipped(tmp_path / "v2", "sim-b")
    for path in fresh.rglob("*"):
        if path.is_file():
            target = shipped / path.relative_to(fresh)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert _tree_digest(shipped) != shipped_before

    result = _sync(shipped, home)
    assert len(result.added) == 8 and len(result.removed) == 8
    user = Store(home)
    assert set(user.runs()["task"]) == {"sim-b", "mine"}
    assert len(user.runs(task="mine")) == 2
    verdicts = user.annotations()
    assert list(verdicts["instance_id"]) == [instance] and list(verdicts["verdict"]) == ["wrong"]


def test_a_sync_killed_before_its_record_is_redone(tmp_path):
    shipped = _shipped(tmp_path, "sim-a")
    home = tmp_path / "home"
    _sync(shipped, home)
    (home / homes.STATE_FILE).unlink()  # as if killed after the commit, before the record
    result = _sync(shipped, home)
    assert result.synced and not result.changed  # the same runs again: nothing added twice
    assert len(Store(home).runs(task="sim-a")) == 8


def test_the_shipped_study_is_read_only_to_the_user_home(tmp_path):
    shipped = _shipped(tmp_path, "sim-a")
    before = _tree_digest(shipped)
    home = tmp_path / "home"
    _sync(shipped, home)
    user = Store(home)
    write_study(user, simulate(30, sizes=("tiny",), pretrain_seeds=1, finetune_seeds=1,
                               checkpoints=1, seed=3, task="sim-a-extra"))
    user.annotate("sim-a", str(user.instances("sim-a")["instance_id"].iloc[0]), "ann", "wrong")
    after = {k: v for k, v in _tree_digest(shipped).items()
             if not k.startswith(("catalog", ".", "cache/"))}
    assert after == before


def test_same_folder_is_refused(tmp_path):
    shipped = _shipped(tmp_path, "sim-a")
    with pytest.raises(ValueError, match="same folder"):
        _sync(shipped, shipped)


def test_default_home_names_seedlab_home_first(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEDLAB_HOME", str(tmp_path / "elsewhere"))
    assert homes.default_home() == (tmp_path / "elsewhere").resolve()


def test_default_home_of_the_checkout_is_the_ignored_user_home(monkeypatch):
    monkeypatch.delenv("SEEDLAB_HOME", raising=False)
    if not homes.is_published(homes.SHIPPED):
        pytest.skip("this checkout ships no study in data/")
    assert homes.default_home() == REPO / "home"
    user = Store()
    assert user.home == REPO / "home"
    shipped = Store(homes.SHIPPED)
    pd.testing.assert_frame_equal(_runs(user)[_runs(user)["task"].isin(_runs(shipped)["task"])]
                                  .reset_index(drop=True), _runs(shipped))


def test_a_fresh_clone_opens_its_user_home_in_the_app_before_it_exists(tmp_path, monkeypatch):
    """``make app`` on a fresh clone: no ``home/`` yet and no ``$SEEDLAB_HOME``. The app's
    default home is the user home; it counts as a store, is made on first open and filled
    from the shipped study, and the Overview lists the shipped task (it once said "No
    seedlab store")."""
    from app_support import navigation_only
    from streamlit.testing.v1 import AppTest

    if not homes.is_published(homes.SHIPPED):
        pytest.skip(f"{homes.SHIPPED} holds no shipped study")
    user = (tmp_path / "home").resolve()
    monkeypatch.setattr(homes, "USER_HOME", user)
    monkeypatch.delenv("SEEDLAB_HOME", raising=False)
    assert homes.default_home() == user and not user.exists()
    assert Store.is_home(user)
    assert not Store.is_home(tmp_path / "elsewhere")
    navigation_only()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"),
                           default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [w.value for w in at.warning if "No seedlab store" in w.value]
    assert (user / "catalog.sqlite").exists()
    shipped_tasks = set(Store(homes.SHIPPED).runs()["task"])
    assert set(Store(user).runs()["task"]) == shipped_tasks
    # A home that is not the user home is still refused when it does not exist.
    with pytest.raises(Exception, match="does not exist"):
        Store(tmp_path / "elsewhere", create=False)
