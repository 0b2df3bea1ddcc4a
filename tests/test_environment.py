"""tests/environment.py: a missing requirement skips a test here and fails it under CI=true."""

from __future__ import annotations

import pytest

from tests.environment import in_ci, require

# a module with each way a test states a requirement, run by an inner pytest below
EXAMPLE = """
import pytest

from tests.environment import needs, require

started = []


@pytest.fixture(scope="module")
def hub():
    started.append("hub")  # a requirement is checked before the fixtures start
    yield "hub"


@needs(False, "no flux capacitor here")
def test_marked(hub):
    pass


@pytest.mark.kubectl
def test_kubectl():
    pass


def test_required_inside():
    require(False, "no warp drive here")


@needs(True, "never said")
def test_met():
    require(True, "never said either")


def test_no_fixture_started():
    assert started == []
"""


@pytest.mark.parametrize(
    ("value", "ci"),
    [(None, False), ("", False), ("false", False), ("0", False), ("true", True), ("TRUE", True), ("1", True)],
)
def test_ci_is_told_by_the_ci_variable(monkeypatch: pytest.MonkeyPatch, value: str | None, ci: bool) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_a_requirement_met_goes_on_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("", "true"):
        monkeypatch.setenv("CI", value)
        require(True, "never said")


def test_a_requirement_missing_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no flux capacitor"):
        require(False, "no flux capacitor")


def test_a_requirement_missing_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no flux capacitor; under CI=true"):
        require(False, "no flux capacitor")


def run_example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    pytester.makepyfile(test_example=EXAMPLE)
    monkeypatch.setenv("PATH", str(pytester.path))  # no kubectl on it
    plugins = ("-p", "tests.environment", "-p", "no:cacheprovider", "-p", "no:asyncio")
    return pytester.runpytest_inprocess(*plugins, "-rsE")


def test_marks_and_calls_skip_a_local_run_which_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = run_example(pytester, monkeypatch)
    result.assert_outcomes(skipped=3, passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*no flux capacitor here*", "*needs the kubectl binary*", "*no warp drive*"])


def test_under_ci_every_missing_requirement_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = run_example(pytester, monkeypatch)
    # a mark fails the test in setup (an error) before its fixtures start; a call fails the test
    result.assert_outcomes(errors=2, failed=1, passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*no flux capacitor here; under CI=true a missing requirement is a failure, not a skip*",
            "*needs the kubectl binary*under CI=true*",
            "*no warp drive here; under CI=true*",
        ],
        consecutive=False,
    )
