"""The real dashboard in headless Chromium: start ``streamlit run app.py`` on 127.0.0.1 over a
fixture home, visit every page, click an annotation button, and save screenshots under
``test-output/screenshots/``.

Skips with the reason when /usr/bin/chromium or playwright is missing. Never installs a
browser.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_support import DECAYING, make_fixture_home

from seedlab.store import Store

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "test-output" / "screenshots"
PAGES = ["overview", "bias_variance", "agreement", "decaying", "annotate", "masks",
         "significance", "datamap", "runs", "report"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PAGE_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer on {url} in {timeout}s:\n{log.read_text()}")


@contextlib.contextmanager
def running_app(home: Path, log: Path, port: int | None = None) -> Iterator[str]:
    """``streamlit run app.py`` on ``home`` at 127.0.0.1 (``port``, else a free one), its
    output appended to ``log``; yields the app's URL once it answers, and stops it on the way
    out."""
    port = port or free_port()
    env = {**os.environ, "SEEDLAB_HOME": str(home), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(log, "a") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true"],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real streamlit server over a fresh fixture home: yields (base url, home)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser test needs a system Chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    home = make_fixture_home(tmp_path_factory.mktemp("browser") / "home")
    with running_app(home, tmp_path_factory.getbasetemp() / "streamlit.log") as url:
        yield url, home


@pytest.fixture(scope="module")
def browser(server):
    """One headless Chromium for the module (playwright's sync API allows one at a time)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    yield context.new_page()
    context.close()


def settle(page) -> None:
    """Wait until the app has drawn its page and finished running."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=PAGE_TIMEOUT_MS)
    # The status widget says "Running..." while a script run is under way.
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        # While a script runs the status widget shows "Running..." and a "Stop" button.
        status = page.locator('[data-testid="stStatusWidget"]')
        running = status.filter(has_text="Running").count() + status.filter(has_text="Stop").count()
        # Between two runs (a first load reruns once) elements are drawn stale or as
        # skeletons: wait for a page with neither, not only for a quiet status widget.
        running += page.locator('[data-stale="true"]').count()
        running += page.locator('[data-testid="stSkeleton"]').count()
        if running == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.0:
                return
        else:
            quiet_since = None
        page.wait_for_timeout(200)
    raise TimeoutError("the app was still running after a minute")


def assert_no_exception(page, name: str) -> None:
    errors = page.locator('[data-testid="stException"]')
    if errors.count():
        pytest.fail(f"page {name} shows an exception: {errors.first.inner_text()[:2000]}")


def test_every_page_renders_without_an_exception(server, browser_page):
    url, _home = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The very first request of a fresh server: a copied link to a page with its view state
    # must open that page inside the frame (sidebar, navigation), not Streamlit's legacy
    # pages/ router (seedlab/ui/frame.py).
    browser_page.goto(f"{url}/agreement?task=nli_sim&agreement.metric=kappa",
                      wait_until="domcontentloaded")
    settle(browser_page)
    browser_page.screenshot(path=str(SCREENSHOTS / "first-load.png"), timeout=PAGE_TIMEOUT_MS)
    assert_no_exception(browser_page, "first load")
    title = browser_page.locator('[data-testid="stMainBlockContainer"] h1').first
    assert title.inner_text().strip() == "Agreement between runs"
    sidebar = browser_page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("Pretraining seeds").count() >= 1   # the shared sidebar
    assert sidebar.get_by_text("Bias and variance").count() >= 1   # app.py's navigation
    assert "agreement.metric=kappa" in browser_page.url
    for name in PAGES:
        browser_page.goto(f"{url}/{name}", wait_until="domcontentloaded")
        settle(browser_page)
        browser_page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True,
                                timeout=PAGE_TIMEOUT_MS)
        assert_no_exception(browser_page, name)
        title = browser_page.locator('[data-testid="stMainBlockContainer"] h1').first
        assert title.inner_text().strip(), f"page {name} has no title"


def test_an_annotation_click_reaches_the_log(server, browser_page):
    url, home = server
    browser_page.goto(f"{url}/annotate?annotate.annotator=browser-test", wait_until="domcontentloaded")
    settle(browser_page)
    assert_no_exception(browser_page, "annotate")
    first = browser_page.locator('[data-testid="stMarkdownContainer"]').filter(
        has_text="Instance 1 of").first.inner_text()
    instance_id = next(i for i in DECAYING if i in first)
    browser_page.get_by_role("button", name="Wrong", exact=True).click()
    deadline = time.monotonic() + 30
    log = Store(home).annotations(annotator="browser-test")
    while log.empty and time.monotonic() < deadline:
        browser_page.wait_for_timeout(250)
        log = Store(home).annotations(annotator="browser-test")
    assert log[["task", "instance_id", "verdict"]].values.tolist() == [
        ["nli_sim", instance_id, "wrong"]]
    settle(browser_page)
    assert_no_exception(browser_page, "annotate after a click")
    # the page moved on and counts the verdict
    browser_page.get_by_text("browser-test: 1 of").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    browser_page.screenshot(path=str(SCREENSHOTS / "annotate-after-click.png"),
                         full_page=True, timeout=PAGE_TIMEOUT_MS)


# Every control's label and value on screen, main area and sidebar: toggles and checkboxes,
# select boxes, multiselects (their chips), radios, text and number inputs, sliders.
CONTROLS_JS = """() => {
  const out = {};
  const label = (e) => {
    const l = e.querySelector('[data-testid="stWidgetLabel"]');
    return l ? l.innerText.trim() : '';
  };
  const put = (kind, e, value) => {
    const where = e.closest('[data-testid="stSidebar"]') ? 'sidebar' : 'main';
    out[`${where}/${kind}/${label(e)}`] = value;
  };
  document.querySelectorAll('[data-testid="stCheckbox"]').forEach(e =>
    put('toggle', e, e.querySelector('input').checked));
  document.querySelectorAll('[data-testid="stSelectbox"]').forEach(e =>
    put('select', e, e.querySelector('input').value));
  document.querySelectorAll('[data-testid="stMultiSelect"]').forEach(e =>
    put('multiselect', e, Array.from(e.querySelectorAll('span[data-tag]'))
      .map(t => t.getAttribute('aria-label'))));
  document.querySelectorAll('[data-testid="stRadio"]').forEach(e =>
    put('radio', e, Array.from(e.querySelectorAll('[data-testid="stRadioOption"]'))
      .filter(o => o.getAttribute('data-selected') === 'true').map(o => o.innerText.trim())));
  document.querySelectorAll('[data-testid="stTextInput"], [data-testid="stNumberInput"]')
    .forEach(e => put('input', e, e.querySelector('input').value));
  document.querySelectorAll('[data-testid="stSlider"]').forEach(e =>
    put('slider', e, Array.from(e.querySelectorAll('[role="slider"]'))
      .map(s => s.getAttribute('aria-valuenow'))));
  return out;
}"""


def copied_link(page) -> str:
    """The link the sidebar's Copy link popover holds (opened, read, closed)."""
    page.locator('[data-testid="stSidebar"] [data-testid="stPopoverButton"]').click()
    code = page.locator('[data-testid="stPopoverBody"] code').first
    code.wait_for(timeout=PAGE_TIMEOUT_MS)
    link = "".join(code.inner_text().split())  # wrapped lines
    page.keyboard.press("Escape")
    return link


def test_a_copied_link_reopens_the_view_on_screen(server, browser):
    """Change a page control and a sidebar control, copy the link, open it in a fresh
    browser context: every control has the same value (the link follows the last change,
    not the one before it)."""
    url, _home = server
    first_context = browser.new_context(viewport={"width": 1400, "height": 2000})
    second_context = browser.new_context(viewport={"width": 1400, "height": 2000})
    try:
        first = first_context.new_page()
        first.goto(f"{url}/agreement", wait_until="domcontentloaded")
        settle(first)
        first.get_by_text("Aggregate into size x pretraining-seed blocks").wait_for(
            timeout=PAGE_TIMEOUT_MS)
        before = first.evaluate(CONTROLS_JS)
        toggle = "main/toggle/Aggregate into size x pretraining-seed blocks"
        assert before[toggle] is False
        # The last change is a page control: the sidebar drew the link before it.
        seeds = first.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]'
                              ).filter(has_text="Fine-tuning seeds")
        seeds.get_by_role("button", name="Remove 3").click()
        settle(first)
        first.get_by_text("Aggregate into size x pretraining-seed blocks").click()
        settle(first)
        first.locator('[data-testid="stRadioOption"]').filter(has_text="kappa").click()
        settle(first)
        shown = first.evaluate(CONTROLS_JS)
        assert shown[toggle] is True
        assert shown["main/radio/Measure"] == ["kappa"]
        assert shown["sidebar/multiselect/Fine-tuning seeds"] == ["1", "2"]
        link = copied_link(first)
        assert "agreement.blocks=true" in link and "agreement.metric=kappa" in link
        assert "finetune_seeds=3" not in link
        first.screenshot(path=str(SCREENSHOTS / "link-first-context.png"),
                         full_page=True, timeout=PAGE_TIMEOUT_MS)

        second = second_context.new_page()
        second.goto(link, wait_until="domcontentloaded")
        settle(second)
        second.get_by_text("Aggregate into size x pretraining-seed blocks").wait_for(
            timeout=PAGE_TIMEOUT_MS)
        assert_no_exception(second, "the copied link")
        second.screenshot(path=str(SCREENSHOTS / "link-second-context.png"),
                          full_page=True, timeout=PAGE_TIMEOUT_MS)
        reopened = second.evaluate(CONTROLS_JS)
        assert reopened == shown
        assert copied_link(second) == link
    finally:
        first_context.close()
        second_context.close()


def test_a_link_naming_a_folder_that_is_no_store_writes_nothing(server, browser_page,
                                                               tmp_path):
    """``/runs?home=<a plain folder>`` opens the default home, says so, and leaves the
    folder as it was (no catalogue, cache or lock created there)."""
    from urllib.parse import quote

    url, home = server
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine\n")
    browser_page.goto(f"{url}/runs?home={quote(str(plain))}&task=mnli&foo=%3Cb%3E",
                      wait_until="domcontentloaded")
    settle(browser_page)
    assert_no_exception(browser_page, "runs on a hostile link")
    warning = browser_page.locator('[data-testid="stAlert"]').filter(
        has_text="Parts of this link were ignored").first
    text = warning.inner_text()
    assert f"home = {plain}: not a seedlab store" in text
    assert "foo = <b>: not a setting of this app" in text
    browser_page.screenshot(path=str(SCREENSHOTS / "hostile-link.png"), timeout=PAGE_TIMEOUT_MS)
    assert sorted(p.name for p in plain.iterdir()) == ["notes.txt"]
    assert f"home={quote(str(home), safe='')}" in browser_page.url


def test_the_data_map_names_a_point_on_hover(server, browser_page):
    """Hovering a point of the data map shows its instance id and region (the hover text
    the figure carries, one string per point) beside its variability and confidence."""
    url, home = server
    browser_page.goto(f"{url}/datamap", wait_until="domcontentloaded")
    settle(browser_page)
    assert_no_exception(browser_page, "datamap")
    browser_page.wait_for_selector(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas",
                                   timeout=PAGE_TIMEOUT_MS)
    # Where plotly drew the first point, from the figure's own axes.
    x, y, hover = browser_page.evaluate("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        const layout = gd._fullLayout, trace = gd._fullData[0];
        const box = gd.getBoundingClientRect();
        return [box.left + layout._size.l + layout.xaxis.l2p(trace.x[0]),
                box.top + layout._size.t + layout.yaxis.l2p(trace.y[0]), trace.hovertext[0]];
    }""")
    instance_id, region = hover.rsplit(" (", 1)
    region = region.rstrip(")")
    assert region in ("easy", "ambiguous", "hard")
    store = Store(home)
    known = {str(i) for task in store.runs()["task"].unique()
             for i in store.instances(task)["instance_id"]}
    assert instance_id in known
    browser_page.mouse.move(x + 3, y + 3)
    browser_page.mouse.move(x, y)
    label = browser_page.locator(".hoverlayer .hovertext")
    label.first.wait_for(timeout=PAGE_TIMEOUT_MS)
    text = label.first.text_content() or ""
    browser_page.screenshot(path=str(SCREENSHOTS / "datamap-hover.png"),
                            timeout=PAGE_TIMEOUT_MS)
    assert f"{instance_id} ({region}): variability" in text and "confidence" in text, text
