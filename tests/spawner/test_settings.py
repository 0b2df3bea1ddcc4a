"""Every operator setting of ours has a real help text (STYLE point 3).

The classes are found, not listed: every ``traitlets.config.Configurable`` subclass defined in a module
of the ``spawner`` package, so a new one is checked the day it lands. Only a class's own settings
count (HybridSpawner's, not the ones it inherits from KubeSpawner).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from traitlets import Integer, Unicode
from traitlets.config import Configurable

import spawner

MIN_HELP = 20  # characters: less cannot say a meaning and a unit


def configurables() -> list[type[Configurable]]:
    """The Configurable subclasses defined in the spawner package, by module and name."""
    found: list[type[Configurable]] = []
    for info in pkgutil.walk_packages(spawner.__path__, prefix=f"{spawner.__name__}."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Configurable) and cls.__module__ == module.__name__:
                found.append(cls)
    return sorted(found, key=lambda c: (c.__module__, c.__qualname__))


FOUND = configurables()


def test_discovery_finds_the_known_settings() -> None:
    names = {f"{c.__module__}.{c.__qualname__}" for c in FOUND}
    # the classes this test was written against; the rest are whatever the package holds today
    assert {"spawner.service.app.HybridHubService", "spawner.core.clusters.ClusterSet"} <= names, names


def short_help(cls: type[Configurable]) -> dict[str, str]:
    """The class's own settings whose help is missing or too short, with that help."""
    own = cls.class_own_traits(config=True)
    texts = {name: (trait.help or "").strip() for name, trait in own.items()}
    return {name: text for name, text in texts.items() if len(text) < MIN_HELP}


@pytest.mark.parametrize("cls", FOUND, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_setting_has_help(cls: type[Configurable]) -> None:
    assert not short_help(cls), f"{cls.__qualname__}: settings without a real help text: {short_help(cls)}"


def test_the_check_catches_missing_and_short_help() -> None:
    class Sloppy(Configurable):
        empty = Integer(1, config=True)
        terse = Unicode("", config=True, help="The URL.")
        fine = Integer(3, config=True, help="Seconds between two sweeps, e.g. 30.")
        internal = Integer(4, help="")  # not a setting: config=False

    assert short_help(Sloppy) == {"empty": "", "terse": "The URL."}
