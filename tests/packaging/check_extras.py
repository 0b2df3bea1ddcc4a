"""Checks that each extra declares what its side imports, by importing the side in a clean venv per extra.

Run as a script (``make extras``). For each side it builds ``.venv-extras/SIDE/`` with uv, holding only
``hybridhub[EXTRA]``, imports every module of the side there, runs the side's console commands, and
compares every third-party import in the side's source with the distributions the extra declares, so a
package that is there only as a dependency of another is reported too. The tests and the benchmarks are
compared the same way with the ``test`` and ``dev`` extras, inside the project venv.

A venv is rebuilt only when pyproject.toml, the Python version or the side's install line changes; uv's
cache makes a rebuild cheap. The code itself is installed editable, so a reused venv sees the current tree.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import time
import tomllib
import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "SIDES",
    "STATIC",
    "Side",
    "declared_distributions",
    "normalize",
    "parse_requirement",
    "stamp_name",
    "third_party_imports",
    "undeclared",
    "unreachable_files",
]

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / ".venv-extras"
# Raised when the way a venv is built changes, so that every venv is rebuilt once.
BUILD_RECIPE = "1"
INSTALL_TIMEOUT_S = 900
PROBE_TIMEOUT_S = 300
COMMAND_TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class Side:
    """One part of the product and the extra that an image installs for it."""

    name: str
    extra: str
    # Packages whose modules belong to this side, walked recursively.
    roots: tuple[str, ...] = ()
    # Subpackages of the roots that belong to another side.
    exclude: tuple[str, ...] = ()
    # Top-level modules that must not be importable in this side's venv.
    absent: tuple[str, ...] = ()
    # Entry points, as "group:name", that must load.
    entry_points: tuple[str, ...] = ()
    # Console commands, as argv from the venv's bin/, that must exit 0 and print something.
    commands: tuple[tuple[str, ...], ...] = ()
    # Files beside the package, relative to the repository, that run with this side installed.
    files: tuple[str, ...] = ()


SIDES: tuple[Side, ...] = (
    Side(
        name="hub",
        extra="hub",
        roots=("spawner",),
        # alembic loads the migrations by path, and their env.py runs only inside alembic: their
        # imports are compared as files
        exclude=("spawner.ssh", "spawner.service.store.migrations"),
        entry_points=("jupyterhub.spawners:hybrid",),
        commands=(("hybridhub", "--help"), ("hybridhub", "service", "--help")),
        files=("hub_config", "spawner/service/store/migrations"),
    ),
    Side(
        name="ssh",
        extra="ssh",
        roots=("spawner.ssh",),
        absent=("jupyterhub", "kubespawner", "kubernetes_asyncio", "kubernetes"),
    ),
    Side(name="notebook", extra="notebook", roots=("labextension_server",)),
    Side(
        name="sim",
        extra="sim",
        roots=("simcluster",),
        commands=(("hybridhub", "sim", "--help"),),
    ),
)

# Code that runs in the project venv rather than in an image: only its imports are compared.
STATIC: tuple[Side, ...] = (
    Side(name="tests", extra="test", files=("tests",)),
    Side(name="bench", extra="dev", files=("bench",)),
)


# --- pure parts -------------------------------------------------------------------------------------------

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def normalize(name: str) -> str:
    """The PEP 503 form of a distribution name, so that ``PyYAML`` and ``pyyaml`` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> tuple[str, tuple[str, ...]]:
    """The normalized distribution name of a requirement string and the extras it asks for."""
    match = _REQUIREMENT.match(text)
    if match is None:
        raise ValueError(f"not a requirement: {text!r}")
    extras = tuple(normalize(e.strip()) for e in (match.group(2) or "").split(",") if e.strip())
    return normalize(match.group(1)), extras


def declared_distributions(project: Mapping[str, Any], extra: str) -> frozenset[str]:
    """Every distribution that installing the project with ``extra`` asks for by name.

    The base dependencies count, and so do the extras that an extra names through the project itself
    (``hybridhub[hub,sim]``); what those distributions pull in does not.
    """
    name = normalize(str(project["name"]))
    optional = {normalize(k): v for k, v in dict(project.get("optional-dependencies", {})).items()}
    if normalize(extra) not in optional:
        raise KeyError(f"pyproject.toml declares no extra {extra!r}")
    found: set[str] = set()
    for requirement in project.get("dependencies", []):
        found.add(parse_requirement(requirement)[0])
    pending, seen = [normalize(extra)], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for requirement in optional.get(current, []):
            dist, extras = parse_requirement(requirement)
            if dist == name:
                pending.extend(extras)
            else:
                found.add(dist)
    return frozenset(found)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try | ast.TryStar) -> bool:
    names = {"ImportError", "ModuleNotFoundError"}
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(kind, ast.Name) and kind.id in names for kind in kinds):
            return True
    return False


def third_party_imports(source: str, filename: str, ignore: Iterable[str]) -> list[tuple[str, int]]:
    """The top-level names a module imports at run time, with the line of each, less those in ``ignore``.

    Imports inside functions count: they run later, but they run. Imports under ``if TYPE_CHECKING:`` do
    not run, and imports guarded by ``except ImportError`` are optional by design, so neither counts.
    """
    skip = set(ignore)
    found: list[tuple[str, int]] = []

    def add(module: str, line: int) -> None:
        top = module.split(".")[0]
        if top not in skip:
            found.append((top, line))

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                walk(child)
            return
        if isinstance(node, ast.Try | ast.TryStar) and _catches_import_error(node):
            for part in [*node.handlers, *node.orelse, *node.finalbody]:
                walk(part)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            add(node.module, node.lineno)
        for inner in ast.iter_child_nodes(node):
            walk(inner)

    walk(ast.parse(source, filename))
    return found


def undeclared(
    imports: Iterable[tuple[str, int, str, Sequence[str]]], declared: frozenset[str], label: str
) -> list[str]:
    """A sentence for each file and name whose distribution the extra does not declare.

    Each import is (file, line, top-level name, the distributions that provide the name where it ran).
    """
    lines: dict[tuple[str, str], list[int]] = {}
    providers: dict[tuple[str, str], Sequence[str]] = {}
    for file, line, top, dists in imports:
        if not declared.intersection(normalize(d) for d in dists):
            lines.setdefault((file, top), []).append(line)
            providers[(file, top)] = dists
    problems = []
    for (file, top), numbers in lines.items():
        where = f"{file}:{','.join(str(n) for n in sorted(set(numbers)))} imports {top}"
        dists = providers[(file, top)]
        if not dists:
            problems.append(
                f"{where}, which no installed distribution provides: declare the one that does in {label}"
            )
        else:
            problems.append(
                f"{where} from {' or '.join(sorted(set(dists)))}, which {label} does not declare "
                "(it is there only as a dependency of another package): declare it"
            )
    return problems


def unreachable_files(files: Iterable[str], modules: Iterable[str]) -> list[str]:
    """The .py files, as dotted paths without the suffix, that are not among the discovered modules.

    A file in a folder without ``__init__.py`` is one: no import reaches it as part of the package.
    """
    known = set(modules)
    missing = []
    for dotted in files:
        name = dotted.removesuffix(".__init__")
        if name not in known:
            missing.append(name)
    return sorted(missing)


def stamp_name(pyproject: bytes, side: Side, python_version: str, resolution: str = "highest") -> str:
    """The stamp file that marks a venv built from this pyproject.toml, side, Python and resolution."""
    digest = hashlib.sha1()
    parts = (pyproject, side.extra, python_version, resolution, BUILD_RECIPE)
    for part in (p if isinstance(p, bytes) else p.encode() for p in parts):
        digest.update(part + b"\0")
    return f".installed-{digest.hexdigest()[:12]}"


# --- the probe, run by the side's venv -------------------------------------------------------------------


def _excluded(module: str, exclude: Iterable[str]) -> bool:
    return any(module == e or module.startswith(e + ".") for e in exclude)


def _discover(root: str, exclude: Sequence[str]) -> tuple[list[str], dict[str, Path]]:
    """The modules under ``root``, and each .py file there by the dotted name it would have.

    pkgutil lists each level without importing it, unlike pkgutil.walk_packages, which imports every
    package it descends into, including the subpackages this side leaves to another.
    """
    spec = importlib.util.find_spec(root)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{root} is not an importable package")
    dirs = [Path(p) for p in spec.submodule_search_locations]
    modules = [root]

    def walk(prefix: str, paths: list[Path]) -> None:
        for info in pkgutil.iter_modules([str(p) for p in paths], prefix + "."):
            if _excluded(info.name, exclude):
                continue
            modules.append(info.name)
            if info.ispkg:
                leaf = info.name.rsplit(".", 1)[1]
                walk(info.name, [p / leaf for p in paths if (p / leaf).is_dir()])

    walk(root, dirs)
    files = {}
    for directory in dirs:
        for path in sorted(directory.rglob("*.py")):
            dotted = ".".join([root, *path.relative_to(directory).with_suffix("").parts])
            if not _excluded(dotted, exclude):
                files[dotted] = path
    return modules, files


def probe(spec: Mapping[str, Any]) -> dict[str, object]:
    """Imports a side's modules in this interpreter and reports what happened, as JSON-ready data."""
    exclude = list(spec["exclude"])
    ignore = set(sys.stdlib_module_names) | set(spec["own"])
    failures: dict[str, str] = {}
    modules: list[str] = []
    sources: list[tuple[str, Path]] = []
    unreachable: list[str] = []
    repo = Path(spec["repo"])
    for root in spec["roots"]:
        try:
            found, files = _discover(root, exclude)
        except Exception as exc:
            failures[root] = f"{type(exc).__name__}: {exc}"
            continue
        modules += found
        unreachable += unreachable_files(files, found)
        # Every module's source is read, the ones that fail to import too: the reason may be undeclared.
        reachable = set(found)
        sources += [
            (dotted, path) for dotted, path in files.items() if dotted.removesuffix(".__init__") in reachable
        ]
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # a module may even call sys.exit at import time
            failures[name] = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
    for relative in spec["files"]:
        path = repo / relative
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            sources.append((str(file.relative_to(repo)), file))
    providers = importlib.metadata.packages_distributions()
    imports = []
    for label, path in sources:
        shown = str(path.relative_to(repo)) if path.is_relative_to(repo) else label
        try:
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:  # removed since it was listed: someone is editing the tree
            continue
        for top, line in third_party_imports(source, str(path), ignore):
            imports.append((shown, line, top, providers.get(top, [])))
    present = [name for name in spec["absent"] if importlib.util.find_spec(name) is not None]
    for entry in spec["entry_points"]:
        group, _, name = entry.partition(":")
        points = importlib.metadata.entry_points(group=group, name=name)
        try:
            if not points:
                raise LookupError("not declared by any installed distribution")
            for point in points:
                point.load()
        except Exception as exc:
            failures[f"entry point {entry}"] = f"{type(exc).__name__}: {exc}"
    return {
        "modules": modules,
        "failures": failures,
        "unreachable": unreachable,
        "imports": imports,
        "present": present,
    }


# --- the driver, run by the project venv -----------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    side: Side
    problems: list[str]
    modules: int = 0
    how: str = ""
    seconds: float = 0.0


def _find_uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise SystemExit("check_extras: uv not found; `make` installs it with the dev extra")
    return found


def _run(argv: Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def ensure_venv(side: Side, uv: str, pyproject: bytes, rebuild: bool, resolution: str) -> tuple[Path, str]:
    """The Python of the side's venv, built afresh unless its stamp matches, and how it came to be.

    ``resolution`` is uv's: ``highest`` as an image gets today, ``lowest-direct`` for the lower bounds.
    """
    venv = VENVS / (side.name if resolution == "highest" else f"{side.name}-{resolution}")
    python = venv / "bin" / "python"
    stamp = venv / stamp_name(pyproject, side, sys.version, resolution)
    if stamp.exists() and python.exists() and not rebuild:
        return python, "reused"
    # A venv from an older pyproject.toml may hold packages the extra no longer asks for: start empty.
    shutil.rmtree(venv, ignore_errors=True)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    install = ["--python", str(python), "--resolution", resolution, "--editable", f".[{side.extra}]"]
    steps = [
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--quiet", *install],
    ]
    for argv in steps:
        done = _run(argv, INSTALL_TIMEOUT_S, cwd=REPO, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv)}` failed:\n{done.stdout}{done.stderr}")
    stamp.touch()
    return python, "built"


def check(side: Side, python: Path, project: Mapping[str, Any], own: Sequence[str]) -> Outcome:
    """Runs the probe in ``python`` and turns its report into problems."""
    label = f"hybridhub[{side.extra}]"
    spec = {
        "roots": side.roots,
        "exclude": side.exclude,
        "absent": side.absent,
        "entry_points": side.entry_points,
        "files": side.files,
        "own": own,
        "repo": str(REPO),
    }
    argv = [str(python), "-I", str(Path(__file__).resolve()), "--probe", json.dumps(spec)]
    # The probe runs outside the repository so that nothing is imported from the working directory.
    done = _run(argv, PROBE_TIMEOUT_S, cwd=python.parent)
    if done.returncode != 0:
        return Outcome(side, [f"the probe failed:\n{done.stdout}{done.stderr}"])
    report = json.loads(done.stdout)
    problems = [f"{name} does not import in {label}: {why}" for name, why in report["failures"].items()]
    problems += [
        f"module {name} is not reachable: a folder on its path has no __init__.py"
        for name in report["unreachable"]
    ]
    problems += [f"{name} is importable in {label} but must not be" for name in report["present"]]
    problems += undeclared(
        report["imports"], declared_distributions(project, side.extra), f"{label} (pyproject.toml)"
    )
    for command in side.commands:
        ran = _run([str(python.parent / command[0]), *command[1:]], COMMAND_TIMEOUT_S, cwd=python.parent)
        if ran.returncode != 0 or not ran.stdout.strip():
            problems.append(
                f"`{' '.join(command)}` in {label} exited {ran.returncode}:\n{ran.stdout}{ran.stderr}"
            )
    return Outcome(side, problems, modules=len(report["modules"]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", action="append", help="check only this side (repeatable)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the venvs even if up to date")
    parser.add_argument(
        "--lowest",
        action="store_true",
        help="install the lowest versions the extras allow (venvs of their own), to check the lower bounds",
    )
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe is not None:
        # What the imported modules print goes to stderr, so that stdout carries the report alone.
        report, sys.stdout = sys.stdout, sys.stderr
        result = probe(json.loads(args.probe))
        sys.stdout = report
        json.dump(result, sys.stdout)
        return 0

    pyproject_bytes = (REPO / "pyproject.toml").read_bytes()
    pyproject = tomllib.loads(pyproject_bytes.decode())
    project = pyproject["project"]
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    own = [*wheel["packages"], "tests", "bench"]
    chosen = [s for s in (*SIDES, *STATIC) if not args.side or s.name in args.side]
    if args.side and len(chosen) != len(set(args.side)):
        parser.error(f"sides are {', '.join(s.name for s in (*SIDES, *STATIC))}")
    uv = _find_uv()
    started = time.monotonic()

    def one(side: Side) -> Outcome:
        began = time.monotonic()
        if side in STATIC:
            python, how = Path(sys.executable), "project venv"
        else:
            try:
                resolution = "lowest-direct" if args.lowest else "highest"
                python, how = ensure_venv(side, uv, pyproject_bytes, args.rebuild, resolution)
                how += ", lowest versions" if args.lowest else ""
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                return Outcome(side, [str(exc)], how="build failed")
        outcome = check(side, python, project, own)
        outcome.how, outcome.seconds = how, time.monotonic() - began
        return outcome

    # uv does its own downloads in parallel, and the machine has two cores: two sides at a time.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(one, chosen))
    failed = 0
    for outcome in outcomes:
        side = outcome.side
        what = f"{outcome.modules} modules imported, " if side in SIDES else ""
        print(
            f"extras: {side.name:<8} hybridhub[{side.extra}] {what}"
            f"{len(outcome.problems)} problems ({outcome.how}, {outcome.seconds:.1f} s)"
        )
        for problem in outcome.problems:
            print(f"  - {problem}")
        failed += bool(outcome.problems)
    print(f"extras: checked in {time.monotonic() - started:.1f} s")
    print(f"extras: {len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
