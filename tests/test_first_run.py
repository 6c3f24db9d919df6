"""A new user's first run, as the README promises it: no code written.

On a user home laid out as the app lays it out (``seedlab.store.shipped.sync_shipped`` of the
shipped study into a temporary home), the Runs page is opened with its defaults (the
offline default model), the real Preview and Launch buttons are clicked, the local worker
pool the page starts trains the runs, and the Overview page of the same home lists the
new size and its runs. The shipped study used as the source is byte-identical afterwards
and git sees no change in it: a user's run leaves ``git status`` clean.

The form's default model (``catalogue.DEFAULT_MODEL``, the installed MiniLM) is checked
to be what the form offers; the run itself uses the other offline name, ``tiny-bert``
(built on the spot into a temporary ``SEEDLAB_CACHE``), with tiny data (64 training
snippets, 64 scored, sequences of at most 32 tokens, one epoch), to stay near a minute on
two cores (the MiniLM took 25 to 60 s a job here).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from app_support import app_test

from seedlab.analyses.jobs import default_size
from seedlab.runs import catalogue, queue
from seedlab.runs.executor import LocalPool
from seedlab.store import Store, shipped

pytest.importorskip("torch")
pytest.importorskip("transformers")

SHIPPED = shipped.SHIPPED
TIMEOUT_S = 240


def folder_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (symlinks as their target text): path -> sha256."""
    digest = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            digest[str(path.relative_to(folder))] = "link:" + str(path.readlink())
        elif path.is_file():
            digest[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def git_status(folder: Path) -> str | None:
    """``git status --porcelain`` of ``folder`` (None outside a git checkout)."""
    if shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--",
                          str(folder)], cwd=folder, capture_output=True, text=True, check=False)
    return out.stdout if out.returncode == 0 else None


def task_row(at, task: str) -> dict:
    [table] = [d.value for d in at.dataframe if "sizes" in d.value.columns]
    return table.set_index("task").loc[task].to_dict()


@pytest.fixture
def user_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SEEDLAB_CACHE", str(tmp_path / "cache"))  # where tiny-bert is built
    if not shipped.is_published(SHIPPED):
        pytest.skip(f"{SHIPPED} holds no shipped study")
    home = tmp_path / "home"
    shipped.sync_shipped(Store(SHIPPED), Store(home))
    return home


def test_a_new_user_runs_the_default_model_from_the_runs_page_and_sees_it_on_overview(
        user_home):
    shipped_before, status_before = folder_digest(SHIPPED), git_status(SHIPPED)
    store = Store(user_home)
    overview = app_test(user_home, "pages/overview.py")
    assert not overview.exception, [e.value for e in overview.exception]
    runs = app_test(user_home, "pages/runs.py")
    assert not runs.exception, [e.value for e in runs.exception]
    # The form opens on an offline model and a size of its own, on the study's task.
    assert runs.text_area[0].value == catalogue.DEFAULT_MODEL
    task = runs.text_input[0].value
    size = runs.text_input[2].value
    assert size == default_size(catalogue.DEFAULT_MODEL, "") != ""
    before = task_row(overview, task)
    assert size not in before["sizes"].split(", ")
    # The smoke-run model and tiny data, so that the two runs take seconds.
    size = default_size(catalogue.TINY_BERT, "")
    runs.text_area[0].set_value(catalogue.TINY_BERT)
    runs.text_input[2].set_value(size)
    assert size not in before["sizes"].split(", ")
    runs.number_input[0].set_value(1.0)    # epochs
    runs.text_input[5].set_value("0.5, 1")  # checkpoints
    runs.number_input[3].set_value(32)     # max sequence length
    runs.number_input[4].set_value(64)     # max train examples
    runs.number_input[5].set_value(64)     # max eval examples
    next(b for b in runs.button if b.label == "Preview").click()
    runs.run()
    assert not runs.exception, [e.value for e in runs.exception]
    assert not runs.error, [e.value for e in runs.error]
    summary = next(m.value for m in runs.markdown if "jobs** in the grid" in m.value)
    assert summary.endswith("**2 new**.")
    try:
        next(b for b in runs.button if b.label == "Launch new jobs").click()
        runs.run()
        assert [s.value for s in runs.success] == ["Queued 2 job(s); 1 worker(s) running."]
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            states = queue.jobs(store)["state"].tolist()
            if all(s not in queue.ACTIVE for s in states):
                break
            time.sleep(2)
        runs.run()  # the page's own refresh shows them finished
        [table] = [d.value for d in runs.dataframe if "progress" in d.value.columns]
        jobs = queue.jobs(store)
        assert table["state"].tolist() == ["finished", "finished"], \
            jobs[["id", "state", "message"]].to_string()
    finally:
        LocalPool().stop(store)

    overview = app_test(user_home, "pages/overview.py")
    assert not overview.exception, [e.value for e in overview.exception]
    after = task_row(overview, task)
    assert size in after["sizes"].split(", ")
    assert after["runs"] == before["runs"] + 2
    new = store.runs(task=task, size=size)
    assert sorted(zip(new["pretrain_seed"], new["finetune_seed"])) == [("0", 1), ("0", 2)]
    assert set(new["source"]) == {"seedlab-run"}
    # The user's runs live in the user home; the shipped study is as it was.
    assert folder_digest(SHIPPED) == shipped_before
    assert git_status(SHIPPED) == status_before
    if status_before is not None:
        assert status_before == ""
