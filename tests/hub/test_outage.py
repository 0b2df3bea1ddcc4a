"""A long on-prem outage: KubeSpawner's watches give up after about a minute of errors. The hub must
neither die nor keep a dead watch: once on-prem answers again, servers there are polled, stopped and
started as before."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.harness.service_api import cluster_health
from tests.harness.waits import wait_for
from tests.hub.conftest import run_service_hub

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def outage_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from run_service_hub(hsim, tmp_path_factory.mktemp("outage"), spawner=True)


def onprem_pod(sim: SimProcess, user: str) -> dict[str, object] | None:
    out = sim.kubectl("get", "pod", "-n", "jupyterhub", f"jupyter-{user}", "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def logged(hub: HubProcess, text: str) -> Callable[[], bool]:
    return lambda: text in hub.log_text()


def test_watches_that_gave_up_in_a_long_outage_are_started_again(
    outage_hub: HubProcess, hsim: SimProcess
) -> None:
    outage_hub.create_user("oda")
    outage_hub.start_server("oda", {"gpus": 0, "cluster": "onprem"})
    outage_hub.wait_ready("oda")
    admin = hsim.admin("onprem")
    admin.set_faults(down=True)
    try:
        # KubeSpawner's watches back off from 0.2 s, doubling, and give up past 30 s: about a minute
        gave_up = "Watching resources never recovered, giving up"
        wait_for(
            f"the hub's log to say {gave_up!r}",
            logged(outage_hub, gave_up),
            150,
            every=1,
            explain=outage_hub.log_tail,
        )
        assert outage_hub.user("oda")["servers"][""]["ready"]  # not forgotten, and the hub is up
    finally:
        admin.clear_faults()
    # back: the next poll (every 2 s) starts the pod watch again
    again = "watch on cluster onprem had given up; starting it again"
    wait_for(
        f"the hub's log to say {again!r}",
        logged(outage_hub, again),
        30,
        every=0.5,
        explain=outage_hub.log_tail,
    )
    # a stop waits for the pod to leave the watch's cache: with a dead watch it would wait out
    # start_timeout and then fail
    started = time.monotonic()
    outage_hub.stop_server("oda", timeout=30)
    assert time.monotonic() - started < 15
    assert onprem_pod(hsim, "oda") is None
    # a start pinned to on-prem is refused until the service counts on-prem as up again
    wait_for(
        "the service to count on-prem as up again",
        lambda: cluster_health(outage_hub, "onprem"),
        30,
        until=lambda state: state != "down",
        every=0.5,
        explain=outage_hub.log_tail,
    )
    outage_hub.start_server("oda", {"gpus": 0, "cluster": "onprem"})
    outage_hub.wait_ready("oda", timeout=60)
    outage_hub.stop_server("oda")
