"""images/*/requirements.txt: every line a pin, the pins meet hybridhub's extras and the versions the suite
tests, and they resolve for the image's Python and platform from the package registry."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.environment import require

from .imagefiles import BY_NAME, ROOT, TABLE, Image, installed_extras, pins, requirements_of


@pytest.fixture(params=TABLE, ids=lambda image: image.name)
def image(request: pytest.FixtureRequest) -> Image:
    return request.param  # type: ignore[no-any-return]


def test_every_line_is_a_pin(image: Image) -> None:
    assert pins(image.requirements)  # raises on a range, a marker, a URL or a name twice


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("jupyterhub>=5.5", "not pinned"),
        ("jupyterhub==5.*", "not pinned"),
        ("jupyterhub==5.5.0 ; python_version < '3.13'", "markers"),
        ("jupyterhub==5.5.0\nJupyterHub==5.5.0", "twice"),
    ],
)
def test_what_is_not_a_pin(line: str, message: str, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"# a comment\n{line}\n")
    with pytest.raises(ValueError, match=message):
        pins(requirements)


def unmet(requirements: list[Requirement], pinned: dict[str, Version]) -> list[str]:
    """The requirements that the pins leave out or pin outside the allowed range."""
    problems = []
    for requirement in requirements:
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement}: not pinned")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement}: pinned at {version}")
    return problems


def test_the_pins_meet_the_extras(image: Image) -> None:
    """What pyproject.toml asks for with the extras the Dockerfile installs, each pinned within its range
    (the build installs hybridhub without the index, so a missing pin fails it)."""
    extras = installed_extras(image.dockerfile)
    assert not unmet(requirements_of(extras, image.python), pins(image.requirements))


def test_unmet_finds_a_pin_out_of_range() -> None:
    pinned = {canonicalize_name("jupyterhub"): Version("5.4.0")}
    assert unmet([Requirement("jupyterhub>=5.5,<7"), Requirement("asyncssh")], pinned) == [
        "jupyterhub<7,>=5.5: pinned at 5.4.0",
        "asyncssh: not pinned",
    ]


def main_pins() -> list[Requirement]:
    """The Makefile's MAIN_PINS: the JupyterHub and KubeSpawner pair the main test run installs."""
    match = re.search(r"^MAIN_PINS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile: MAIN_PINS not found"
    return [Requirement(text) for text in re.findall(r'"([^"]+)"', match.group(1))]


def test_the_hub_image_has_the_pair_the_suite_tests() -> None:
    requirements = main_pins()
    assert {canonicalize_name(r.name) for r in requirements} == {"jupyterhub", "jupyterhub-kubespawner"}
    assert not unmet(requirements, pins(BY_NAME["hub"].requirements))


def test_the_notebook_image_has_the_hubs_jupyterhub() -> None:
    """The single-user server speaks to the hub: the same JupyterHub release on both sides."""
    hub, notebook = pins(BY_NAME["hub"].requirements), pins(BY_NAME["notebook"].requirements)
    assert notebook[canonicalize_name("jupyterhub")] == hub[canonicalize_name("jupyterhub")]
    assert canonicalize_name("jupyterlab") in notebook


# ---------------------------------------------------------------------------------------------- the registry

# uv's words for a registry it could not reach, as opposed to a resolution that failed
UNREACHABLE = ("error sending request", "dns error", "tcp connect error", "Connection refused", "timed out")


def uv() -> str:
    """uv from the dev extra, beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    require(found, "needs uv (the dev extra, which make test installs)")
    assert found is not None
    return found


def resolve(image: Image, cwd: Path, *, offline: bool) -> subprocess.CompletedProcess[str]:
    """uv resolves the pins for the image's Python and platform, from wheels only, as a build would."""
    command = [uv(), "pip", "compile", "--no-config", "--quiet", "--no-header", "--no-annotate"]
    command += ["--python-version", image.python, "--python-platform", image.platform]
    command += ["--only-binary", ":all:", *(["--offline"] if offline else []), str(image.requirements)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=240)


def test_the_pins_resolve_for_the_images_python(image: Image, tmp_path: Path) -> None:
    """The pins install together on the image's Python (not this machine's) from wheels, and nothing
    outside them comes in: a dependency left unpinned shows up here.

    uv rather than pip: pip 23.2 spends about 20 s of CPU per image checking every release file of every
    pinned project against the target's tags, uv under a second. uv tries its cache alone first, which
    holds the answer whenever these pins resolved on this machine before.
    """
    result = resolve(image, tmp_path, offline=True)
    if result.returncode != 0:
        result = resolve(image, tmp_path, offline=False)
    if result.returncode != 0 and any(words in result.stderr for words in UNREACHABLE):
        require(False, f"needs the package registry, which uv could not reach: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    resolved = {}
    for line in result.stdout.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, version = line.partition("==")
            resolved[canonicalize_name(name.strip())] = Version(version.strip())
    pinned = pins(image.requirements)
    assert resolved == pinned, {
        "unpinned": sorted(set(resolved) - set(pinned)),
        "changed": {n: f"{pinned[n]} -> {v}" for n, v in resolved.items() if n in pinned and pinned[n] != v},
    }
