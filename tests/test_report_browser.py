"""A report lasts: in headless Chromium, pin a figure from a page, add a table to the same
report, reload the tab and restart the server, and find both on the Report page; then
download the HTML export and check it is one offline file holding both.

Skips with the reason when /usr/bin/chromium or playwright is missing (as
tests/test_browser.py). Never installs a browser.
"""

from __future__ import annotations

import contextlib
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from app_support import make_fixture_home
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGE_TIMEOUT_MS,
    running_app,
    settle,
)

from seedlab.reports import ReportItem, ReportStore

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "test-output" / "screenshots"

pytestmark = pytest.mark.browser


class Server:
    """The app (``test_browser.running_app``) over ``home``; ``restart()`` stops it and
    starts a fresh process (nothing kept in memory survives)."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.app: contextlib.AbstractContextManager[str] | None = None

    def start(self) -> str:
        self.app = running_app(self.home, self.log)
        self.url = self.app.__enter__()
        return self.url

    def stop(self) -> None:
        if self.app is not None:
            app, self.app = self.app, None
            app.__exit__(None, None, None)

    def restart(self) -> str:
        self.stop()
        return self.start()


@pytest.fixture
def server(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs a system Chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    server = Server(make_fixture_home(tmp_path / "home"), tmp_path / "streamlit.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def report_heads(page) -> list[str]:
    """The item headings the Report page shows ("1. title · figure from page · time")."""
    texts = page.locator('[data-testid="stMainBlockContainer"] [data-testid="stText"]')
    return [t for t in (x.strip() for x in texts.all_inner_texts())
            if t[:1].isdigit() and " from " in t]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_a_pinned_report_survives_a_reload_and_a_restart_and_exports(server, tmp_path):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 2400},
                                          accept_downloads=True)
            page = context.new_page()
            page.goto(f"{server.url}/overview", wait_until="domcontentloaded")
            settle(page)
            pin = page.locator(".st-key-overview-strip-pin").get_by_role("button",
                                                                          name="Pin to report")
            pin.first.click()
            settle(page)
            store = ReportStore(server.home)
            assert store.names() == ["report"]
            assert [i.title for i in store.items("report")] == ["nli_sim: accuracy of each run"]
            # A table goes to the same report (what a page's pin_table button writes).
            store.add("report", ReportItem.of_table(
                "Accuracy per size", pd.DataFrame({"size": ["tiny", "base"],
                                                   "mean": [0.61234, 0.83]}),
                caption="nli_sim · 3 x 3 seeds", page="overview"))

            page.goto(f"{server.url}/report", wait_until="domcontentloaded")
            settle(page)
            page.reload(wait_until="domcontentloaded")
            settle(page)
            expected = ["1. nli_sim: accuracy of each run · figure from Overview",
                        "2. Accuracy per size · table from overview"]
            assert [h.rsplit(" · ", 1)[0] for h in report_heads(page)] == expected
            assert page.locator('[data-testid="stPlotlyChart"]').count() == 1

            server.restart()
            fresh = browser.new_context(viewport={"width": 1280, "height": 2400},
                                        accept_downloads=True).new_page()
            fresh.goto(f"{server.url}/report", wait_until="domcontentloaded")
            settle(fresh)
            fresh.wait_for_selector(".js-plotly-plot", timeout=PAGE_TIMEOUT_MS)  # the figure drawn
            fresh.screenshot(path=str(SCREENSHOTS / "report-after-restart.png"))
            assert [h.rsplit(" · ", 1)[0] for h in report_heads(fresh)] == expected
            assert fresh.locator('[data-testid="stException"]').count() == 0
            # the table, on the page (a data grid drawn on a canvas: its cells are not text)
            assert fresh.locator('[data-testid="stDataFrame"]').count() == 1

            with fresh.expect_download(timeout=PAGE_TIMEOUT_MS) as download:
                fresh.get_by_text("Download report (HTML, opens offline)").click()
            path = tmp_path / "report.html"
            download.value.save_as(path)
        finally:
            browser.close()

    document = path.read_text(encoding="utf-8")
    tags = Tags()
    tags.feed(document)
    assert [t for t, _ in tags.tags].count("figure") == 2
    assert not [a for _, a in tags.tags if "src" in a or "href" in a]  # nothing to fetch
    assert "Plotly.newPlot" in document and "nli_sim: accuracy of each run" in document
    assert '<td class="num">0.6123</td>' in document and "<td>tiny</td>" in document
