"""HybridSpawner's Prometheus metrics, in the hub's own registry: JupyterHub serves them at /hub/metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["FALLBACKS", "PLACEMENTS", "PLACEMENT_SECONDS", "REFUSED"]

PLACEMENTS = Counter(
    "hybridhub_spawn_placements",
    "Servers started, by cluster and why: on-prem, burst (the cloud because on-prem could not), "
    "pinned (the user chose the cluster), retry (after an attempt failed fast)",
    ["cluster", "reason"],
)
FALLBACKS = Counter(
    "hybridhub_spawn_fallbacks", "Spawn attempts abandoned for the next candidate", ["cluster"]
)
PLACEMENT_SECONDS = Histogram(
    "hybridhub_spawn_placement_seconds",
    "Time to get candidates from the hybridhub service",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REFUSED = Counter("hybridhub_spawn_refusals", "Spawns refused before any pod was made, by reason", ["reason"])
