"""The real kubectl against a simcluster that is a security boundary: RBAC for a namespace-scoped token
and for an impersonating admin (``--as``), Pod Security levels, a GPU ResourceQuota and LimitRange defaults.

One small cluster (simulated runtime) for the module: each test works in namespaces of its own.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from simcluster.testing import SimProcess

pytestmark = pytest.mark.kubectl  # needs the kubectl binary (tests/environment.py)

ALICE_TOKEN = "alice-" + uuid.uuid4().hex  # a namespace-scoped user the cluster file declares
CLUSTER_FILE = f"""
clusters:
  - name: onprem
    runtime: simulated
    timings: {{pod_start: 0.05, pod_stop: 0.05}}
    nodeGroups:
      - name: gpu
        count: 1
        capacity: {{cpu: "16", memory: 64Gi}}
        gpu: {{count: 8}}
    users:
      - admin
      - name: alice
        token: {ALICE_TOKEN}
        groups: [team-a]
  - name: eks
    role: cloud
    runtime: simulated
    timings: {{pod_start: 0.05, pod_stop: 0.05}}
    nodeGroups:
      - name: gpu
        count: 1
        capacity: {{cpu: "16", memory: 64Gi}}
        gpu: {{count: 4}}
        taints: [{{key: nvidia.com/gpu, value: "true", effect: NoSchedule}}]
"""
EXIT_AFTER = "simcluster.hybridhub.io/exit-after"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("authz")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        yield proc


def new_namespace(sim: SimProcess, **labels: str) -> str:
    name = f"a-{uuid.uuid4().hex[:8]}"
    sim.kubectl("create", "namespace", name)
    if labels:
        sim.kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    return name


def as_alice(sim: SimProcess, *args: str, check: bool = False) -> Any:
    """kubectl with alice's own token in place of the kubeconfig's admin token."""
    return sim.kubectl(f"--token={ALICE_TOKEN}", *args, check=check)


def refused(result: Any) -> str:
    """The server's message of a refused kubectl call."""
    assert result.returncode != 0, result.stdout
    return str(result.stderr.strip())


def pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox:1.36", **spec.pop("container", {})}
    meta = {"name": name, **spec.pop("metadata", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [container], **spec}}


def create(sim: SimProcess, namespace: str, manifest: dict[str, Any], check: bool = False) -> Any:
    return sim.kubectl(
        "-n", namespace, "create", "--validate=false", "-f", "-", input=json.dumps(manifest), check=check
    )


# ------------------------------------------------------------------------------------------------ RBAC


def test_a_namespace_scoped_token_can_do_what_its_rolebinding_grants(sim: SimProcess) -> None:
    mine, other = new_namespace(sim), new_namespace(sim)
    forbidden = (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API '
        f'group "" in the namespace "{mine}"'
    )
    assert refused(as_alice(sim, "-n", mine, "get", "pods")) == forbidden
    sim.kubectl("-n", mine, "create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice")

    assert (
        as_alice(sim, "-n", mine, "get", "pods", check=True).stderr.strip()
        == f"No resources found in {mine} namespace."
    )
    assert (
        as_alice(sim, "-n", mine, "run", "web", "--image=busybox:1.36", check=True).stdout.strip()
        == "pod/web created"
    )
    as_alice(sim, "-n", mine, "create", "secret", "generic", "s", "--from-literal=k=v", check=True)
    as_alice(sim, "-n", mine, "get", "secret", "s", check=True)  # edit reads secrets
    as_alice(sim, "-n", mine, "delete", "pod", "web", "--wait=false", check=True)

    assert refused(as_alice(sim, "-n", other, "get", "pods")) == forbidden.replace(mine, other)
    assert refused(as_alice(sim, "get", "nodes")) == (
        'Error from server (Forbidden): nodes is forbidden: User "alice" cannot list resource "nodes" '
        'in API group "" at the cluster scope'
    )
    assert refused(as_alice(sim, "-n", mine, "create", "quota", "q", "--hard=pods=1")) == (
        'error: failed to create quota: resourcequotas is forbidden: User "alice" cannot create '
        f'resource "resourcequotas" in API group "" in the namespace "{mine}"'
    )
    assert refused(
        as_alice(sim, "-n", mine, "create", "rolebinding", "x", "--clusterrole=admin", "--user=alice")
    ) == (
        "error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io is forbidden: "
        'User "alice" cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in '
        f'the namespace "{mine}"'
    )
    # a named object: the name is in the message
    assert refused(as_alice(sim, "get", "namespace", other)) == (
        f'Error from server (Forbidden): namespaces "{other}" is forbidden: User "alice" cannot get resource '
        f'"namespaces" in API group "" in the namespace "{other}"'
    )
    # discovery is open to every authenticated user (system:discovery)
    assert as_alice(sim, "version", "-o", "json", check=True).returncode == 0
    # kubectl auth can-i asks with a SelfSubjectAccessReview
    assert as_alice(sim, "auth", "can-i", "create", "pods", "-n", mine).stdout.strip() == "yes"
    assert as_alice(sim, "auth", "can-i", "create", "pods", "-n", other).stdout.strip() == "no"
    assert as_alice(sim, "auth", "can-i", "delete", "nodes").stdout.strip() == "no"
    listed = as_alice(sim, "auth", "can-i", "--list", "-n", mine, check=True).stdout
    assert "pods/exec " in listed and "secrets " in listed and "rolebindings" not in listed


def test_an_impersonating_admin_is_answered_as_the_user_and_only_admins_may_impersonate(
    sim: SimProcess,
) -> None:
    ns = new_namespace(sim)
    assert refused(sim.kubectl("--as=bob", "-n", ns, "get", "configmaps", check=False)) == (
        'Error from server (Forbidden): configmaps is forbidden: User "bob" cannot list resource '
        f'"configmaps" in API group "" in the namespace "{ns}"'
    )
    # kubectl apply (a strategic merge patch the second time) binds team-b to view
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "team-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-b"}],
    }
    for _ in range(2):
        sim.kubectl("-n", ns, "apply", "--validate=false", "-f", "-", input=json.dumps(binding))
    whoami = sim.kubectl("--as=bob", "--as-group=team-b", "auth", "whoami", "-o", "json").stdout
    assert json.loads(whoami)["status"]["userInfo"] == {
        "username": "bob",
        "groups": ["team-b", "system:authenticated"],
    }
    # bob alone is not in team-b; with --as-group he is
    assert sim.kubectl("--as=bob", "-n", ns, "get", "configmaps", check=False).returncode != 0
    sim.kubectl("--as=bob", "--as-group=team-b", "-n", ns, "get", "configmaps,pods")
    sim.kubectl("run", "p", "-n", ns, "--image=busybox:1.36")
    # as against a real cluster, a container's log is there once it has started
    sim.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/p", "--timeout=30s")
    sim.kubectl("--as=bob", "--as-group=team-b", "-n", ns, "logs", "p")  # view reads pods/log
    # view excludes secrets and writes
    assert refused(sim.kubectl("--as=bob", "--as-group=team-b", "-n", ns, "get", "secrets", check=False)) == (
        'Error from server (Forbidden): secrets is forbidden: User "bob" cannot list resource "secrets" in '
        f'API group "" in the namespace "{ns}"'
    )
    assert refused(
        sim.kubectl("--as=bob", "--as-group=team-b", "-n", ns, "delete", "pod", "p", check=False)
    ) == (
        'Error from server (Forbidden): pods "p" is forbidden: User "bob" cannot delete resource "pods" in '
        f'API group "" in the namespace "{ns}"'
    )
    # a user without the impersonate verb cannot act as another
    sim.kubectl("-n", ns, "create", "rolebinding", "alice-admin", "--clusterrole=admin", "--user=alice")
    assert refused(as_alice(sim, "--as=bob", "-n", ns, "get", "pods")) == (
        'Error from server (Forbidden): users "bob" is forbidden: User "alice" cannot impersonate resource '
        '"users" in API group "" at the cluster scope'
    )
    # a ClusterRole granting impersonation of bob alone lets alice be bob, and only bob
    sim.kubectl(
        "create", "clusterrole", f"imp-{ns}", "--verb=impersonate", "--resource=users", "--resource-name=bob"
    )
    sim.kubectl("create", "clusterrolebinding", f"imp-{ns}", f"--clusterrole=imp-{ns}", "--user=alice")
    try:
        assert refused(as_alice(sim, "--as=bob", "-n", ns, "get", "pods")).startswith(
            'Error from server (Forbidden): pods is forbidden: User "bob" cannot list'
        )
        assert "cannot impersonate" in refused(as_alice(sim, "--as=carol", "-n", ns, "get", "pods"))
        assert refused(as_alice(sim, "--as=bob", "--as-group=team-b", "-n", ns, "get", "pods")) == (
            'Error from server (Forbidden): groups "team-b" is forbidden: User "alice" cannot impersonate '
            'resource "groups" in API group "" at the cluster scope'
        )
    finally:
        sim.kubectl("delete", "clusterrolebinding,clusterrole", f"imp-{ns}")


# ---------------------------------------------------------------------------------------- Pod Security


def test_pod_security_levels_refuse_pods_with_the_real_messages(sim: SimProcess) -> None:
    baseline = new_namespace(sim, **{"pod-security.kubernetes.io/enforce": "baseline"})
    host_path = pod("h", volumes=[{"name": "h", "hostPath": {"path": "/etc"}}])
    assert refused(create(sim, baseline, host_path)) == (
        'Error from server (Forbidden): error when creating "STDIN": pods "h" is forbidden: violates '
        'PodSecurity "baseline:latest": hostPath volumes (volume "h")'
    )
    privileged = pod("p", hostNetwork=True, container={"securityContext": {"privileged": True}})
    assert refused(create(sim, baseline, privileged)).endswith(
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), '
        'privileged (container "main" must not set securityContext.privileged=true)'
    )
    create(sim, baseline, pod("plain"), check=True)

    restricted = new_namespace(
        sim,
        **{
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "v1.32",
        },
    )
    assert refused(create(sim, restricted, pod("r"))).endswith(
        'pods "r" is forbidden: violates PodSecurity "restricted:v1.32": allowPrivilegeEscalation != false '
        '(container "main" must set securityContext.allowPrivilegeEscalation=false), unrestricted '
        'capabilities (container "main" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot '
        '!= true (pod or container "main" must set securityContext.runAsNonRoot=true), seccompProfile (pod '
        'or container "main" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    good = pod(
        "ok",
        securityContext={
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        container={"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
    )
    create(sim, restricted, good, check=True)
    # the privileged level (and no label) takes the hostPath pod
    create(
        sim, new_namespace(sim, **{"pod-security.kubernetes.io/enforce": "privileged"}), host_path, check=True
    )


# ------------------------------------------------------------------------------------ quota and limits


def gpu_pod(name: str, gpus: int, **annotations: str) -> dict[str, Any]:
    return pod(
        name,
        metadata={"annotations": annotations},
        restartPolicy="Never",
        container={"resources": {"limits": {"nvidia.com/gpu": gpus}}},
    )


def quota_used(sim: SimProcess, ns: str) -> dict[str, str]:
    out = sim.kubectl("-n", ns, "get", "resourcequota", "gpu", "-o", "json").stdout
    return dict(json.loads(out).get("status", {}).get("used", {}))


def wait_for(what: Any, expected: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := what()) != expected:
        assert time.monotonic() < deadline, f"{got!r} != {expected!r}"
        time.sleep(0.1)


def test_a_gpu_quota_refuses_what_exceeds_it_and_counts_only_live_pods(sim: SimProcess) -> None:
    ns = new_namespace(sim)
    sim.kubectl("-n", ns, "create", "quota", "gpu", "--hard=requests.nvidia.com/gpu=2,pods=3")
    create(sim, ns, gpu_pod("one", 1), check=True)
    wait_for(lambda: quota_used(sim, ns), {"pods": "1", "requests.nvidia.com/gpu": "1"})
    assert refused(create(sim, ns, gpu_pod("two", 2))) == (
        'Error from server (Forbidden): error when creating "STDIN": pods "two" is forbidden: exceeded '
        "quota: gpu, requested: requests.nvidia.com/gpu=2, used: requests.nvidia.com/gpu=1, limited: "
        "requests.nvidia.com/gpu=2"
    )
    # a pod that has terminated no longer counts
    create(sim, ns, gpu_pod("short", 1, **{EXIT_AFTER: "0.2"}), check=True)
    sim.kubectl("-n", ns, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/short", "--timeout=15s")
    wait_for(lambda: quota_used(sim, ns), {"pods": "1", "requests.nvidia.com/gpu": "1"})
    # nor does a deleted one
    sim.kubectl("-n", ns, "delete", "pod", "one", "--grace-period=0", "--force")
    create(sim, ns, gpu_pod("two", 2), check=True)
    wait_for(lambda: quota_used(sim, ns), {"pods": "1", "requests.nvidia.com/gpu": "2"})


def test_limit_range_defaults_and_bounds_containers(sim: SimProcess) -> None:
    ns = new_namespace(sim)
    limits = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "lr"},
        "spec": {
            "limits": [
                {"type": "Container", "default": {"cpu": "500m"}, "max": {"cpu": "2", "memory": "4Gi"}}
            ]
        },
    }
    create(sim, ns, limits, check=True)
    stored = json.loads(sim.kubectl("-n", ns, "get", "limitrange", "lr", "-o", "json").stdout)
    assert stored["spec"]["limits"][0]["defaultRequest"] == {"cpu": "500m", "memory": "4Gi"}  # as defaulted
    create(sim, ns, pod("d"), check=True)
    made = json.loads(sim.kubectl("-n", ns, "get", "pod", "d", "-o", "json").stdout)
    assert made["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m", "memory": "4Gi"},
        "requests": {"cpu": "500m", "memory": "4Gi"},
    }
    assert made["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container main; cpu, memory limit for container main"
    )
    big = pod("big", container={"resources": {"limits": {"cpu": "4"}}})
    assert refused(create(sim, ns, big)) == (
        'Error from server (Forbidden): error when creating "STDIN": pods "big" is forbidden: maximum cpu '
        "usage per Container is 2, but limit is 4"
    )


def test_a_cloud_cluster_lets_gpu_pods_tolerate_its_gpu_taint_as_eks_does(sim: SimProcess) -> None:
    """EKS enables the ExtendedResourceToleration admission plugin; kubeadm clusters do not."""
    name = f"g-{uuid.uuid4().hex[:6]}"
    manifest = json.dumps(gpu_pod(name, 1))
    sim.kubectl("-n", "default", "create", "--validate=false", "-f", "-", input=manifest, context="eks")
    sim.kubectl(
        "-n",
        "default",
        "wait",
        "--for=jsonpath={.status.phase}=Running",
        f"pod/{name}",
        "--timeout=15s",
        context="eks",
    )
    made = json.loads(sim.kubectl("-n", "default", "get", "pod", name, "-o", "json", context="eks").stdout)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in made["spec"][
        "tolerations"
    ]
    # a pod without GPUs gets none, and on-prem adds none
    plain = f"p-{uuid.uuid4().hex[:6]}"
    sim.kubectl(
        "-n", "default", "create", "--validate=false", "-f", "-", input=json.dumps(pod(plain)), context="eks"
    )
    made = json.loads(sim.kubectl("-n", "default", "get", "pod", plain, "-o", "json", context="eks").stdout)
    assert all(t.get("key") != "nvidia.com/gpu" for t in made["spec"]["tolerations"])
    ns = new_namespace(sim)
    create(sim, ns, gpu_pod(name, 1), check=True)
    made = json.loads(sim.kubectl("-n", ns, "get", "pod", name, "-o", "json").stdout)
    assert all(t.get("key") != "nvidia.com/gpu" for t in made["spec"]["tolerations"])
    sim.kubectl("-n", "default", "delete", "pod", name, plain, "--grace-period=0", "--force", context="eks")
