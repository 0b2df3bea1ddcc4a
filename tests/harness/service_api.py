"""Calls to the hybridhub service through the harness hub's proxy."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.harness.hub import HubProcess
from tests.harness.waits import wait_for

__all__ = ["call", "cluster_health", "user_token", "wait_for_service"]


def call(hub: HubProcess, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{hub.public_url}/services/hybridhub/{path}",
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            ctype = resp.headers.get("Content-Type", "")
            return resp.status, json.loads(raw) if "json" in ctype else raw.decode()
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except json.JSONDecodeError:
            return err.code, raw.decode(errors="replace")


def wait_for_service(hub: HubProcess, timeout: float = 60.0) -> None:
    """Until the service answers and has synced every cluster's inventory (403: it answers, to a
    token without the capacity scope)."""

    def synced(answer: tuple[int, Any]) -> bool:
        status, body = answer
        if status == 403:
            return True
        return status == 200 and isinstance(body, dict) and all(c["synced"] for c in body["clusters"])

    wait_for(
        "the service to answer with every cluster synced",
        lambda: call(hub, "GET", "api/capacity", hub.wiring.hub_token),
        timeout,
        until=synced,
        every=0.3,
        explain=hub.log_tail,
    )


def cluster_health(hub: HubProcess, cluster: str) -> str:
    """What the service says of ``cluster`` now: healthy, degraded or down."""
    status, body = call(hub, "GET", "api/capacity", hub.wiring.hub_token)
    assert status == 200, body
    return str(next(c["health"] for c in body["clusters"] if c["name"] == cluster))


def user_token(hub: HubProcess, name: str) -> str:
    hub.create_user(name)
    return str(hub.api("POST", f"/users/{name}/tokens", {"note": "test"})["token"])
