"""The Runs page in headless Chromium: the job details follow the queue on their own.

Only a browser shows this: the queue refreshes itself every few seconds (a fragment), and
a job that fails meanwhile must read "failed", with Cancel disabled, in the details too,
without a reload. Saves ``test-output/screenshots/runs-details-*.png`` (1280 px wide).
Skips with the reason when /usr/bin/chromium or playwright is missing.
"""

from __future__ import annotations

import socket
import time

import pytest
from app_support import make_fixture_home
from test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, running_app, settle

from seedlab.runs import queue, spec
from seedlab.store import Store

pytestmark = pytest.mark.browser
PORTS = range(8650, 8660)  # this test's own range, apart from the other browser tests'


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@pytest.fixture
def server(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs a system Chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    home = make_fixture_home(tmp_path / "home")
    with running_app(home, tmp_path / "streamlit.log", port=free_port()) as url:
        yield url, home


def test_job_details_turn_failed_without_a_reload(server):
    from playwright.sync_api import sync_playwright

    url, home = server
    store = Store(home)
    [job_id] = queue.submit(store, [spec.JobSpec(task="nli_sim", model="m", size="base",
                                                 pretrain_seed="9", finetune_seed=1)])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1800}).new_page()
            page.goto(f"{url}/runs")
            settle(page)
            details = page.locator('[data-testid="stText"]').filter(has_text="queued")
            details.first.wait_for(timeout=30_000)
            cancel = page.get_by_role("button", name="Cancel")
            assert cancel.is_enabled()
            page.screenshot(path=str(SCREENSHOTS / "runs-details-queued.png"), full_page=True)

            worker = queue.new_worker_id()
            assert queue.claim(store, worker).id == job_id
            queue.fail(store, job_id, worker, "model m does not exist")
            failed = page.locator('[data-testid="stText"]').filter(
                has_text="failed: model m does not exist")
            start = time.monotonic()
            failed.first.wait_for(timeout=20_000)  # the fragment's next refresh, no reload
            waited = time.monotonic() - start
            page.wait_for_timeout(500)
            assert page.get_by_role("button", name="Cancel").is_disabled()
            assert page.get_by_role("button", name="Retry").is_enabled()
            page.screenshot(path=str(SCREENSHOTS / "runs-details-failed.png"), full_page=True)
        finally:
            browser.close()
    assert waited < 20
