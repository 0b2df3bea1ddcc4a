"""Shared fixtures: one simcluster (on-prem + EKS) per test session, a fresh namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simcluster.testing import SimProcess

# tests/environment.py: a missing requirement skips a test here and fails it under CI=true; pytester
# runs the inner pytest that tests/test_environment.py checks that with
pytest_plugins = ["tests.environment", "pytester"]


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """The default topology (contexts ``onprem`` and ``eks``) in a subprocess."""
    with SimProcess(tmp_path_factory.mktemp("sim")) as proc:
        yield proc


@pytest.fixture
def namespace(sim: SimProcess) -> Iterator[str]:
    """A namespace of its own in both clusters, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    for context in ("onprem", "eks"):
        sim.kubectl("create", "namespace", name, context=context)
    yield name
    for context in ("onprem", "eks"):
        sim.kubectl("delete", "namespace", name, "--wait=false", context=context, check=False)


@pytest.fixture
def golden_dir() -> Path:
    return Path(__file__).parent / "golden"
