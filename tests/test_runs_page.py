"""The Runs page under Streamlit's AppTest: grid preview, queue, cancel and retry."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from app_support import app_test, fill_runs_grid, make_fixture_home
from streamlit.testing.v1 import AppTest

from seedlab.analyses.jobs import OFFLINE_MODEL_SIZES
from seedlab.runs import catalogue, queue, spec
from seedlab.store import Store

PAGE = "pages/runs.py"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = make_fixture_home(tmp_path / "home")
    monkeypatch.setenv("SEEDLAB_HOME", str(home))
    return home


def open_page() -> AppTest:
    at = app_test(os.environ["SEEDLAB_HOME"], PAGE)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_preview_counts_existing_and_queued_jobs(home):
    store = Store(home)
    # nli_sim has tiny x pretraining seeds 0,1,2 x fine-tuning seeds 1,2,3 in the store.
    queued = spec.JobSpec(task="nli_sim", model="m", size="tiny", pretrain_seed="3",
                          finetune_seed=1)
    queue.submit(store, [queued])
    at = open_page()
    at.text_input[0].set_value("nli_sim")
    at.text_area[0].set_value("bert-L2-H128")
    at.text_input[2].set_value("tiny")
    at.text_input[3].set_value("2, 3")
    at.text_input[4].set_value("1, 4")
    at.text_input[5].set_value("1, 2")
    at.number_input[0].set_value(2.0)
    at.button[0].click()  # Preview
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    summary = next(m.value for m in at.markdown if "jobs** in the grid" in m.value)
    assert summary.startswith("**4 jobs** in the grid: 1 already in the store, 1 queued or"
                              " running, **2 new**")
    preview = at.dataframe[0].value
    assert list(preview["status"]) == ["in store", "new", "queued or running", "new"]
    jobs = at.dataframe[1].value
    assert list(jobs["state"]) == ["queued"]


def test_cancel_and_retry_from_the_page(home):
    store = Store(home)
    [job_id] = queue.submit(store, [spec.JobSpec(task="nli_sim", model="m", size="base",
                                                 pretrain_seed="9", finetune_seed=1)])
    at = open_page()
    cancel = next(b for b in at.button if b.label == "Cancel")
    cancel.click()
    at.run()
    assert queue.get(store, job_id).state == "cancelled"
    retry = next(b for b in at.button if b.label == "Retry")
    assert not retry.disabled
    retry.click()
    at.run()
    assert queue.get(store, job_id).state == "queued"
    events = at.dataframe[-1].value
    assert list(events["state"]) == ["queued", "cancelled", "queued"]


def test_the_form_opens_on_an_offline_model_with_a_size_of_its_own(home):
    at = open_page()
    assert at.text_area[0].value == catalogue.DEFAULT_MODEL
    assert catalogue.DEFAULT_MODEL in catalogue.OFFLINE_NAMES  # resolves with no network
    assert at.text_input[2].value == OFFLINE_MODEL_SIZES[catalogue.DEFAULT_MODEL] == "L6-H384"
    assert set(OFFLINE_MODEL_SIZES) == set(catalogue.OFFLINE_NAMES)
    # The default previews without an edit: two new jobs on the fixture's nli_sim task.
    next(b for b in at.button if b.label == "Preview").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert list(preview_table(at)["model"]) == [catalogue.DEFAULT_MODEL] * 2


def test_the_sizes_field_follows_the_model_until_the_user_writes_one(home):
    at = open_page()
    assert at.text_input[2].value == "L6-H384"
    # Another offline model: the suggested size changes with it, and the preview uses it.
    at.text_area[0].set_value(catalogue.TINY_BERT)
    next(b for b in at.button if b.label == "Preview").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input[2].value == OFFLINE_MODEL_SIZES[catalogue.TINY_BERT] == "L2-H032"
    preview = preview_table(at)
    assert list(preview["model"]) == [catalogue.TINY_BERT] * 2
    assert set(preview["size"]) == {"L2-H032"}
    # A model the catalogue has no size for: the plain fallback.
    at.text_area[0].set_value("multiberts-seed_0")
    next(b for b in at.button if b.label == "Preview").click()
    at.run()
    assert at.text_input[2].value == "base"
    # A size the user wrote stays when the model changes.
    at.text_input[2].set_value("mine")
    next(b for b in at.button if b.label == "Preview").click()
    at.run()
    at.text_area[0].set_value(catalogue.MINILM)
    next(b for b in at.button if b.label == "Preview").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input[2].value == "mine"
    assert set(preview_table(at)["size"]) == {"mine"}


def queue_table(at: AppTest) -> pd.DataFrame:
    """The queue table (AppTest dataframes carry no key: the one with a progress column)."""
    [table] = [d.value for d in at.dataframe if "progress" in d.value.columns]
    return table


def preview_table(at: AppTest) -> pd.DataFrame:
    [table] = [d.value for d in at.dataframe if "status" in d.value.columns]
    return table


def fill_grid(at: AppTest, *, task: str = "nli_sim", model: str = "bert-L2-H128",
              size: str = "base", pretrain: str = "7", finetune: str = "1, 2",
              checkpoints: str = "1, 2") -> None:
    """Fill the grid form (2 epochs) and press Preview."""
    fill_runs_grid(at, task=task, model=model, size=size, pretrain=pretrain, finetune=finetune,
                   checkpoints=checkpoints, epochs=2.0)


def test_queue_table_shows_progress_and_state_before_the_timestamps(home):
    store = Store(home)
    [job_id] = queue.submit(store, [spec.JobSpec(task="nli_sim", model="m", size="base",
                                                 pretrain_seed="9", finetune_seed=1)])
    worker = queue.new_worker_id()
    assert queue.claim(store, worker).id == job_id
    queue.progress(store, job_id, worker, phase="train", step=30, total=120, loss=0.5,
                   eta_s=12.0)
    at = open_page()
    table = queue_table(at)
    columns = list(table.columns)
    assert columns[:3] == ["id", "state", "progress"]
    assert columns[-2:] == ["created_at", "finished_at"]
    assert "started_at" not in columns and "heartbeat" not in columns and "spec" not in columns
    assert table["progress"].tolist() == [0.25]
    assert table["state"].tolist() == ["running"]
    # A local job has no Slurm id or state.
    assert table["slurm_id"].isna().all() and table["slurm_state"].isna().all()


def test_job_details_are_drawn_from_the_same_read_as_the_queue(home):
    store = Store(home)
    [job_id] = queue.submit(store, [spec.JobSpec(task="nli_sim", model="m", size="base",
                                                 pretrain_seed="9", finetune_seed=1)])
    at = open_page()
    assert not at.button(key="runs.cancel").disabled
    assert at.text[0].value.startswith("queued")
    worker = queue.new_worker_id()
    queue.claim(store, worker)
    queue.fail(store, job_id, worker, "model m does not exist")
    at.run()
    assert queue_table(at)["state"].tolist() == ["failed"]
    assert at.text[0].value == "failed: model m does not exist"
    assert at.button(key="runs.cancel").disabled
    assert not at.button(key="runs.retry").disabled


def test_preview_after_launch_lists_the_launched_jobs_as_queued(home, monkeypatch):
    started = []
    monkeypatch.setattr("seedlab.analyses.jobs.default_executor",
                        lambda: type("Pool", (), {"start": lambda self, s: started.append(s)
                                                  or pd.DataFrame({"device": ["cpu"]})})())
    at = open_page()
    fill_grid(at)
    assert "**2 new**" in next(m.value for m in at.markdown if "jobs** in the grid" in m.value)
    launch = next(b for b in at.button if b.label == "Launch new jobs")
    launch.click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    summary = next(m.value for m in at.markdown if "jobs** in the grid" in m.value)
    assert summary.startswith("**2 jobs** in the grid: 0 already in the store, 2 queued or"
                              " running, **0 new**")
    assert list(preview_table(at)["status"]) == ["queued or running"] * 2
    assert next(b for b in at.button if b.label == "Launch new jobs").disabled
    assert [s.value for s in at.success] == ["Queued 2 job(s); 1 worker(s) running."]
    assert len(started) == 1
    assert sorted(queue.jobs(Store(home))["finetune_seed"]) == [1, 2]


@pytest.mark.parametrize("checkpoints, problem", [
    ("1, nan", "'nan' is not a finite number"),
    ("inf", "'inf' is not a finite number"),
    ("1, two", "'two' is not a number"),
    ("3", "checkpoints [3.0] are not within the 2.0 training epochs"),
])
def test_the_form_refuses_bad_checkpoints_with_the_field_named(home, checkpoints, problem):
    at = open_page()
    fill_grid(at, checkpoints=checkpoints)
    [error] = at.error
    assert error.value.startswith("the form, field 'checkpoints': " + problem)
    assert not any("jobs** in the grid" in m.value for m in at.markdown)
    assert queue.jobs(Store(home)).empty


@pytest.mark.parametrize("fields, problem", [
    ({"model": "x{foo}"}, "field 'model'"),
    ({"model": "bert-{size.__class__}"}, "field 'model'"),
    ({"model": "a\nb"}, "2 models for 1 pretraining seeds"),
    ({"size": "../etc"}, "field 'task/size'"),
    ({"finetune": "1, -3"}, "seed '-3' is out of range"),
    ({"pretrain": ""}, "field 'pretrain_seed': missing"),
])
def test_preview_shows_every_bad_field_as_a_message(home, fields, problem):
    at = open_page()
    fill_grid(at, **fields)
    [error] = at.error
    assert problem in error.value
    assert not any("jobs** in the grid" in m.value for m in at.markdown)
