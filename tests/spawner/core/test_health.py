"""Tests for spawner.core.health: probe classification with hysteresis, as tables of probe sequences."""

from __future__ import annotations

from dataclasses import replace

import pytest

from spawner.core.health import (
    HealthPolicy,
    HealthState,
    Probe,
    classify,
    cluster_health,
    pool_probes,
    problems,
)
from spawner.core.model import ClusterHealth, Health, NodeCapacity, Pool, Role

H, G, D = Health.HEALTHY, Health.DEGRADED, Health.DOWN

GOOD = Probe(api_ok=True, api_latency=0.05, watch_age=3.0, ready_nodes=4, total_nodes=4, time=0.0)
PROBES = {
    "ok": GOOD,
    "fail": replace(GOOD, api_ok=False, api_latency=None),
    "refused": replace(GOOD, api_ok=False, api_latency=None, error="connection refused"),
    "slow": replace(GOOD, api_latency=1.4),
    "stale": replace(GOOD, watch_age=130.0),
    "nodes": replace(GOOD, ready_nodes=1),
    "metrics": replace(GOOD, metrics_ok=False),
    "slow+stale": replace(GOOD, api_latency=1.4, watch_age=130.0),
    # answered, with watch news 15 s old: older than the probe before it (10 s apart), so from before
    # a failure of that probe; a quiet cluster with a healthy watch gives the same reading otherwise
    "quiet": replace(GOOD, watch_age=15.0),
    # a pool's nodes all NotReady while the API answers (pool_probes): not an outage of the watches
    "cut off": replace(GOOD, api_ok=False, subject="nodes", error="none of its 4 nodes Ready"),
}
NOT_CURRENT = "inventory not current: no watch news since the API last went unanswered"


def run(tokens: list[str], policy: HealthPolicy | None = None) -> list[HealthState]:
    """Classify the probes named by ``tokens``, one every 10 s from t=0; every state in turn."""
    policy = policy or HealthPolicy()
    states: list[HealthState] = []
    prev: HealthState | None = None
    for i, token in enumerate(tokens):
        prev = classify(prev, replace(PROBES[token], time=10.0 * i), policy)
        states.append(prev)
    return states


@pytest.mark.parametrize(
    ("tokens", "expected", "reason"),
    [
        # the first probe needs no hysteresis
        (["ok"], [H], ""),
        (["slow"], [G], "API answers in 1.4 s (> 1.0 s)"),
        (["fail"], [G], "API unreachable for 1 probe"),
        # one failed probe degrades, it does not make DOWN
        (["ok", "fail"], [H, G], "API unreachable for 1 probe"),
        (["ok", "fail", "fail"], [H, G, G], "API unreachable for 2 probes"),
        # DOWN needs 3 consecutive failures
        (["ok", "fail", "fail", "fail"], [H, G, G, D], "API unreachable for 3 probes"),
        (["ok", "fail", "fail", "fail", "fail"], [H, G, G, D, D], "API unreachable for 4 probes"),
        (
            ["ok", "fail", "fail", "refused"],
            [H, G, G, D],
            "API unreachable for 3 probes (connection refused)",
        ),
        # failures that are not consecutive never make DOWN; nor does it recover between them
        (["fail", "fail", "ok", "fail", "fail"], [G, G, G, G, G], "API unreachable for 2 probes"),
        (["fail", "ok", "fail", "ok", "fail", "ok"], [G] * 6, "recovering: 1 of 2 good probes"),
        # leaving DEGRADED needs 2 consecutive good probes
        (["ok", "slow", "ok"], [H, G, G], "recovering: 1 of 2 good probes"),
        (["ok", "slow", "ok", "ok"], [H, G, G, H], ""),
        (["ok", "fail", "ok", "ok"], [H, G, G, H], ""),
        (["slow", "ok", "slow", "ok", "ok"], [G, G, G, G, H], ""),
        # leaving DOWN needs 2 consecutive answered probes: HEALTHY if both were good
        (["fail"] * 3 + ["ok"], [G, G, D, D], "API answers again (1 of 2 probes)"),
        (["fail"] * 3 + ["ok", "ok"], [G, G, D, D, H], ""),
        (["fail"] * 3 + ["ok", "fail"], [G, G, D, D, D], "API unreachable for 1 probe"),
        (["fail"] * 3 + ["ok", "fail", "ok", "ok"], [G, G, D, D, D, D, H], ""),
        # ... and DEGRADED when the API answers, but badly: a slow API is not a dead one
        (
            ["fail"] * 3 + ["slow"],
            [G, G, D, D],
            "API answers again (1 of 2 probes): API answers in 1.4 s (> 1.0 s)",
        ),
        (["fail"] * 3 + ["slow", "slow"], [G, G, D, D, G], "API answers in 1.4 s (> 1.0 s)"),
        (["fail"] * 3 + ["ok", "slow"], [G, G, D, D, G], "API answers in 1.4 s (> 1.0 s)"),
        (["fail"] * 3 + ["slow", "ok"], [G, G, D, D, G], "recovering: 1 of 2 good probes"),
        (["fail"] * 3 + ["slow", "ok", "ok"], [G, G, D, D, G, H], ""),
        # every degradation signal, in words
        (["ok", "stale"], [H, G], "watch silent for 130 s"),
        (["ok", "nodes"], [H, G], "1 of 4 nodes Ready"),
        (["ok", "metrics"], [H, G], "metrics endpoint failing"),
        (["ok", "slow+stale"], [H, G], "API answers in 1.4 s (> 1.0 s); watch silent for 130 s"),
        (["stale", "ok", "ok"], [G, G, H], ""),
        # a quiet watch is fine while the API has always answered
        (["quiet"], [H], ""),
        (["ok", "quiet", "quiet"], [H, H, H], ""),
        # after an unanswered probe, an answer is good only with watch news since: watches that were
        # open across a hung link may be silent, and the inventory they feed is not current
        (["ok", "fail", "quiet"], [H, G, G], NOT_CURRENT),
        (["ok", "fail", "quiet", "ok"], [H, G, G, G], "recovering: 1 of 2 good probes"),
        (["ok", "fail", "quiet", "ok", "ok"], [H, G, G, G, H], ""),
        (["ok", "fail", "ok", "quiet"], [H, G, G, H], ""),  # news after the failure: current
        (["fail"] * 3 + ["quiet"], [G, G, D, D], f"API answers again (1 of 2 probes): {NOT_CURRENT}"),
        (["fail"] * 3 + ["quiet", "ok", "ok"], [G, G, D, D, G, H], ""),
        (["fail"] * 3 + ["ok", "ok", "quiet"], [G, G, D, D, H, H], ""),
        (["ok", "fail", "ok", "ok", "fail", "quiet"], [H, G, G, H, G, G], NOT_CURRENT),  # the latest failure
        (["ok", "cut off", "quiet", "quiet"], [H, G, G, H], ""),  # the API kept answering its watches
        (["fail", "cut off", "quiet"], [G, G, G], "recovering: 1 of 2 good probes"),  # news after the API's
    ],
)
def test_sequences(tokens: list[str], expected: list[Health], reason: str) -> None:
    states = run(tokens)
    assert [s.state for s in states] == expected
    assert states[-1].reason == reason


@pytest.mark.parametrize(
    ("tokens", "api_failed_at"),
    [
        (["ok"], None),
        (["ok", "fail"], 10.0),
        (["ok", "fail", "fail", "fail"], 30.0),
        (["fail", "ok", "ok"], 0.0),  # kept while the API answers
        (["fail", "ok", "fail", "ok"], 20.0),
        (["ok", "cut off", "ok"], None),
        (["fail", "cut off"], 0.0),
    ],
)
def test_api_failed_at(tokens: list[str], api_failed_at: float | None) -> None:
    assert run(tokens)[-1].api_failed_at == api_failed_at


@pytest.mark.parametrize(
    ("failures", "expected", "reason"),
    [
        (1, [G, G, G, G], NOT_CURRENT),
        (3, [D, G, G, G], NOT_CURRENT),  # DOWN is left after 2 answers, but not for HEALTHY
    ],
)
def test_a_watch_silent_since_before_the_outage_keeps_the_cluster_from_healthy(
    failures: int, expected: list[Health], reason: str
) -> None:
    """The API answers again but the watches stay silent (still hung, or failing to reopen): the
    watches' last news stays where it was, before the first failed probe at t=10."""
    state = classify(None, replace(GOOD, time=0.0), HealthPolicy())
    for i in range(failures):
        state = classify(state, replace(PROBES["fail"], time=10.0 * (i + 1)), HealthPolicy())
    seen = []
    for i in range(4):
        t = 10.0 * (failures + 1 + i)
        state = classify(state, replace(GOOD, time=t, watch_age=t - 5.0), HealthPolicy())
        seen.append(state.state)
    assert seen == expected and state.reason == reason


def test_the_news_must_come_after_the_failure_not_at_it() -> None:
    """The watch's last news and the failed probe at the same instant: the news may predate the outage."""
    failed = classify(None, replace(PROBES["fail"], time=100.0), HealthPolicy())
    at = classify(failed, replace(GOOD, time=110.0, watch_age=10.0), HealthPolicy())
    after = classify(failed, replace(GOOD, time=110.0, watch_age=9.9), HealthPolicy())
    assert at.reason == NOT_CURRENT and after.reason == "recovering: 1 of 2 good probes"


@pytest.mark.parametrize(
    ("tokens", "failures", "successes", "answers", "since"),
    [
        (["ok"], 0, 1, 1, 0.0),
        (["ok", "ok", "ok"], 0, 3, 3, 0.0),
        (["ok", "fail"], 1, 0, 0, 10.0),
        (["ok", "fail", "fail", "fail"], 3, 0, 0, 30.0),  # DOWN since the third failure
        (["ok", "fail", "fail", "fail", "fail"], 4, 0, 0, 30.0),
        (["ok", "slow", "slow"], 0, 0, 3, 10.0),
        (["ok", "slow", "ok"], 0, 1, 3, 10.0),  # still DEGRADED since the slow probe
        (["ok", "slow", "ok", "ok"], 0, 2, 4, 30.0),  # HEALTHY again since the last probe
        (["fail", "fail", "fail", "ok", "ok"], 0, 2, 2, 40.0),
    ],
)
def test_counters_and_since(
    tokens: list[str], failures: int, successes: int, answers: int, since: float
) -> None:
    last = run(tokens)[-1]
    assert (last.failures, last.successes, last.answers, last.since) == (failures, successes, answers, since)


@pytest.mark.parametrize(
    ("policy", "tokens", "expected"),
    [
        (HealthPolicy(down_after_failures=1), ["ok", "fail"], [H, D]),
        (HealthPolicy(down_after_failures=5), ["fail"] * 5, [G, G, G, G, D]),
        (HealthPolicy(recover_after=1), ["ok", "slow", "ok"], [H, G, H]),
        (HealthPolicy(recover_after=1), ["fail"] * 3 + ["ok"], [G, G, D, H]),
        (HealthPolicy(recover_after=1), ["fail"] * 3 + ["slow"], [G, G, D, G]),
        (HealthPolicy(recover_after=3), ["ok", "slow", "ok", "ok", "ok"], [H, G, G, G, H]),
        (HealthPolicy(degraded_latency=2.0), ["ok", "slow"], [H, H]),
        (HealthPolicy(max_watch_age=300.0), ["ok", "stale"], [H, H]),
        (HealthPolicy(min_ready_fraction=0.25), ["ok", "nodes"], [H, H]),
        (HealthPolicy(min_ready_fraction=0.0), ["ok", "nodes"], [H, H]),
    ],
)
def test_policy_thresholds(policy: HealthPolicy, tokens: list[str], expected: list[Health]) -> None:
    assert [s.state for s in run(tokens, policy)] == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        # thresholds are strict: exactly at the limit is fine
        ({"api_latency": 1.0}, []),
        ({"api_latency": 1.01}, ["API answers in 1.01 s (> 1.0 s)"]),
        ({"api_latency": 12.5}, ["API answers in 12.5 s (> 1.0 s)"]),
        ({"api_latency": None}, []),
        ({"watch_age": 120.0}, []),
        ({"watch_age": 120.4}, ["watch silent for 120 s"]),
        ({"watch_age": None}, []),
        # Ready nodes: at least half of them; an empty pool is not degraded
        ({"ready_nodes": 2, "total_nodes": 4}, []),
        ({"ready_nodes": 1, "total_nodes": 4}, ["1 of 4 nodes Ready"]),
        ({"ready_nodes": 0, "total_nodes": 1}, ["0 of 1 node Ready"]),
        ({"ready_nodes": 0, "total_nodes": 0}, []),
        # an elastic pool scaled to zero or with nodes still starting is normal
        ({"ready_nodes": 0, "total_nodes": 3, "elastic": True}, []),
        ({"metrics_ok": None}, []),
        ({"metrics_ok": True}, []),
        ({"metrics_ok": False}, ["metrics endpoint failing"]),
        (
            {"api_latency": 3.0, "watch_age": 500.0, "ready_nodes": 0, "metrics_ok": False},
            [
                "API answers in 3.0 s (> 1.0 s)",
                "watch silent for 500 s",
                "0 of 4 nodes Ready",
                "metrics endpoint failing",
            ],
        ),
    ],
)
def test_problems(changes: dict[str, object], expected: list[str]) -> None:
    assert problems(replace(GOOD, **changes), HealthPolicy()) == expected  # type: ignore[arg-type]


def test_latency_threshold_in_words() -> None:
    policy = HealthPolicy(degraded_latency=0.25)
    assert problems(replace(GOOD, api_latency=0.5), policy) == ["API answers in 0.5 s (> 0.25 s)"]


def test_failed_probe_ignores_the_other_signals() -> None:
    probe = replace(GOOD, api_ok=False, api_latency=9.0, watch_age=999.0, ready_nodes=0)
    state = classify(None, probe, HealthPolicy())
    assert (state.state, state.reason) == (G, "API unreachable for 1 probe")


def test_injectable_clock_is_the_probe_time() -> None:
    policy = HealthPolicy()
    first = classify(None, replace(GOOD, time=1000.0), policy)
    assert first.since == 1000.0
    worse = classify(first, replace(PROBES["slow"], time=1005.5), policy)
    assert (worse.state, worse.since) == (G, 1005.5)
    still = classify(worse, replace(PROBES["slow"], time=1010.0), policy)
    assert still.since == 1005.5


@pytest.mark.parametrize(
    "changes",
    [
        {"degraded_latency": 0.0},
        {"max_watch_age": -1.0},
        {"down_after_failures": 0},
        {"recover_after": 0},
        {"min_ready_fraction": 1.5},
        {"min_ready_fraction": -0.1},
    ],
)
def test_policy_rejects_nonsense(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HealthPolicy(**changes)  # type: ignore[arg-type]


def test_probe_fields_are_keywords() -> None:
    with pytest.raises(TypeError):
        Probe(True, 0.1, 1.0, 1, 1, None, 0.0)  # type: ignore[call-arg]


def test_cluster_health() -> None:
    cluster = HealthState(D, "API unreachable for 3 probes", 3, 0, 30.0)
    pools = {"gpu": HealthState(G, "1 of 4 nodes Ready", 0, 0, 10.0), "cpu": HealthState(H, "", 0, 5, 0.0)}
    assert cluster_health("onprem", cluster, pools) == ClusterHealth(
        "onprem", D, "API unreachable for 3 probes", {"gpu": G, "cpu": H}
    )
    assert cluster_health("eks", HealthState(H, "", 0, 1, 0.0)) == ClusterHealth("eks", H, "", {})


def _node(name: str, pool: str, ready: bool) -> NodeCapacity:
    return NodeCapacity(name, pool, ready, True, "NVIDIA-L40S", 46068, 4, 0, 64.0, 0.0, 2**40, 0)


HYBRID_POOLS = (Pool("onprem", role=Role.ONPREM), Pool("cloud", elastic=True, role=Role.CLOUD))


@pytest.mark.parametrize(
    ("api_ok", "ready", "expected"),
    [
        # (cluster API answered, Ready flags of the two on-prem nodes) -> per pool (api_ok, ready, total)
        (True, (True, True), {"onprem": (True, 2, 2), "cloud": (True, 0, 0)}),
        (True, (True, False), {"onprem": (True, 1, 2), "cloud": (True, 0, 0)}),  # DEGRADED by the ratio
        (True, (False, False), {"onprem": (False, 0, 2), "cloud": (True, 0, 0)}),  # cut off: like no answer
        (False, (True, True), {"onprem": (False, 2, 2), "cloud": (False, 0, 0)}),  # the API: every pool
    ],
)
def test_pool_probes(
    api_ok: bool, ready: tuple[bool, bool], expected: dict[str, tuple[bool, int, int]]
) -> None:
    cluster = replace(GOOD, api_ok=api_ok, ready_nodes=0, total_nodes=0)
    nodes = [_node(f"hybrid-{i}", "onprem", r) for i, r in enumerate(ready)]
    probes = pool_probes(cluster, HYBRID_POOLS, nodes)
    assert {k: (p.api_ok, p.ready_nodes, p.total_nodes) for k, p in probes.items()} == expected
    assert probes["cloud"].elastic and not probes["onprem"].elastic
    if api_ok and not any(ready):
        assert probes["onprem"].error == "none of its 2 nodes Ready"


def test_an_on_prem_pool_cut_off_goes_down_while_the_cloud_pool_stays_healthy() -> None:
    policy = HealthPolicy()
    nodes = [_node("hybrid-0", "onprem", False), _node("hybrid-1", "onprem", False)]
    states: dict[str, HealthState | None] = {"onprem": None, "cloud": None}
    seen = []
    for t in range(4):
        probes = pool_probes(replace(GOOD, total_nodes=0, ready_nodes=0, time=float(t)), HYBRID_POOLS, nodes)
        for name, probe in probes.items():
            states[name] = classify(states[name], probe, policy)
        seen.append((states["onprem"].state, states["cloud"].state))  # type: ignore[union-attr]
    assert seen == [(G, H), (G, H), (D, H), (D, H)]
    reason = states["onprem"].reason  # type: ignore[union-attr]
    assert reason == "nodes unreachable for 4 probes (none of its 2 nodes Ready)"
