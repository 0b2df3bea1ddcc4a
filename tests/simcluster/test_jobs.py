"""batch/v1 Jobs through real kubectl: the Job controller's pods, counters, conditions and deletion."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simcluster.batch.policy import compress_indexes, plan
from simcluster.testing import SimProcess

# the simulated runtime runs nothing: these annotations script each pod's containers to end
EXIT = "simcluster.hybridhub.io/exit-after"
CODE = "simcluster.hybridhub.io/exit-code"

CLUSTER_FILE = """
clusters:
  - name: onprem
    timings: {pod_start: 0.02, pod_stop: 0.02}
    nodeGroups:
      - name: cpu
        count: 1
        capacity: {cpu: "64", memory: 256Gi}
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("jobs")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    proc = SimProcess(tmp / "sim", config=tmp / "clusters.yaml").start()
    yield proc
    proc.stop()


def job(name: str, exit_code: int | None = 0, **spec: Any) -> dict[str, Any]:
    annotations = {} if exit_code is None else {EXIT: "0.05", CODE: str(exit_code)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": annotations, "labels": {"app": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                },
            },
            **spec,
        },
    }


def create(sim: SimProcess, obj: dict[str, Any]) -> None:
    sim.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(obj))


def get(sim: SimProcess, *what: str) -> Any:
    return json.loads(sim.kubectl("get", *what, "-o", "json").stdout)


def pods_of(sim: SimProcess, name: str) -> list[dict[str, Any]]:
    return list(get(sim, "pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"])


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in obj["status"].get("conditions") or []}


@pytest.mark.kubectl
def test_a_job_runs_its_completions_in_parallel_and_completes(sim: SimProcess) -> None:
    create(sim, job("batch", completions=3, parallelism=2))
    sim.kubectl("wait", "--for=condition=complete", "job/batch", "--timeout=30s")
    done = get(sim, "job", "batch")
    uid = done["metadata"]["uid"]
    # the API server's defaults
    assert done["spec"]["backoffLimit"] == 6 and done["spec"]["completionMode"] == "NonIndexed"
    assert done["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert done["metadata"]["labels"]["job-name"] == "batch"
    status = done["status"]
    assert status["succeeded"] == 3 and "active" not in status and "failed" not in status
    assert status["startTime"] <= status["completionTime"]
    assert conditions(done) == {
        "SuccessCriteriaMet": ("True", "CompletionsReached"),
        "Complete": ("True", "CompletionsReached"),
    }
    pods = pods_of(sim, "batch")
    assert len(pods) == 3 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "batch"
        assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == uid
        assert labels["app"] == "batch" and pod["metadata"]["name"].startswith("batch-")
        (owner,) = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("Job", uid, True)
    header, row = sim.kubectl("get", "job", "batch").stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["batch", "Complete", "3/3"]
    reasons = [
        e["reason"] for e in get(sim, "events", "--field-selector", "involvedObject.name=batch")["items"]
    ]
    assert reasons.count("SuccessfulCreate") == 3 and "Completed" in reasons
    # kubectl deletes in the background: the pods go with the Job
    sim.kubectl("delete", "job", "batch", "--wait=true", "--timeout=30s")
    sim.kubectl("wait", "--for=delete", "pod", "-l", "job-name=batch", "--timeout=30s")
    assert pods_of(sim, "batch") == []


@pytest.mark.kubectl
def test_an_indexed_job_gives_each_pod_its_completion_index(sim: SimProcess) -> None:
    create(sim, job("indexed", completions=3, parallelism=3, completionMode="Indexed"))
    sim.kubectl("wait", "--for=condition=complete", "job/indexed", "--timeout=30s")
    assert get(sim, "job", "indexed")["status"]["completedIndexes"] == "0-2"
    pods = pods_of(sim, "indexed")
    indexes = sorted(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1", "2"]
    for pod in pods:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["metadata"]["name"].startswith(f"indexed-{index}-")
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        )
    sim.kubectl("delete", "job", "indexed", "--timeout=30s")


@pytest.mark.kubectl
def test_a_job_past_its_backoff_limit_fails(sim: SimProcess) -> None:
    create(sim, job("broken", exit_code=1, backoffLimit=1))
    sim.kubectl("wait", "--for=condition=failed", "job/broken", "--timeout=30s")
    failed = get(sim, "job", "broken")
    assert failed["status"]["failed"] == 2 and "succeeded" not in failed["status"]
    assert conditions(failed)["Failed"] == ("True", "BackoffLimitExceeded")
    message = next(c["message"] for c in failed["status"]["conditions"] if c["type"] == "Failed")
    assert message == "Job has reached the specified backoff limit"
    assert [p["status"]["phase"] for p in pods_of(sim, "broken")] == ["Failed", "Failed"]
    sim.kubectl("delete", "job", "broken", "--timeout=30s")


@pytest.mark.kubectl
def test_a_suspended_job_starts_no_pods_until_resumed(sim: SimProcess) -> None:
    create(sim, job("held", suspend=True))
    sim.kubectl("wait", "--for=condition=suspended", "job/held", "--timeout=30s")
    # the sync that set the condition is the one that would have created the pods
    assert pods_of(sim, "held") == []
    assert "startTime" not in get(sim, "job", "held")["status"]
    sim.kubectl("patch", "job", "held", "--type=merge", "-p", '{"spec": {"suspend": false}}')
    sim.kubectl("wait", "--for=condition=complete", "job/held", "--timeout=30s")
    resumed = get(sim, "job", "held")
    assert conditions(resumed)["Suspended"] == ("False", "JobResumed")
    assert len(pods_of(sim, "held")) == 1
    sim.kubectl("delete", "job", "held", "--timeout=30s")


def api_delete(sim: SimProcess, path: str, body: dict[str, Any] | None = None) -> int:
    """A DELETE as a client library sends it, with or without DeleteOptions."""
    request = urllib.request.Request(
        sim.api_url("onprem") + path,
        method="DELETE",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {sim.token('onprem')}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20, context=sim.ssl_context()) as resp:
        return int(resp.status)


@pytest.mark.kubectl
def test_deleting_a_job_through_the_api_orphans_its_pods_unless_asked_otherwise(sim: SimProcess) -> None:
    for name in ("kept", "gone"):
        create(sim, job(name))
        sim.kubectl("wait", "--for=condition=complete", f"job/{name}", "--timeout=30s")
    # batch/v1's REST default is Orphan: the pods stay, without their owner
    assert api_delete(sim, "/apis/batch/v1/namespaces/default/jobs/kept") == 200
    (left,) = pods_of(sim, "kept")
    assert "ownerReferences" not in left["metadata"]
    sim.kubectl("delete", "pod", left["metadata"]["name"], "--timeout=30s")
    # what kubernetes clients pass to have them go too
    body = {"propagationPolicy": "Background"}
    assert api_delete(sim, "/apis/batch/v1/namespaces/default/jobs/gone", body) == 200
    sim.kubectl("wait", "--for=delete", "pod", "-l", "job-name=gone", "--timeout=30s")


@pytest.mark.kubectl
def test_a_job_without_a_valid_restart_policy_is_refused(sim: SimProcess) -> None:
    bad = job("always")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    result = sim.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert (
        'The Job "always" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": '
        'supported values: "OnFailure", "Never"'
    ) in result.stderr


# ---------------------------------------------------------------------- the controller's pure plan


@pytest.mark.parametrize(
    ("indexes", "text"),
    [([], ""), ([0], "0"), ([0, 1, 2, 5], "0-2,5"), ([3, 1, 2, 7, 8], "1-3,7-8")],
)
def test_completed_indexes_are_written_as_ranges(indexes: list[int], text: str) -> None:
    assert compress_indexes(indexes) == text


NOW = datetime(2026, 1, 1, tzinfo=UTC)
STAMP = "2026-01-01T00:00:00Z"


def spec_job(**spec: Any) -> dict[str, Any]:
    base = {"parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "template": {"spec": {}}}
    return {"metadata": {"name": "j"}, "spec": {**base, **spec}}


def a_pod(name: str, phase: str, created: str = STAMP) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase}}


def test_a_work_queue_job_stops_adding_pods_once_one_succeeded() -> None:
    queue = spec_job(parallelism=3)
    assert plan(queue, [], NOW, STAMP).create == (None, None, None)
    step = plan(queue, [a_pod("a", "Succeeded"), a_pod("b", "Running")], NOW, STAMP)
    assert step.create == () and step.status["active"] == 1
    done = plan(queue, [a_pod("a", "Succeeded"), a_pod("b", "Succeeded")], NOW, STAMP)
    assert [c["type"] for c in done.status["conditions"]] == ["SuccessCriteriaMet", "Complete"]


def test_lowering_parallelism_removes_the_newest_pods() -> None:
    pods = [a_pod("old", "Running", "2026-01-01T00:00:00Z"), a_pod("new", "Running", "2026-01-01T00:00:05Z")]
    assert plan(spec_job(parallelism=1, completions=5), pods, NOW, STAMP).delete == ("new",)


def test_the_active_deadline_fails_the_job_and_removes_its_pods() -> None:
    started = spec_job(completions=1, activeDeadlineSeconds=10)
    started["status"] = {"startTime": "2025-12-31T23:59:55Z"}
    waiting = plan(started, [a_pod("a", "Running")], NOW, STAMP)
    assert waiting.recheck_after == pytest.approx(5.0) and waiting.delete == ()
    late = plan(started, [a_pod("a", "Running")], NOW + timedelta(seconds=6), STAMP)
    assert late.delete == ("a",)
    failed = {c["type"]: c["reason"] for c in late.status["conditions"]}
    assert failed == {"FailureTarget": "DeadlineExceeded", "Failed": "DeadlineExceeded"}
