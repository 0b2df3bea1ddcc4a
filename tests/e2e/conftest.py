"""The browser test's fixtures: the demo, one Chromium per person, and screenshots kept on failure."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.demo.test_demo import Demo
from tests.e2e.browser import Browser


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keeps each phase's report on the test item, so that a fixture's teardown knows the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: the test's own tmp_path (under --basetemp when given)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"screenshots: {folder}")  # shown with the test's output when it fails
    return folder


def stop(demo: Demo) -> None:
    """Stop the demo as Ctrl-C would, so that it takes down its pods, veths and nft rules itself; kill
    what is left of it only when it does not stop in time."""
    if demo.proc is None or demo.proc.poll() is not None:
        return
    family = demo.family()
    try:
        demo.stop(signal.SIGTERM, timeout=60)
    except subprocess.TimeoutExpired:
        demo.kill(family)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path / "demo")
    try:
        yield running.start()
    finally:
        stop(running)


@pytest.fixture
def browsers(
    request: pytest.FixtureRequest, demo: Demo, shots: Path, tmp_path: Path
) -> Iterator[Callable[[str], Browser]]:
    """Opens a browser for a user; afterwards each one still open is screenshot if the test failed, then
    closed."""
    opened: list[Browser] = []
    started = time.monotonic()

    def open_browser(user: str) -> Browser:
        browser = Browser(user, demo.state["url"], shots, tmp_path / "profiles" / user, started)
        opened.append(browser)
        return browser

    yield open_browser
    report = getattr(request.node, "report_call", None)
    for browser in opened:
        if report is None or report.failed:
            try:
                browser.shoot("failed")
            except Exception as exc:  # a browser that died cannot be shot; the others still are
                print(f"no screenshot of {browser.user}'s browser: {exc}")
        browser.quit()
