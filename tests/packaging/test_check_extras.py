"""The extras check's own rules: requirement names, declared sets, import discovery and the probe."""

from __future__ import annotations

import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from tests.packaging.check_extras import (
    REPO,
    SIDES,
    STATIC,
    Side,
    declared_distributions,
    parse_requirement,
    probe,
    stamp_name,
    third_party_imports,
    undeclared,
    unreachable_files,
)

STDLIB = frozenset(sys.stdlib_module_names) | {"ownpkg"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jupyterhub>=5.5,<7", ("jupyterhub", ())),
        ("PyYAML>=6", ("pyyaml", ())),
        ("kubernetes_asyncio>=29", ("kubernetes-asyncio", ())),
        ("prometheus.client", ("prometheus-client", ())),
        ("hybridhub[hub,notebook]", ("hybridhub", ("hub", "notebook"))),
        ("hybridhub[ sim ]>=0", ("hybridhub", ("sim",))),
        ('tomli; python_version < "3.11"', ("tomli", ())),
    ],
)
def test_parse_requirement(text: str, expected: tuple[str, tuple[str, ...]]) -> None:
    assert parse_requirement(text) == expected


def test_parse_requirement_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not a requirement"):
        parse_requirement(">=1.0")


PROJECT = {
    "name": "Demo_Pkg",
    "dependencies": ["traitlets>=5"],
    "optional-dependencies": {
        "hub": ["jupyterhub", "prometheus_client"],
        "sim": ["aiohttp", "demo-pkg[hub]"],
        "test": ["demo.pkg[sim,test]", "pytest"],
        "empty": [],
    },
}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("hub", {"traitlets", "jupyterhub", "prometheus-client"}),
        # an extra naming the project itself brings that extra's names, once, even in a cycle
        ("sim", {"traitlets", "aiohttp", "jupyterhub", "prometheus-client"}),
        ("test", {"traitlets", "aiohttp", "jupyterhub", "prometheus-client", "pytest"}),
        ("empty", {"traitlets"}),
    ],
)
def test_declared_distributions(extra: str, expected: set[str]) -> None:
    assert declared_distributions(PROJECT, extra) == expected


def test_declared_distributions_refuses_an_unknown_extra() -> None:
    with pytest.raises(KeyError, match="no extra 'gpu'"):
        declared_distributions(PROJECT, "gpu")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import yaml", [("yaml", 1)]),
        ("import os, json\nimport ownpkg.sub", []),
        ("from kubespawner.reflector import ResourceReflector", [("kubespawner", 1)]),
        ("from . import sibling\nfrom .x import y", []),
        ("def f():\n    import orjson\n", [("orjson", 2)]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import jupyterhub\n", []),
        (
            "import typing\nif typing.TYPE_CHECKING:\n    import jupyterhub\nelse:\n    import tornado\n",
            [("tornado", 5)],
        ),
        ("try:\n    import orjson\nexcept ImportError:\n    import ujson\n", [("ujson", 4)]),
        ("try:\n    import orjson\nexcept (OSError, ModuleNotFoundError):\n    pass\n", []),
        # a try that does not catch ImportError makes nothing optional
        ("try:\n    import orjson\nexcept ValueError:\n    pass\n", [("orjson", 2)]),
        ("if True:\n    import aiohttp.web\n", [("aiohttp", 2)]),
    ],
)
def test_third_party_imports(source: str, expected: list[tuple[str, int]]) -> None:
    assert third_party_imports(source, "m.py", STDLIB) == expected


def test_undeclared_names_each_file_and_name_once() -> None:
    imports = [
        ("a.py", 3, "yaml", ["PyYAML"]),  # declared as pyyaml: names compare normalized
        ("a.py", 4, "tornado", ["tornado"]),
        ("a.py", 9, "tornado", ["tornado"]),
        ("b.py", 1, "secret", []),
        ("b.py", 2, "kubespawner", ["jupyterhub-kubespawner"]),
    ]
    problems = undeclared(imports, frozenset({"pyyaml", "jupyterhub-kubespawner"}), "demo[hub]")
    assert len(problems) == 2
    assert problems[0].startswith("a.py:4,9 imports tornado from tornado, which demo[hub] does not declare")
    assert problems[1].startswith("b.py:1 imports secret, which no installed distribution provides")


def test_unreachable_files() -> None:
    files = ["pkg.__init__", "pkg.a", "pkg.loose.b", "pkg.sub.__init__", "pkg.sub.c"]
    modules = ["pkg", "pkg.a", "pkg.sub", "pkg.sub.c"]
    assert unreachable_files(files, modules) == ["pkg.loose.b"]


def test_stamp_changes_with_what_the_venv_is_built_from() -> None:
    side = Side(name="hub", extra="hub")
    base = stamp_name(b"toml", side, "3.11.7")
    assert stamp_name(b"toml", side, "3.11.7") == base
    assert stamp_name(b"toml2", side, "3.11.7") != base
    assert stamp_name(b"toml", Side(name="hub", extra="sim"), "3.11.7") != base
    assert stamp_name(b"toml", side, "3.12.1") != base
    assert stamp_name(b"toml", side, "3.11.7", "lowest-direct") != base


def test_sides_cover_the_wheel_and_name_real_extras() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    for side in (*SIDES, *STATIC):
        declared_distributions(project, side.extra)  # raises for an extra pyproject.toml lacks
    roots = {root for side in SIDES for root in side.roots}
    # every package the wheel ships belongs to a side
    assert set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) <= roots
    # what a side leaves out another side takes, or the side itself reads as files (alembic's migrations)
    for side in SIDES:
        for excluded in side.exclude:
            assert excluded in roots or excluded.replace(".", "/") in side.files, excluded


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_probe_imports_each_module_and_reports_what_breaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        tmp_path,
        {
            "xtrapkg/__init__.py": "",
            "xtrapkg/good.py": "import json\nimport pytest\n",
            "xtrapkg/broken.py": "import no_such_distribution_here\n",
            "xtrapkg/loose/orphan.py": "",  # no __init__.py beside it
            "xtrapkg/other/__init__.py": "raise RuntimeError('another side')\n",
            "extra_file.py": "import _no_such_module_either\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("xtrapkg")]:
        monkeypatch.delitem(sys.modules, name)
    report = probe(
        {
            "roots": ["xtrapkg"],
            "exclude": ["xtrapkg.other"],
            "absent": ["pytest", "no_such_distribution_here"],
            "entry_points": ["no.such.group:nothing"],
            "files": ["extra_file.py"],
            "own": ["xtrapkg"],
            "repo": str(tmp_path),
        }
    )
    assert sorted(report["modules"]) == ["xtrapkg", "xtrapkg.broken", "xtrapkg.good"]
    assert set(report["failures"]) == {"xtrapkg.broken", "entry point no.such.group:nothing"}
    assert "No module named 'no_such_distribution_here'" in report["failures"]["xtrapkg.broken"]
    assert report["unreachable"] == ["xtrapkg.loose.orphan"]
    assert report["present"] == ["pytest"]
    imported = {(file, top) for file, _, top, _ in report["imports"]}
    assert imported == {
        ("xtrapkg/good.py", "pytest"),
        ("xtrapkg/broken.py", "no_such_distribution_here"),
        ("extra_file.py", "_no_such_module_either"),
    }
