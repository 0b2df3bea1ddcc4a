"""Every operator setting of ours has a help text (STYLE point 3): HybridSpawner's own traits (not the
ones it inherits from KubeSpawner) and the service's."""

from __future__ import annotations

import pytest
from traitlets.config import Configurable

from spawner.hybrid import HybridSpawner
from spawner.service.app import HybridHubService


@pytest.mark.parametrize("cls", [HybridSpawner, HybridHubService])  # ClusterSet: test_clusters.py
def test_every_setting_has_help(cls: type[Configurable]) -> None:
    own = cls.class_own_traits(config=True)
    assert own, f"{cls.__name__} has no settings of its own?"
    missing = [name for name, trait in own.items() if len((trait.help or "").strip()) < 20]
    assert not missing, f"{cls.__name__}: settings without a real help text: {missing}"
