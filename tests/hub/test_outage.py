"""A long on-prem outage: KubeSpawner's watches give up after about a minute of errors. The hub must
neither die nor keep a dead watch: once on-prem answers again, servers there are polled, stopped and
started as before."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.harness.service_api import call
from tests.hub.conftest import run_service_hub

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def outage_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from run_service_hub(hsim, tmp_path_factory.mktemp("outage"), spawner=True)


def onprem_pod(sim: SimProcess, user: str) -> dict[str, object] | None:
    out = sim.kubectl("get", "pod", "-n", "jupyterhub", f"jupyter-{user}", "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def onprem_health(hub: HubProcess, token: str) -> str:
    status, body = call(hub, "GET", "api/capacity", token)
    assert status == 200, body
    return str(next(c["health"] for c in body["clusters"] if c["name"] == "onprem"))


def test_watches_that_gave_up_in_a_long_outage_are_started_again(
    outage_hub: HubProcess, hsim: SimProcess
) -> None:
    outage_hub.create_user("oda")
    outage_hub.start_server("oda", {"gpus": 0, "cluster": "onprem"})
    outage_hub.wait_ready("oda")
    admin = hsim.admin("onprem")
    admin.set_faults(down=True)
    try:
        deadline = time.monotonic() + 150
        while "Watching resources never recovered, giving up" not in outage_hub.log_text():
            assert time.monotonic() < deadline, outage_hub.log_text()[-3000:]
            time.sleep(1)
        assert outage_hub.user("oda")["servers"][""]["ready"]  # not forgotten, and the hub is up
    finally:
        admin.clear_faults()
    # back: the next poll (every 2 s) starts the pod watch again
    deadline = time.monotonic() + 30
    while "watch on cluster onprem had given up; starting it again" not in outage_hub.log_text():
        assert time.monotonic() < deadline, outage_hub.log_text()[-3000:]
        time.sleep(0.5)
    # a stop waits for the pod to leave the watch's cache: with a dead watch it would wait out
    # start_timeout and then fail
    started = time.monotonic()
    outage_hub.stop_server("oda", timeout=30)
    assert time.monotonic() - started < 15
    assert onprem_pod(hsim, "oda") is None
    # a start pinned to on-prem is refused until the service counts on-prem as up again
    token = outage_hub.wiring.hub_token
    deadline = time.monotonic() + 30
    while onprem_health(outage_hub, token) == "down":
        assert time.monotonic() < deadline, "on-prem never came back in the service's eyes"
        time.sleep(0.5)
    outage_hub.start_server("oda", {"gpus": 0, "cluster": "onprem"})
    outage_hub.wait_ready("oda", timeout=60)
    outage_hub.stop_server("oda")
