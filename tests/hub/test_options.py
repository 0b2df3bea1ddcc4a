"""Bad options in a real hub: a short 400, the refusal logged as one line without a traceback, and the
options saved before still the user's defaults (the next spawn and the spawn form start from them)."""

from __future__ import annotations

import json
import urllib.error

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.hub.test_hybrid_spawner import pod_of

pytestmark = pytest.mark.hubcompat  # runs again on JupyterHub 6 + KubeSpawner 7.1 (make pytest-hub6)

HUGE = "x" * 100_000
BEFORE = {"gpus": 0, "cluster": "onprem"}


def refused(hub: HubProcess, user: str, options: dict[str, object]) -> str:
    """Start ``user``'s server with ``options``, which must be refused with a 400: its message."""
    with pytest.raises(urllib.error.HTTPError) as err:
        hub.start_server(user, options)
    assert err.value.code == 400
    return str(json.loads(err.value.read())["message"])


def test_a_huge_option_is_refused_briefly_and_the_options_before_stay(
    hybrid_hub: HubProcess, hsim: SimProcess
) -> None:
    hybrid_hub.create_user("olga")
    hybrid_hub.start_server("olga", BEFORE)  # saved by JupyterHub as olga's future defaults
    hybrid_hub.wait_ready("olga")
    hybrid_hub.stop_server("olga")

    log_before = len(hybrid_hub.log_text())
    message = refused(hybrid_hub, "olga", {"gpus": 0, "cluster": HUGE})
    assert message.startswith(f"Unknown cluster {'x' * 40!r}… (100,000 characters)"), message[:300]
    assert len(message) < 250
    message = refused(hybrid_hub, "olga", {HUGE: 1})
    assert len(message) < 250 and "(100,000 characters)" in message, message[:300]
    log = hybrid_hub.log_text()[log_before:]
    print(f"hub log for two refused spawns: {len(log)} characters")
    assert "Traceback" not in log, log[:3000]
    assert "x" * 100 not in log  # the value appears nowhere whole, shortened everywhere
    assert len(log) < 8_000, log[:3000]
    assert log.count("olga: spawn refused for its options: Unknown cluster 'xxxx") == 1, log[:3000]

    # the spawn form starts from the options saved before, not the refused ones
    session = hybrid_hub.login("olga")
    with session.open(f"{hybrid_hub.public_url}/hub/spawn", timeout=30) as resp:
        form = resp.read().decode()
    assert '<option value="onprem"' in form and 'value="onprem" data-max-gpus' in form
    selected = [line for line in form.splitlines() if " selected" in line and "<option" in line]
    assert any('value="onprem"' in line for line in selected), selected

    # and so does a spawn that names no options: JupyterHub uses the saved ones
    hybrid_hub.api("POST", "/users/olga/server")
    server = hybrid_hub.wait_ready("olga")
    try:
        assert server["user_options"] == BEFORE
        assert pod_of(hsim, "olga", "onprem") is not None
    finally:
        hybrid_hub.stop_server("olga")
