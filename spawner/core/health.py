"""Health: classify a cluster's (or pool's) probes as HEALTHY, DEGRADED or DOWN, with hysteresis.

Pure: the caller probes (API ``/readyz``, watch freshness, Ready nodes, an optional metrics
endpoint), stamps each probe with its own clock and feeds the previous state back in.

- Worsening to DEGRADED is immediate: one failed or slow probe, a silent watch, too few Ready nodes.
- DOWN (no new placements) needs ``down_after_failures`` consecutive probes the API did not answer.
- Leaving DEGRADED needs ``recover_after`` consecutive good probes. Leaving DOWN needs
  ``recover_after`` consecutive answered probes: to HEALTHY if they were all good, else to DEGRADED
  (a slow API is not a dead one).
- After a probe the API did not answer, a probe is good only once the watches have had news since:
  a watch that was open across the outage may have gone silent with it, and an inventory it feeds
  is not current until the watch is resumed. A pool whose nodes are all NotReady while the API
  answers (``pool_probes``) is no such outage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from spawner.core.model import ClusterHealth, Health, NodeCapacity, Pool

API = "API"  # the subject of a probe the cluster's API did not answer

__all__ = ["HealthPolicy", "HealthState", "Probe", "classify", "cluster_health", "pool_probes", "problems"]


@dataclass(frozen=True, kw_only=True)
class Probe:
    """One look at a cluster or pool, taken at ``time`` (seconds of the caller's monotonic clock)."""

    api_ok: bool  # /readyz answered ok
    api_latency: float | None  # seconds it took; None when not measured
    watch_age: float | None  # seconds since the node/pod watches last saw an event or bookmark
    ready_nodes: int
    total_nodes: int
    metrics_ok: bool | None = None  # the on-prem metrics endpoint; None when there is none
    time: float
    elastic: bool = False  # an elastic pool: no nodes, or nodes still starting, is normal there
    error: str = ""  # why the API did not answer ("connection refused"), for the reason
    subject: str = API  # what did not answer, for the reason: a pool's "nodes"


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds. Probes come every few seconds; the counts are of consecutive probes."""

    degraded_latency: float = 1.0  # seconds: a slower /readyz makes DEGRADED
    down_after_failures: int = 3  # unanswered probes in a row before DOWN
    recover_after: int = 2  # good (or, from DOWN, answered) probes in a row before recovering
    max_watch_age: float = 120.0  # seconds without a watch event or bookmark before DEGRADED
    min_ready_fraction: float = 0.5  # fewer Ready nodes than this share makes DEGRADED (fixed pools)

    def __post_init__(self) -> None:
        if self.degraded_latency <= 0 or self.max_watch_age <= 0:
            raise ValueError("degraded_latency and max_watch_age must be positive seconds")
        if self.down_after_failures < 1 or self.recover_after < 1:
            raise ValueError("down_after_failures and recover_after must be 1 or more")
        if not 0 <= self.min_ready_fraction <= 1:
            raise ValueError(f"min_ready_fraction must be between 0 and 1, not {self.min_ready_fraction}")


@dataclass(frozen=True)
class HealthState:
    """The classification after a probe, and the counts the next one continues from."""

    state: Health
    reason: str  # why, in words ("" when HEALTHY)
    failures: int  # consecutive probes the API did not answer
    successes: int  # consecutive good probes (answered, nothing wrong)
    since: float  # probe time at which ``state`` began
    answers: int = 0  # consecutive probes the API answered, good or not
    # probe time of the latest probe the API did not answer; a pool's nodes that did not are not the API
    api_failed_at: float | None = None


def _seconds(x: float) -> str:
    text = f"{x:.2f}"
    return text[:-1] if text.endswith("0") else text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def problems(probe: Probe, policy: HealthPolicy) -> list[str]:
    """What is wrong with a probe whose API answered, in words (empty: a good probe)."""
    found = []
    if probe.api_latency is not None and probe.api_latency > policy.degraded_latency:
        found.append(
            f"API answers in {_seconds(probe.api_latency)} s (> {_seconds(policy.degraded_latency)} s)"
        )
    if probe.watch_age is not None and probe.watch_age > policy.max_watch_age:
        found.append(f"watch silent for {probe.watch_age:.0f} s")
    total = probe.total_nodes
    if not probe.elastic and total > 0 and probe.ready_nodes < policy.min_ready_fraction * total:
        found.append(f"{probe.ready_nodes} of {_plural(total, 'node')} Ready")
    if probe.metrics_ok is False:
        found.append("metrics endpoint failing")
    return found


def classify(prev: HealthState | None, probe: Probe, policy: HealthPolicy) -> HealthState:
    """The state after ``probe``, given the state after the previous one (None: the first probe)."""
    m = policy.recover_after
    if not probe.api_ok:
        failures = (prev.failures if prev is not None else 0) + 1
        down = failures >= policy.down_after_failures or (prev is not None and prev.state is Health.DOWN)
        reason = f"{probe.subject} unreachable for {_plural(failures, 'probe')}" + (
            f" ({probe.error})" if probe.error else ""
        )
        state = Health.DOWN if down else Health.DEGRADED
        failed_at = probe.time if probe.subject == API else prev.api_failed_at if prev is not None else None
        return _next(prev, state, reason, probe.time, failures, 0, 0, api_failed_at=failed_at)

    found = problems(probe, policy)
    api_failed_at = prev.api_failed_at if prev is not None else None
    if (
        api_failed_at is not None
        and probe.watch_age is not None
        and probe.time - probe.watch_age <= api_failed_at
    ):
        found.append("inventory not current: no watch news since the API last went unanswered")
    answers = (prev.answers if prev is not None else 0) + 1
    successes = 0 if found else (prev.successes if prev is not None else 0) + 1
    was = prev.state if prev is not None else Health.HEALTHY  # the first probe needs no hysteresis
    if was is Health.DOWN and answers < m:
        state, reason = Health.DOWN, f"API answers again ({answers} of {m} probes)"
        if found:
            reason += ": " + "; ".join(found)
    elif found:
        state, reason = Health.DEGRADED, "; ".join(found)
    elif was is Health.HEALTHY or successes >= m:
        state, reason = Health.HEALTHY, ""
    else:
        state, reason = Health.DEGRADED, f"recovering: {successes} of {m} good probes"
    return _next(prev, state, reason, probe.time, 0, successes, answers, api_failed_at=api_failed_at)


def _next(
    prev: HealthState | None,
    state: Health,
    reason: str,
    time: float,
    failures: int,
    successes: int,
    answers: int,
    *,
    api_failed_at: float | None,
) -> HealthState:
    since = prev.since if prev is not None and prev.state is state else time
    return HealthState(state, reason, failures, successes, since, answers, api_failed_at)


def pool_probes(cluster: Probe, pools: Iterable[Pool], nodes: Iterable[NodeCapacity]) -> dict[str, Probe]:
    """Per-pool probes for the single-cluster topology (on-prem and cloud pools in one cluster).

    The API and watch readings are the cluster's; Ready nodes are the pool's own. A fixed pool whose
    nodes are all NotReady (hybrid nodes cut off from the control plane) counts as unanswered, so it
    goes DOWN after ``down_after_failures`` probes while the rest of the cluster stays HEALTHY.
    """
    nodes = list(nodes)
    found = {}
    for pool in pools:
        mine = [n for n in nodes if n.pool == pool.name]
        ready = sum(1 for n in mine if n.ready)
        probe = replace(cluster, ready_nodes=ready, total_nodes=len(mine), elastic=pool.elastic)
        if cluster.api_ok and not pool.elastic and mine and not ready:
            probe = replace(
                probe, api_ok=False, subject="nodes", error=f"none of its {_plural(len(mine), 'node')} Ready"
            )
        found[pool.name] = probe
    return found


def cluster_health(
    cluster: str, state: HealthState, pools: Mapping[str, HealthState] | None = None
) -> ClusterHealth:
    """What placement reads: the cluster's state and reason, and its pools' states (one-cluster topology)."""
    pool_states = {name: s.state for name, s in (pools or {}).items()}
    return ClusterHealth(cluster, state.state, state.reason, pool_states)
