"""Reading images/: each image's facts, its Dockerfile's instructions and its pins (test helpers)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"


@dataclass(frozen=True)
class Image:
    """One image folder and what its base image fixes: the Python and the C library its wheels need."""

    name: str
    base: str
    # The base image's Python (major.minor) and the most recent manylinux tag its glibc runs.
    python: str
    platform: str

    @property
    def folder(self) -> Path:
        return IMAGES / self.name

    @property
    def dockerfile(self) -> Path:
        return self.folder / "Dockerfile"

    @property
    def requirements(self) -> Path:
        return self.folder / "requirements.txt"


TABLE = (
    # zero-to-jupyterhub 4.4.0's images/hub/Dockerfile builds k8s-hub on python:3.12-slim-bookworm:
    # Python 3.12 on Debian 12, glibc 2.36.
    Image("hub", "quay.io/jupyterhub/k8s-hub:4.4.0", "3.12", "x86_64-manylinux_2_36"),
    # Ubuntu 24.04's python3 is 3.12, its glibc 2.39.
    Image("notebook", "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04", "3.12", "x86_64-manylinux_2_39"),
)
BY_NAME = {image.name: image for image in TABLE}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword in upper case, its arguments on one line, its first line."""

    keyword: str
    args: str
    line: int


def instructions(dockerfile: Path) -> list[Instruction]:
    """The instructions as Docker reads them: continuation lines joined, comment lines dropped."""
    result: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(dockerfile.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(line.removesuffix("\\").strip())
        if not line.endswith("\\"):
            keyword, _, args = " ".join(pending).partition(" ")
            result.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    if pending:
        raise ValueError(f"{dockerfile}: the file ends inside a continued instruction")
    return result


def comments_above(dockerfile: Path, line: int) -> list[str]:
    """The comment lines right above line ``line`` (1-based), nearest last."""
    lines = dockerfile.read_text().splitlines()[: line - 1]
    block: list[str] = []
    for raw in reversed(lines):
        if not raw.strip().startswith("#"):
            break
        block.insert(0, raw.strip())
    return block


def stages(dockerfile: Path) -> list[tuple[str, str | None]]:
    """Each FROM: the image it starts from and the stage name it gives, if any."""
    result = []
    for instruction in instructions(dockerfile):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append((words[0], name))
    return result


def last_stage(dockerfile: Path) -> list[Instruction]:
    """The instructions of the final stage, the one the image is."""
    found = instructions(dockerfile)
    start = max(i for i, instruction in enumerate(found) if instruction.keyword == "FROM")
    return found[start:]


def context_sources(dockerfile: Path) -> list[str]:
    """The paths the build reads from the context: COPY sources and bind mounts of the context."""
    sources: list[str] = []
    for instruction in instructions(dockerfile):
        words = instruction.args.split()
        if instruction.keyword == "COPY":
            if any(w.startswith("--from=") for w in words):
                continue
            paths = [w for w in words if not w.startswith("--")]
            sources.extend(paths[:-1])
        elif instruction.keyword == "RUN":
            for mount in re.findall(r"--mount=(\S+)", instruction.args):
                fields = dict(field.partition("=")[::2] for field in mount.split(","))
                if fields.get("type") == "bind" and "from" not in fields:
                    sources.append(fields["source"])
    return sources


def installed_extras(dockerfile: Path) -> set[str]:
    """The extras the Dockerfile installs hybridhub's wheel with (``"${wheel}[a,b]"``)."""
    found = re.findall(r'"\$\{wheel\}\[([a-z0-9_,-]+)\]"', dockerfile.read_text())
    if len(found) != 1:
        raise ValueError(f"{dockerfile}: expected one install of the wheel with extras, found {found}")
    return set(found[0].split(","))


def ignored(dockerignore: Path, path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that matches it or a
    folder above it decides, a ``!`` pattern lets it in."""
    patterns = [
        line.strip() for line in dockerignore.read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    candidates = [str(PurePosixPath(path))] + [str(p) for p in PurePosixPath(path).parents if str(p) != "."]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, cleaned) for candidate in candidates):
            result = not negated
    return result


def pins(requirements: Path) -> dict[NormalizedName, Version]:
    """The ``name==version`` lines of a requirements file; anything else is an error."""
    result: dict[NormalizedName, Version] = {}
    for number, raw in enumerate(requirements.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            raise ValueError(f"{requirements}:{number}: {line!r} is not pinned to one version (name==X.Y)")
        if requirement.marker or requirement.url or requirement.extras:
            raise ValueError(f"{requirements}:{number}: {line!r} has markers, a URL or extras")
        name = canonicalize_name(requirement.name)
        if name in result:
            raise ValueError(f"{requirements}:{number}: {requirement.name} is pinned twice")
        result[name] = Version(specifiers[0].version)
    return result


def project() -> dict[str, Any]:
    """pyproject.toml's [project] table."""
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def requirements_of(extras: set[str], python: str) -> list[Requirement]:
    """What installing hybridhub with ``extras`` asks for on Linux with ``python``, self-references
    (``hybridhub[x]`` inside an extra) followed."""
    table = project()
    environment = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    environment |= {"platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython"}
    seen: set[str] = set()
    todo = [*sorted(extras)]
    found = [Requirement(r) for r in table["dependencies"]]
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in table["optional-dependencies"]:
            raise ValueError(f"pyproject.toml has no extra {extra!r}")
        for text in table["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == canonicalize_name(table["name"]):
                todo.extend(requirement.extras)
            else:
                found.append(requirement)
    return [r for r in found if r.marker is None or r.marker.evaluate({**environment, "extra": ""})]
