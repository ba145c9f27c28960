"""The walkthrough as a reader meets it: JupyterLab on 127.0.0.1 with a token, Debian's headless
Chromium driven by Selenium, Run > Run All Cells, no error in the page, the ε slider moved
and its table changed, and a screenshot.

The notebook opened is a copy under the test's temporary folder with small parameters
injected by papermill (one epoch on 768 digits in batches of 16: enough for the converted
network to answer better with more steps, so that the slider has a trade-off to move), so
the four runs it trains take a minute or two; its runs go to that folder too, and nothing is
written into the checkout.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import papermill
import pytest
from lab_server import jupyter_lab

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
INSTALL = "apt-get install chromium chromium-driver (Debian), as .ci/run does"
TINY = {"epochs": 1, "T": 8, "train_limit": 768, "eval_limit": 300, "batch_size": 16}
RUN_TIMEOUT = 300.0  # seconds for every cell to finish on a busy 2-core machine
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)  # fmt: skip
# the status bar's kernel item, "Python 3 (snnlib) | Idle", once the kernel is connected
KERNEL_IDLE = "//*[contains(@class, 'jp-StatusBar-TextItem')][contains(., '| Idle')]"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"  # the notebook metadata's key
INDICATOR = ".jp-Notebook-ExecutionIndicator[data-status='{}']"  # the kernel's state
CELL_PROMPTS = """return Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt'
)).map(p => p.textContent.trim());"""


def missing() -> list[str]:
    absent = [f"{p.name} at {p}" for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        absent.append("selenium (pip install selenium, in the dev extra)")
    return absent


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium with a new empty profile, through Debian's chromedriver."""
    if absent := missing():
        pytest.skip(f"browser test needs {', '.join(absent)}; install: {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def prepare(dest: Path) -> Path:
    """The walkthrough with tiny parameters, its runs under ``dest`` and an empty committed-
    results folder (its section 9 then says that there are none yet)."""
    notebook = dest / "00_walkthrough.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "00_walkthrough.ipynb"),
        str(notebook),
        parameters={**TINY, "out_dir": str(dest / "runs"), "quick_dir": str(dest / "quick")},
        prepare_only=True,
        progress_bar=False,
    )
    return notebook


def code_cells(notebook: Path) -> int:
    return sum(cell.cell_type == "code" for cell in nbformat.read(notebook, as_version=4).cells)


def wait_for(driver, condition, timeout: float, what: str):
    """Poll ``condition(driver)`` until it returns something truthy; fail naming ``what``.

    An element that the page replaced while ``condition`` read it (a widget's output renders
    again as its value moves) counts as not yet, like a missing one: the next poll finds anew.
    """
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition, message=f"timed out after {timeout} s waiting for {what}")


def open_notebook(driver, url: str) -> None:
    """Open ``url`` and wait until the status bar says the notebook's kernel is idle."""
    driver.get(url)
    wait_for(driver, lambda d: d.find_elements("xpath", KERNEL_IDLE), 90, "an idle kernel")


def run_all_cells(driver) -> None:
    """Run > Run All Cells, as a reader does, then wait for an idle kernel and every prompt
    numbered."""
    driver.find_element("xpath", "//li[contains(@class, 'lm-MenuBar-item')][.='Run']").click()
    wait_for(
        driver,
        lambda d: d.find_element("css selector", "li[data-command='runmenu:run-all']"),
        10,
        "the Run menu",
    ).click()
    wait_for(
        driver,
        lambda d: any(p != "[ ]:" for p in prompts(d)),
        20,
        "Run All Cells to start (no cell queued or run)",
    )

    def finished(d):  # an error stops the run: later cells stay unnumbered
        idle = not d.find_elements("css selector", INDICATOR.format("busy"))
        return idle and (errors_in_page(d) or all(p[1:-2].isdigit() for p in prompts(d)))

    wait_for(driver, finished, RUN_TIMEOUT, "every cell to run and the kernel to be idle")


def prompts(driver) -> list[str]:
    """The prompt of every code cell: "[12]:" once run, "[ ]:" before, "[*]:" while running."""
    return driver.execute_script(CELL_PROMPTS)


def errors_in_page(driver) -> list[str]:
    """The text of every output that reports an error (a traceback in a cell's output)."""
    texts = driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]'"
        ")).map(o => o.textContent);"
    )
    return [t for t in texts if "Traceback" in t or "Error" in t]


TABLE = ".widget-interact .widget-output table"
CELLS = """const table = arguments[0];
const head = Array.from(table.querySelectorAll('thead th')).map(c => c.textContent.trim());
const body = Array.from(table.querySelectorAll('tbody td')).map(c => c.textContent.trim());
return head.map((h, i) => [h, body[i]]);"""


def slider_table(driver) -> dict[str, str]:
    """The operating point beside the ε slider: ``{column: cell}``."""
    return dict(driver.execute_script(CELLS, driver.find_element("css selector", TABLE)))


def move_slider(driver) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """Drag the ε slider's handle to the end farther from its value; returns the readout
    before and after and the table beside the slider before and after, once it has changed
    and shows the readout's new ε (the output may render more than once while the value
    moves)."""
    from selenium.webdriver.common.action_chains import ActionChains

    table = wait_for(driver, slider_table, 30, "the ε slider and its table to render")
    interact = driver.find_element("css selector", ".widget-interact")
    handle = interact.find_element("css selector", ".widget-slider .noUi-handle")
    readout = interact.find_element("css selector", ".widget-readout")
    track = interact.find_element("css selector", ".widget-slider .noUi-base")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", interact)
    before = readout.text
    # to the far end: the largest change of the thresholds, so accuracy and exits move too
    to_right = float(before) < 0.05
    offset = track.size["width"] + 20 if to_right else -(track.size["width"] + 20)
    ActionChains(driver).drag_and_drop_by_offset(handle, offset, 0).perform()

    def settled(d) -> tuple[str, dict[str, str]] | None:
        now = slider_table(d)
        value = readout.text
        return (value, now) if now != table and value != before and now.get("ε") == value else None

    after, shown = wait_for(
        driver, settled, 30, "the table beside the ε slider to change and show the readout's ε"
    )
    return before, after, table, shown


def save_and_restart(driver, lab, notebook: Path) -> None:
    """File > Save (with the widgets' state, the set-up's lab default), then shut the kernel
    down and open the notebook again in a fresh kernel, as a reader reopening it later."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    wait_for(
        driver,
        lambda d: WIDGET_STATE in nbformat.read(notebook, as_version=4).metadata.get("widgets", {}),
        20,
        "the saved notebook to carry the widgets' state (.venv's lab default saveState)",
    )
    for session in lab.api("GET", "sessions"):
        lab.api("DELETE", f"sessions/{session['id']}")
    open_notebook(driver, lab.open_url(notebook.name))


@pytest.mark.slow
def test_walkthrough_runs_in_jupyterlab_and_its_slider_updates_the_table(browser, tmp_path):
    start = time.monotonic()
    work = tmp_path / "lab"
    work.mkdir()
    notebook = prepare(work)
    with jupyter_lab(work, tmp_path / "jupyter") as lab:
        open_notebook(browser, lab.open_url(notebook.name))
        run_all_cells(browser)
        errors = errors_in_page(browser)
        assert not errors, "error output in the page:\n" + "\n".join(errors)
        assert len(prompts(browser)) == code_cells(notebook)
        assert all(p[1:-2].isdigit() for p in prompts(browser)), prompts(browser)
        before, after, first, moved = move_slider(browser)
        assert before != after, f"the ε readout stayed at {before}"
        assert moved["ε"] == after, f"the table does not show ε = {after}: {moved}"
        for column in ("Top-K accuracy", "average exit step", "β_t"):  # not only its ε
            assert moved[column] != first[column], f"{column} did not move: {first} -> {moved}"
        screenshot = tmp_path / "walkthrough.png"
        assert browser.save_screenshot(str(screenshot))
        save_and_restart(browser, lab, notebook)
        # no cell run in the new kernel: the slider is drawn from the saved state
        wait_for(
            browser,
            lambda d: d.find_elements("css selector", ".widget-interact .widget-slider"),
            30,
            "the ε slider drawn from the saved widget state",
        )
        assert not browser.find_elements("xpath", "//*[contains(text(), 'interactive(children=')]")
    print(f"screenshot: {screenshot} (ε {before} -> {after}, {time.monotonic() - start:.0f} s)")
    assert len(list((work / "runs").rglob("DONE"))) == 4  # QCFS, TET, each +- RCS
    # kernels over Unix sockets: no warning about unencrypted TCP (snnlib/tools/lab.py)
    assert "without encryption" not in lab.log.read_text(errors="replace")
