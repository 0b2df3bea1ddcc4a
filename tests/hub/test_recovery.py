"""After a short on-prem outage: the first on-prem spawn takes about as long as a healthy one. The hub's
on-prem watches back off while on-prem is down, up to 25.6 s between tries; a spawn or poll there
starts a waiting watch again as soon as on-prem answers, instead of waiting out that pause."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.harness.service_api import cluster_health
from tests.harness.waits import wait_for
from tests.hub.conftest import run_service_hub
from tests.hub.test_hybrid_spawner import pod_of

pytestmark = pytest.mark.timeout(300)

ONPREM = {"gpus": 0, "cluster": "onprem"}
# KubeSpawner's reflectors retry 0.2, 0.4, ... 12.8, 25.6 s apart, then give up; this is the longest pause
LONGEST_PAUSE = "Error when watching resources, retrying in 25.6s"
RESTARTED = "was waiting to retry; the cluster answers: starting it again"


@pytest.fixture(scope="module")
def recovery_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from run_service_hub(hsim, tmp_path_factory.mktemp("recovery"), spawner=True)


def spawn_seconds(hub: HubProcess, user: str) -> float:
    """Seconds from asking for ``user``'s on-prem server to the hub calling it ready."""
    started = time.monotonic()
    hub.start_server(user, ONPREM)
    hub.wait_ready(user, timeout=60)
    return time.monotonic() - started


def test_the_first_on_prem_spawn_after_an_outage_takes_about_as_long_as_a_healthy_one(
    recovery_hub: HubProcess, hsim: SimProcess
) -> None:
    hub = recovery_hub
    for user in ("rita", "ron"):
        hub.create_user(user)
    hub.start_server("rita", ONPREM)  # a server there: the hub polls it (every 2 s here) throughout
    hub.wait_ready("rita")
    healthy = spawn_seconds(hub, "ron")
    hub.stop_server("ron")

    admin = hsim.admin("onprem")
    admin.set_faults(down=True)
    try:
        wait_for(
            f"a watch of the hub to say {LONGEST_PAUSE!r}",
            lambda: LONGEST_PAUSE in hub.log_text(),
            60,
            every=0.5,
            explain=hub.log_tail,
        )
    finally:
        admin.clear_faults()
    back = time.monotonic()
    assert RESTARTED not in hub.log_text()  # while on-prem was down, nothing was started again
    wait_for(  # a start pinned to on-prem is refused until the service counts on-prem as up
        "the service to count on-prem as up again",
        lambda: cluster_health(hub, "onprem"),
        30,
        until=lambda state: state != "down",
        every=0.3,
        explain=hub.log_tail,
    )
    after = spawn_seconds(hub, "ron")
    restarts = hub.log_text().count(RESTARTED)
    print(
        f"on-prem spawn: {healthy:.1f} s healthy, {after:.1f} s first after the outage "
        f"({time.monotonic() - back:.1f} s after on-prem answered again); watches started again: {restarts}"
    )
    assert pod_of(hsim, "ron", "onprem") is not None
    # without the restart, the pod watch would still wait out its 25.6 s pause here
    assert after < max(5.0, 2 * healthy), hub.log_tail()
    assert 1 <= restarts <= 2  # the pod and the event watch, each once: no restart storm
    hub.stop_server("ron")
    hub.stop_server("rita")
