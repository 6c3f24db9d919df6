"""The Runs page under Streamlit's AppTest: grid preview, queue, cancel and retry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_support import app_test, make_fixture_home
from streamlit.testing.v1 import AppTest

from seedlab.runs import queue, spec
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
