"""MultiClusterSpawner.events gives what KubeSpawner's gives, picking the pod's events before sorting."""

from __future__ import annotations

import random
from typing import Any

import pytest
from kubespawner import KubeSpawner

from spawner.spawning.multicluster import MultiClusterSpawner


class Reflector:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.resources = {e["metadata"]["uid"]: e for e in events}

    @property
    def events(self) -> list[dict[str, Any]]:  # KubeSpawner's EventReflector.events
        return sorted(self.resources.values(), key=lambda e: e["lastTimestamp"] or e["eventTime"])


def event(uid: str, pod: str, second: int, *, micro: bool = False) -> dict[str, Any]:
    stamp = f"2026-12-03T10:00:{second:02d}Z"
    return {
        "metadata": {"uid": uid},
        "involvedObject": {"name": pod},
        "lastTimestamp": None if micro else stamp,
        "eventTime": stamp.replace("Z", ".000000Z") if micro else None,
        "reason": "Scheduled",
    }


class Spawner:
    """Just what both ``events`` properties read."""

    def __init__(self, reflector: Reflector, pod_name: str, last_event: str | None) -> None:
        self.event_reflector = reflector
        self.pod_name = pod_name
        self._last_event = last_event


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("last_event", [None, "marker"])
def test_the_same_events_in_the_same_order_as_kubespawner(seed: int, last_event: str | None) -> None:
    rng = random.Random(seed)
    events = [
        event(
            f"e{i}", rng.choice(["jupyter-ann", "jupyter-bob"]), rng.randrange(10), micro=rng.random() < 0.3
        )
        for i in range(40)
    ]
    if last_event:
        events.append(event("marker", "jupyter-ann", 5))
    rng.shuffle(events)
    spawner = Spawner(Reflector(events), "jupyter-ann", last_event)
    ours = MultiClusterSpawner.events.fget(spawner)  # type: ignore[attr-defined]
    theirs = KubeSpawner.events.fget(spawner)  # type: ignore[attr-defined]
    assert ours == theirs
    assert all(e["involvedObject"]["name"] == "jupyter-ann" for e in ours)


def test_no_event_watch_no_events() -> None:
    spawner = Spawner(None, "jupyter-ann", None)  # type: ignore[arg-type]
    assert MultiClusterSpawner.events.fget(spawner) == []  # type: ignore[attr-defined]
