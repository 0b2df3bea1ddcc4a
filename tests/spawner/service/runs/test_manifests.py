"""What the service writes of an accepted run, the labels users set on runs, and queued runs as read."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.service.runs.manager import phase_of
from spawner.service.runs.manifests import Wanted, generated_name, placeholder, prepare, wanted
from spawner.service.runs.moves import ClusterRewrite, for_cluster
from spawner.service.runs.policy import Gang, Refusal, Run, unchecked_run

CLUSTERS = ("onprem", "eks")


def labelled(**labels: str) -> dict[str, Any]:
    return {"metadata": {"labels": labels}}


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ({}, Wanted("auto", 1800.0)),
        (labelled(), Wanted("auto", 1800.0)),
        (labelled(**{"hybridhub.io/cluster": "eks"}), Wanted("eks", 1800.0)),
        (labelled(**{"hybridhub.io/cluster": "auto"}), Wanted("auto", 1800.0)),
        (labelled(**{"hybridhub.io/max-wait": "90"}), Wanted("auto", 90.0)),
        (labelled(**{"hybridhub.io/max-wait": "90s"}), Wanted("auto", 90.0)),
        (labelled(**{"hybridhub.io/max-wait": "30m"}), Wanted("auto", 1800.0)),
        (labelled(**{"hybridhub.io/max-wait": "2h"}), Wanted("auto", 7200.0)),
        (labelled(**{"hybridhub.io/max-wait": "0"}), Wanted("auto", 0.0)),
        (
            labelled(**{"hybridhub.io/cluster": "gke"}),
            "'gke' is not a cluster; use auto or one of eks, onprem",
        ),
        (labelled(**{"hybridhub.io/max-wait": "soon"}), "'soon' is not a duration"),
        (labelled(**{"hybridhub.io/max-wait": "-5"}), "is not a duration"),
        (labelled(**{"hybridhub.io/max-wait": "1.5h"}), "is not a duration"),
        (labelled(**{"hybridhub.io/max-wait": "99999999"}), "is not a duration"),
        (labelled(**{"hybridhub.io/on-failover": "restart"}), Wanted("auto", 1800.0)),
        (labelled(**{"hybridhub.io/on-failover": "stay"}), Wanted("auto", 1800.0)),
        (labelled(**{"hybridhub.io/on-failover": "Restart"}), "'Restart' is not stay or restart"),
        (
            labelled(**{"hybridhub.io/on-failover": "restart", "hybridhub.io/cluster": "onprem"}),
            "restart needs hybridhub.io/cluster: auto; a run pinned to onprem stays there",
        ),
    ],
)
def test_labels_pin_a_cluster_and_set_the_wait(manifest: dict[str, Any], expected: Wanted | str) -> None:
    got = wanted(manifest, CLUSTERS, 1800.0)
    if isinstance(expected, str):
        assert isinstance(got, str) and expected in got and got.startswith("metadata.labels['hybridhub.io/")
    else:
        assert got == expected


def test_generated_names_keep_the_prefix_and_differ() -> None:
    names = {generated_name("dag-") for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("dag-") and len(n) == 9 and not set(n[4:]) & set("aeiou") for n in names)


def run(kind: str, suspend: str | None) -> Run:
    return Run(kind, "v", None, "x-", "hybridhub-runs-ann", Gang(()), suspend)


@pytest.mark.parametrize(
    ("kind", "suspend"),
    [
        ("Workflow", "spec.suspend"),
        ("TrainJob", "spec.suspend"),
        ("Job", "spec.suspend"),
        ("PyTorchJob", "spec.runPolicy.suspend"),
        ("Experiment", None),
    ],
)
def test_prepare_names_places_labels_and_holds_back(kind: str, suspend: str | None) -> None:
    manifest = {
        "kind": kind,
        "metadata": {
            "generateName": "x-",
            "namespace": "default",
            "labels": {"team": "ml"},
            "uid": "forged",
            "resourceVersion": "7",
        },
        "spec": {"suspend": False, "runPolicy": {"suspend": False}} if suspend else {"a": 1},
        "status": {"phase": "Succeeded"},
    }
    out = prepare(
        manifest, run(kind, suspend), "x-abcde", hub_instance="hub", runner_service_account="runner"
    )
    meta = out["metadata"]
    assert meta == {
        "name": "x-abcde",
        "namespace": "hybridhub-runs-ann",
        "labels": {"team": "ml", "hybridhub.io/hub": "hub"},
    }
    assert "status" not in out
    if kind == "PyTorchJob":
        assert out["spec"]["runPolicy"]["suspend"] is True
    elif suspend:
        assert out["spec"]["suspend"] is True
    assert ("serviceAccountName" in out["spec"]) == (kind == "Workflow")
    # the user's object is not changed
    assert manifest["metadata"]["generateName"] == "x-" and manifest["status"] == {"phase": "Succeeded"}
    assert manifest["spec"].get("suspend", False) is False


def test_prepare_keeps_a_workflows_runner_and_hands_runs_to_kueue() -> None:
    manifest = {"kind": "Workflow", "metadata": {"name": "w"}, "spec": {"serviceAccountName": "mine"}}
    out = prepare(
        manifest, run("Workflow", "spec.suspend"), "w", hub_instance="h", runner_service_account="r"
    )
    assert out["spec"]["serviceAccountName"] == "mine"
    assert "kueue.x-k8s.io/queue-name" not in out["metadata"]["labels"]
    made = for_cluster(out, "Workflow", ClusterRewrite(kueue_queue="q"))
    assert made["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"
    assert made["spec"]["suspend"] is True  # Kueue lets it go
    # made again in a cluster without Kueue, it has no queue label
    assert (
        "kueue.x-k8s.io/queue-name"
        not in for_cluster(made, "Workflow", ClusterRewrite())["metadata"]["labels"]
    )


@pytest.mark.parametrize(
    ("kind", "refused", "phase"),
    [
        ("Workflow", False, "Running"),
        ("Workflow", True, "Failed"),
        ("Experiment", False, "Created"),
        ("TrainJob", True, "Failed"),
    ],
)
def test_a_queued_run_reads_as_waiting_with_its_reason(kind: str, refused: bool, phase: str) -> None:
    obj = placeholder(
        {"kind": kind, "metadata": {"name": "r"}},
        created="2026-12-04T10:00:00Z",
        reason="why",
        refused=refused,
    )
    assert obj["metadata"]["creationTimestamp"] == "2026-12-04T10:00:00Z"
    assert obj["metadata"]["annotations"]["hybridhub.io/queued"] == "true"
    assert phase_of(obj) == phase
    status = obj["status"]
    assert status.get("message") == "why" or status["conditions"][0]["message"] == "why"


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ({}, "Created"),
        ({"phase": "Pending"}, "Pending"),
        (
            {"conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "False"}]},
            "Created",
        ),
        (
            {
                "conditions": [
                    {"type": "Created", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Succeeded", "status": "True", "lastTransitionTime": "2026-01-01T00:01:00Z"},
                ]
            },
            "Succeeded",
        ),
        (  # times are to the second: a tie goes to the condition set last
            {
                "conditions": [
                    {"type": "Created", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "Succeeded", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                ]
            },
            "Succeeded",
        ),
    ],
)
def test_phase_of_a_run(status: dict[str, Any], phase: str) -> None:
    assert phase_of({"status": status}) == phase


@pytest.mark.parametrize(
    ("obj", "namespace", "refused"),
    [
        ({"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "j"}}, "hybridhub-runs-ann", None),
        (
            {"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "j", "namespace": "default"}},
            "hybridhub-runs-ann",
            None,
        ),
        (
            {"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "j", "namespace": "kube-system"}},
            "kube-system",
            None,
        ),
        ({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}}, None, "kind"),
        ({"kind": "Job", "apiVersion": "batch/v1", "metadata": {}}, None, "metadata.name"),
        ("garbage", None, "(the run)"),
    ],
)
def test_the_test_only_unchecked_read_keeps_the_namespace_as_named(
    obj: object, namespace: str | None, refused: str | None
) -> None:
    got = unchecked_run(obj, "hybridhub-runs-ann")
    if refused:
        assert isinstance(got, Refusal) and got.field == refused
    else:
        assert isinstance(got, Run) and got.namespace == namespace and got.gang.gpus == 0
