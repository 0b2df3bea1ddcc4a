"""The sync ``kubernetes`` client's CustomObjectsApi and the unmodified Katib SDK on Katib Experiments.

Both are blocking clients over HTTPS to the session's simcluster (context ``onprem``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from simcluster.testing import SimProcess
from tests.harness.waits import watch_opened

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(60)]

GROUP, VERSION, PLURAL = "kubeflow.org", "v1beta1", "experiments"

# Experiments serve here as a sample custom resource: on "onprem" Katib is switched off, so its webhook
# (which refuses these bare specs and unlabelled namespaces, as the real one does) and its controllers
# leave them alone; test_katib_sdk drives the real thing on "eks", where Katib runs.
CLUSTER_FILE = """
clusters:
  - name: onprem
    katib: false
    nodeGroups: [{name: cpu, count: 1, capacity: {cpu: "8", memory: 32Gi}}]
  - name: eks
    nodeGroups: [{name: cpu, count: 1, capacity: {cpu: "8", memory: 32Gi}}]
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("custom-objects")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        yield proc


@pytest.fixture
def custom(sim: SimProcess) -> Iterator[client.CustomObjectsApi]:
    api = config.new_client_from_config(config_file=str(sim.kubeconfig), context="onprem")
    try:
        yield client.CustomObjectsApi(api)
    finally:
        api.close()


def experiment(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "maxTrialCount": 3,
            "parallelTrialCount": 1,
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}}
            ],
        },
    }


def status_of(err: ApiException) -> dict[str, Any]:
    body = json.loads(err.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == err.status
    return dict(body)


def test_create_list_get_patch_replace_delete(custom: client.CustomObjectsApi, namespace: str) -> None:
    args = (GROUP, VERSION, namespace, PLURAL)
    created, code, _ = custom.create_namespaced_custom_object_with_http_info(
        *args, experiment("exp-a", team="vision")
    )
    assert code == 201
    assert created["kind"] == "Experiment" and created["apiVersion"] == "kubeflow.org/v1beta1"
    meta = created["metadata"]
    assert meta["namespace"] == namespace and meta["uid"] and meta["resourceVersion"]
    assert meta["generation"] == 1
    assert "status" not in created
    custom.create_namespaced_custom_object(*args, experiment("exp-b", team="nlp"))

    listed = custom.list_namespaced_custom_object(*args, label_selector="team=vision")
    assert listed["kind"] == "ExperimentList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["exp-a"]
    everything = custom.list_namespaced_custom_object(*args)
    assert sorted(i["metadata"]["name"] for i in everything["items"]) == ["exp-a", "exp-b"]
    across = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector="team=nlp")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in across["items"]] == [
        (namespace, "exp-b")
    ]

    got = custom.get_namespaced_custom_object(*args, "exp-a")
    assert got == created

    # merge patch: a spec change bumps generation; a status in it is ignored (status subresource)
    patched = custom.patch_namespaced_custom_object(
        *args, "exp-a", {"spec": {"maxTrialCount": 5}, "status": {"trialsSucceeded": 99}}
    )
    assert patched["spec"]["maxTrialCount"] == 5
    assert patched["spec"]["algorithm"] == {"algorithmName": "random"}  # merged, not replaced
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert (patched.get("status") or {}).get("trialsSucceeded") != 99

    # the status subresource changes status only; a spec in the patch is ignored
    status = {"conditions": [{"type": "Created", "status": "True", "reason": "ExperimentCreated"}]}
    with_status = custom.patch_namespaced_custom_object_status(
        *args, "exp-a", {"status": status, "spec": {"maxTrialCount": 42}}
    )
    assert with_status["status"] == status
    assert with_status["spec"] == patched["spec"]
    assert with_status["metadata"]["generation"] == 2  # status writes leave generation alone
    assert int(with_status["metadata"]["resourceVersion"]) > int(patched["metadata"]["resourceVersion"])
    assert custom.get_namespaced_custom_object_status(*args, "exp-a")["status"] == status

    # ... and a main-resource patch still cannot touch it
    again = custom.patch_namespaced_custom_object(*args, "exp-a", {"status": {"conditions": []}})
    assert again["status"] == status

    # replace with a stale resourceVersion: 409 Conflict; with the current one it works
    with pytest.raises(ApiException) as err:
        custom.replace_namespaced_custom_object(*args, "exp-a", got)
    assert err.value.status == 409
    assert status_of(err.value)["reason"] == "Conflict"
    current = custom.get_namespaced_custom_object(*args, "exp-a")
    current["spec"]["maxTrialCount"] = 7
    replaced = custom.replace_namespaced_custom_object(*args, "exp-a", current)
    assert replaced["spec"]["maxTrialCount"] == 7
    assert replaced["status"] == status  # PUT on the main resource keeps the status

    # delete, then 404
    custom.delete_namespaced_custom_object(*args, "exp-a")
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(*args, "exp-a")
    assert err.value.status == 404
    body = status_of(err.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'experiments.kubeflow.org "exp-a" not found'
    assert body["details"] == {"name": "exp-a", "group": "kubeflow.org", "kind": "experiments"}


def test_watch_custom_objects(sim: SimProcess, custom: client.CustomObjectsApi, namespace: str) -> None:
    args = (GROUP, VERSION, namespace, PLURAL)
    custom.create_namespaced_custom_object(*args, experiment("old"))
    rv = custom.list_namespaced_custom_object(*args)["metadata"]["resourceVersion"]
    admin = sim.admin("onprem")
    since = admin.last_request()

    def writes() -> None:
        watch_opened(admin, since, f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}")
        custom.create_namespaced_custom_object(*args, experiment("exp-w"))
        custom.patch_namespaced_custom_object(*args, "exp-w", {"metadata": {"labels": {"x": "1"}}})
        custom.delete_namespaced_custom_object(*args, "exp-w")

    writer = threading.Thread(target=writes, daemon=True)
    writer.start()
    events: list[tuple[str, str]] = []
    w = watch.Watch()
    for ev in w.stream(custom.list_namespaced_custom_object, *args, resource_version=rv, timeout_seconds=5):
        assert isinstance(ev["object"], dict)  # no model for custom objects: plain dicts
        events.append((ev["type"], ev["object"]["metadata"]["name"]))
        if ev["type"] == "DELETED":
            w.stop()
    writer.join(5)
    assert events == [("ADDED", "exp-w"), ("MODIFIED", "exp-w"), ("DELETED", "exp-w")]
    assert int(w.resource_version) > int(rv)

    # a watch from no version starts with the current state
    initial = [
        (ev["type"], ev["object"]["metadata"]["name"])
        for ev in watch.Watch().stream(custom.list_namespaced_custom_object, *args, timeout_seconds=1)
    ]
    assert initial == [("ADDED", "old")]


def test_strategic_merge_patch_on_custom_object_is_415(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    args = (GROUP, VERSION, namespace, PLURAL)
    custom.create_namespaced_custom_object(*args, experiment("exp-s"))
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/exp-s"

    def patch(content_type: str, body: object) -> dict[str, Any]:
        # the generated client picks the patch type itself (kubernetes 35 has no _content_type), so
        # each type goes through its ApiClient, as kubectl --type=... sends it
        data, _, _ = custom.api_client.call_api(
            path,
            "PATCH",
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            response_type="object",
            _request_timeout=10,
        )
        return cast(dict[str, Any], data)

    with pytest.raises(ApiException) as err:
        patch("application/strategic-merge-patch+json", {"spec": {"maxTrialCount": 4}})
    assert err.value.status == 415
    body = status_of(err.value)
    assert body["reason"] == "UnsupportedMediaType"
    assert "application/merge-patch+json" in body["message"]
    assert "strategic" not in body["message"]
    # a JSON patch and a merge patch work
    patched = patch(
        "application/json-patch+json", [{"op": "replace", "path": "/spec/maxTrialCount", "value": 4}]
    )
    assert patched["spec"]["maxTrialCount"] == 4
    patched = patch("application/merge-patch+json", {"spec": {"maxTrialCount": 5}})
    assert patched["spec"]["maxTrialCount"] == 5


def test_katib_sdk(sim: SimProcess, namespace: str) -> None:
    from kubeflow.katib import (
        KatibClient,
        V1beta1AlgorithmSpec,
        V1beta1Experiment,
        V1beta1ExperimentSpec,
        V1beta1FeasibleSpace,
        V1beta1ObjectiveSpec,
        V1beta1ParameterSpec,
        V1beta1TrialParameterSpec,
        V1beta1TrialTemplate,
    )

    trial_job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "training",
                            "image": "python:3.11-slim",
                            "command": [
                                "python",
                                "-c",
                                "print('accuracy=0.9')",
                                "--lr=${trialParameters.lr}",
                            ],
                        }
                    ],
                }
            }
        },
    }
    exp = V1beta1Experiment(
        api_version="kubeflow.org/v1beta1",
        kind="Experiment",
        metadata=client.V1ObjectMeta(name="random-lr", namespace=namespace),
        spec=V1beta1ExperimentSpec(
            max_trial_count=3,
            parallel_trial_count=1,
            max_failed_trial_count=1,
            algorithm=V1beta1AlgorithmSpec(algorithm_name="random"),
            objective=V1beta1ObjectiveSpec(type="maximize", goal=0.99, objective_metric_name="accuracy"),
            parameters=[
                V1beta1ParameterSpec(
                    name="lr",
                    parameter_type="double",
                    feasible_space=V1beta1FeasibleSpace(min="0.01", max="0.1"),
                )
            ],
            trial_template=V1beta1TrialTemplate(
                primary_container_name="training",
                trial_parameters=[
                    V1beta1TrialParameterSpec(name="lr", description="learning rate", reference="lr")
                ],
                trial_spec=trial_job,
            ),
        ),
    )
    # Katib's webhook admits Experiments only in namespaces labelled for its metrics collector
    sim.kubectl(
        "label",
        "namespace",
        namespace,
        "katib.kubeflow.org/metrics-collector-injection=enabled",
        context="eks",
    )
    # KatibClient loads the kubeconfig into the kubernetes client's process-wide default: restore it
    saved = client.Configuration.get_default_copy()
    katib = KatibClient(config_file=str(sim.kubeconfig), context="eks", namespace=namespace)
    try:
        katib.create_experiment(exp)
        got = katib.get_experiment("random-lr")
        assert isinstance(got, V1beta1Experiment)
        assert got.metadata.uid and got.metadata.namespace == namespace
        assert got.spec.algorithm.algorithm_name == "random"
        assert got.spec.parameters[0].feasible_space.max == "0.1"
        assert got.spec.trial_template.trial_spec == trial_job
        assert got.spec.trial_template.trial_parameters[0].reference == "lr"

        listed = katib.list_experiments()
        assert [e.metadata.name for e in listed] == ["random-lr"]

        with pytest.raises(Exception, match="already exists"):
            katib.create_experiment(exp)

        katib.delete_experiment("random-lr")
        assert katib.list_experiments() == []
        with pytest.raises(ApiException) as err:
            katib.custom_api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "random-lr")
        assert err.value.status == 404
        with pytest.raises(RuntimeError):
            katib.get_experiment("random-lr")
    finally:
        katib.custom_api.api_client.close()
        client.Configuration.set_default(saved)
