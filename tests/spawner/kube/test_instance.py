"""The hub instance name HybridSpawner and the hybridhub service agree on without configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterhub.objects import Hub
from traitlets.config import Config

from spawner.hybrid import HybridSpawner
from spawner.kube.instance import ENVIRONMENT_VARIABLE, default_hub_instance
from spawner.service.app import HybridHubService
from tests.spawner.in_process import StandInUser


@pytest.mark.parametrize(
    ("variable", "namespace_file", "expected"),
    [
        ("site-a", "jhub\n", "site-a"),  # named by the operator
        ("  site-a ", None, "site-a"),
        ("", "jhub\n", "jhub"),  # the namespace the hub pod runs in
        (None, "jhub", "jhub"),
        (None, "", "jupyterhub"),  # an empty file: as outside a pod
        (None, None, "jupyterhub"),  # outside a pod: no service account
    ],
)
def test_default_hub_instance(
    variable: str | None,
    namespace_file: str | None,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if variable is None:
        monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, variable)
    path = tmp_path / "namespace"
    if namespace_file is not None:
        path.write_text(namespace_file)
    assert default_hub_instance(path) == expected


@pytest.mark.parametrize("variable", ["site-a", None])
def test_the_hub_and_its_service_agree_by_default(
    variable: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both read the same sources: the hub hands its managed service every HYBRIDHUB_* variable."""
    if variable is None:
        monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, variable)
    spawner = HybridSpawner(config=Config(), user=StandInUser(), hub=Hub(base_url="/hub/"))
    assert HybridHubService().hub_instance == spawner.hub_instance == default_hub_instance()
