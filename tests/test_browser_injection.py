"""The real Annotate page in headless Chromium over a study whose texts, ids, labels and
annotator names hold Markdown images and links, backticks, ``<script>`` and ``<img
onerror>`` (tests/test_injection.py): the browser requests none of their URLs, runs none
of their scripts, and shows them literally. Saves ``annotate-hostile.png`` under
``test-output/screenshots/``.

Skips with the reason when /usr/bin/chromium or playwright is missing.
"""

from __future__ import annotations

import pytest
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    assert_no_exception,
    running_app,
    settle,
)
from test_injection import ANNOTATORS, IDS, LABELS, SPLIT, TASK, TEXT_A, TEXT_B, make_hostile_home

pytestmark = pytest.mark.browser


def test_hostile_text_shows_literally_and_fetches_nothing(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs a system Chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    home = make_hostile_home(tmp_path / "home")
    requests: list[str] = []
    dialogs: list[str] = []
    with (running_app(home, tmp_path / "streamlit.log") as url,
          sync_api.sync_playwright() as playwright):
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
                page.on("request", lambda r: requests.append(r.url))
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.goto(f"{url}/annotate?task={TASK}&annotate.annotator=%60bob%60"
                          "%20%21%5Ba%5D%28http%3A%2F%2F127.0.0.1%3A8602%2Fa.png%29",
                          wait_until="domcontentloaded")
                settle(page)
                assert_no_exception(page, "annotate")
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "annotate-hostile.png"), full_page=True)
                main = page.locator('[data-testid="stMainBlockContainer"]')
                shown = main.inner_text()
                header = main.locator('[data-testid="stMarkdownContainer"]').filter(
                    has_text="Instance ").first.inner_text()
                index = next(i for i, v in enumerate(IDS) if v in header)
                for literal in (IDS[index], f"split {SPLIT}", TEXT_A[index], TEXT_B[index],
                                LABELS[index % 2], ANNOTATORS[1]):
                    assert literal in shown, literal
                # no element the texts could have made
                assert main.locator("img").count() == 0
                assert main.locator("a[href*='127.0.0.1:860']").count() == 0
                assert main.locator("script").count() == 0
            finally:
                browser.close()
    assert not [r for r in requests if ":860" in r], requests
    assert not dialogs, dialogs
