"""The documented fallback without root: pods are plain processes at their own 127.x.y.z address."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

from simcluster.testing import SimProcess
from tests.environment import require

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: {runtime}
    timings: {{pod_start: 0.1}}
    nodeGroups:
      - {{name: cpu, count: 1, capacity: {{cpu: "8", memory: 16Gi}}}}
"""
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
SERVER = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "ignored:1",
                "command": ["python3", "-m", "http.server", "8888", "--bind", "$(POD_IP)"],
                "env": [POD_IP_ENV],
            }
        ]
    },
}


def serve_and_fetch(sim: SimProcess) -> str:
    sim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(SERVER))
    sim.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=30s")
    ip = sim.kubectl("get", "pod", "web", "-o", "jsonpath={.status.podIP}").stdout
    assert ip.startswith("127.100.")
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://{ip}:8888/", timeout=3) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_loopback_runtime_serves_on_the_pod_address(tmp_path: Path) -> None:
    (tmp_path / "clusters.yaml").write_text(CLUSTER_FILE.format(runtime="process-loopback"))
    with SimProcess(tmp_path / "sim", config=tmp_path / "clusters.yaml") as sim:
        assert sim.endpoints["clusters"]["onprem"]["runtime"] == "process-loopback"
        assert "Directory listing" in serve_and_fetch(sim)
        sim.kubectl("delete", "pod", "web", "--timeout=30s")


def test_process_runtime_without_root_falls_back_and_says_so(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        require(shutil.which("setpriv"), "setpriv (util-linux) is needed to drop root for this test")
        wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        work = Path("/tmp") / f"hybridhub-nonroot-{os.getpid()}"
        for directory in (work, work / "sim"):  # both written by the unprivileged simcluster
            directory.mkdir(mode=0o777, exist_ok=True)
            directory.chmod(0o777)
    else:
        wrapper, work = [], tmp_path
    try:
        (work / "clusters.yaml").write_text(CLUSTER_FILE.format(runtime="process"))
        (work / "clusters.yaml").chmod(0o644)
        with SimProcess(work / "sim", config=work / "clusters.yaml", wrapper=wrapper) as sim:
            assert sim.endpoints["clusters"]["onprem"]["runtime"] == "process-loopback"
            assert "needs root" in sim.log_text() and "process-loopback fallback" in sim.log_text()
            assert "Directory listing" in serve_and_fetch(sim)
    finally:
        if work != tmp_path:
            shutil.rmtree(work, ignore_errors=True)
