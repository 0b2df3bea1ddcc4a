"""MultiClusterSpawner.events gives what KubeSpawner's gives, picking the pod's events before sorting."""

from __future__ import annotations

import random
from typing import Any

import pytest
from kubespawner import KubeSpawner

from spawner.spawning.multicluster import EventsByPod, MultiClusterSpawner


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


@pytest.mark.parametrize("seed", range(30))
def test_events_kept_by_pod_follow_every_change_of_the_watch(seed: int) -> None:
    """What KubeSpawner's reflector does to its dict (set a key, set it again, pop it, and replace the
    whole dict after a LIST), done to a plain dict and to EventsByPod: each pod's events, and the pod's
    events as ``events`` gives them, stay the same."""
    rng = random.Random(seed)
    pods = ["jupyter-ann", "jupyter-bob", "jupyter-cy"]
    plain: dict[str, Any] = {}
    kept = EventsByPod()
    for step in range(200):
        n = rng.randrange(25)
        key = f"ns/e{n}"  # an event's name begins with its pod's: a key keeps its pod
        roll = rng.random()
        if roll < 0.6:
            value = event(key, pods[n % len(pods)], rng.randrange(10), micro=rng.random() < 0.3)
            plain[key] = kept[key] = value
        elif roll < 0.9:
            assert plain.pop(key, None) == kept.pop(key, None)
        elif roll < 0.95 and key in plain:
            del plain[key]
            del kept[key]
        else:  # a LIST: the whole dict replaced, in the server's order
            listed = list(plain.items())
            rng.shuffle(listed)
            plain, kept = dict(listed), EventsByPod(dict(listed))
        assert kept == plain, step
        for pod in pods:
            assert kept.of(pod) == [e for e in plain.values() if e["involvedObject"]["name"] == pod]
            marker = rng.choice([None, *(e["metadata"]["uid"] for e in kept.of(pod))])
            theirs = Spawner(Reflector([]), pod, marker)
            theirs.event_reflector.resources = plain
            ours = Spawner(Reflector([]), pod, marker)
            ours.event_reflector.resources = kept
            expected = KubeSpawner.events.fget(theirs)  # type: ignore[attr-defined]
            assert MultiClusterSpawner.events.fget(ours) == expected  # type: ignore[attr-defined]
    kept.clear()
    assert kept.of("jupyter-ann") == [] and not kept


def test_an_event_that_names_another_pod_moves_to_that_pod() -> None:
    kept = EventsByPod({"ns/e1": event("e1", "jupyter-ann", 1)})
    kept["ns/e1"] = event("e1", "jupyter-bob", 2)
    assert kept.of("jupyter-ann") == [] and [e["lastTimestamp"] for e in kept.of("jupyter-bob")] == [
        "2026-12-03T10:00:02Z"
    ]
