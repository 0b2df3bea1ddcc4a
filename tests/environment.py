"""What a test needs from the machine: when it is missing, the test skips here and fails under CI=true.

`make test` installs everything the suite drives (kubectl, util-linux, iproute2, Node.js and the
proxy, the dev extra), and CI must run it as root. So in CI a missing requirement is a broken setup,
and a skip there would hide that the tests behind it never ran. On a workstation the same test skips
and says what it lacks.

Tests use :func:`require` inside a test or fixture, or :func:`needs` as a mark (a module's
``pytestmark``, a parameter's ``marks``); a test marked ``kubectl`` needs the kubectl binary.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "needs", "pytest_configure", "pytest_runtest_setup", "require"]


def in_ci() -> bool:
    """Whether the suite runs in CI: ``CI=true``, which CI services set (``1`` is accepted too)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def require(condition: object, reason: str) -> None:
    """Go on when ``condition`` holds; otherwise skip the test, or fail it under CI=true."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason}; under CI=true a missing requirement is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


def needs(condition: object, reason: str) -> pytest.MarkDecorator:
    """:func:`require` as a mark, checked before the test's fixtures start (a hub takes seconds)."""
    return pytest.mark.needs(bool(condition), reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(condition, reason): skip when condition is false, fail instead under CI=true"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of the test is set up: every ``needs`` mark, and kubectl for ``kubectl``."""
    for mark in item.iter_markers("needs"):
        require(*mark.args)
    if item.get_closest_marker("kubectl") is not None:
        require(shutil.which("kubectl"), "needs the kubectl binary (make test installs kubernetes-client)")
