"""Headless Chromium through Selenium, with the Debian chromium + chromium-driver packages."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twin_core.etl.errors import CrawlError
from twin_core.settings import Settings

log = logging.getLogger(__name__)

CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,2000",
)


@contextmanager
def headless_chrome(settings: Settings) -> Iterator[Any]:
    """A fresh browser with a throw-away profile; always quit and removed afterwards."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    for path, var in (
        (settings.sources.browser_binary, "TWIN_BROWSER_BINARY"),
        (settings.sources.browser_driver, "TWIN_BROWSER_DRIVER"),
    ):
        if not os.access(path, os.X_OK):
            raise CrawlError(
                "browser_unavailable", f"{path} not found ({var}; apt-get install chromium chromium-driver)"
            )
    profile = tempfile.mkdtemp(prefix="twin-chrome-")
    options = webdriver.ChromeOptions()
    options.binary_location = settings.sources.browser_binary
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--user-agent={settings.crawl.user_agent}")
    driver = None
    try:
        try:
            driver = webdriver.Chrome(service=Service(settings.sources.browser_driver), options=options)
        except WebDriverException as exc:
            first = (exc.msg or str(exc)).strip().splitlines()[0] if (exc.msg or str(exc)).strip() else repr(exc)
            raise CrawlError("browser_unavailable", f"headless Chromium did not start: {first}") from None
        driver.set_page_load_timeout(settings.sources.browser_timeout_s)
        yield driver
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception as exc:  # never mask the crawl's own outcome
                log.warning("browser quit failed: %s", exc)
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver: Any, url: str, settings: Settings) -> None:
    """``driver.get(url)``, with a page that does not load, or a host that refuses, as a CrawlError naming the URL.

    Selenium's own exceptions say neither the URL nor the bound ("Timed out receiving message from renderer").
    """
    from selenium.common.exceptions import TimeoutException, WebDriverException

    try:
        driver.get(url)
    except TimeoutException:
        raise CrawlError(
            "timeout", f"{url} did not load in the browser within {settings.sources.browser_timeout_s}s"
        ) from None
    except WebDriverException as exc:
        text = (exc.msg or str(exc)).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise CrawlError("connection", f"the browser could not open {url}: {first}") from None
