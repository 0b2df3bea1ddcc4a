"""Tests for spawner.service.runs.moves: when a waiting run moves, what may move, how it is rewritten."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.core.model import ClusterHealth, Health, Role
from spawner.service.runs.admission import Choice, QueuedRun
from spawner.service.runs.moves import (
    ClusterRewrite,
    Move,
    cluster_rewrites,
    for_cluster,
    plan_move,
    unmovable,
)
from spawner.service.runs.podspec import PodGpus
from spawner.service.runs.policy import Gang

NOW = 10_000.0
ROLES = {"onprem": Role.ONPREM, "eks": Role.CLOUD, "gke": Role.CLOUD}
G4 = Gang((PodGpus(4, "A100"),))


def waiting_in(cluster: str, *, max_wait: float = 60.0, submitted: float = NOW - 120) -> QueuedRun:
    return QueuedRun("1", "alice", G4, cluster, max_wait, submitted)


def start(cluster: str, why: str = "room") -> Choice:
    return Choice(cluster, True, 0.0, f"{why}: starting on {cluster}")


def wait(cluster: str, seconds: float = 600.0) -> Choice:
    return Choice(cluster, False, seconds, f"waiting on {cluster}")


def health(**states: Health) -> dict[str, ClusterHealth]:
    return {name: ClusterHealth(name, state, "api refused") for name, state in states.items()}


DOWN = Health.DOWN
DEGRADED = Health.DEGRADED

PLANS: list[tuple[str, QueuedRun, Choice, dict[str, ClusterHealth], dict[str, Any], Move | str | None]] = [
    # (id, run, choice, health, keyword arguments, plan)
    (
        "onprem-down-moves-and-leaves-its-copy",
        waiting_in("onprem"),
        start("eks", "onprem is down"),
        health(onprem=DOWN),
        {},
        Move("onprem", "eks", "moved from onprem to eks: onprem is down: starting on eks", False),
    ),
    (
        "onprem-down-moves-even-to-wait",
        waiting_in("onprem"),
        wait("eks"),
        health(onprem=DOWN),
        {},
        Move("onprem", "eks", "moved from onprem to eks: waiting on eks", False),
    ),
    (
        "lagging-onprem-the-cloud-starts-it-now",
        waiting_in("onprem"),
        start("eks", "over max_wait"),
        {},
        {},
        Move("onprem", "eks", "moved from onprem to eks: over max_wait: starting on eks", True),
    ),
    (
        "lagging-onprem-but-the-cloud-is-full-too",
        waiting_in("onprem"),
        wait("eks"),
        {},
        {},
        None,
    ),
    (
        "degraded-onprem-past-max-wait-the-cloud-starts-it",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DEGRADED),
        {},
        Move("onprem", "eks", "moved from onprem to eks: room: starting on eks", True),
    ),
    (
        # degraded is not down: within its max_wait the run stays, so no delete waits on a hung link
        "degraded-onprem-within-max-wait-stays",
        waiting_in("onprem", max_wait=3600),
        start("eks"),
        health(onprem=DEGRADED),
        {},
        None,
    ),
    (
        "down-onprem-within-max-wait-moves",
        waiting_in("onprem", max_wait=3600),
        start("eks"),
        health(onprem=DOWN),
        {},
        Move("onprem", "eks", "moved from onprem to eks: room: starting on eks", False),
    ),
    (
        "started-without-restart-stays",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DOWN),
        {"started": "Running"},
        None,
    ),
    (
        "started-with-restart-restarts-when-down",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DOWN),
        {"started": "Running", "restart": True},
        Move(
            "onprem",
            "eks",
            "restarted on eks (restart-on-failover; it was Running on onprem, where it may run on until"
            " onprem answers and that copy is deleted): room: starting on eks",
            False,
        ),
    ),
    (
        "started-and-finished-is-never-restarted",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DOWN),
        {"started": "Succeeded", "restart": True},
        None,
    ),
    (
        "started-on-a-degraded-cluster-stays",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DEGRADED),
        {"started": "Running", "restart": True},
        None,
    ),
    (
        "started-on-onprem-storage-says-why",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DOWN),
        {"started": "Running", "restart": True, "unmovable_reason": "it mounts the NFS share of nas1"},
        "it is not restarted on eks: it mounts the NFS share of nas1",
    ),
    (
        "stays-where-the-choice-is",
        waiting_in("onprem"),
        wait("onprem"),
        {},
        {},
        None,
    ),
    (
        "scale-in-onprem-has-room",
        waiting_in("eks"),
        start("onprem"),
        {},
        {},
        Move("eks", "onprem", "moved back from eks to onprem: room: starting on onprem", True),
    ),
    (
        "scale-in-to-wait-on-onprem-within-max-wait",
        waiting_in("eks", max_wait=3600),
        wait("onprem"),
        {},
        {},
        Move("eks", "onprem", "moved back from eks to onprem: waiting on onprem", True),
    ),
    (
        "cloud-to-cloud-only-to-start",
        waiting_in("eks"),
        wait("gke"),
        {},
        {},
        None,
    ),
    (
        "cloud-to-cloud-starts-now",
        waiting_in("eks"),
        start("gke"),
        {},
        {},
        Move("eks", "gke", "moved from eks to gke: room: starting on gke", True),
    ),
    (
        "cloud-down-while-waiting-there-goes-back",
        waiting_in("eks"),
        wait("onprem"),
        health(eks=DOWN),
        {},
        Move("eks", "onprem", "moved back from eks to onprem: waiting on onprem", False),
    ),
    (
        "pinned-never-moves",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DOWN),
        {"wanted": "onprem"},
        None,
    ),
    (
        "nowhere-to-go",
        waiting_in("onprem"),
        Choice(None, False, None, "no cluster can take your run"),
        health(onprem=DOWN),
        {},
        None,
    ),
    (
        "settling-after-a-move",
        waiting_in("eks"),
        start("onprem"),
        {},
        {"moved_at": NOW - 10},
        None,
    ),
    (
        "settled",
        waiting_in("eks"),
        start("onprem"),
        {},
        {"moved_at": NOW - 31},
        Move("eks", "onprem", "moved back from eks to onprem: room: starting on onprem", True),
    ),
    (
        "down-does-not-wait-to-settle",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DOWN),
        {"moved_at": NOW - 1},
        Move("onprem", "eks", "moved from onprem to eks: room: starting on eks", False),
    ),
    (
        "on-prem-only-storage-says-why-it-stays",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DOWN),
        {"unmovable_reason": "it mounts the NFS share of nas1 (volume data)"},
        "it stays on onprem, where it was placed: it mounts the NFS share of nas1 (volume data)",
    ),
    (
        "kueue-in-a-down-cluster-could-start-the-copy",
        waiting_in("onprem"),
        start("eks"),
        health(onprem=DOWN),
        {"kueue_clusters": {"onprem"}},
        "it stays on onprem: Kueue there may let its copy go while onprem does not answer, so it moves"
        " only once the copy there can be deleted",
    ),
    (
        "kueue-in-a-cluster-that-answers-deletes-first",
        waiting_in("onprem"),
        start("eks"),
        {},
        {"kueue_clusters": {"onprem"}},
        Move("onprem", "eks", "moved from onprem to eks: room: starting on eks", True),
    ),
]


@pytest.mark.parametrize(
    ("queued", "choice", "states", "kwargs", "plan"), [p[1:] for p in PLANS], ids=[p[0] for p in PLANS]
)
def test_plan_move(
    queued: QueuedRun,
    choice: Choice,
    states: dict[str, ClusterHealth],
    kwargs: dict[str, Any],
    plan: Move | str | None,
) -> None:
    options: dict[str, Any] = {"wanted": "auto", **kwargs}
    assert plan_move(queued, choice, states, ROLES, NOW, **options) == plan


def test_a_run_still_auto_in_the_queue_is_not_moved() -> None:
    # no cluster chosen yet: admission chooses one; there is nothing to move
    assert plan_move(waiting_in("auto"), start("eks"), {}, ROLES, NOW, wanted="auto") is None


def workflow(*volumes: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "kind": "Workflow",
        "metadata": {"name": "w", "labels": labels or {}},
        "spec": {
            "entrypoint": "main",
            "volumeClaimTemplates": [{"metadata": {"name": "scratch"}, "spec": {}}],
            "templates": [{"name": "main", "container": {"image": "busybox"}, "volumes": list(volumes)}],
        },
    }


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (workflow(), ""),
        (workflow({"name": "cache", "emptyDir": {}}), ""),
        (workflow({"name": "cfg", "configMap": {"name": "c"}}), ""),
        (
            workflow({"name": "data", "nfs": {"server": "nas1.lab", "path": "/data"}}),
            "it mounts the NFS share of nas1.lab (volume data)",
        ),
        (
            workflow({"name": "ds", "persistentVolumeClaim": {"claimName": "imagenet"}}),
            "it mounts the PersistentVolumeClaim imagenet of its cluster (volume ds)",
        ),
        (workflow(labels={"hybridhub.io/movable": "false"}), "it is labelled hybridhub.io/movable=false"),
        (workflow(labels={"hybridhub.io/movable": "true"}), ""),
        (
            # a PyTorchJob's replicas keep volumes deep in their pod templates
            {
                "kind": "PyTorchJob",
                "spec": {
                    "pytorchReplicaSpecs": {
                        "Worker": {
                            "template": {
                                "spec": {"volumes": [{"name": "d", "nfs": {"server": "n", "path": "/"}}]}
                            }
                        }
                    }
                },
            },
            "it mounts the NFS share of n (volume d)",
        ),
    ],
)
def test_unmovable(manifest: dict[str, Any], reason: str) -> None:
    assert unmovable(manifest) == reason


def test_for_cluster_rewrites_images_artifacts_and_kueue() -> None:
    manifest = {
        "kind": "Workflow",
        "metadata": {"name": "w", "labels": {"kueue.x-k8s.io/queue-name": "onprem-queue"}},
        "spec": {
            "templates": [
                {"name": "a", "container": {"image": "registry.lab:5000/team/train:1"}},
                {"name": "b", "container": {"image": "registry.lab:5000/team/sub/x:2"}},
                {"name": "c", "container": {"image": "python:3.11"}},
            ]
        },
    }
    rewrite = ClusterRewrite(
        images={
            "registry.lab:5000/": "123.dkr.ecr.us-east-1.amazonaws.com/",
            "registry.lab:5000/team/sub/": "123.dkr.ecr.us-east-1.amazonaws.com/sub/",
        },
        artifact_repository={"configMap": "artifact-repositories", "key": "s3"},
    )
    out = for_cluster(manifest, "Workflow", rewrite)
    images = [t["container"]["image"] for t in out["spec"]["templates"]]
    assert images == [
        "123.dkr.ecr.us-east-1.amazonaws.com/team/train:1",
        "123.dkr.ecr.us-east-1.amazonaws.com/sub/x:2",  # the longest prefix wins
        "python:3.11",
    ]
    assert out["spec"]["artifactRepositoryRef"] == {"configMap": "artifact-repositories", "key": "s3"}
    assert "kueue.x-k8s.io/queue-name" not in out["metadata"]["labels"]
    # the registry's copy is not changed
    assert manifest["spec"]["templates"][0]["container"]["image"] == "registry.lab:5000/team/train:1"
    # other kinds get images only
    job = {"kind": "TrainJob", "spec": {"trainer": {"image": "registry.lab:5000/t:1"}}}
    out = for_cluster(job, "TrainJob", rewrite)
    assert out["spec"] == {"trainer": {"image": "123.dkr.ecr.us-east-1.amazonaws.com/t:1"}}


@pytest.mark.parametrize(
    ("images", "artifacts", "problem"),
    [
        ({"eks": {"a/": "b/"}}, {"eks": {"configMap": "c", "key": "s3"}}, ""),
        ({"eks": "b/"}, {}, "run_cluster_images['eks']: 'b/' is not a mapping of image prefixes"),
        ({"eks": {"a/": ""}}, {}, "run_cluster_images['eks']"),
        ({}, {"eks": {"bucket": "x"}}, "run_cluster_artifact_repositories['eks']: {'bucket': 'x'} is not"),
        ({}, {"eks": {}}, "run_cluster_artifact_repositories['eks']"),
    ],
)
def test_cluster_rewrites_name_the_setting_that_is_wrong(
    images: dict[str, Any], artifacts: dict[str, Any], problem: str
) -> None:
    problems: list[str] = []
    found = cluster_rewrites(images, artifacts, problems)
    if problem:
        assert len(problems) == 1 and problems[0].startswith(problem), problems
    else:
        assert problems == []
        assert found == {
            "eks": ClusterRewrite(images={"a/": "b/"}, artifact_repository={"configMap": "c", "key": "s3"})
        }
