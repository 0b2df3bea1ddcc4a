"""On-prem out of reach, from the hub's side (a real hub, the service, two simclusters): the site link
down while the site runs on, with JupyterHub's idle culler running as z2jh runs it, and the whole site
gone dark. Nothing stops or forgets an on-prem server the hub cannot reach; a stop asked meanwhile
ends in bounded time and leaves no pod once on-prem answers; spawns go to EKS, and on-prem again after."""

from __future__ import annotations

import http.cookiejar
import importlib.util
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simcluster.testing import SimProcess
from tests.environment import needs
from tests.harness.hub import HubProcess
from tests.harness.service_api import cluster_health
from tests.harness.waits import wait_for
from tests.hub.conftest import run_service_hub
from tests.hub.test_hybrid_spawner import pod_of

pytestmark = [
    pytest.mark.timeout(300),
    needs(os.geteuid() == 0 and shutil.which("nft"), "hanging pod addresses needs root and nft (nftables)"),
    needs(importlib.util.find_spec("jupyterhub_idle_culler"), "no jupyterhub-idle-culler (test extra)"),
]

EKS = {"gpus": 0, "cluster": "eks"}
ONPREM = {"gpus": 0, "cluster": "onprem"}
AUTO = {"gpus": 0}  # placed on-prem first while on-prem is healthy

# The idle culler as z2jh runs it (a managed service with the scopes z2jh gives it), with short
# intervals: a server idle for CULL_TIMEOUT seconds is stopped, checked every CULL_EVERY seconds. The
# hub takes up to about 22 s here to see that a link hung (two of its pod watch's 10 s rounds, then a
# poll): the timeout leaves room for that on a loaded machine.
CULL_TIMEOUT = 40
CULL_EVERY = 2
CULLER = f"""
c.JupyterHub.services.append({{
    "name": "jupyterhub-idle-culler",
    "command": [{sys.executable!r}, "-m", "jupyterhub_idle_culler",
                "--timeout={CULL_TIMEOUT}", "--cull-every={CULL_EVERY}", "--concurrency=10",
                # each round says what it left alone, so that a test can wait for a round
                "--IdleCuller.log_level=DEBUG"],
}})
c.JupyterHub.load_roles.append({{
    "name": "jupyterhub-idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["jupyterhub-idle-culler"],
}})
# the proxy's record of requests reaches the hub every 2 s (300 s by default)
c.JupyterHub.last_activity_interval = 2
"""


@pytest.fixture(scope="module")
def outage_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub with HybridSpawner, the service and the idle culler."""
    yield from run_service_hub(hsim, tmp_path_factory.mktemp("site"), spawner=True, extra_config=CULLER)


def server(hub: HubProcess, user: str) -> dict[str, Any] | None:
    """``user``'s default server as the REST API shows it; None once the hub has none."""
    found: dict[str, Any] | None = hub.user(user).get("servers", {}).get("")
    return found


def last_activity(hub: HubProcess, user: str) -> datetime:
    stamp = (server(hub, user) or {}).get("last_activity") or "1970-01-01T00:00:00Z"
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def work_in(hub: HubProcess, user: str) -> None:
    """A request to ``user``'s notebook through the proxy, and the hub having recorded it as activity."""
    asked = datetime.now(UTC) - timedelta(seconds=1)  # the proxy stamps milliseconds, the hub keeps them
    assert hub.proxy_get(f"/user/{user}/api", timeout=10)[0] == 200
    wait_for(
        f"the hub to record {user}'s activity",
        lambda: last_activity(hub, user) >= asked,
        30,
        every=0.3,
        explain=hub.log_tail,
    )


def home_page(hub: HubProcess, user: str) -> tuple[int, str, float]:
    """``user``'s /hub/home as their browser gets it after logging in: status, page, seconds it took.
    (The login goes to the home page, not on to the user's server, which may not answer.)"""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{hub.public_url}/hub/login", timeout=30).read()
    xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
    form = urllib.parse.urlencode({"username": user, "password": "x", "_xsrf": xsrf}).encode()
    started = time.monotonic()
    try:
        with opener.open(f"{hub.public_url}/hub/login?next=%2Fhub%2Fhome", data=form, timeout=30) as resp:
            status, page = resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        status, page = err.code, err.read().decode(errors="replace")
    return status, page, time.monotonic() - started


def answers(hub: HubProcess, user: str) -> bool:
    """Whether ``user``'s server answers through the proxy within 5 s."""
    try:
        return hub.proxy_get(f"/user/{user}/api", timeout=5)[0] == 200
    except OSError:  # a read that timed out
        return False


def assert_kept(hub: HubProcess, user: str) -> None:
    """The hub still has ``user``'s server, ready and not stopping, and their home page shows it."""
    model = server(hub, user)
    assert model is not None and model["ready"] and not model["pending"], (model, hub.log_tail())
    status, page, took = home_page(hub, user)
    assert status == 200 and "Stop My Server" in page, (status, page[-2000:])
    assert took < 5.0, took


def stop_seconds(hub: HubProcess, user: str) -> float:
    """Seconds from asking to stop ``user``'s server to the hub having none (JupyterHub answers the
    DELETE after at most slow_stop_timeout, 10 s, and goes on stopping in the background)."""
    started = time.monotonic()
    hub.api("DELETE", f"/users/{user}/server")
    wait_for(f"{user}'s server to be stopped", lambda: server(hub, user) is None, 120, explain=hub.log_tail)
    return time.monotonic() - started


def culler_rounds(hub: HubProcess, user: str) -> int:
    """How many times the culler has judged ``user``'s server (it says so at debug level)."""
    text = hub.log_text()
    return text.count(f"Not culling server {user} ") + text.count(f"Culling server {user} ")


def uid(pod: dict[str, Any] | None) -> str | None:
    return None if pod is None else str(pod["metadata"]["uid"])


def test_the_link_down_while_the_site_runs_on(outage_hub: HubProcess, hsim: SimProcess) -> None:
    hub = outage_hub
    for user in ("hana", "lea", "ida"):
        hub.create_user(user)
    hub.start_server("hana", ONPREM)
    hub.start_server("lea", ONPREM)
    hub.start_server("ida", EKS)
    for user in ("hana", "lea", "ida"):
        hub.wait_ready(user)
    hana_pod = uid(pod_of(hsim, "hana", "onprem"))
    # hana works in her notebook, then ida in hers, just before the link goes down. From here on, the
    # culler stops ida's server (reachable and idle) after CULL_TIMEOUT; hana's server, recorded as
    # idle since before ida's, it must not stop: the hub cannot know what happens in it.
    work_in(hub, "hana")
    work_in(hub, "ida")
    admin = hsim.admin("onprem")
    admin.set_faults(hung=True)
    hung_at = time.monotonic()
    try:
        lea_stop = stop_seconds(hub, "lea")  # lea stops hers while the link is down
        wait_for(
            "the idle culler to stop ida's server (idle, on EKS)",
            lambda: server(hub, "ida") is None,
            CULL_TIMEOUT + 6 * CULL_EVERY,
            explain=hub.log_tail,
        )
        # the culler's round that stopped ida's server saw hana's older activity too; a round later
        # it still has not stopped hana's, and neither have the hub's polls nor the service's sweep
        seen = culler_rounds(hub, "hana")
        wait_for(
            "two more rounds of the culler over hana's server",
            lambda: culler_rounds(hub, "hana"),
            2 * CULL_EVERY + 10,
            until=lambda n: n >= seen + 2,
            every=0.5,
            explain=hub.log_tail,
        )
        assert "Culling server hana" not in hub.log_text(), hub.log_tail()
        assert_kept(hub, "hana")
        hung_for = time.monotonic() - hung_at
    finally:
        admin.clear_faults()
    back = time.monotonic()
    wait_for(
        "hana's server to answer again",
        lambda: answers(hub, "hana"),
        60,
        every=0.5,
        explain=hub.log_tail,
    )
    answers_after = time.monotonic() - back
    assert uid(pod_of(hsim, "hana", "onprem")) == hana_pod  # the very pod: never deleted, never remade
    wait_for(
        "no pod of lea's stopped server on on-prem",
        lambda: pod_of(hsim, "lea", "onprem") is None,
        60,
        every=0.5,
        explain=hub.log_tail,
    )
    lea_gone = time.monotonic() - back
    print(
        f"link down {hung_for:.0f} s (culler: timeout {CULL_TIMEOUT} s, every {CULL_EVERY} s; sweep: 1 s): "
        f"hana's on-prem server kept, answered {answers_after:.1f} s after the link returned; lea's stop "
        f"took {lea_stop:.1f} s, her pod was gone {lea_gone:.1f} s after the link returned"
    )
    assert answers_after < 10.0, hub.log_tail()
    assert lea_stop < 10.0, hub.log_tail()  # no 30 s of retried deletes toward a cluster that is gone
    assert server(hub, "hana") is not None
    hub.stop_server("hana")  # on-prem answers again: stopped there, not left to the sweep
    assert "hana: onprem does not answer" not in hub.log_text(), hub.log_tail()


def test_a_whole_site_outage(outage_hub: HubProcess, hsim: SimProcess) -> None:
    hub = outage_hub
    for user in ("sam", "emma", "nora", "olga"):
        hub.create_user(user)
    hub.start_server("sam", ONPREM)
    hub.start_server("emma", EKS)
    hub.wait_ready("sam")
    hub.wait_ready("emma")
    work_in(hub, "sam")  # the culler (CULL_TIMEOUT) must not take the hub's blindness for idleness
    admin = hsim.admin("onprem")
    admin.set_faults(hung=True)
    assert admin.kill_pods() >= 1  # sam's server is gone with the power; the hub cannot see it
    try:
        wait_for(
            "the service to call on-prem down",
            lambda: cluster_health(hub, "onprem"),
            30,
            until=lambda state: state == "down",
            every=0.5,
            explain=hub.log_tail,
        )
        # a new spawn goes to EKS, and the user reads why
        started = time.monotonic()
        events = hub.start_and_follow("nora", AUTO)
        hub.wait_ready("nora")
        nora_spawn = time.monotonic() - started
        assert pod_of(hsim, "nora", "eks") is not None, hub.log_tail()
        messages = [e.get("message", "") for e in events]
        assert any("onprem is down" in m and "eks" in m for m in messages), messages
        # EKS servers work on
        assert hub.proxy_get("/user/emma/api", timeout=10)[0] == 200
        assert hub.proxy_get("/user/nora/api", timeout=10)[0] == 200
        # sam's server is not forgotten while the hub cannot see it; stopping it ends in bounded time
        assert_kept(hub, "sam")
        sam_stop = stop_seconds(hub, "sam")
        assert cluster_health(hub, "eks") == "healthy"
    finally:
        admin.clear_faults()
    wait_for(
        "the service to call on-prem healthy again",
        lambda: cluster_health(hub, "onprem"),
        30,
        until=lambda state: state == "healthy",
        every=0.3,
        explain=hub.log_tail,
    )
    assert pod_of(hsim, "sam", "onprem") is None
    started = time.monotonic()
    hub.start_server("olga", AUTO)
    hub.wait_ready("olga", timeout=60)
    olga_spawn = time.monotonic() - started
    assert pod_of(hsim, "olga", "onprem") is not None, hub.log_tail()
    print(
        f"site down: a spawn landed on EKS in {nora_spawn:.1f} s, sam's stop took {sam_stop:.1f} s; "
        f"after recovery a spawn landed on-prem in {olga_spawn:.1f} s"
    )
    assert sam_stop < 10.0, hub.log_tail()
    assert "Culling server sam" not in hub.log_text()
    hub.stop_all_servers()
