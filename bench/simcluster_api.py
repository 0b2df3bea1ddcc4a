"""Benchmark simcluster's Kubernetes API: bulk pod creation, LIST, label-selector LIST, watch latency,
and the server's memory and CPU use. A script, not a test: it prints a table of figures.

    .venv/bin/python bench/simcluster_api.py            # 1,000 nodes, 30,000 pods (a few minutes)
    .venv/bin/python bench/simcluster_api.py --quick    # 100 nodes, 3,000 pods

simcluster runs in a subprocess (``hybridhub sim up`` via ``simcluster.testing.SimProcess``) with one
on-prem cluster; this process is the client (aiohttp over HTTPS with simcluster's CA, bearer token).
The server's RSS and CPU time come from psutil on that subprocess; "CPU %" is CPU seconds per wall
second of the phase, so 100% is one full core. The client shares the machine, so wall times include
the client's own CPU; the server's CPU figures do not.

See bench/README.md for what each phase measures and the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from simcluster.testing import SimProcess  # noqa: E402

CLUSTER = "bench"
GPU_PRODUCT = "NVIDIA-A100-SXM4-80GB"


# ---------------------------------------------------------------------------- measuring the server


@dataclass
class Row:
    phase: str
    wall: float
    cpu: float  # server CPU seconds
    rss: float  # server RSS (MiB) at the end of the phase
    figures: str


@dataclass
class Server:
    """psutil view of the simcluster process."""

    proc: psutil.Process
    rows: list[Row] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def rss_mib(self) -> float:
        return float(self.proc.memory_info().rss) / 2**20

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a phase; the body fills ``figures`` (a dict of label -> text)."""
        figures: dict[str, Any] = {}
        cpu0, t0 = self.cpu(), time.perf_counter()
        yield figures
        wall, cpu = time.perf_counter() - t0, self.cpu() - cpu0
        rss = self.rss_mib()
        text = ", ".join(f"{k} {v}" for k, v in figures.items())
        self.rows.append(Row(name, wall, cpu, rss, text))
        self.summary[name] = {"wall_s": wall, "server_cpu_s": cpu, "server_rss_mib": rss, **figures}
        print(f"  {name}: {wall:.2f}s wall, {cpu:.2f}s server CPU, RSS {rss:.0f} MiB; {text}", flush=True)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------- the cluster and the pods


def cluster_file(path: Path, nodes: int, pod_start: float) -> None:
    gpu_nodes = max(1, nodes // 8)
    doc = {
        "clusters": [
            {
                "name": CLUSTER,
                "role": "onprem",
                "namespaces": ["default"],
                "podCIDR": "10.64.0.0/12",  # one /24 per node: the default /16 holds only 256 nodes
                "nodeCIDR": "172.16.0.0/12",
                "nodeGroups": [
                    {
                        "name": "gpu",
                        "count": gpu_nodes,
                        "capacity": {"cpu": "128", "memory": "1000Gi", "pods": "110"},
                        "gpu": {"count": 8, "product": GPU_PRODUCT, "memoryMiB": 81920},
                        "labels": {"node-role.kubernetes.io/gpu": ""},
                    },
                    {
                        "name": "cpu",
                        "count": nodes - gpu_nodes,
                        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
                    },
                ],
                "timings": {"pod_start": pod_start, "pod_stop": 0.05},
            }
        ]
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def notebook_pod(i: int, namespace: str, user: str, node: str, gpu: bool) -> dict[str, Any]:
    """A pod like the one KubeSpawner + hybridhub would create for a (GPU) notebook server."""
    server = f"srv{i % 3}" if i % 3 else ""
    name = f"jupyter-{user}" + (f"--{server}" if server else "")
    hub = "http://hub.jhub.svc.cluster.local:8081"
    prefix = f"/user/{user}/{server}/" if server else f"/user/{user}/"
    scopes = [f"access:servers!server={user}/{server}", f"users:activity!user={user}", "read:users:name"]
    env = {
        "JUPYTERHUB_API_TOKEN": f"{i:08x}" * 4,
        "JPY_API_TOKEN": f"{i:08x}" * 4,
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}-{server}",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(scopes),
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": json.dumps([]),
        "JUPYTERHUB_OAUTH_SCOPES": json.dumps(scopes),
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": server,
        "JUPYTERHUB_API_URL": f"{hub}/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": f"{hub}/hub/api/users/{user}/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:8888{prefix}",
        "JUPYTERHUB_PUBLIC_URL": f"https://hub.example.org{prefix}",
        "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/hub/",
        "JUPYTER_IMAGE": "registry.example.org/ml/notebook-cuda:2026.11.1",
        "JUPYTER_IMAGE_SPEC": "registry.example.org/ml/notebook-cuda:2026.11.1",
        "MEM_GUARANTEE": "34359738368",
        "MEM_LIMIT": "68719476736",
        "CPU_GUARANTEE": "4.0",
        "CPU_LIMIT": "16.0",
        "HYBRIDHUB_PLACEMENT": "onprem",
        "HYBRIDHUB_SSH_GATEWAY": "ssh.example.org:2222",
        "HYBRIDHUB_ARGO_SERVER": "https://argo.example.org",
        "PIP_INDEX_URL": "https://pypi.example.org/simple",
        "HF_HOME": f"/home/jovyan/.cache/huggingface/{user}",
        "TZ": "Europe/Berlin",
    }
    resources: dict[str, Any] = {
        "requests": {"cpu": "4", "memory": "32Gi", "ephemeral-storage": "10Gi"},
        "limits": {"cpu": "16", "memory": "64Gi", "ephemeral-storage": "50Gi"},
    }
    if gpu:
        resources["requests"]["nvidia.com/gpu"] = "1"
        resources["limits"]["nvidia.com/gpu"] = "1"
    labels = {
        "app": "jupyterhub",
        "component": "singleuser-server",
        "release": "jhub",
        "chart": "jupyterhub-4.1.0",
        "heritage": "jupyterhub",
        "hub.jupyter.org/network-access-hub": "true",
        "hub.jupyter.org/servername": server,
        "hub.jupyter.org/username": user,
        "hybridhub.io/placement": "onprem",
        "hybridhub.io/profile": "a100-1" if gpu else "cpu-small",
    }
    annotations = {
        "hub.jupyter.org/username": user,
        "hub.jupyter.org/servername": server,
        "hybridhub.io/spawn-id": f"{i:032x}",
        "hybridhub.io/requested-at": "2026-11-23T09:00:00Z",
        "hybridhub.io/placement-reason": "on-prem has free capacity (lag 0.4s, 12 GPUs free)",
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    }
    mounts = [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "shm", "mountPath": "/dev/shm"},
        {"name": "datasets", "mountPath": "/data", "readOnly": True},
        {"name": "ssh-keys", "mountPath": "/etc/hybridhub/ssh", "readOnly": True},
        {"name": "hybridhub-config", "mountPath": "/etc/jupyter/jupyter_server_config.d", "readOnly": True},
        {
            "name": "kube-api-access",
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": True,
        },
    ]
    gpu_terms = [{"key": "nvidia.com/gpu.product", "operator": "In", "values": [GPU_PRODUCT]}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostname": "jupyter",
            "restartPolicy": "OnFailure",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"fsGroup": 100, "runAsUser": 1000, "runAsGroup": 100},
            "initContainers": [
                {
                    "name": "block-cloud-metadata",
                    "image": "quay.io/jupyterhub/k8s-network-tools:4.1.0",
                    "command": [
                        "iptables",
                        "--append",
                        "OUTPUT",
                        "--protocol",
                        "tcp",
                        "--destination",
                        "169.254.169.254",
                        "--destination-port",
                        "80",
                        "--jump",
                        "DROP",
                    ],
                    "securityContext": {
                        "privileged": True,
                        "runAsUser": 0,
                        "capabilities": {"add": ["NET_ADMIN"]},
                    },
                }
            ],
            "containers": [
                {
                    "name": "notebook",
                    "image": "registry.example.org/ml/notebook-cuda:2026.11.1",
                    "args": [
                        "jupyterhub-singleuser",
                        "--ip=0.0.0.0",
                        "--port=8888",
                        f"--ServerApp.base_url={prefix}",
                        "--SingleUserNotebookApp.default_url=/lab",
                    ],
                    "env": [{"name": k, "value": v} for k, v in env.items()]
                    + [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "ports": [
                        {"name": "notebook-port", "containerPort": 8888},
                        {"name": "ssh", "containerPort": 2222},
                    ],
                    "resources": resources,
                    "volumeMounts": mounts,
                    "securityContext": {"allowPrivilegeEscalation": False, "runAsUser": 1000},
                    "lifecycle": {"preStop": {"exec": {"command": ["/usr/local/bin/hybridhub-sync-home"]}}},
                    "readinessProbe": {
                        "httpGet": {"path": f"{prefix}api", "port": 8888},
                        "periodSeconds": 10,
                        "failureThreshold": 3,
                    },
                }
            ],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": f"claim-{user}"}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
                {
                    "name": "datasets",
                    "nfs": {"server": "nas.example.org", "path": "/datasets", "readOnly": True},
                },
                {"name": "ssh-keys", "secret": {"secretName": f"ssh-{user}", "defaultMode": 256}},
                {"name": "hybridhub-config", "configMap": {"name": "hybridhub-notebook-config"}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ]
                    },
                },
            ],
            "tolerations": [
                {
                    "key": "hub.jupyter.org/dedicated",
                    "operator": "Equal",
                    "value": "user",
                    "effect": "NoSchedule",
                },
                {
                    "key": "hub.jupyter.org_dedicated",
                    "operator": "Equal",
                    "value": "user",
                    "effect": "NoSchedule",
                },
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": gpu_terms}]
                        if gpu
                        else [
                            {
                                "matchExpressions": [
                                    {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}
                                ]
                            }
                        ]
                    },
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "preference": {
                                "matchExpressions": [
                                    {
                                        "key": "hub.jupyter.org/node-purpose",
                                        "operator": "In",
                                        "values": ["user"],
                                    }
                                ]
                            },
                        },
                    ],
                },
                "podAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "labelSelector": {
                                    "matchExpressions": [
                                        {
                                            "key": "hub.jupyter.org/username",
                                            "operator": "In",
                                            "values": [user],
                                        }
                                    ]
                                },
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        },
                    ],
                },
            },
        },
    }


# ---------------------------------------------------------------------------- the client


@dataclass
class Client:
    session: aiohttp.ClientSession
    base: str
    headers: dict[str, str]

    def url(self, path: str) -> str:
        return self.base + path

    async def request(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json", **kw: Any
    ) -> tuple[int, bytes]:
        headers = {**self.headers, "Content-Type": ctype} if body is not None else self.headers
        async with self.session.request(method, self.url(path), data=body, headers=headers, **kw) as resp:
            return resp.status, await resp.read()

    async def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, raw = await self.request(method, path, None if body is None else orjson.dumps(body), **kw)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {raw[:300]!r}")
        return orjson.loads(raw)

    @contextlib.asynccontextmanager
    async def watch(
        self, path: str, on_event: Callable[[dict[str, Any], float], None]
    ) -> AsyncIterator[None]:
        """A watch whose events (decoded, with their arrival time) go to ``on_event`` until exit."""
        resp = await self.session.get(self.url(path), headers=self.headers, timeout=aiohttp.ClientTimeout())
        if resp.status != 200:
            raise RuntimeError(f"watch {path}: HTTP {resp.status}: {(await resp.read())[:300]!r}")

        async def read() -> None:
            while True:
                line = await resp.content.readline()
                if not line:
                    return
                arrived = time.perf_counter()
                on_event(orjson.loads(line), arrived)

        task = asyncio.create_task(read())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await task
            resp.close()


def token_from_kubeconfig(path: Path, cluster: str) -> str:
    config = yaml.safe_load(path.read_text())
    user = next(u["user"] for u in config["users"] if u["name"] == f"{cluster}-admin")
    return str(user["token"])


# ---------------------------------------------------------------------------- the phases


async def create_pods(
    server: Server, client: Client, args: argparse.Namespace, node_names: tuple[list[str], list[str]]
) -> list[str]:
    gpu_nodes, cpu_nodes = node_names
    namespaces = [f"team-{n:02d}" for n in range(args.namespaces)]
    users = max(1, args.pods // 3)
    every = -(-args.pods // (len(gpu_nodes) * 8))  # one pod in `every` gets a GPU: no GPU overcommit
    bodies: list[tuple[str, bytes]] = []
    gpu_i = cpu_i = 0
    for i in range(args.pods):
        ns = namespaces[i % len(namespaces)]
        gpu = i % every == 0
        if gpu:
            node = gpu_nodes[gpu_i // 8 % len(gpu_nodes)]
            gpu_i += 1
        else:
            node = cpu_nodes[cpu_i % len(cpu_nodes)]
            cpu_i += 1
        pod = notebook_pod(i, ns, f"user-{i % users:05d}", node, gpu)
        pod["metadata"]["name"] += f"-{i:05d}"  # unique per namespace, whatever the user mapping
        bodies.append((ns, orjson.dumps(pod)))
    sizes = [len(b) for _, b in bodies]
    avg = statistics.mean(sizes)
    print(
        f"  {len(bodies)} pods, {gpu_i} on GPU nodes; request body {avg:.0f} B on average "
        f"(min {min(sizes)}, max {max(sizes)})",
        flush=True,
    )

    with server.phase("create namespaces") as fig:
        for ns in namespaces:
            await client.json("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        fig["namespaces"] = len(namespaces)

    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + args.phase_timeout

    async def worker() -> None:
        while not queue.empty() and time.monotonic() < deadline:
            ns, body = queue.get_nowait()
            t0 = time.perf_counter()
            status, raw = await client.request("POST", f"/api/v1/namespaces/{ns}/pods", body)
            latencies.append(time.perf_counter() - t0)
            if status != 201:
                errors.append(f"HTTP {status}: {raw[:200]!r}")

    rss0 = server.rss_mib()
    with server.phase("create pods") as fig:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - t0
        fig["pods"] = f"{len(latencies) - len(errors)}/{args.pods}"
        fig["throughput"] = f"{len(latencies) / wall:.0f}/s"
        fig["concurrency"] = args.concurrency
        fig["latency p50"] = ms(pct(latencies, 0.5))
        fig["p99"] = ms(pct(latencies, 0.99))
        fig["body avg"] = f"{avg / 1024:.1f} KiB"
        fig["RSS growth"] = f"{(server.rss_mib() - rss0) * 1024 / max(1, len(latencies)):.0f} KiB/pod"
    server.summary["create pods"]["server_cpu_ms_per_pod"] = (
        1000 * server.summary["create pods"]["server_cpu_s"] / max(1, len(latencies))
    )
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")
    if len(latencies) < args.pods:
        raise TimeoutError(f"created only {len(latencies)} pods in {args.phase_timeout}s")
    return namespaces


async def settle(server: Server, client: Client, args: argparse.Namespace) -> None:
    """Wait until the simulated kubelet has started every pod (phase Running)."""
    with server.phase("kubelet settles") as fig:
        deadline = time.monotonic() + args.phase_timeout
        polls = 0
        while True:
            polls += 1
            doc = await client.json("GET", "/api/v1/pods?fieldSelector=status.phase%3DPending&limit=0")
            pending = len(doc["items"])
            if pending == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pending} pods still Pending after {args.phase_timeout}s")
            await asyncio.sleep(0.5)
        fig["pending left"] = 0
        fig["polls"] = polls


async def list_phase(server: Server, client: Client, args: argparse.Namespace, namespace: str) -> None:
    async def timed_list(path: str, reps: int) -> tuple[list[float], int]:
        walls, size = [], 0
        for _ in range(reps):
            t0 = time.perf_counter()
            status, raw = await client.request("GET", path, timeout=aiohttp.ClientTimeout(total=120))
            walls.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}: {raw[:300]!r}")
            size = len(raw)
        return walls, size

    async def count_items(path: str) -> int:
        """The number of items, without decoding a 230 MB list here (that takes the client seconds)."""
        doc = await client.json("GET", path + ("&" if "?" in path else "?") + "limit=1")
        return len(doc["items"]) + int(doc["metadata"].get("remainingItemCount") or 0)

    for label, path, reps in (
        ("LIST all pods", "/api/v1/pods", args.list_reps),
        ("LIST one namespace", f"/api/v1/namespaces/{namespace}/pods", args.list_reps),
        (
            "LIST label selector",
            "/api/v1/pods?labelSelector=hub.jupyter.org%2Fusername%3Duser-00042",
            args.list_reps * 4,
        ),
        (
            "LIST kubespawner sel",
            f"/api/v1/namespaces/{namespace}/pods?labelSelector="
            "component%3Dsingleuser-server%2Chub.jupyter.org%2Fusername%3Duser-00000",
            args.list_reps * 4,
        ),
    ):
        count = await count_items(path)
        with server.phase(label) as fig:
            walls, size = await timed_list(path, reps)
            fig["reps"] = reps
            fig["median"] = ms(statistics.median(walls))
            fig["max"] = ms(max(walls))
            fig["items"] = count
            fig["response"] = mib(size) if size > 2**20 else f"{size / 1024:.1f} KiB"
            if count:
                fig["per item"] = f"{size / count / 1024:.1f} KiB"
        server.summary[label]["server_cpu_ms_per_request"] = (
            1000 * server.summary[label]["server_cpu_s"] / reps
        )


async def watch_phase(
    server: Server, client: Client, args: argparse.Namespace, namespace: str, node: str
) -> None:
    """Write one object at a time; time from the write's response to its event on a namespace watch."""
    listing = await client.json("GET", f"/api/v1/namespaces/{namespace}/pods?limit=0")
    rv = listing["metadata"]["resourceVersion"]
    names = [p["metadata"]["name"] for p in listing["items"]]
    arrivals: dict[tuple[str, str], float] = {}
    waiting: dict[tuple[str, str], asyncio.Future[float]] = {}
    seen = {"events": 0, "other watches": 0}

    def on_event(event: dict[str, Any], arrived: float) -> None:
        seen["events"] += 1
        meta = event["object"]["metadata"]
        key = (meta.get("name", ""), meta.get("resourceVersion", ""))
        arrivals[key] = arrived
        fut = waiting.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(arrived)

    def count_other(event: dict[str, Any], arrived: float) -> None:
        seen["other watches"] += 1

    from_response: list[float] = []
    from_send: list[float] = []
    timeouts = 0
    bg = "allowWatchBookmarks=true&resourceVersion=" + rv
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(
            client.watch(f"/api/v1/namespaces/{namespace}/pods?watch=1&{bg}", on_event)
        )
        # what a hub has open beside it: a cluster-wide pod reflector and an event reflector
        await stack.enter_async_context(client.watch(f"/api/v1/pods?watch=1&{bg}", count_other))
        await stack.enter_async_context(
            client.watch(f"/api/v1/namespaces/{namespace}/events?watch=1&{bg}", count_other)
        )
        await asyncio.sleep(0.2)
        with server.phase("watch latency") as fig:
            loop = asyncio.get_running_loop()
            for i in range(args.watch_events):
                creating = i % 4 == 3
                t0 = time.perf_counter()
                if creating:
                    pod = notebook_pod(10**6 + i, namespace, f"watch-{i:04d}", node, gpu=False)
                    status, raw = await client.request(
                        "POST", f"/api/v1/namespaces/{namespace}/pods", orjson.dumps(pod)
                    )
                else:
                    patch = {"metadata": {"annotations": {"hybridhub.io/last-activity": f"{i}-{t0}"}}}
                    status, raw = await client.request(
                        "PATCH",
                        f"/api/v1/namespaces/{namespace}/pods/{names[i % len(names)]}",
                        orjson.dumps(patch),
                        ctype="application/strategic-merge-patch+json",
                    )
                t1 = time.perf_counter()
                if status not in (200, 201):
                    raise RuntimeError(f"write {i}: HTTP {status}: {raw[:300]!r}")
                meta = orjson.loads(raw)["metadata"]
                key = (meta["name"], meta["resourceVersion"])
                arrived = arrivals.get(key)
                if arrived is None:
                    fut: asyncio.Future[float] = loop.create_future()
                    waiting[key] = fut
                    try:
                        arrived = await asyncio.wait_for(fut, 5.0)
                    except TimeoutError:
                        timeouts += 1
                        continue
                from_response.append(arrived - t1)
                from_send.append(arrived - t0)
            if not from_response:
                raise RuntimeError("no watch event arrived")
            fig["events"] = f"{len(from_response)}/{args.watch_events} (1 in 4 a create)"
            fig["resp->event p50"] = ms(pct(from_response, 0.5))
            fig["p99"] = ms(pct(from_response, 0.99))
            fig["send->event p50"] = ms(pct(from_send, 0.5))
            fig["p99 "] = ms(pct(from_send, 0.99))
            fig["timeouts"] = timeouts
    server.summary["watch latency"]["from_response_ms"] = [round(x * 1000, 3) for x in sorted(from_response)]


async def idle_phase(server: Server, client: Client, args: argparse.Namespace, namespace: str) -> None:
    seen = [0]

    def count(event: dict[str, Any], arrived: float) -> None:
        seen[0] += 1

    rv = (await client.json("GET", "/api/v1/namespaces?limit=1"))["metadata"]["resourceVersion"]
    q = f"watch=1&allowWatchBookmarks=true&resourceVersion={rv}"
    paths = [
        f"/api/v1/pods?{q}",
        f"/api/v1/namespaces/{namespace}/pods?{q}",
        f"/api/v1/events?{q}",
        f"/api/v1/nodes?{q}",
    ]
    async with contextlib.AsyncExitStack() as stack:
        for path in paths:
            await stack.enter_async_context(client.watch(path, count))
        await asyncio.sleep(1.0)  # let the kubelet finish the pods the watch phase created
        with server.phase("idle, 4 watches") as fig:
            await asyncio.sleep(args.idle_seconds)
            fig["watches"] = len(paths)
            fig["events seen"] = seen[0]


# ---------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, workdir: Path) -> Server:
    config = workdir / "clusters.yaml"
    cluster_file(config, args.nodes, args.pod_start)
    t0 = time.perf_counter()
    # with --profile the server runs under bench/profiled.py: cProfile, and each collection timed
    wrapper = None
    if args.profile is not None:
        wrapper = [sys.executable, str(REPO / "bench" / "profiled.py"), "--out", str(args.profile), "--"]
    sim = SimProcess(workdir / "sim", config, startup_timeout=120, wrapper=wrapper)
    await asyncio.to_thread(sim.start)
    try:
        assert sim.proc is not None
        server = Server(psutil.Process(sim.proc.pid))
        startup = time.perf_counter() - t0
        server.rows.append(
            Row("start simcluster", startup, server.cpu(), server.rss_mib(), f"nodes {args.nodes}")
        )
        server.summary["start simcluster"] = {
            "wall_s": startup,
            "server_cpu_s": server.cpu(),
            "server_rss_mib": server.rss_mib(),
        }
        print(
            f"  simcluster up in {startup:.1f}s (pid {sim.proc.pid}), RSS {server.rss_mib():.0f} MiB",
            flush=True,
        )
        ssl_ctx = sim.ssl_context()
        token = token_from_kubeconfig(sim.kubeconfig, CLUSTER)
        connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=args.concurrency + 8)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            client = Client(session, sim.api_url(CLUSTER), {"Authorization": f"Bearer {token}"})
            nodes = (await client.json("GET", "/api/v1/nodes"))["items"]
            gpu_nodes = [
                n["metadata"]["name"] for n in nodes if "nvidia.com/gpu.present" in n["metadata"]["labels"]
            ]
            cpu_nodes = [n["metadata"]["name"] for n in nodes if n["metadata"]["name"] not in set(gpu_nodes)]
            namespaces = await create_pods(server, client, args, (gpu_nodes, cpu_nodes))
            await settle(server, client, args)
            await list_phase(server, client, args, namespaces[0])
            await watch_phase(server, client, args, namespaces[0], cpu_nodes[0])
            await idle_phase(server, client, args, namespaces[0])
            state = sim.admin(CLUSTER).state()
            server.summary["objects"] = state["objects"]
            server.summary["resourceVersion"] = state["resourceVersion"]
            server.summary["total_server_cpu_s"] = server.cpu()
        return server
    finally:
        await asyncio.to_thread(sim.stop)


def print_profile(out: Path) -> None:
    """The server's garbage collections and where its CPU went, from bench/profiled.py's files."""
    gc_file, stats_file = out / "gc.json", out / "profile.pstats"
    if not gc_file.exists() or not stats_file.exists():
        print(f"no profile in {out}: the server did not exit cleanly")
        return
    for generation, g in json.loads(gc_file.read_text()).items():
        print(
            f"garbage collections, generation {generation}: {g['collections']:.0f}, "
            f"{g['seconds']:.2f}s in total, longest {g['longest']:.3f}s"
        )
    print(f"server profile: {stats_file}; the functions with the most own time:")
    stats = pstats.Stats(str(stats_file), stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(12)


def print_table(server: Server, args: argparse.Namespace, argv: list[str], total: float) -> None:
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/simcluster_api.py", *argv])
    print()
    print("simcluster API benchmark")
    print(f"command:  {command}")
    print(f"date:     {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(
        f"machine:  {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"cluster:  1 cluster, {args.nodes} nodes ({max(1, args.nodes // 8)} with 8 GPUs), {args.pods} pods "
        f"in {args.namespaces} namespaces, pod_start {args.pod_start}s, client concurrency {args.concurrency}"
    )
    print()
    header = f"{'phase':<22} {'wall s':>8} {'srv CPU s':>9} {'srv CPU %':>9} {'RSS MiB':>8}  figures"
    print(header)
    print("-" * len(header))
    for r in server.rows:
        util = f"{100 * r.cpu / r.wall:.0f}" if r.wall > 0 and r.phase != "start simcluster" else "-"
        print(f"{r.phase:<22} {r.wall:>8.2f} {r.cpu:>9.2f} {util:>9} {r.rss:>8.0f}  {r.figures}")
    print("-" * len(header))
    per_pod = server.summary.get("create pods", {}).get("server_cpu_ms_per_pod")
    if per_pod is not None:
        print(f"server CPU per created pod (API + admission + kubelet start + its events): {per_pod:.2f} ms")
    if "objects" in server.summary:
        objects = ", ".join(f"{k} {v}" for k, v in sorted(server.summary["objects"].items()) if v)
        print(f"objects at the end: {objects}")
    print(f"server CPU total {server.summary['total_server_cpu_s']:.1f}s; benchmark wall {total:.1f}s")
    print("srv CPU % = server CPU seconds / phase wall seconds (100 = one core)")
    if args.profile is not None:
        print_profile(args.profile)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100 nodes and 3,000 pods (defaults below)")
    parser.add_argument("--nodes", type=int, help="nodes (default 1000; --quick 100)")
    parser.add_argument("--pods", type=int, help="pods (default 30000; --quick 3000)")
    parser.add_argument(
        "--namespaces", type=int, help="namespaces the pods are spread over (default 30; --quick 10)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="parallel creates (default %(default)s)")
    parser.add_argument("--list-reps", type=int, help="repetitions of each LIST (default 5; --quick 3)")
    parser.add_argument(
        "--watch-events", type=int, help="writes timed on the watch (default 200; --quick 100)"
    )
    parser.add_argument("--idle-seconds", type=float, help="idle phase length (default 5; --quick 2)")
    parser.add_argument("--pod-start", type=float, default=0.05, help="simulated pod start delay (s)")
    parser.add_argument("--phase-timeout", type=float, default=600, help="bound on each phase (s)")
    parser.add_argument("--timeout", type=float, help="bound on the whole run (s; default 1200; --quick 300)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the server under cProfile and time its garbage collections; the files go to this folder",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "nodes": (1000, 100),
        "pods": (30000, 3000),
        "namespaces": (30, 10),
        "list_reps": (5, 3),
        "watch_events": (200, 100),
        "idle_seconds": (5.0, 2.0),
        "timeout": (1200.0, 300.0),
    }
    for name, (full, small) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.namespaces = max(1, min(args.namespaces, args.pods))
    if args.nodes < 2 or args.pods < 4:
        parser.error("need at least 2 nodes and 4 pods")

    print(
        f"simcluster API benchmark: {args.nodes} nodes, {args.pods} pods (timeout {args.timeout:.0f}s)",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="simbench-") as tmp:
        try:
            server = asyncio.run(asyncio.wait_for(run(args, Path(tmp)), args.timeout))
        except TimeoutError:
            print(f"benchmark: did not finish within {args.timeout:.0f}s", file=sys.stderr)
            return 1
    total = time.perf_counter() - started
    print_table(server, args, argv, total)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, **server.summary}, indent=2, default=str
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
