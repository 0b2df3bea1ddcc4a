"""Which notebook pods the service's sweep removes: those of servers the hub neither runs nor starts."""

from __future__ import annotations

import pytest

from spawner.inventory.index import ServerLocation
from spawner.service.sweeper import Leftover, find_leftovers


def loc(user: str, server: str = "", *, uid: str = "u1", ours: bool = True) -> ServerLocation:
    pod = f"jupyter-{user}" + (f"--{server}" if server else "")
    return ServerLocation(
        user, server, "jupyterhub", pod, "10.0.0.1", "Running", "n1", uid, "onprem" if ours else ""
    )


def gone(user: str, server: str = "", cluster: str = "onprem", uid: str = "u1") -> Leftover:
    pod = f"jupyter-{user}" + (f"--{server}" if server else "")
    return Leftover(cluster, "jupyterhub", pod, uid, user, server)


@pytest.mark.parametrize(
    ("pods", "active", "expected"),
    [
        ([("onprem", loc("ann"))], {"ann": frozenset({""})}, []),  # running or pending: kept
        ([("onprem", loc("ann"))], {"ann": frozenset()}, [gone("ann")]),  # the hub does not run it
        ([("onprem", loc("ann", "gpu"))], {"ann": frozenset({""})}, [gone("ann", "gpu")]),  # another server
        ([("onprem", loc("ann"))], {"ann": None}, []),  # the hub's answer is unknown: touch nothing
        ([("onprem", loc("ann"))], {}, []),  # never asked
        ([("onprem", loc("ann", ours=False))], {"ann": frozenset()}, []),  # not HybridSpawner's pod
        ([("onprem", loc("ann", uid=""))], {"ann": frozenset()}, []),  # no UID: cannot delete safely
        (  # a dead hub's start left pods in both clusters
            [("onprem", loc("ann", uid="a")), ("eks", loc("ann", uid="b")), ("eks", loc("bob", uid="c"))],
            {"ann": frozenset(), "bob": frozenset({""})},
            [gone("ann", cluster="eks", uid="b"), gone("ann", uid="a")],
        ),
    ],
)
def test_find_leftovers(
    pods: list[tuple[str, ServerLocation]],
    active: dict[str, frozenset[str] | None],
    expected: list[Leftover],
) -> None:
    assert find_leftovers(pods, active) == expected
