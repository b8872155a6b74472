"""Drive the Airflow 3 UI in headless Chromium (Selenium, run with the twin_core environment's Python,
which has Selenium; the Airflow environment does not). Used by tests/dags/test_airflow_e2e.py.

    .venv/bin/python tests/dags/ui_check.py URL USER PASSWORD SCREENSHOT.png [RUN_ID]

Logs in, opens twin_etl, reads its docs (the "Dag Docs" dialog), opens the trigger form and lists
its run-parameter fields, then saves a screenshot of the DAG's graph (of RUN_ID's run, if given, with
its task states). Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

BROWSER = os.environ.get("TWIN_BROWSER_BINARY", "/usr/bin/chromium")
DRIVER = os.environ.get("TWIN_BROWSER_DRIVER", "/usr/bin/chromedriver")


def _button(wait: WebDriverWait, label: str):  # noqa: ANN202
    return wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"button[aria-label='{label}']")))


def main(url: str, user: str, password: str, screenshot: str, run_id: str = "") -> dict:
    profile = tempfile.mkdtemp(prefix="twin-ui-")
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,900")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    wait = WebDriverWait(driver, 90)
    seen: dict = {"logged_in": False, "trigger_form_fields": [], "docs": ""}
    try:
        driver.get(f"{url}/auth/login")
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys(user)
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/auth/login" not in d.current_url)
        seen["logged_in"] = True

        driver.get(f"{url}/dags/twin_etl")
        _button(wait, "Dag Docs").click()
        docs = wait.until(
            ec.visibility_of_element_located((By.XPATH, "//*[@role='dialog'][contains(., 'Dag Documentation')]"))
        )
        seen["docs"] = docs.text
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        wait.until(
            ec.invisibility_of_element_located((By.XPATH, "//*[@role='dialog'][contains(., 'Dag Documentation')]"))
        )

        _button(wait, "Trigger Dag").click()
        wait.until(ec.presence_of_element_located((By.ID, "element_links")))
        fields = driver.find_elements(By.CSS_SELECTOR, "[role=dialog] [id^='element_']")
        seen["trigger_form_fields"] = sorted(f.get_attribute("id").removeprefix("element_") for f in fields)
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        wait.until(ec.invisibility_of_element_located((By.ID, "element_links")))

        if run_id:  # the graph of that run, with its task states
            driver.get(f"{url}/dags/twin_etl/runs/{urllib.parse.quote(run_id, safe='')}")
        _button(wait, "Show Graph (Press g)").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".react-flow__node")))
        for label in ("Collapse Details Panel", "fit view"):  # a wider graph, fitted to the pane
            for button in driver.find_elements(By.CSS_SELECTOR, f"button[aria-label='{label}']"):
                if button.is_displayed():
                    button.click()
                    time.sleep(1)
        time.sleep(3)  # let the layout settle and the run's task states load
        driver.save_screenshot(screenshot)
        seen["graph_nodes"] = len(driver.find_elements(By.CSS_SELECTOR, ".react-flow__node"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return seen


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:6])))
