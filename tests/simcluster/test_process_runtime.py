"""The process runtime: pods are real processes in their own namespaces, reached at their pod IPs."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.runtimes.process import can_use_namespaces
from simcluster.testing import SimProcess
from tests.environment import needs

SANDBOXES, WHY_NOT = can_use_namespaces()
# the loopback fallback, for machines without, is tested in test_loopback_runtime.py
pytestmark = needs(SANDBOXES, WHY_NOT)

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: {runtime}
    podCIDR: {cidr}
    timings: {{pod_start: 0.1}}
    nodeGroups:
      - name: gpu
        count: 2
        capacity: {{cpu: "16", memory: 64Gi}}
        gpu: {{count: 4, product: NVIDIA-L40S}}
"""
HTTP = ["python3", "-m", "http.server", "8888"]


def start(tmp: Path, runtime: str, cidr: str = "10.231.0.0/16") -> SimProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE.format(runtime=runtime, cidr=cidr))
    return SimProcess(tmp / "sim", config=tmp / "clusters.yaml").start()


@pytest.fixture(scope="module")
def psim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    proc = start(tmp_path_factory.mktemp("process"), "process")
    yield proc
    proc.stop()


def apply(sim: SimProcess, *objects: dict[str, Any]) -> None:
    sim.kubectl(
        "apply",
        "--validate=false",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "ignored:1", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [container], **spec},
    }


def jsonpath(sim: SimProcess, name: str, path: str) -> str:
    return sim.kubectl("get", "pod", name, "-o", f"jsonpath={path}").stdout


def wait_phase(sim: SimProcess, name: str, phase: str) -> None:
    sim.kubectl("wait", f"--for=jsonpath={{.status.phase}}={phase}", f"pod/{name}", "--timeout=30s")


def fetch(ip: str, port: int = 8888) -> str:
    deadline = time.monotonic() + 10
    while True:  # the server may need a moment after the pod turns Running
        try:
            with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=3) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_pods_answer_on_their_own_ips_on_the_same_port(psim: SimProcess) -> None:
    apply(psim, pod("web-a", HTTP, container={"workingDir": "/tmp"}), pod("web-b", HTTP))
    psim.kubectl("wait", "--for=condition=Ready", "pod/web-a", "pod/web-b", "--timeout=30s")
    ip_a, ip_b = jsonpath(psim, "web-a", "{.status.podIP}"), jsonpath(psim, "web-b", "{.status.podIP}")
    assert ip_a != ip_b and ip_a.startswith("10.231.")
    assert "Directory listing" in fetch(ip_a) and "Directory listing" in fetch(ip_b)
    # the request reached the pod from the host's gateway address, and it is in the pod's log
    assert "169.254.1.1" in psim.kubectl("logs", "web-a").stdout
    psim.kubectl("delete", "pod", "web-a", "web-b", "--timeout=30s")


def test_a_pvc_outlives_its_pod(psim: SimProcess) -> None:
    storage = {"requests": {"storage": "1Gi"}}
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "home"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": storage},
    }
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}]
    mounts = {"volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]}
    writer = pod(
        "writer",
        ["sh", "-c", "echo notebook-state > /home/jovyan/saved.txt"],
        restartPolicy="Never",
        volumes=volumes,
        container=mounts,
    )
    apply(psim, claim, writer)
    wait_phase(psim, "writer", "Succeeded")
    reader = pod(
        "reader", ["cat", "/home/jovyan/saved.txt"], restartPolicy="Never", volumes=volumes, container=mounts
    )
    apply(psim, reader)
    wait_phase(psim, "reader", "Succeeded")
    assert psim.kubectl("logs", "reader").stdout == "notebook-state\n"
    assert not Path("/home/jovyan/saved.txt").exists()  # the host never saw it
    psim.kubectl("delete", "pod", "writer", "reader", "--timeout=30s")


def test_secrets_configmaps_env_and_empty_dir(psim: SimProcess, tmp_path: Path) -> None:
    # mount points missing on this machine, named for this run: another simcluster may use its own
    creds, cfg, scratch = (f"{where}-{tmp_path.name}" for where in ("/etc/creds", "/etc/cfg", "/scratch"))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"token": "s3cret"},
    }
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"mode": "fast"}}
    script = (
        f"cat {creds}/token; echo; cat {cfg}/mode; echo; echo $MODE $POD_NAME $MY_IP; "
        f"touch {scratch}/x && echo scratch-ok"
    )
    spec = pod(
        "mounts",
        ["sh", "-c", script],
        restartPolicy="Never",
        volumes=[
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "scratch", "emptyDir": {}},
        ],
        container={
            "volumeMounts": [
                {"name": "creds", "mountPath": creds, "readOnly": True},
                {"name": "cfg", "mountPath": cfg},
                {"name": "scratch", "mountPath": scratch},
            ],
            "env": [
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
        },
    )
    apply(psim, secret, config, spec)
    wait_phase(psim, "mounts", "Succeeded")
    lines = psim.kubectl("logs", "mounts").stdout.splitlines()
    assert lines[:2] == ["s3cret", "fast"]
    assert lines[2].startswith("fast mounts 10.231.") and lines[3] == "scratch-ok"
    assert not Path(creds).exists() and not Path(scratch).exists()  # mount points removed
    psim.kubectl("delete", "pod", "mounts", "--timeout=30s")


def test_hosts_file_resolves_services_to_their_pods(psim: SimProcess) -> None:
    backend = pod("backend", HTTP)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "backend-svc"},
        "spec": {"selector": {"app": "backend"}, "ports": [{"port": 8888}]},
    }
    apply(psim, backend, service)
    psim.kubectl("wait", "--for=condition=Ready", "pod/backend", "--timeout=30s")
    client = pod(
        "client",
        [
            "sh",
            "-c",
            'getent hosts backend-svc; python3 -c "import urllib.request as u; '
            "print(u.urlopen('http://backend-svc:8888/').status)\"",
        ],
        restartPolicy="Never",
    )
    apply(psim, client)
    wait_phase(psim, "client", "Succeeded")
    log = psim.kubectl("logs", "client").stdout
    out = log.split()
    assert out and out[0] == jsonpath(psim, "backend", "{.status.podIP}") and out[-1] == "200", log
    psim.kubectl("delete", "pod", "backend", "client", "--timeout=30s")
    psim.kubectl("delete", "service", "backend-svc")


def test_logs_follow_and_exit_codes(psim: SimProcess) -> None:
    apply(
        psim,
        pod(
            "counter",
            ["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.3; done; exit 3"],
            restartPolicy="Never",
        ),
    )
    psim.kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/counter", "--timeout=30s")
    followed = psim.kubectl("logs", "-f", "counter", timeout=30).stdout
    assert followed.splitlines()[-3:] == ["line 1", "line 2", "line 3"]
    wait_phase(psim, "counter", "Failed")
    assert jsonpath(psim, "counter", "{.status.containerStatuses[0].state.terminated.exitCode}") == "3"
    psim.kubectl("delete", "pod", "counter", "--timeout=30s")


def test_restart_policy_always_restarts(psim: SimProcess) -> None:
    apply(psim, pod("crashy", ["sh", "-c", "echo started; exit 1"]))
    deadline = time.monotonic() + 20
    while int(jsonpath(psim, "crashy", "{.status.containerStatuses[0].restartCount}") or 0) < 2:
        assert time.monotonic() < deadline, "the container was not restarted"
        time.sleep(0.2)
    assert jsonpath(psim, "crashy", "{.status.phase}") == "Running"
    psim.kubectl("delete", "pod", "crashy", "--timeout=30s")


def test_deletion_kills_what_ignores_sigterm_after_the_grace_period(psim: SimProcess) -> None:
    apply(
        psim,
        pod(
            "stubborn",
            ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"],
            terminationGracePeriodSeconds=1,
        ),
    )
    psim.kubectl("wait", "--for=condition=Ready", "pod/stubborn", "--timeout=30s")
    started = time.monotonic()
    psim.kubectl("delete", "pod", "stubborn", "--timeout=30s")
    assert time.monotonic() - started < 10
    assert subprocess.run(["pgrep", "-f", "trap '' TERM"], capture_output=True).returncode == 1


def test_a_missing_command_is_reported(psim: SimProcess) -> None:
    apply(psim, pod("typo", ["no-such-command-xyz"], restartPolicy="Never"))
    wait_phase(psim, "typo", "Failed")
    waiting = json.loads(jsonpath(psim, "typo", "{.status.containerStatuses[0].state.waiting}"))
    assert waiting["reason"] == "RunContainerError" and "executable file not found" in waiting["message"]
    events = psim.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=typo,reason=Failed"
    ).stdout
    assert "no-such-command-xyz" in events
    psim.kubectl("delete", "pod", "typo", "--timeout=30s")


def _routes(prefix: str) -> dict[str, str]:
    """Pod IP -> host veth, for the routes of one simcluster's pod CIDR."""
    out = subprocess.run(["ip", "-o", "route"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0]: line.split()[2] for line in out.splitlines() if line.startswith(prefix)}


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def test_stopping_simcluster_leaves_nothing_behind(tmp_path: Path) -> None:
    proc = start(tmp_path, "process", cidr="10.232.0.0/16")
    apply(proc, pod("leftover-a", [*HTTP, "--bind", "0.0.0.0"]), pod("leftover-b", ["sleep", "31337"]))
    proc.kubectl("wait", "--for=condition=Ready", "pod/leftover-a", "pod/leftover-b", "--timeout=30s")
    veths = list(_routes("10.232.").values())
    assert len(veths) == 2 and all(_link_exists(v) for v in veths)
    assert proc.stop() == 0
    assert not any(_link_exists(v) for v in veths)
    assert _routes("10.232.") == {}
    assert subprocess.run(["pgrep", "-f", "sleep 31337"], capture_output=True).returncode == 1


def test_simcluster_killed_outright_leaks_no_pod(tmp_path: Path) -> None:
    proc = start(tmp_path, "process", cidr="10.233.0.0/16")
    apply(proc, pod("orphan", ["sleep", "31338"]))
    proc.kubectl("wait", "--for=condition=Ready", "pod/orphan", "--timeout=30s")
    assert proc.proc is not None
    proc.proc.kill()  # no cleanup runs: the kernel must take the pod down (PR_SET_PDEATHSIG)
    proc.proc.wait(10)
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", "sleep 31338"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the pod's processes outlived simcluster"
        time.sleep(0.1)
    assert _routes("10.233.") == {}


def _flag(tmp: Path, name: str) -> tuple[Path, str]:
    """A file on this machine a pod waits for: the test says when the pod may go on."""
    flag = tmp / name
    return flag, f"while [ ! -e {flag} ]; do sleep 0.05; done"


def test_a_mount_point_two_pods_share_stays_until_the_last_goes(psim: SimProcess, tmp_path: Path) -> None:
    target = Path(f"/sim-shared-{tmp_path.name}")  # missing on this machine: simcluster makes it
    flag, wait = _flag(tmp_path, "go")
    scratch = {"volumes": [{"name": "scratch", "emptyDir": {}}]}
    mounts = {"volumeMounts": [{"name": "scratch", "mountPath": str(target)}]}
    keeper = pod(
        "keeper",
        ["sh", "-c", f"echo mine > {target}/kept; {wait}; cat {target}/kept"],
        restartPolicy="Never",
        container=mounts,
        **scratch,
    )
    brief = pod("brief", ["true"], restartPolicy="Never", container=mounts, **scratch)
    apply(psim, keeper, brief)
    wait_phase(psim, "keeper", "Running")
    wait_phase(psim, "brief", "Succeeded")
    psim.kubectl("delete", "pod", "brief", "--timeout=30s")
    assert target.is_dir()  # the keeper still mounts on it
    flag.touch()
    wait_phase(psim, "keeper", "Succeeded")
    assert psim.kubectl("logs", "keeper").stdout == "mine\n"  # its emptyDir was not unmounted
    psim.kubectl("delete", "pod", "keeper", "--timeout=30s")
    assert not target.exists()  # the last pod took it with it


def test_relative_paths_stay_in_each_pod(psim: SimProcess, tmp_path: Path) -> None:
    flag, wait = _flag(tmp_path, "go")
    workdir = Path(f"/sim-workdir-{tmp_path.name}")  # missing here: the container's own directory
    script = f"echo $(POD) > out.txt; {wait}; cat out.txt; pwd"
    env = {"env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
    first = pod("rel-a", ["sh", "-c", script], restartPolicy="Never", container=env)
    second = pod("rel-b", ["sh", "-c", script], restartPolicy="Never", container=env)
    named = pod(
        "rel-c", ["sh", "-c", script], restartPolicy="Never", container={**env, "workingDir": str(workdir)}
    )
    apply(psim, first, second, named)
    for name in ("rel-a", "rel-b", "rel-c"):
        wait_phase(psim, name, "Running")
    assert workdir.is_dir() and not (workdir / "out.txt").exists()  # this machine sees an empty mount point
    flag.touch()
    logs = {}
    for name in ("rel-a", "rel-b", "rel-c"):
        wait_phase(psim, name, "Succeeded")
        logs[name] = psim.kubectl("logs", name).stdout.splitlines()
    assert [lines[0] for lines in logs.values()] == ["rel-a", "rel-b", "rel-c"]
    assert logs["rel-a"][1] != logs["rel-b"][1] and logs["rel-c"][1] == str(workdir)
    assert not Path("/out.txt").exists() and not Path.cwd().joinpath("out.txt").exists()
    psim.kubectl("delete", "pod", "rel-a", "rel-b", "rel-c", "--timeout=30s")
    assert not Path(logs["rel-a"][1]).exists() and not workdir.exists()  # gone with their pods


def test_host_paths_are_the_nodes_own_never_this_machines(psim: SimProcess, tmp_path: Path) -> None:
    probe = f"simcluster-probe-{tmp_path.name}"
    etc = pod(
        "hostpath-etc",
        [
            "sh",
            "-c",
            f"ls -A /host-etc | wc -l; echo x > /host-etc/{probe} && echo written; ln -s /etc /data/up",
        ],
        restartPolicy="Never",
        volumes=[
            {"name": "etc", "hostPath": {"path": "/etc", "type": "Directory"}},
            {"name": "data", "hostPath": {"path": "/../../srv/data", "type": "DirectoryOrCreate"}},
        ],
        container={
            "volumeMounts": [
                {"name": "etc", "mountPath": "/host-etc"},
                {"name": "data", "mountPath": "/data"},
            ]
        },
    )
    apply(psim, etc)
    wait_phase(psim, "hostpath-etc", "Succeeded")
    assert psim.kubectl("logs", "hostpath-etc").stdout.split() == ["0", "written"]  # empty, and not /etc
    assert not Path("/etc", probe).exists()
    # a symlink a pod left in its host path does not lead a later pod on the same node out of it
    node = jsonpath(psim, "hostpath-etc", "{.spec.nodeName}")
    escape = pod(
        "hostpath-up",
        ["cat", "/up/passwd"],
        restartPolicy="Never",
        nodeName=node,
        volumes=[{"name": "up", "hostPath": {"path": "/srv/data/up"}}],
        container={"volumeMounts": [{"name": "up", "mountPath": "/up"}]},
    )
    apply(psim, escape)
    wait_phase(psim, "hostpath-up", "Failed")
    events = psim.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=hostpath-up,reason=Failed"
    ).stdout
    assert "MountVolume.SetUp failed" in events and "leads outside" in events
    psim.kubectl("delete", "pod", "hostpath-etc", "hostpath-up", "--timeout=30s")
