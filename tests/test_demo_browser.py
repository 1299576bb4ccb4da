"""The demo page in a real headless browser: Debian's chromium + chromedriver, driven by selenium.

Select it with ``-m browser``.  ``tools/browser-for-tests.sh`` (run by
``tools/test.sh``) installs the browser; where chromium or chromedriver
cannot be found the test skips and says so (``MEMORYSTORE_CHROMIUM`` and
``MEMORYSTORE_CHROMEDRIVER`` point at other binaries).  The screenshot it takes is
written under the test's temporary directory (``demo.png``).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from demo_process import demo_process
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import memorystore

pytestmark = [pytest.mark.browser, pytest.mark.skipif(sys.platform == "win32", reason="POSIX-only test setup")]

WAIT = 15.0  # seconds: an upper bound for the page to reach a state, never a fixed sleep


def _find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or the reason they cannot be used."""
    browser = os.environ.get("MEMORYSTORE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("MEMORYSTORE_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    if missing:
        return (
            f"{' and '.join(missing)} not found on PATH (Debian: apt-get install chromium chromium-driver; "
            "tools/browser-for-tests.sh does it)"
        )
    assert browser is not None and driver is not None
    return browser, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    found = _find_browser()
    if isinstance(found, str):
        pytest.skip(found)
    binary, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1100,860",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    # An explicit driver path: selenium never tries to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def text(driver: webdriver.Chrome, element_id: str) -> str:
    # Read in one script call: the page re-renders its figures every second, so an element found
    # by one WebDriver call may be replaced before the next one reads it (a stale reference).
    found = driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e === null ? null : e.innerText;", element_id
    )
    assert found is not None, f"no element #{element_id} on the page"
    return str(found).strip()


def number(driver: webdriver.Chrome, element_id: str) -> int:
    return int(text(driver, element_id).replace(",", ""))


def countdown_seconds(driver: webdriver.Chrome) -> int:
    minutes, seconds = text(driver, "expires-in").split(":")
    return int(minutes) * 60 + int(seconds)


def wait_for(driver: webdriver.Chrome, condition: Callable[[Any], Any], what: str) -> Any:
    """Wait on the page's own state (polled), up to WAIT seconds.  An element found on the page just before a
    form's post-and-redirect replaced it is stale: polled again, not an error."""
    waiting = WebDriverWait(driver, WAIT, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException])
    return waiting.until(condition, message=f"waited {WAIT} s for {what}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the page it points to would start one more session: not followed


def post_burst_from_elsewhere(url: str) -> None:
    """Another, anonymous client starts a burst (no cookie, so it is not this visitor)."""
    request = urllib.request.Request(url + "burst", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as redirect:
        urllib.request.build_opener(_NoRedirect).open(request, timeout=10)
    assert redirect.value.code == 303
    redirect.value.close()


def test_the_demo_in_a_real_browser(browser: webdriver.Chrome, tmp_path: Path) -> None:
    with demo_process(stderr=tmp_path / "demo.stderr") as (process, url):
        browser.get(url)
        assert browser.title == "memorystore demo"
        burst_size = int(text(browser, "burst").split()[4])  # "Start a burst of N sessions"

        # This visitor's session, as the server rendered it.
        tag = text(browser, "session-tag")
        assert len(tag) == 8
        assert number(browser, "visits") == 1
        assert number(browser, "items") == 0
        assert text(browser, "pid") == str(process.pid)
        assert text(browser, "core") == ("compiled" if memorystore.COMPILED else "pure")
        assert 290 <= countdown_seconds(browser) <= 300
        assert text(browser, "created")  # localised by the script
        live = wait_for(browser, lambda d: number(d, "live"), "the live-session count")
        assert live == 1  # this visitor only
        bound = number(browser, "bound")
        assert 2 * burst_size < bound < 3 * burst_size  # the demo's setting: the third burst evicts

        # Add data: the page comes back with it.
        browser.find_element(By.ID, "add").click()
        wait_for(browser, lambda d: number(d, "items") == 1, "one item in the session")
        assert '"apple"' in text(browser, "session-data")
        assert text(browser, "session-tag") == tag  # the same session

        # The countdown runs on the page.
        start = countdown_seconds(browser)
        wait_for(browser, lambda d: countdown_seconds(d) < start, "the countdown to decrease")
        assert countdown_seconds(browser) >= start - 3

        # A burst from this page: the store holds burst_size more sessions.
        browser.find_element(By.ID, "burst").click()
        wait_for(browser, lambda d: number(d, "live") == 1 + burst_size, "the burst in the live count")

        # Live refresh: a burst by someone else shows up without reloading the page.
        browser.execute_script("window.__same_page = true;")
        post_burst_from_elsewhere(url)
        wait_for(browser, lambda d: number(d, "live") == 1 + 2 * burst_size, "the live count to refresh")
        # ... and past the bound the store evicts: the count stops at the bound.
        post_burst_from_elsewhere(url)
        wait_for(browser, lambda d: number(d, "evictions") > 0, "evictions")
        wait_for(browser, lambda d: number(d, "live") == bound, "the live count to stay at the bound")
        assert number(browser, "evictions") == 1 + 3 * burst_size - bound
        assert browser.execute_script("return window.__same_page === true;"), "the page was reloaded"
        assert text(browser, "session-tag") == tag  # a session in use is not the one evicted
        wait_for(browser, lambda d: text(d, "last-prune") != "not yet", "a prune")

        # Reset: a new, empty session.
        browser.find_element(By.ID, "reset").click()
        wait_for(browser, lambda d: text(d, "session-tag") not in ("", tag), "a new session")
        assert number(browser, "visits") == 1
        assert number(browser, "items") == 0

        screenshot = tmp_path / "demo.png"
        assert browser.save_screenshot(str(screenshot))
        png = screenshot.read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
