"""Drive the Airflow 3 UI in headless Chromium (Selenium, run with the twin_core environment's Python,
which has Selenium; the Airflow environment does not). Used by tests/dags/test_airflow_e2e.py.

    .venv/bin/python tests/dags/ui_check.py URL USER PASSWORD SCREENSHOT.png [RUN_ID [STATES_JSON]]

Logs in, opens twin_etl, reads its docs (the "Dag Docs" dialog), opens the trigger form and lists
its run-parameter fields, then opens the DAG's graph (of RUN_ID's run, if given) and reads its nodes:
task id -> the lines the node shows (label, operator and, in a run, the task's state). With STATES_JSON
({task_id: state}) it waits until the nodes show those states (or reports what they show after 90 s).
It fits the graph into the pane, waits until every node is in view, and saves the screenshot. Every
wait is for an element or a condition on the page, none for a fixed time. Prints one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

BROWSER = os.environ.get("TWIN_BROWSER_BINARY", "/usr/bin/chromium")
DRIVER = os.environ.get("TWIN_BROWSER_DRIVER", "/usr/bin/chromedriver")


# True when every graph node lies inside the graph pane (after "Fit View": the whole graph is in view).
ALL_NODES_IN_VIEW = """
const pane = document.querySelector('.react-flow').getBoundingClientRect();
const nodes = [...document.querySelectorAll('.react-flow__node')];
return nodes.length > 0 && nodes.every(n => {
    const r = n.getBoundingClientRect();
    return r.width > 0 && r.left >= pane.left && r.right <= pane.right && r.top >= pane.top && r.bottom <= pane.bottom;
});
"""


def _button(wait: WebDriverWait, label: str):  # noqa: ANN202
    return wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"button[aria-label='{label}']")))


def graph_nodes(driver: webdriver.Chrome) -> dict[str, list[str]]:
    """Task id -> the lines its graph node shows: label, operator, and in a run the task's state."""
    return {
        node.get_attribute("data-id"): [line.strip() for line in node.text.splitlines() if line.strip()]
        for node in driver.find_elements(By.CSS_SELECTOR, ".react-flow__node")
    }


def graph_states(driver: webdriver.Chrome) -> dict[str, str]:
    return {task: lines[-1] if len(lines) > 2 else "" for task, lines in graph_nodes(driver).items()}


def main(url: str, user: str, password: str, screenshot: str, run_id: str = "", states: str = "") -> dict:
    expected_states = json.loads(states) if states else {}
    profile = tempfile.mkdtemp(prefix="twin-ui-")
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,900")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    # React re-renders the page as its data arrives: an element read meanwhile may be gone (stale); ask again.
    wait = WebDriverWait(driver, 90, ignored_exceptions=[StaleElementReferenceException])
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
        if expected_states:  # the run's task states arrive after the graph's layout
            with contextlib.suppress(TimeoutException):  # what the nodes show is reported either way
                wait.until(lambda d: graph_states(d) == expected_states)
        # A wider graph: the run's details panel folded away, then the graph fitted to the pane.
        for collapse in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Collapse Details Panel']"):
            if collapse.is_displayed():
                collapse.click()
                _button(wait, "Show Details Panel")
        _button(wait, "Fit View").click()
        wait.until(lambda d: d.execute_script(ALL_NODES_IN_VIEW))
        seen["graph_nodes"] = wait.until(graph_nodes)
        seen["graph_states"] = wait.until(graph_states)
        driver.save_screenshot(screenshot)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return seen


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:7])))
