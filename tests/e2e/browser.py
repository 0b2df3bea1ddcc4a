"""One person's headless Chromium on the demo: log in, the spawn form, the progress page, JupyterLab."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

__all__ = ["CHROMEDRIVER", "CHROMIUM", "Browser", "Row", "assigned_node"]

# Debian's chromium and its matching chromium-driver (make system-deps); giving Service the driver's path
# keeps Selenium Manager from looking for, or downloading, a browser or a driver.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# The spawn-pending page reloads itself into JupyterLab once the server is ready, which takes its event
# log away; this copies each line the page adds to the log into the tab's sessionStorage, which outlives
# the reload, so that the test reads what the person saw after the fact.
_RECORD_PROGRESS = """
new MutationObserver(function (records) {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.nodeType === 1 && node.classList.contains("progress-log-event")) {
        const seen = JSON.parse(sessionStorage.getItem("hybridhub-progress") || "[]");
        seen.push(node.textContent);
        sessionStorage.setItem("hybridhub-progress", JSON.stringify(seen));
      }
    }
  }
}).observe(document, {childList: true, subtree: true});
"""

# A GET of the server's contents API as JupyterLab makes it: with the cookie and the XSRF token, which
# JupyterHub's single-user servers ask of every cookie-authenticated API request.
_CONTENTS = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || "";
fetch(url, {headers: {"X-XSRFToken": decodeURIComponent(xsrf)}})
  .then(resp => resp.text().then(body => done({status: resp.status, body: body})))
  .catch(err => done({status: 0, body: String(err)}));
"""

_ASSIGNED = re.compile(r"Successfully assigned \S+ to (\S+)")


def assigned_node(progress: list[str]) -> str | None:
    """The node the pod's Scheduled event names in the progress lines, the last one if several."""
    nodes = [m.group(1) for line in progress if (m := _ASSIGNED.search(line))]
    return nodes[-1] if nodes else None


@dataclass(frozen=True)
class Row:
    """One row of the spawn form's "Available now" table of a cluster."""

    product: str
    free: int
    total: int


class Browser:
    """One user's headless Chromium, its screenshots named by step under ``shots``."""

    def __init__(self, user: str, url: str, shots: Path, profile: Path, started: float) -> None:
        self.user, self.url, self.shots = user, url, shots
        self.started = started  # time.monotonic() when the test began, for the steps' times
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # --no-sandbox: Chromium's sandbox refuses to run as root, which the demo's process runtime needs
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
            options.add_argument(arg)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, kept for failures
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_PROGRESS})

    def wait(self, timeout: float = 30.0) -> WebDriverWait[webdriver.Chrome]:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2)

    def shoot(self, name: str) -> Path:
        path = self.shots / f"{name}-{self.user}.png"
        self.driver.save_screenshot(str(path))
        print(f"{time.monotonic() - self.started:6.1f} s  {path.name}")  # the steps' times, for -s
        return path

    def quit(self) -> None:
        with contextlib.suppress(WebDriverException):  # a browser that died has nothing left to stop
            self.driver.quit()

    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def _click(self, element: WebElement) -> None:
        """Scroll the element to the middle of the window first: a person sees what they click, and
        Chromium refuses a click that lands on another element (the page's footer, say). At once, not
        smoothly as Bootstrap's pages scroll: a click during the animation lands where it was."""
        self.driver.execute_script(
            "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element
        )
        self.wait().until(ec.element_to_be_clickable(element))
        element.click()

    # ------------------------------------------------------------------ the hub

    def log_in(self, password: str) -> None:
        """The shared-password login page, then the spawn form (a user without a server lands there)."""
        self.driver.get(f"{self.url}hub/login")
        self.wait().until(ec.presence_of_element_located((By.ID, "username_input"))).send_keys(self.user)
        self.driver.find_element(By.ID, "password_input").send_keys(password)
        self._click(self.driver.find_element(By.ID, "login_submit"))
        self.wait().until(ec.presence_of_element_located((By.ID, "hybridhub-spawn-form")))

    def availability(self) -> dict[str, list[Row]]:
        """The spawn form's "Available now": per cluster, each product's free and total GPUs."""
        tables = self.driver.find_elements(By.CSS_SELECTOR, "#hybridhub-availability table[data-cluster]")
        found = {}
        for table in tables:
            rows = []
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
                cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                counts = re.fullmatch(r"(\d+) / (\d+)", cells[1]) if len(cells) > 1 else None
                if counts:
                    rows.append(Row(cells[0], int(counts.group(1)), int(counts.group(2))))
            found[str(table.get_attribute("data-cluster"))] = rows
        return found

    def cluster_badge(self, cluster: str) -> str:
        """The health badge the form's table of ``cluster`` shows (healthy, down, ...)."""
        table = self.driver.find_element(
            By.CSS_SELECTOR, f'#hybridhub-availability [data-cluster="{cluster}"]'
        )
        return str(table.find_element(By.CSS_SELECTOR, "caption .badge").text)

    def wait_line(self, *, gpus: int, product: str = "any") -> str:
        """Choose a count and a product in the form; what its wait line then says (the form's script
        writes it on every change): "For 1 x A100: onprem: now; eks: now."."""
        Select(self.driver.find_element(By.ID, "hybridhub-gpus")).select_by_value(str(gpus))
        Select(self.driver.find_element(By.ID, "hybridhub-gpu-product")).select_by_value(product)
        return str(self.driver.find_element(By.ID, "hybridhub-wait").text)

    def start(self, *, gpus: int, product: str = "any", cluster: str = "auto") -> None:
        """Choose in the form and press Start; the spawn-pending page opens."""
        Select(self.driver.find_element(By.ID, "hybridhub-gpus")).select_by_value(str(gpus))
        Select(self.driver.find_element(By.ID, "hybridhub-gpu-product")).select_by_value(product)
        Select(self.driver.find_element(By.ID, "hybridhub-cluster")).select_by_value(cluster)
        self._click(self.driver.find_element(By.CSS_SELECTOR, "#spawn_form [type=submit]"))
        self.wait().until(ec.url_contains("/hub/spawn-pending/"))
        # the event log, where the node is named, opens on a click, as a curious person opens it
        with contextlib.suppress(WebDriverException):  # the page may have gone on to JupyterLab already
            self._click(self.driver.find_element(By.CSS_SELECTOR, "#progress-details summary"))

    def progress(self) -> list[str]:
        """Every line the spawn-pending page's event log showed in this tab so far."""
        raw = self.driver.execute_script("return sessionStorage.getItem('hybridhub-progress') || '[]'")
        return list(json.loads(raw))

    def wait_for_progress(self, pattern: str, timeout: float = 60.0) -> str:
        """The first progress line that matches ``pattern``, once the page has shown one."""
        regex = re.compile(pattern)

        def line(_: Any) -> str | None:
            return next((text for text in self.progress() if regex.search(text)), None)

        return str(
            self.wait(timeout).until(line, f"no progress line matching {pattern!r}: {self.progress()}")
        )

    def home_saying(self, words: str, timeout: float = 60.0) -> str:
        """The hub's home page (its server button, so no error page), loaded again as a person would
        until it says ``words``; its text then."""

        def says(_: Any) -> str | None:
            self.driver.get(f"{self.url}hub/home")
            text = self.text()
            assert self.driver.find_elements(By.ID, "start"), f"not the home page: {text}"
            return text if words in text else None

        return str(self.wait(timeout).until(says, f"the home page does not say {words!r}: {self.text()}"))

    # ------------------------------------------------------------------ JupyterLab

    def wait_for_lab(self, timeout: float = 90.0) -> None:
        """JupyterLab at /user/NAME/lab, loaded far enough to offer a new notebook in its launcher."""
        self.wait(timeout).until(ec.url_contains(f"/user/{self.user}/lab"))
        card = (By.CSS_SELECTOR, _NOTEBOOK_CARD)
        for _ in range(_LAB_LOADS):
            # now and then, on the first JupyterLab a fresh demo serves, Chromium reports the theme's
            # stylesheet as failed without the request reaching the server (none in its log), and
            # JupyterLab shows "Error Loading Theme" over an unstyled page; a person reloads the page
            shown = self.wait(timeout).until(
                lambda d: (
                    d.find_elements(By.CSS_SELECTOR, ".jp-Dialog") or ec.element_to_be_clickable(card)(d)
                )
            )
            if not isinstance(shown, list):
                return
            print(f"{self.user}: JupyterLab says {shown[0].text!r}; reloading the page")
            self.driver.refresh()
        self.wait(timeout).until(ec.element_to_be_clickable(card))

    def open_notebook(self) -> None:
        """A new notebook from the launcher's Notebook card; ready once its kernel is idle (code run while
        the kernel still connects may be dropped) and its first cell's editor can be clicked."""
        self._click(self.driver.find_element(By.CSS_SELECTOR, _NOTEBOOK_CARD))
        idle = '.jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status="idle"]'
        self.wait(60).until(ec.presence_of_element_located((By.CSS_SELECTOR, idle)), "the kernel is not idle")
        self.wait(60).until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{_CELLS} .cm-content")))

    def run_cell(self, code: str, expect: str, timeout: float = 60.0) -> None:
        """Type ``code`` into the notebook's last cell, Shift+Enter, and wait for ``expect`` in its output."""
        last = len(self.driver.find_elements(By.CSS_SELECTOR, _CELLS)) - 1
        # JupyterLab numbers its cells in this attribute; Shift+Enter adds a cell after this one
        cell = f'{_CELLS}[data-windowed-list-index="{last}"]'
        editor = self.driver.find_element(By.CSS_SELECTOR, f"{cell} .cm-content")
        self._click(editor)
        editor.send_keys(code)
        editor.send_keys(Keys.SHIFT, Keys.ENTER)
        prompt = (By.CSS_SELECTOR, f"{cell} .jp-InputPrompt")
        for _ in range(_RUNS):
            # JupyterLab leaves a cell unrun, its prompt "[ ]:", when it is run while the notebook's
            # session has no kernel connection for a moment (CodeCell.execute returns without running
            # it), which happens now and then right after a new notebook's kernel starts, though the
            # kernel shows idle. A person runs it again; "[*]:" or "[1]:" means it runs.
            try:
                self.wait(_RUN_STARTS).until(
                    lambda d: d.find_element(*prompt).text.strip() not in ("", "[ ]:")
                )
                break
            except TimeoutException:
                print(f"{self.user}: JupyterLab left cell {last} unrun; running it again")
                self._click(self.driver.find_element(By.CSS_SELECTOR, f"{cell} .cm-content"))
                self.driver.find_element(By.CSS_SELECTOR, f"{cell} .cm-content").send_keys(
                    Keys.CONTROL, Keys.ENTER
                )
        self.wait(timeout).until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"{cell} .jp-OutputArea-output"), expect),
            f"no {expect!r} in the output of cell {last} (prompt {self.driver.find_element(*prompt).text!r})",
        )

    def contents(self, path: str) -> dict[str, Any]:
        """The server's contents API for ``path``, asked from JupyterLab's page as JupyterLab asks it."""
        answer = self.driver.execute_async_script(
            _CONTENTS, f"{self.url}user/{self.user}/api/contents/{path}"
        )
        assert answer["status"] == 200, f"contents API: {answer}"
        return dict(json.loads(answer["body"]))

    # ------------------------------------------------------------------ the service's SSH page

    def add_ssh_key(self, public_key: str) -> str:
        """Register ``public_key`` on the service's SSH keys page, as a person pastes it there; the
        ready ``~/.ssh/config`` snippet the page then shows."""
        self.driver.get(f"{self.url}services/hybridhub/ssh")  # logs in through the hub, no prompt
        self.wait().until(ec.text_to_be_present_in_element((By.ID, "config"), f"Host hub-{self.user}"))
        self.driver.find_element(By.ID, "public_key").send_keys(public_key)
        self._click(self.driver.find_element(By.CSS_SELECTOR, "#add button[type=submit]"))
        comment = public_key.split()[-1]
        self.wait().until(ec.text_to_be_present_in_element((By.ID, "keys"), comment))
        return str(self.driver.find_element(By.ID, "config").text)


_NOTEBOOK_CARD = '.jp-LauncherCard[data-category="Notebook"]'
_CELLS = ".jp-NotebookPanel .jp-Notebook .jp-Cell"
_LAB_LOADS = 2  # times JupyterLab's page is loaded at most while it shows an error (Browser.wait_for_lab)
_RUNS = 3  # times a cell is run at most, while JupyterLab leaves it unrun (see Browser.run_cell)
_RUN_STARTS = 5.0  # seconds a run may take to start (its prompt shows "[*]:") before it is run again
