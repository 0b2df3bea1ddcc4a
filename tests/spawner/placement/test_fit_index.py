"""Tests for spawner.placement.fit_index: placement's presorted orders, GPU tallies, incremental updates."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from spawner.core.model import NodeCapacity
from spawner.placement.fit_index import (
    FitIndex,
    FitIndexBuilder,
    GpuTally,
    build_fit_index,
    cpu_preference,
    gpu_preference,
)
from tests.spawner.placement.test_rank import node as placement_node

A100 = "NVIDIA-A100-SXM4-80GB"
L40S = "NVIDIA-L40S"
GiB = 2**30


def node(name: str, pool: str = "p", **kwargs: Any) -> NodeCapacity:
    """A node as the placement tests make it, in pool "p" by default."""
    return placement_node(name, pool, **kwargs)


def names(index: FitIndex, pool: str = "p") -> dict[str, list[str]]:
    """Each order of a pool as node names."""
    fits = index.pool(pool)
    return {
        "cpu": [f[1] for f in fits.cpu],
        "cpu_spread": [f[1] for f in fits.cpu_spread],
        "gpu": [f[1] for f in fits.gpu],
        "gpu_spread": [f[1] for f in fits.gpu_spread],
    }


def tallies(index: FitIndex, pool: str = "p") -> dict[str | None, GpuTally]:
    return dict(index.pool(pool).gpus)


# --------------------------------------------------------------------------- preferences


Preference = tuple[Callable[..., float], tuple[Any, ...]]


def gpu_pref(free_gpus: int, free_cpu: float, sign: float) -> Preference:
    return gpu_preference, (free_gpus, free_cpu, sign)


def cpu_pref(free_gpus: int, free_cpu: float, has_gpus: bool, sign: float) -> Preference:
    return cpu_preference, (free_gpus, free_cpu, has_gpus, sign)


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        # requests with GPUs, best fit: fewer free GPUs first, then less free CPU
        (gpu_pref(1, 60.0, 1.0), gpu_pref(2, 1.0, 1.0)),
        (gpu_pref(2, 1.0, 1.0), gpu_pref(2, 1.5, 1.0)),
        (gpu_pref(0, 0.001, 1.0), gpu_pref(0, 0.002, 1.0)),  # to 0.001 CPU
        # spread: more free GPUs first, then more free CPU
        (gpu_pref(2, 1.0, -1.0), gpu_pref(1, 60.0, -1.0)),
        (gpu_pref(2, 1.5, -1.0), gpu_pref(2, 1.0, -1.0)),
        # CPU-only requests: any node without GPUs before any node with GPUs
        (cpu_pref(0, 999_999.0, False, 1.0), cpu_pref(0, 0.0, True, 1.0)),
        (cpu_pref(0, 0.0, False, -1.0), cpu_pref(0, 999_999.0, True, -1.0)),
        # ... and of nodes with GPUs, the fewest free GPUs first, whatever the policy
        (cpu_pref(1, 60.0, True, 1.0), cpu_pref(2, 1.0, True, 1.0)),
        (cpu_pref(1, 1.0, True, -1.0), cpu_pref(2, 60.0, True, -1.0)),
        (cpu_pref(1, 60.0, True, -1.0), cpu_pref(1, 1.0, True, -1.0)),
        (cpu_pref(0, 4.0, False, 1.0), cpu_pref(0, 8.0, False, 1.0)),
        (cpu_pref(0, 8.0, False, -1.0), cpu_pref(0, 4.0, False, -1.0)),
        # still in order to 0.001 CPU at the limits the preference is made for (< 1e4 GPUs, < 1e6 CPUs)
        (gpu_pref(9999, 999_999.998, 1.0), gpu_pref(9999, 999_999.999, 1.0)),
        (gpu_pref(9999, 999_999.999, -1.0), gpu_pref(9999, 999_999.998, -1.0)),
        (gpu_pref(9998, 999_999.999, 1.0), gpu_pref(9999, 0.0, 1.0)),
        (cpu_pref(9999, 999_999.998, True, 1.0), cpu_pref(9999, 999_999.999, True, 1.0)),
        (cpu_pref(9998, 999_999.999, True, 1.0), cpu_pref(9999, 0.0, True, 1.0)),
        (cpu_pref(0, 999_999.999, False, 1.0), cpu_pref(0, 0.0, True, 1.0)),
    ],
)
def test_preferences(smaller: Preference, larger: Preference) -> None:
    # computed here rather than in the table, which is built once at import: mutation testing swaps the
    # code after that
    assert smaller[0](*smaller[1]) < larger[0](*larger[1])


# --------------------------------------------------------------------------- orders and tallies

POOL = (
    node("c16", gpus=0, cpu=16.0, cpu_used=4.0),  # 12 CPUs free
    node("c8", gpus=0, cpu=16.0, cpu_used=8.0),  # 8
    node("g0", used=8, cpu_used=32.0),  # no GPU free, 32 CPUs
    node("g4b", used=4, cpu_used=54.0),  # 4 GPUs, 10 CPUs: ties with g4a, the name decides
    node("g4a", used=4, cpu_used=54.0),
    node("g6", used=2, cpu_used=60.0, product=L40S),  # 6 GPUs, 4 CPUs
    node("nr", used=0, ready=False),  # not Ready: counted, never ranked
    node("cord", gpus=0, schedulable=False),  # cordoned: the same
    node("over", used=9),  # more GPUs requested than it has (a node that shrank): 0 free
)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        # CPU-only requests: CPU nodes by free CPU, then GPU nodes by free GPUs, then free CPU
        ("cpu", ["c8", "c16", "over", "g0", "g4a", "g4b", "g6"]),
        # spread: the most free CPU first; GPU nodes still the fewest free GPUs first
        ("cpu_spread", ["c16", "c8", "over", "g0", "g4a", "g4b", "g6"]),
        # requests with GPUs: GPU nodes only, fewest free GPUs first (every product: placement filters)
        ("gpu", ["over", "g0", "g4a", "g4b", "g6"]),
        ("gpu_spread", ["g6", "g4a", "g4b", "g0", "over"]),
    ],
)
def test_orders(order: str, expected: list[str]) -> None:
    assert names(build_fit_index(POOL))[order] == expected


def test_order_accessor_and_sizes() -> None:
    index = build_fit_index(POOL)
    fits = index.pool("p")
    assert (fits.order(True, False), fits.order(True, True)) == (fits.gpu, fits.gpu_spread)
    assert (fits.order(False, False), fits.order(False, True)) == (fits.cpu, fits.cpu_spread)
    assert fits.size == len(POOL)  # not Ready and cordoned nodes too
    assert index.pool("elsewhere").size == 0
    assert index.pool("elsewhere").cpu == ()
    first = fits.cpu[0]
    assert first[1:6] == ("c8", 0, 8.0, 512 * GiB, None)  # name, free GPUs, CPUs, memory, product
    assert first[6] is POOL[1]
    assert index.by_name["nr"] is POOL[6]


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        ((), {}),
        ((node("c", gpus=0),), {}),
        (
            POOL,
            {
                # usable: g0 (0 free), g4a, g4b (4 each), over (0); nr is not Ready but the biggest counts it
                A100: GpuTally(total=32, free=8, free_per_node=((4, 2), (0, 2)), biggest=8),
                L40S: GpuTally(total=8, free=6, free_per_node=((6, 1),), biggest=8),
            },
        ),
        (
            (node("a", gpus=4, product=None), node("b", gpus=2, used=1, product=None)),
            {None: GpuTally(total=6, free=5, free_per_node=((4, 1), (1, 1)), biggest=4)},
        ),
        # only nodes that are not Ready: nothing usable, the size still known
        ((node("nr", ready=False),), {A100: GpuTally(0, 0, (), 8)}),
    ],
)
def test_gpu_tallies(nodes: tuple[NodeCapacity, ...], expected: dict[str | None, GpuTally]) -> None:
    assert tallies(build_fit_index(nodes)) == expected


# --------------------------------------------------------------------------- incremental updates

BASE = (node("a", used=2), node("b", used=4), node("c", gpus=0, cpu_used=10.0))


def _put(n: NodeCapacity) -> tuple[str, NodeCapacity | str]:
    return ("put", n)


def _remove(name: str) -> tuple[str, NodeCapacity | str]:
    return ("remove", name)


@pytest.mark.parametrize(
    ("steps", "expected_gpu", "expected_cpu", "size"),
    [
        ([], ["b", "a"], ["c", "b", "a"], 3),
        # a pod lands on a: fewer GPUs free, it overtakes b
        ([_put(node("a", used=6))], ["a", "b"], ["c", "a", "b"], 3),
        # a pod leaves b
        ([_put(node("b", used=0))], ["a", "b"], ["c", "a", "b"], 3),
        # cordoned: out of the orders, still a node of the pool
        ([_put(node("a", used=2, schedulable=False))], ["b"], ["c", "b"], 3),
        ([_put(node("a", used=2, ready=False)), _put(node("a", used=2))], ["b", "a"], ["c", "b", "a"], 3),
        # a node comes, another goes, an unknown one "goes"
        ([_put(node("d", used=8)), _remove("b"), _remove("ghost")], ["d", "a"], ["c", "d", "a"], 3),
        # a node moves to another pool
        ([_put(node("a", "q", used=2))], ["b"], ["c", "b"], 2),
        # every node goes: the pool goes
        ([_remove("a"), _remove("b"), _remove("c")], [], [], 0),
        # the same node object again: nothing to do
        ([_put(BASE[0])], ["b", "a"], ["c", "b", "a"], 3),
    ],
)
def test_builder_follows_changes(
    steps: list[tuple[str, NodeCapacity | str]], expected_gpu: list[str], expected_cpu: list[str], size: int
) -> None:
    builder = FitIndexBuilder(BASE)
    current = {n.name: n for n in BASE}
    for op, arg in steps:
        if op == "put":
            assert isinstance(arg, NodeCapacity)
            builder.put(arg)
            current[arg.name] = arg
        else:
            assert isinstance(arg, str)
            builder.remove(arg)
            current.pop(arg, None)
    nodes = tuple(current.values())
    index = builder.index(nodes)
    assert names(index)["gpu"] == expected_gpu
    assert names(index)["cpu"] == expected_cpu
    assert index.pool("p").size == size
    assert len(builder) == len(current)
    assert index == build_fit_index(nodes)  # the same as built at once
    assert ("p" in index.pools) == bool(size)


def test_builder_freezes_only_what_changed() -> None:
    nodes = (node("a"), node("b", "q"))
    builder = FitIndexBuilder(nodes)
    first = builder.index(nodes)
    assert builder.index(nodes) is first  # nothing changed: the same index
    other = tuple(reversed(nodes))
    assert builder.index(other).nodes is other  # another tuple: an index naming it
    builder.put(node("a", used=1))
    second = builder.index(nodes)
    assert second is not first
    assert second.pool("q") is first.pool("q")  # pool q did not change: reused, not copied
    assert second.pool("p") is not first.pool("p")
    assert first.pool("p").gpu[0][2] == 8  # a frozen index never changes
    assert second.pool("p").gpu[0][2] == 7


def test_builder_matches_a_fresh_build_under_random_changes() -> None:
    """Any sequence of puts and removes leaves the index equal to one built from the final nodes."""
    rng = random.Random(20261123)
    for _ in range(40):
        builder = FitIndexBuilder()
        current: dict[str, NodeCapacity] = {}
        for step in range(150):
            name = f"n{rng.randrange(12)}"
            if name in current and rng.random() < 0.25:
                builder.remove(name)
                del current[name]
            else:
                gpus = rng.choice([0, 1, 4, 8])
                new = node(
                    name,
                    rng.choice(["p", "q", ""]),
                    gpus=gpus,
                    used=rng.randint(0, gpus + 1) if gpus else 0,
                    product=rng.choice([A100, L40S, None]),
                    cpu_used=rng.choice([0.0, 0.5, 8.0, 63.5, 64.0, 70.0]),
                    mem_used=rng.choice([0, GiB, 600 * GiB]),
                    ready=rng.random() > 0.15,
                    schedulable=rng.random() > 0.15,
                )
                builder.put(new)
                current[name] = new
            if step % 10 == 0:
                nodes = tuple(current.values())
                assert builder.index(nodes) == build_fit_index(nodes)
        nodes = tuple(current.values())
        assert builder.index(nodes) == build_fit_index(nodes)


def test_a_later_node_of_the_same_name_wins_in_a_fresh_build() -> None:
    index = build_fit_index((node("a", used=8), node("a", used=0)))
    assert [f[2] for f in index.pool("p").gpu] == [8]
    assert index.pool("p").size == 1


def test_frozen_parts_do_not_change() -> None:
    index = build_fit_index(POOL)
    with pytest.raises(TypeError):
        index.pools["x"] = index.pool("p")  # type: ignore[index]
    with pytest.raises(AttributeError):
        index.pool("p").size = 0  # type: ignore[misc]
