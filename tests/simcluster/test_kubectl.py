"""The real kubectl against simcluster, as a Kubernetes user sees it.

Tables and ``describe`` are compared with golden files under ``tests/golden/`` after normalising what
must vary (ages, timestamps, pod IPs, container IDs, the namespace); ``HYBRIDHUB_REGEN_GOLDEN=1``
rewrites them. The cluster is shared by the whole session: each test works in its own namespace, pins
pods to nodes where the output names them, and deletes the GPU pods it makes.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from simcluster.testing import SimProcess

pytestmark = pytest.mark.kubectl  # needs the kubectl binary (tests/environment.py)

REGEN = os.environ.get("HYBRIDHUB_REGEN_GOLDEN") == "1"
NAMESPACE_TOKEN = "t-xxxxxxxx"  # as long as the fixture's names, so columns keep their widths
STDOUT = "simcluster.hybridhub.io/stdout"
EXIT_AFTER = "simcluster.hybridhub.io/exit-after"


# ---------------------------------------------------------------------------------------------- helpers


def apply(sim: SimProcess, manifest: Mapping[str, Any], context: str = "onprem") -> str:
    """``kubectl apply --validate=false -f -`` (simcluster serves no OpenAPI documents)."""
    out = sim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(manifest), context=context)
    return out.stdout.strip()


def pod(
    name: str,
    namespace: str,
    *,
    node: str | None = None,
    limits: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36"}
    if limits:
        container["resources"] = {"limits": dict(limits)}
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {"app": name})},
        "spec": {"containers": [container], **spec},
    }
    if annotations:
        manifest["metadata"]["annotations"] = dict(annotations)
    if node:
        manifest["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    return manifest


def in_namespace(sim: SimProcess, namespace: str) -> Callable[..., str]:
    """``kubectl -n NAMESPACE ARGS...`` on onprem, returning its stdout without surrounding space."""
    return lambda *args: sim.kubectl("-n", namespace, *args).stdout.strip()


def wait(sim: SimProcess, namespace: str, target: str, condition: str, timeout: int = 15, **kw: Any) -> None:
    sim.kubectl("-n", namespace, "wait", f"--for={condition}", target, f"--timeout={timeout}s", **kw)


def jsonpath(sim: SimProcess, namespace: str, target: str, path: str, context: str = "onprem") -> str:
    return sim.kubectl("-n", namespace, "get", target, "-o", f"jsonpath={path}", context=context).stdout


def events(sim: SimProcess, namespace: str, name: str, context: str = "onprem") -> list[dict[str, Any]]:
    out = sim.kubectl(
        "-n",
        namespace,
        "get",
        "events",
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "json",
        context=context,
    )
    return list(json.loads(out.stdout)["items"])


_CELL = re.compile(r"\S+(?: \S+)*")  # a header cell: words apart by single spaces ("NOMINATED NODE")


def normalise_table(text: str, volatile: Mapping[str, str], padding: int = 3, minwidth: int = 6) -> str:
    """Replace the cells of ``volatile`` columns (header -> placeholder) and lay the table out again as
    kubectl's tabwriter does, so that a varying cell width does not shift the other columns."""
    lines = text.rstrip("\n").split("\n")
    header = list(_CELL.finditer(lines[0]))
    starts = [m.start() for m in header]
    names = [m.group() for m in header]
    rows = [[line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)] for line in lines]
    for row in rows[1:]:
        for i, name in enumerate(names):
            if name in volatile and row[i].strip("-") and row[i] not in {"<none>", "<unknown>"}:
                row[i] = volatile[name]
    widths = [max(max(len(r[i]) for r in rows) + padding, minwidth) for i in range(len(names))]
    laid = ("".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "\n".join(laid) + "\n"


def normalise_describe(text: str, namespace: str, pod_ip: str) -> str:
    """``kubectl describe pod`` with stable timestamps, IDs, IP and namespace; its Events table re-laid."""
    assert len(namespace) == len(NAMESPACE_TOKEN)
    text = text.replace(namespace, NAMESPACE_TOKEN)
    text = re.sub(
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}",
        "Mon, 01 Jan 2024 00:00:00 +0000",
        text,
    )
    text = re.sub(r"(containerd://)[0-9a-f]{64}", r"\1<container-id>", text)
    text = re.sub(r"(@sha256:)[0-9a-f]{64}", r"\1<digest>", text)
    text = re.sub(re.escape(pod_ip) + r"(?!\d)", "<pod-ip>", text)
    head, sep, tail = text.partition("\nEvents:\n")
    if sep:  # the events table: describe's tabwriter pads by 2; rows are indented by 2
        table = "\n".join(line[2:] for line in tail.rstrip("\n").split("\n"))
        tail = "".join(f"  {line}\n" for line in normalise_table(table, {"Age": "<age>"}, 2, 0).splitlines())
    return head + sep + tail


def check_golden(golden_dir: Path, name: str, text: str) -> None:
    path = golden_dir / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing: run with HYBRIDHUB_REGEN_GOLDEN=1 to write it"
    assert text == path.read_text(), f"differs from {path} (HYBRIDHUB_REGEN_GOLDEN=1 rewrites it)"


def gpu_nodes(sim: SimProcess, context: str, product: str) -> set[str]:
    out = sim.kubectl(
        "get", "nodes", "-l", f"nvidia.com/gpu.product={product}", "-o", "name", context=context
    )
    return {line.removeprefix("node/") for line in out.stdout.split()}


class Watch:
    """``kubectl ... get -w`` in the background; its stdout lines arrive on a queue."""

    def __init__(self, sim: SimProcess, *args: str, context: str = "onprem") -> None:
        cmd = ["kubectl", "--kubeconfig", str(sim.kubeconfig), "--context", context, *args]
        env = {**os.environ, "KUBECACHEDIR": str(sim.workdir / "kube-cache"), "HOME": str(sim.workdir)}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, predicate: Any, timeout: float) -> list[str]:
        """Lines until one satisfies ``predicate`` (split into fields), or fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.0, left))
            except queue.Empty:
                seen = "\n".join(self.seen)
                raise AssertionError(f"watch saw no matching line in {timeout}s:\n{seen}") from None
            self.seen.append(line)
            if predicate(line.split()):
                return self.seen

    def stop(self) -> str:
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        return err


@pytest.fixture
def watch(sim: SimProcess) -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for w in started:
        w.stop()


# ---------------------------------------------------------------------------------------------- tables


def test_get_nodes_golden(sim: SimProcess, golden_dir: Path) -> None:
    age = {"AGE": "<age>"}
    out = sim.kubectl("get", "nodes").stdout
    check_golden(golden_dir, "kubectl_get_nodes.txt", normalise_table(out, age))
    out = sim.kubectl("get", "nodes", "-L", "nvidia.com/gpu.product").stdout
    check_golden(golden_dir, "kubectl_get_nodes_gpu_product.txt", normalise_table(out, age))
    # eks through the exec credential plugin; its elastic GPU nodes come and go, the system ones stay
    out = sim.kubectl(
        "get",
        "nodes",
        "-l",
        "eks.amazonaws.com/nodegroup=system",
        "-o",
        "wide",
        "-L",
        "nvidia.com/gpu.product",
        context="eks",
    ).stdout
    check_golden(golden_dir, "kubectl_get_nodes_eks_system_wide.txt", normalise_table(out, age))


def test_get_pods_wide_golden(sim: SimProcess, namespace: str, golden_dir: Path) -> None:
    apply(sim, pod("web", namespace, node="l40s-1"))
    done = pod("done", namespace, node="dgx-a100-2", restartPolicy="Never", annotations={EXIT_AFTER: "0"})
    apply(sim, done)
    apply(sim, pod("stuck", namespace, nodeSelector={"disktype": "ssd"}))
    wait(sim, namespace, "pod/web", "condition=Ready")
    wait(sim, namespace, "pod/done", "jsonpath={.status.phase}=Succeeded")
    wait(sim, namespace, "pod/stuck", "condition=PodScheduled=false")
    out = sim.kubectl("-n", namespace, "get", "pods", "-o", "wide").stdout
    table = normalise_table(out, {"AGE": "<age>", "IP": "<ip>"})
    check_golden(golden_dir, "kubectl_get_pods_wide.txt", table)


def test_describe_pod_golden(sim: SimProcess, namespace: str, golden_dir: Path) -> None:
    manifest = pod("notebook", namespace, node="l40s-2", annotations={STDOUT: "hello"})
    manifest["spec"]["containers"][0].update(
        ports=[{"containerPort": 8888, "name": "notebook"}],
        env=[{"name": "JUPYTER_ENABLE_LAB", "value": "yes"}],
        # the apiserver writes quantities back in canonical form: describe shows 500m and 1Gi
        resources={"requests": {"cpu": 0.5, "memory": "1024Mi"}, "limits": {"memory": "2Gi"}},
    )
    apply(sim, manifest)
    wait(sim, namespace, "pod/notebook", "condition=Ready")
    # the kubelet records its events as it starts the container, before the Ready status is written
    out = sim.kubectl("-n", namespace, "describe", "pod", "notebook").stdout
    ip = jsonpath(sim, namespace, "pod/notebook", "{.status.podIP}")
    assert ip and ip in out
    text = normalise_describe(out, namespace, ip)
    for reason in ("Scheduled", "Pulling", "Pulled", "Created", "Started"):
        assert f"  Normal  {reason} " in text
    check_golden(golden_dir, "kubectl_describe_pod.txt", text)


def test_get_pods_all_namespaces_watch(sim: SimProcess, namespace: str, watch: list[Watch]) -> None:
    w = Watch(sim, "get", "pods", "-A", "-w", "--output-watch-events", "--request-timeout=30s")
    watch.append(w)

    def mine(event: str, status: str | None = None) -> Any:
        def match(fields: list[str]) -> bool:
            ok = fields[:3] == [event, namespace, "watched"]
            return ok and (status is None or fields[4] == status)

        return match

    apply(sim, pod("watched", namespace))
    w.until(mine("ADDED"), 15)
    w.until(mine("MODIFIED", "Running"), 15)
    sim.kubectl("-n", namespace, "delete", "pod", "watched", "--grace-period=1", "--wait=false")
    w.until(mine("MODIFIED", "Terminating"), 15)
    lines = w.until(mine("DELETED"), 15)
    assert lines[0].split()[:3] == ["EVENT", "NAMESPACE", "NAME"]
    assert w.proc.poll() is None  # the watch goes on until we stop it


# ---------------------------------------------------------------------------------------------- verbs


def test_apply_twice_then_change_a_label(sim: SimProcess, namespace: str) -> None:
    manifest = pod("app", namespace, labels={"app": "app", "tier": "a"})
    assert apply(sim, manifest) == "pod/app created"
    assert apply(sim, manifest) == "pod/app unchanged"
    manifest["metadata"]["labels"]["tier"] = "b"  # a strategic merge patch from the last-applied config
    assert apply(sim, manifest) == "pod/app configured"
    labels = json.loads(jsonpath(sim, namespace, "pod/app", "{.metadata.labels}"))
    assert labels == {"app": "app", "tier": "b"}
    del manifest["metadata"]["labels"]["tier"]  # dropped from the manifest: apply removes it
    assert apply(sim, manifest) == "pod/app configured"
    assert json.loads(jsonpath(sim, namespace, "pod/app", "{.metadata.labels}")) == {"app": "app"}
    assert apply(sim, manifest) == "pod/app unchanged"


def test_wait_patch_label_delete(sim: SimProcess, namespace: str) -> None:
    apply(sim, pod("p", namespace))
    out = sim.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/p", "--timeout=15s").stdout
    assert out.strip() == "pod/p condition met"
    kubectl = in_namespace(sim, namespace)
    merge = '{"metadata":{"labels":{"m":"1"}}}'
    json_patch = '[{"op":"add","path":"/metadata/annotations","value":{"j":"2"}}]'
    strategic = '{"metadata":{"labels":{"s":"3"}}}'
    assert kubectl("patch", "pod", "p", "--type=merge", "-p", merge) == "pod/p patched"
    assert kubectl("patch", "pod", "p", "--type=json", "-p", json_patch) == "pod/p patched"
    assert kubectl("patch", "pod", "p", "--type=strategic", "-p", strategic) == "pod/p patched"
    assert kubectl("patch", "pod", "p", "-p", strategic) == "pod/p patched (no change)"  # the default type
    assert kubectl("label", "pod", "p", "team=ml") == "pod/p labeled"
    assert kubectl("label", "pod", "p", "team=research", "--overwrite") == "pod/p labeled"
    assert kubectl("label", "pod", "p", "m-") == "pod/p unlabeled"
    refused = sim.kubectl("-n", namespace, "label", "pod", "p", "team=x", check=False)
    assert refused.returncode != 0 and "already has a value (research)" in refused.stderr
    labels = json.loads(jsonpath(sim, namespace, "pod/p", "{.metadata.labels}"))
    assert labels == {"app": "p", "s": "3", "team": "research"}
    assert json.loads(jsonpath(sim, namespace, "pod/p", "{.metadata.annotations}")) == {"j": "2"}
    # the container is stopped within the grace period, and kubectl delete waits for the pod to go
    started = time.monotonic()
    assert kubectl("delete", "pod", "p", "--grace-period=5") == 'pod "p" deleted'
    assert time.monotonic() - started < 5
    gone = sim.kubectl("-n", namespace, "get", "pod", "p", check=False)
    assert gone.returncode == 1 and 'pods "p" not found' in gone.stderr
    assert [e["reason"] for e in events(sim, namespace, "p")][-1] == "Killing"


def test_logs(sim: SimProcess, namespace: str) -> None:
    apply(sim, pod("hello", namespace, annotations={STDOUT: "hello"}))
    scripted = {STDOUT: "step 1\nstep 2", EXIT_AFTER: "1"}
    apply(sim, pod("job", namespace, restartPolicy="Never", annotations=scripted))
    wait(sim, namespace, "pod/hello", "condition=Ready")
    assert sim.kubectl("-n", namespace, "logs", "hello").stdout == "hello\n"
    assert sim.kubectl("-n", namespace, "logs", "pod/hello", "-c", "main", "--tail=1").stdout == "hello\n"
    wait(sim, namespace, "pod/job", "condition=Ready")
    started = time.monotonic()
    out = sim.kubectl("-n", namespace, "logs", "-f", "job", timeout=15)
    assert out.stdout == "step 1\nstep 2\n"
    assert time.monotonic() - started < 10  # -f returned because the container exited
    assert jsonpath(sim, namespace, "pod/job", "{.status.phase}") == "Succeeded"
    status = sim.kubectl("-n", namespace, "get", "pod", "job", "--no-headers").stdout.split()
    assert status[1:3] == ["0/1", "Completed"]


def test_get_events(sim: SimProcess, namespace: str) -> None:
    apply(sim, pod("ev", namespace))
    wait(sim, namespace, "pod/ev", "condition=Ready")
    out = sim.kubectl("-n", namespace, "get", "events").stdout.splitlines()
    assert out[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = [line.split(None, 4) for line in out[1:]]
    assert [r[1:4] for r in rows] == [
        ["Normal", "Scheduled", "pod/ev"],
        ["Normal", "Pulling", "pod/ev"],
        ["Normal", "Pulled", "pod/ev"],
        ["Normal", "Created", "pod/ev"],
        ["Normal", "Started", "pod/ev"],
    ]
    node = jsonpath(sim, namespace, "pod/ev", "{.spec.nodeName}")
    assert rows[0][4] == f"Successfully assigned {namespace}/ev to {node}"
    assert rows[4][4] == "Started container main"
    wide = sim.kubectl("-n", namespace, "get", "events", "-o", "wide", "--field-selector", "reason=Started")
    assert f"kubelet, {node}" in wide.stdout and "spec.containers{main}" in wide.stdout


# ---------------------------------------------------------------------------------------------- GPUs


def test_gpu_limits_only_runs_with_requests_defaulted(sim: SimProcess, namespace: str) -> None:
    apply(sim, pod("gpu", namespace, limits={"nvidia.com/gpu": 2}))
    try:
        wait(sim, namespace, "pod/gpu", "condition=Ready")
        resources = json.loads(jsonpath(sim, namespace, "pod/gpu", "{.spec.containers[0].resources}"))
        assert resources == {"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "2"}}
        requested = r"{.spec.containers[0].resources.requests.nvidia\.com/gpu}"
        assert jsonpath(sim, namespace, "pod/gpu", requested) == "2"
        # QoS counts only cpu and memory: a pod that asks for nothing else is BestEffort
        assert jsonpath(sim, namespace, "pod/gpu", "{.status.qosClass}") == "BestEffort"
        node = jsonpath(sim, namespace, "pod/gpu", "{.spec.nodeName}")
        labels = json.loads(sim.kubectl("get", "node", node, "-o", "jsonpath={.metadata.labels}").stdout)
        assert labels["nvidia.com/gpu.present"] == "true"
        assert int(labels["nvidia.com/gpu.count"]) >= 2
    finally:
        sim.kubectl("-n", namespace, "delete", "pod", "gpu", "--grace-period=0", "--force", check=False)


def test_sixteen_gpus_stay_pending_with_failed_scheduling(sim: SimProcess, namespace: str) -> None:
    apply(sim, pod("huge", namespace, limits={"nvidia.com/gpu": 16}))
    wait(sim, namespace, "pod/huge", "condition=PodScheduled=false")
    assert jsonpath(sim, namespace, "pod/huge", "{.status.phase}") == "Pending"
    assert jsonpath(sim, namespace, "pod/huge", "{.spec.nodeName}") == ""
    rows = "jsonpath={range .items[*]}{.type}|{.reason}|{.message}{'\\n'}{end}"
    out = in_namespace(sim, namespace)(
        "get", "events", "--field-selector", "involvedObject.name=huge", "-o", rows
    )
    warning = [line.split("|") for line in out.splitlines() if line.startswith("Warning|")]
    assert len(warning) == 1, out
    assert warning[0][1] == "FailedScheduling"
    assert warning[0][2].startswith("0/4 nodes are available: 4 Insufficient nvidia.com/gpu."), out


def test_eks_scale_up_for_l40s_pod(sim: SimProcess, namespace: str) -> None:
    before = gpu_nodes(sim, "eks", "NVIDIA-L40S")
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    manifest = pod("burst", namespace, limits={"nvidia.com/gpu": 4}, tolerations=[toleration])
    manifest["spec"]["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-L40S"}
    if before:  # an idle node left by an earlier test would take the pod: keep to new nodes
        manifest["spec"]["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    # one requirement per name (the apiserver takes one value each), ANDed in one term
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "NotIn", "values": [name]}
                                for name in sorted(before)
                            ]
                        }
                    ]
                }
            }
        }
    apply(sim, manifest, context="eks")
    try:
        wait(sim, namespace, "pod/burst", "condition=Ready", timeout=30, context="eks")
        node = jsonpath(sim, namespace, "pod/burst", "{.spec.nodeName}", context="eks")
        assert gpu_nodes(sim, "eks", "NVIDIA-L40S") - before == {node}  # exactly one node was added
        evs = events(sim, namespace, "burst", context="eks")
        scale_ups = [e for e in evs if e["reason"] == "TriggeredScaleUp"]
        assert len(scale_ups) == 1 and scale_ups[0]["count"] == 1, evs
        n = len(before)
        assert scale_ups[0]["message"] == f"pod triggered scale-up: [{{gpu-l40s {n}->{n + 1} (max: 4)}}]"
        assert scale_ups[0]["source"]["component"] == "cluster-autoscaler"
        reasons = [e["reason"] for e in evs]
        order = [reasons.index(r) for r in ("FailedScheduling", "TriggeredScaleUp", "Scheduled")]
        assert order == sorted(order), reasons
        taints = sim.kubectl("get", "node", node, "-o", "jsonpath={.spec.taints}", context="eks").stdout
        assert json.loads(taints) == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    finally:
        force = ("--grace-period=0", "--force")
        sim.kubectl("-n", namespace, "delete", "pod", "burst", *force, context="eks", check=False)
