"""Raw HTTPS requests get the errors a real API server gives: status code and a meta/v1 Status body."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simcluster.testing import SimProcess

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(60)]


@pytest.fixture
def http(sim: SimProcess) -> Iterator[httpx.Client]:
    """An HTTPS client for the on-prem API that trusts the simcluster CA and sends the admin token."""
    headers = {"Authorization": f"Bearer {sim.token('onprem')}", "Accept": "application/json"}
    with httpx.Client(
        base_url=sim.api_url("onprem"), verify=sim.ssl_context(), headers=headers, timeout=10
    ) as c:
        yield c


def failure(resp: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    """The Status body of a failed request, checked against ``code`` and ``reason``."""
    assert resp.status_code == code, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert body["metadata"] == {}
    return dict(body)


def test_malformed_json_body_is_400(http: httpx.Client) -> None:
    resp = http.post(
        "/api/v1/namespaces/default/configmaps",
        content=b'{"metadata": {"name": "x"',
        headers={"Content-Type": "application/json"},
    )
    failure(resp, 400, "BadRequest")
    resp = http.post(
        "/api/v1/namespaces/default/configmaps",
        content=b"[1, 2]",
        headers={"Content-Type": "application/json"},
    )
    failure(resp, 400, "BadRequest")


def test_unknown_resource_path_is_404(http: httpx.Client) -> None:
    for path in (
        "/api/v1/namespaces/default/widgets",
        "/apis/example.com/v1/things",
        "/apis/kubeflow.org/v9/experiments",
        "/api/v1/namespaces/default/pods/p/exec/extra/parts",
        "/nothing/here",
    ):
        body = failure(http.get(path), 404, "NotFound")
        assert body["message"] == "the server could not find the requested resource", path


def test_missing_object_is_404_with_details(http: httpx.Client) -> None:
    body = failure(http.get("/api/v1/namespaces/default/configmaps/ghost"), 404, "NotFound")
    assert body["message"] == 'configmaps "ghost" not found'
    assert body["details"] == {"name": "ghost", "kind": "configmaps"}


def test_stale_resource_version_on_put_is_409(http: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    created = http.post(url, json={"metadata": {"name": "cm"}, "data": {"k": "1"}})
    assert created.status_code == 201
    stale = created.json()
    ok = http.put(f"{url}/cm", json={**stale, "data": {"k": "2"}})
    assert ok.status_code == 200
    assert int(ok.json()["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    body = failure(http.put(f"{url}/cm", json={**stale, "data": {"k": "3"}}), 409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "cm": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert body["details"] == {"name": "cm", "kind": "configmaps"}
    assert http.get(f"{url}/cm").json()["data"] == {"k": "2"}  # the stale write changed nothing
    # creating what exists is 409 AlreadyExists
    body = failure(http.post(url, json={"metadata": {"name": "cm"}}), 409, "AlreadyExists")
    assert body["message"] == 'configmaps "cm" already exists'


def test_invalid_label_selector_is_400(http: httpx.Client) -> None:
    for selector in ("app in (web", "a==b==c", "a=b,,", "-bad-key=x"):
        body = failure(http.get("/api/v1/pods", params={"labelSelector": selector}), 400, "BadRequest")
        assert body["message"], selector


def test_unsupported_field_selector_is_400(http: httpx.Client) -> None:
    resp = http.get("/api/v1/pods", params={"fieldSelector": "spec.nodename=dgx-a100-1"})
    body = failure(resp, 400, "BadRequest")
    assert body["message"] == "field label not supported: spec.nodename"
    # the right spelling is supported
    resp = http.get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=dgx-a100-1"})
    assert resp.status_code == 200 and resp.json()["kind"] == "PodList"


def test_missing_and_wrong_tokens_are_401(sim: SimProcess) -> None:
    with httpx.Client(base_url=sim.api_url("onprem"), verify=sim.ssl_context(), timeout=10) as anon:
        body = failure(anon.get("/api/v1/namespaces"), 401, "Unauthorized")
        assert body["message"] == "Unauthorized"
        for header in ("Bearer not-a-token", "Bearer", "Basic YWRtaW46YWRtaW4=", sim.token("onprem")):
            failure(anon.get("/api/v1/namespaces", headers={"Authorization": header}), 401, "Unauthorized")
        # another cluster's token is no good here either
        eks_token = sim.token("eks")
        resp = anon.get("/api/v1/namespaces", headers={"Authorization": f"Bearer {eks_token}"})
        failure(resp, 401, "Unauthorized")
        # health endpoints need no token
        assert anon.get("/readyz").status_code == 200


@pytest.fixture(scope="module")
def short_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """A cloud cluster whose exec-plugin tokens live two seconds."""
    workdir = tmp_path_factory.mktemp("sim-short-tokens")
    cluster_file = workdir / "clusters.yaml"
    cluster = {"name": "cloud", "role": "cloud", "execTokenTTL": 2}
    cluster_file.write_text(json.dumps({"clusters": [cluster]}))  # JSON is YAML
    with SimProcess(workdir, config=cluster_file) as proc:
        yield proc


def test_expired_exec_plugin_token_is_401(short_tokens: SimProcess) -> None:
    sim = short_tokens
    token = sim.token("cloud")
    expiry = int(token.split(".")[3])  # sim.v1.<user>.<expiry>.<signature>
    with httpx.Client(
        base_url=sim.api_url("cloud"),
        verify=sim.ssl_context(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as c:
        assert c.get("/api/v1/namespaces").status_code == 200
        # a tampered signature is rejected at once
        forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
        failure(
            c.get("/api/v1/namespaces", headers={"Authorization": f"Bearer {forged}"}), 401, "Unauthorized"
        )
        # so is a token whose expiry was pushed out (the signature covers it)
        parts = token.split(".")
        parts[3] = str(expiry + 3600)
        extended = ".".join(parts)
        failure(
            c.get("/api/v1/namespaces", headers={"Authorization": f"Bearer {extended}"}), 401, "Unauthorized"
        )
        # the token expires at a time on the clock: the test lets that time pass, then asks again
        delay = expiry - time.time() + 0.2
        assert delay < 3
        time.sleep(max(0.0, delay))
        body = failure(c.get("/api/v1/namespaces"), 401, "Unauthorized")
        assert body["message"] == "Unauthorized"
        # a freshly minted one works again
        fresh = sim.token("cloud")
        assert c.get("/api/v1/namespaces", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    users = [
        (r["user"], r["status"]) for r in sim.admin("cloud").requests() if r["path"] == "/api/v1/namespaces"
    ]
    assert users == [("admin", 200), (None, 401), (None, 401), (None, 401), ("admin", 200)]


def test_write_into_missing_namespace_is_404(http: httpx.Client) -> None:
    resp = http.post("/api/v1/namespaces/x/configmaps", json={"metadata": {"name": "cm"}})
    body = failure(resp, 404, "NotFound")
    assert body["message"] == 'namespaces "x" not found'
    assert body["details"] == {"name": "x", "kind": "namespaces"}
    resp = http.post(
        "/apis/kubeflow.org/v1beta1/namespaces/x/experiments",
        json={"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "e"}},
    )
    assert failure(resp, 404, "NotFound")["message"] == 'namespaces "x" not found'


def test_invalid_object_name_is_422(http: httpx.Client, namespace: str) -> None:
    resp = http.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "Bad_Name"}})
    body = failure(resp, 422, "Invalid")
    assert body["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"'
    )
    assert body["details"]["name"] == "Bad_Name" and body["details"]["kind"] == "ConfigMap"
    assert [c["field"] for c in body["details"]["causes"]] == ["metadata.name"]
    resp = http.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {}})
    body = failure(resp, 422, "Invalid")
    assert "metadata.name: Required value" in body["message"]
    # nothing was stored
    listed = http.get(f"/api/v1/namespaces/{namespace}/configmaps").json()
    assert listed["items"] == []


def test_server_still_serves_after_errors(sim: SimProcess, http: httpx.Client, namespace: str) -> None:
    since = sim.admin("onprem").last_request()
    bad = [
        http.post(
            f"/api/v1/namespaces/{namespace}/pods",
            content=b"\x00\xff garbage",
            headers={"Content-Type": "application/json"},
        ),
        http.post(f"/api/v1/namespaces/{namespace}/pods", content=b"\x00\xff garbage"),  # no type: 415
        http.get("/api/v1/pods", params={"labelSelector": "((("}),
        http.get("/api/v1/pods", params={"fieldSelector": "spec.nodename=x"}),
        http.patch(
            f"/api/v1/namespaces/{namespace}/configmaps/none",
            content=b"{}",
            headers={"Content-Type": "application/merge-patch+json"},
        ),
        http.delete(f"/api/v1/namespaces/{namespace}/configmaps/none"),
    ]
    assert [r.status_code for r in bad] == [400, 415, 400, 400, 404, 404]
    for r in bad:
        assert r.json()["kind"] == "Status"
    resp = http.get(f"/api/v1/namespaces/{namespace}")
    assert resp.status_code == 200 and resp.json()["metadata"]["name"] == namespace
    nodes = sim.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert len(nodes) == 4
    # no request above made the server fail internally
    seen = sim.admin("onprem").requests(since=since)
    assert len(seen) >= len(bad) + 1
    assert all(0 < r["status"] < 500 for r in seen)
