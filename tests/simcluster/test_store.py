"""Store semantics, in-process: metadata, versions, conflicts, deletion, watches, history, GC."""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.errors import ApiError
from simcluster.history import WatchWindow
from simcluster.resources import Registry
from simcluster.selectors import parse_field_selector, parse_label_selector
from simcluster.store import Store, Watcher, clone


@pytest.fixture
def store() -> Store:
    experiments = {
        "group": "kubeflow.org",
        "version": "v1beta1",
        "plural": "experiments",
        "kind": "Experiment",
    }
    s = Store(
        Registry.with_defaults([experiments]), history=WatchWindow(seconds=0, min_events=5, max_events=5)
    )
    s.create(s.registry.core("namespaces"), None, {"metadata": {"name": "ns"}})
    return s


def pod(name: str = "p", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}], **spec},
    }


def drain(w: Watcher) -> list[tuple[str, str]]:
    out = []
    while not w.queue.empty():
        item = w.queue.get_nowait()
        if item is None:
            out.append(("END", ""))
        else:
            out.append((item[0], item[1]["metadata"].get("name", "")))
    return out


def test_create_sets_server_metadata(store: Store) -> None:
    pods = store.registry.core("pods")
    created = store.create(pods, "ns", pod())
    meta = created["metadata"]
    assert meta["namespace"] == "ns" and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) == store.rv
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert "generation" not in meta
    node = store.create(store.registry.core("nodes"), None, {"metadata": {"name": "n1", "namespace": "x"}})
    assert "namespace" not in node["metadata"]
    exp = store.create(
        store.registry.get("kubeflow.org", "v1beta1", "experiments"),
        "ns",
        {"metadata": {"name": "e"}, "spec": {}, "status": {"x": 1}},
    )
    assert exp["metadata"]["generation"] == 1 and "status" not in exp


def test_resource_versions_increase_across_types(store: Store) -> None:
    before = store.rv
    a = store.create(store.registry.core("configmaps"), "ns", {"metadata": {"name": "a"}})
    b = store.create(store.registry.core("secrets"), "ns", {"metadata": {"name": "b"}})
    assert before < int(a["metadata"]["resourceVersion"]) < int(b["metadata"]["resourceVersion"])


@pytest.mark.parametrize(
    ("namespace", "body", "code", "text"),
    [
        ("missing", pod(), 404, 'namespaces "missing" not found'),
        ("ns", pod("Bad_Name"), 422, "lowercase RFC 1123 subdomain"),
        ("ns", {"metadata": {"name": "x"}, "spec": {}}, 422, "spec.containers: Required value"),
        ("ns", {**pod(), "kind": "Service"}, 400, "does not match the expected kind"),
        (
            "ns",
            {"metadata": {"name": "x", "namespace": "other"}, "spec": pod()["spec"]},
            400,
            "does not match the namespace",
        ),
    ],
)
def test_create_rejects(store: Store, namespace: str, body: dict[str, Any], code: int, text: str) -> None:
    with pytest.raises(ApiError) as err:
        store.create(store.registry.core("pods"), namespace, body)
    assert err.value.code == code and text in err.value.message


def test_duplicate_and_generate_name(store: Store) -> None:
    pods = store.registry.core("pods")
    store.create(pods, "ns", pod("same"))
    with pytest.raises(ApiError) as err:
        store.create(pods, "ns", pod("same"))
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"
    made = store.create(pods, "ns", {"metadata": {"generateName": "job-"}, "spec": pod()["spec"]})
    assert made["metadata"]["name"].startswith("job-") and len(made["metadata"]["name"]) == 9


GPU = "nvidia.com/gpu"


@pytest.mark.parametrize(
    ("resources", "ok", "text"),
    [
        ({"limits": {GPU: 2}}, True, ""),
        ({"limits": {GPU: "2"}, "requests": {GPU: "2"}}, True, ""),
        ({"limits": {GPU: "1.5"}}, False, "must be an integer"),
        ({"limits": {GPU: "-1"}}, False, "greater than or equal to 0"),
        ({"limits": {GPU: "lots"}}, False, "quantities must match"),
        ({"limits": {GPU: 2}, "requests": {GPU: 1}}, False, "must be equal to nvidia.com/gpu limit of 2"),
        ({"requests": {GPU: 1}}, False, "Limit must be set for non overcommitable resources"),
        ({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}, False, "less than or equal to cpu limit"),
    ],
)
def test_pod_resources_are_validated(store: Store, resources: dict[str, Any], ok: bool, text: str) -> None:
    body = pod()
    body["spec"]["containers"][0]["resources"] = resources
    if ok:
        created = store.create(store.registry.core("pods"), "ns", body)
        res = created["spec"]["containers"][0]["resources"]
        assert res["requests"][GPU] == res["limits"][GPU]  # requests default to limits
    else:
        with pytest.raises(ApiError) as err:
            store.create(store.registry.core("pods"), "ns", body)
        assert err.value.code == 422 and text in err.value.message


def _names(op: str, *names: str, key: str = "metadata.name") -> dict[str, Any]:
    return {"matchFields": [{"key": key, "operator": op, "values": list(names)}]}


REQUIRED = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution"


@pytest.mark.parametrize(
    ("affinity", "field"),
    [
        ({"required": [_names("In", "a")]}, None),
        ({"required": [_names("In", "a"), _names("In", "b")]}, None),  # one term per node: OR
        ({"required": [{"matchFields": [_names("NotIn", "a")["matchFields"][0]] * 2}]}, None),
        ({"preferred": _names("In", "a")}, None),
        # the apiserver takes exactly one node name per matchFields requirement
        ({"required": [_names("In", "a", "b")]}, f"{REQUIRED}.nodeSelectorTerms[0].matchFields[0].values"),
        ({"required": [_names("In")]}, f"{REQUIRED}.nodeSelectorTerms[0].matchFields[0].values"),
        ({"preferred": _names("In", "a", "b")}, f"{PREFERRED}[0].preference.matchFields[0].values"),
        ({"required": [_names("In", "a", key="x")]}, f"{REQUIRED}.nodeSelectorTerms[0].matchFields[0].key"),
        ({"required": [_names("Exists", "a")]}, f"{REQUIRED}.nodeSelectorTerms[0].matchFields[0].operator"),
    ],
)
def test_node_affinity_match_fields_are_validated(
    store: Store, affinity: dict[str, Any], field: str | None
) -> None:
    node: dict[str, Any] = {}
    if "required" in affinity:
        node["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": affinity["required"]}
    if "preferred" in affinity:
        node["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": 1, "preference": affinity["preferred"]}
        ]
    body = pod(affinity={"nodeAffinity": node})
    if field is None:
        store.create(store.registry.core("pods"), "ns", body)
        return
    with pytest.raises(ApiError) as err:
        store.create(store.registry.core("pods"), "ns", body)
    assert err.value.code == 422
    assert [c["field"] for c in err.value.details["causes"]] == [field]
    assert store.find(store.registry.core("pods"), "ns", "p") is None


def test_replace_checks_resource_version(store: Store) -> None:
    cms = store.registry.core("configmaps")
    first = clone(store.create(cms, "ns", {"metadata": {"name": "c"}, "data": {"a": "1"}}))
    stale = {**clone(first), "data": {"a": "2"}}
    store.replace(cms, "ns", "c", {**clone(first), "data": {"a": "3"}})
    with pytest.raises(ApiError) as err:
        store.replace(cms, "ns", "c", stale)
    assert err.value.code == 409 and err.value.reason == "Conflict"
    unconditional = {"metadata": {"name": "c"}, "data": {"a": "4"}}
    assert store.replace(cms, "ns", "c", unconditional)["data"] == {"a": "4"}


def test_pod_spec_is_immutable_but_image_is_not(store: Store) -> None:
    pods = store.registry.core("pods")
    store.create(pods, "ns", pod())
    store.update(pods, "ns", "p", lambda p: p["spec"]["containers"][0].update(image="busybox:2"))
    with pytest.raises(ApiError) as err:
        store.update(pods, "ns", "p", lambda p: p["spec"].update(nodeName="elsewhere"))
    assert err.value.code == 422 and "pod updates may not change fields" in err.value.message


def test_status_subresource_isolation(store: Store) -> None:
    exps = store.registry.get("kubeflow.org", "v1beta1", "experiments")
    assert exps is not None
    store.create(exps, "ns", {"metadata": {"name": "e"}, "spec": {"a": 1}})
    store.update(exps, "ns", "e", lambda e: e.update(status={"phase": "ignored"}))
    assert "status" not in store.get(exps, "ns", "e")
    after = store.update(
        exps, "ns", "e", lambda e: e.update(status={"s": 1}, spec={"a": 2}), subresource="status"
    )
    assert after["status"] == {"s": 1} and after["spec"] == {"a": 1}
    assert after["metadata"]["generation"] == 1
    bumped = store.update(exps, "ns", "e", lambda e: e.update(spec={"a": 3}))
    assert bumped["metadata"]["generation"] == 2 and bumped["status"] == {"s": 1}


def test_finalizers_hold_deletion(store: Store) -> None:
    cms = store.registry.core("configmaps")
    store.create(cms, "ns", {"metadata": {"name": "c", "finalizers": ["x/y"]}})
    marked = store.delete(cms, "ns", "c")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.find(cms, "ns", "c") is not None
    store.update(cms, "ns", "c", lambda c: c["metadata"].update(finalizers=[]))
    assert store.find(cms, "ns", "c") is None


def test_pod_deletion_waits_for_the_kubelet_only_when_bound(store: Store) -> None:
    pods = store.registry.core("pods")
    store.create(pods, "ns", pod("unbound"))
    store.delete(pods, "ns", "unbound")
    assert store.find(pods, "ns", "unbound") is None
    store.create(pods, "ns", pod("bound"))
    bound = store.get(pods, "ns", "bound")
    store.system_update(pods, {**bound, "spec": {**bound["spec"], "nodeName": "n1"}})
    marked = store.delete(pods, "ns", "bound", grace_period=30)
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert store.find(pods, "ns", "bound") is not None
    store.delete(pods, "ns", "bound", grace_period=0)  # force
    assert store.find(pods, "ns", "bound") is None


def test_watch_reports_selector_transitions(store: Store) -> None:
    pods = store.registry.core("pods")
    w = store.watch(pods, "ns", parse_label_selector("app=x"), parse_field_selector("", ()), None)
    store.create(pods, "ns", pod("a", {"app": "y"}))
    store.update(pods, "ns", "a", lambda p: p["metadata"]["labels"].update(app="x"))
    store.update(pods, "ns", "a", lambda p: p["metadata"].update(annotations={"k": "v"}))
    store.update(pods, "ns", "a", lambda p: p["metadata"]["labels"].update(app="z"))
    assert drain(w) == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_resumes_from_history_and_expires(store: Store) -> None:
    cms = store.registry.core("configmaps")
    everything, nothing = parse_label_selector(""), parse_field_selector("", ())
    start = str(store.rv)
    for i in range(3):
        store.create(cms, "ns", {"metadata": {"name": f"c{i}"}})
    resumed = store.watch(cms, "ns", everything, nothing, start)
    assert drain(resumed) == [("ADDED", "c0"), ("ADDED", "c1"), ("ADDED", "c2")]
    for i in range(3, 10):  # history keeps 5 events per type
        store.create(cms, "ns", {"metadata": {"name": f"c{i}"}})
    with pytest.raises(ApiError) as err:
        store.watch(cms, "ns", everything, nothing, start)
    assert err.value.code == 410 and "too old resource version" in err.value.message
    assert store.expire_watches() >= 1
    assert drain(resumed)[-2:] == [("ERROR", ""), ("END", "")]


def test_owner_references_are_garbage_collected(store: Store) -> None:
    pods, svcs = store.registry.core("pods"), store.registry.core("services")
    owner = store.create(pods, "ns", pod("owner"))
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner["metadata"]["uid"]}
    store.create(
        svcs,
        "ns",
        {"metadata": {"name": "owned", "ownerReferences": [ref]}, "spec": {"ports": [{"port": 80}]}},
    )
    store.delete(pods, "ns", "owner")
    assert store.find(svcs, "ns", "owned") is None


def test_namespace_deletion_takes_its_objects(store: Store) -> None:
    cms = store.registry.core("configmaps")
    store.create(cms, "ns", {"metadata": {"name": "c"}})
    assert store.find(store.registry.core("serviceaccounts"), "ns", "default") is not None
    store.delete(store.registry.core("namespaces"), None, "ns")
    assert store.find(cms, "ns", "c") is None
    assert not store.namespace_exists("ns")


def test_service_gets_cluster_ip_and_node_ports(store: Store) -> None:
    svc = store.create(
        store.registry.core("services"),
        "ns",
        {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 8888}]}},
    )
    assert svc["spec"]["clusterIP"].startswith("10.96.")
    port = svc["spec"]["ports"][0]
    assert 30000 <= port["nodePort"] <= 32767 and port["targetPort"] == 8888
