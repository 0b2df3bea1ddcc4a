"""Calls to the hybridhub service through the harness hub's proxy."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tests.harness.hub import HubProcess

__all__ = ["call", "user_token", "wait_for_service"]


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
    deadline = time.monotonic() + timeout
    while True:
        status, body = call(hub, "GET", "api/capacity", hub.wiring.hub_token)
        if status in (200, 403) and isinstance(body, dict):
            synced = status == 403 or all(c["synced"] for c in body["clusters"])
            if synced:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service did not come up: {status} {body}\n{hub.log_text()[-3000:]}")
        time.sleep(0.3)


def user_token(hub: HubProcess, name: str) -> str:
    hub.create_user(name)
    return str(hub.api("POST", f"/users/{name}/tokens", {"note": "test"})["token"])
