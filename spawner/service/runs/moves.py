"""Backup pipelines: when a run that never started moves to another cluster, what may move, and how a
run is written for the cluster it goes to. Pure functions; the run manager carries them out."""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from spawner.core.model import ClusterHealth, Health, Role
from spawner.service.runs.admission import AUTO, Choice, QueuedRun
from spawner.service.runs.manifests import KUEUE_QUEUE_LABEL, ON_FAILOVER_LABEL

__all__ = [
    "MOVABLE_LABEL",
    "ClusterRewrite",
    "Move",
    "cluster_rewrites",
    "for_cluster",
    "plan_move",
    "restarts",
    "unmovable",
]

# the phases in which a run has ended (Argo's, and the newest True condition of the other kinds)
FINISHED = frozenset({"Succeeded", "Failed", "Error", "Complete", "Completed"})

# The label a user sets to "false" to keep a run where it was first placed.
MOVABLE_LABEL = "hybridhub.io/movable"


@dataclass(frozen=True)
class Move:
    """Move a run that never started from ``source`` to ``target``."""

    source: str
    target: str
    reason: str
    # the source answers: delete the held-back copy there before the run is made in ``target``;
    # else the copy stays, held back, until the source answers again
    delete_first: bool


@dataclass(frozen=True)
class ClusterRewrite:
    """What changes in a run made in one cluster (HybridHubService's run_cluster_* settings)."""

    # image prefixes and their replacement there, longest match first: the on-prem registry is not
    # reachable from the cloud ({"registry.lab.local:5000/": "123456789012.dkr.ecr.us-east-1.amazonaws.com/"})
    images: Mapping[str, str] = field(default_factory=dict)
    # Argo's artifactRepositoryRef for workflows made there ({"configMap": ..., "key": ...}): the
    # on-prem MinIO is not reachable from the cloud either
    artifact_repository: Mapping[str, str] | None = None
    # the LocalQueue that admits runs there, where the cluster runs Kueue
    kueue_queue: str | None = None


def cluster_rewrites(
    images: Mapping[str, Any], artifact_repositories: Mapping[str, Any], problems: list[str]
) -> dict[str, ClusterRewrite]:
    """The per-cluster rewrites from the run_cluster_images and run_cluster_artifact_repositories
    settings; what is wrong in them is appended to ``problems``, naming the setting."""
    out: dict[str, ClusterRewrite] = {}
    for cluster, mapping in images.items():
        if not isinstance(mapping, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in mapping.items()
        ):
            problems.append(
                f"run_cluster_images[{cluster!r}]: {mapping!r} is not a mapping of image prefixes to"
                " their replacements, such as {'registry.lab:5000/': '123.dkr.ecr.us-east-1.amazonaws.com/'}"
            )
            continue
        out[cluster] = ClusterRewrite(images=dict(mapping))
    for cluster, ref in artifact_repositories.items():
        if (
            not isinstance(ref, Mapping)
            or set(ref) - {"configMap", "key"}
            or not all(isinstance(v, str) and v for v in ref.values())
            or not ref
        ):
            problems.append(
                f"run_cluster_artifact_repositories[{cluster!r}]: {ref!r} is not an Argo"
                " artifactRepositoryRef, such as {'configMap': 'artifact-repositories', 'key': 's3'}"
            )
            continue
        found = out.get(cluster, ClusterRewrite())
        out[cluster] = ClusterRewrite(images=found.images, artifact_repository=dict(ref))
    return out


def _volumes(obj: Any) -> Iterator[Mapping[str, Any]]:
    """Every volume of every pod template in a run, wherever its kind keeps them."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if key == "volumes" and isinstance(value, list):
                yield from (v for v in value if isinstance(v, Mapping))
            else:
                yield from _volumes(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _volumes(value)


def restarts(manifest: Mapping[str, Any]) -> bool:
    """Whether the user chose restart-on-failover for the run (``hybridhub.io/on-failover: restart``)."""
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(ON_FAILOVER_LABEL) == "restart")


def unmovable(manifest: Mapping[str, Any]) -> str:
    """Why the run must stay in the cluster it was placed in, as a sentence; empty when it may move.
    A run that mounts storage of one site (an NFS share, an existing PersistentVolumeClaim) reads
    data the other site does not have; volumes a workflow makes for itself (volumeClaimTemplates)
    are made wherever it runs. A user may also keep a run in place with the label
    ``hybridhub.io/movable: "false"``."""
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    if str(labels.get(MOVABLE_LABEL, "")).lower() == "false":
        return f"it is labelled {MOVABLE_LABEL}=false"
    for volume in _volumes(manifest.get("spec")):
        name = volume.get("name", "?")
        if "nfs" in volume:
            server = (volume.get("nfs") or {}).get("server", "?")
            return f"it mounts the NFS share of {server} (volume {name})"
        if "persistentVolumeClaim" in volume:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName", "?")
            return f"it mounts the PersistentVolumeClaim {claim} of its cluster (volume {name})"
    return ""


def _state(health: Mapping[str, ClusterHealth], cluster: str) -> Health:
    h = health.get(cluster)
    return h.state if h is not None else Health.HEALTHY


def plan_move(
    run: QueuedRun,
    choice: Choice,
    health: Mapping[str, ClusterHealth],
    roles: Mapping[str, Role],
    now: float,
    *,
    wanted: str,
    unmovable_reason: str = "",
    kueue_clusters: Collection[str] = (),
    moved_at: float | None = None,
    settle: float = 30.0,
    started: str | None = None,
    restart: bool = False,
) -> Move | str | None:
    """Whether a run waiting in ``run.cluster``, never let go there, moves to ``choice.cluster``.

    Only runs the user left to the service (``wanted`` is auto) move, and only where the choice is
    another cluster. A run moves when its cluster is DOWN (wherever the choice is, since that cluster
    cannot be read), when the choice can start it now (on-prem lagging past the run's max_wait while
    the cloud has room, never sooner: a degraded on-prem keeps the runs within their max_wait; or
    waiting in the cloud while on-prem has room again), and back to on-prem
    from the cloud when the choice is to wait there (on-prem is healthy again and the run is within
    its max_wait). A run that moved less than ``settle`` seconds ago stays, unless its cluster is
    DOWN, so that a cluster's health flapping does not bounce it.

    ``started`` is the phase last seen of a run that was let go (None: it was not): such a run moves
    only when the user chose restart-on-failover for it (``restart``), its cluster is DOWN and it
    had not finished there; it is made again in the target from the start, and may run in both until
    the source answers and its copy there is deleted (at least once).

    The copy in a cluster that answers is deleted first. In a DOWN cluster it stays, held back:
    only the service lets it go, and it never will, so it cannot run. Kueue lets runs go by itself,
    so a run waiting in a cluster that runs Kueue moves only when that cluster answers.

    None: it stays, and there is nothing to say. A sentence: it would move, and this says why it stays."""
    source, target = run.cluster, choice.cluster
    if wanted != AUTO or source == AUTO or target is None or target == source:
        return None
    down = _state(health, source) is Health.DOWN
    if started is not None:
        if not restart or not down or started in FINISHED:
            return None
        if unmovable_reason:
            return f"it is not restarted on {target}: {unmovable_reason}"
        return Move(
            source,
            target,
            f"restarted on {target} (restart-on-failover; it was {started} on {source}, where it may run"
            f" on until {source} answers and that copy is deleted): {choice.reason}",
            False,
        )
    back = roles.get(target) is Role.ONPREM and roles.get(source) is not Role.ONPREM
    if not (down or choice.start_now or back):
        return None
    if not down and roles.get(source) is Role.ONPREM and now - run.submitted < run.max_wait:
        # on-prem that answers keeps a run within its max_wait, degraded or not: a run moves out of
        # on-prem when it is down or lags, and a copy there that does not answer in time holds up
        # nothing (delete_first on a hung link would)
        return None
    if not down and moved_at is not None and now - moved_at < settle:
        return None
    if unmovable_reason:
        return f"it stays on {source}, where it was placed: {unmovable_reason}"
    if down and source in kueue_clusters:
        return (
            f"it stays on {source}: Kueue there may let its copy go while {source} does not answer,"
            " so it moves only once the copy there can be deleted"
        )
    word = "back " if back else ""
    return Move(source, target, f"moved {word}from {source} to {target}: {choice.reason}", not down)


def for_cluster(manifest: Mapping[str, Any], kind: str, rewrite: ClusterRewrite) -> dict[str, Any]:
    """The run as it is made in one cluster: images from that cluster's registry, a workflow's
    artifacts in its artifact repository, and Kueue's queue label where Kueue admits runs. The
    registry keeps the run as accepted; this is applied to each create."""
    obj = copy.deepcopy(dict(manifest))
    labels = obj.setdefault("metadata", {}).setdefault("labels", {})
    labels.pop(KUEUE_QUEUE_LABEL, None)
    if rewrite.kueue_queue:
        labels[KUEUE_QUEUE_LABEL] = rewrite.kueue_queue
    if rewrite.images:
        prefixes = sorted(rewrite.images, key=len, reverse=True)
        _rewrite_images(obj.get("spec"), prefixes, rewrite.images)
    if kind == "Workflow" and rewrite.artifact_repository:
        obj.setdefault("spec", {})["artifactRepositoryRef"] = dict(rewrite.artifact_repository)
    return obj


def _rewrite_images(obj: Any, prefixes: list[str], images: Mapping[str, str]) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "image" and isinstance(value, str):
                for prefix in prefixes:
                    if value.startswith(prefix):
                        obj[key] = images[prefix] + value[len(prefix) :]
                        break
            else:
                _rewrite_images(value, prefixes, images)
    elif isinstance(obj, list):
        for value in obj:
            _rewrite_images(value, prefixes, images)
