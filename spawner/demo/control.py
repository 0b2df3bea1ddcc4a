"""HTTP to a running demo: the hub's REST API, the hybridhub service, simcluster's admin and Kubernetes APIs.

The demo's commands are short-lived programs, not event loops, so plain blocking calls are right here;
each one has a timeout.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .plan import ServerRow
from .state import DemoError, DemoState

__all__ = [
    "capacity",
    "clear_faults",
    "create_namespace",
    "hub_answers",
    "kill_pods",
    "read_endpoints",
    "servers",
    "set_faults",
    "wait_for",
]

TIMEOUT = 10.0  # seconds for any one request


def _request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    context: ssl.SSLContext | None = None,
    timeout: float = TIMEOUT,
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json"})
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _message(err: urllib.error.HTTPError) -> str:
    """The ``message`` of a JSON error body, or the HTTP reason."""
    try:
        return str(json.loads(err.read()).get("message") or err.reason)
    except (ValueError, AttributeError):
        return str(err.reason)


def wait_for(check: Callable[[], bool], timeout: float, what: str, *, alive: Callable[[], bool]) -> None:
    """Call ``check`` with growing pauses until it is true; DemoError after ``timeout`` seconds or once
    ``alive`` says the process it waits on has ended."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    while not check():
        if not alive():
            raise DemoError(f"{what}: the process ended")
        if time.monotonic() > deadline:
            raise DemoError(f"{what}: not within {timeout:g} s")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)


def hub_answers(url: str) -> bool:
    """Whether the hub answers through the proxy (its API's root needs no token)."""
    try:
        _request("GET", urllib.parse.urljoin(url, "hub/api/"), timeout=2.0)
        return True
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------ simcluster


def read_endpoints(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise DemoError(f"cannot read simcluster's endpoints file {path}: {exc}") from None


def _admin(endpoints: Mapping[str, Any], cluster: str) -> tuple[str, dict[str, str], ssl.SSLContext]:
    if cluster not in endpoints.get("clusters", {}):
        raise DemoError(
            f"no cluster {cluster!r}; the clusters are {', '.join(endpoints.get('clusters', {}))}"
        )
    return (
        str(endpoints["clusters"][cluster]["admin"]),
        {"Authorization": f"Bearer {endpoints['admin_token']}"},
        ssl.create_default_context(cafile=str(endpoints["ca_file"])),
    )


def _admin_call(endpoints: Mapping[str, Any], cluster: str, method: str, path: str, body: Any = None) -> Any:
    url, headers, context = _admin(endpoints, cluster)
    try:
        return _request(method, url + path, headers=headers, body=body, context=context)
    except urllib.error.HTTPError as err:
        raise DemoError(f"simcluster refused: {_message(err)}") from None
    except OSError as exc:
        raise DemoError(
            f"simcluster's admin API did not answer ({exc}): is the demo still running?"
        ) from None


def set_faults(endpoints: Mapping[str, Any], cluster: str, faults: Mapping[str, Any]) -> dict[str, Any]:
    return dict(_admin_call(endpoints, cluster, "POST", "/faults", dict(faults)))


def clear_faults(endpoints: Mapping[str, Any], cluster: str) -> dict[str, Any]:
    return dict(_admin_call(endpoints, cluster, "DELETE", "/faults"))


def kill_pods(endpoints: Mapping[str, Any], cluster: str) -> int:
    return int(_admin_call(endpoints, cluster, "POST", "/pods/kill")["killed"])


def _cluster_token(kubeconfig: Mapping[str, Any], context: str) -> str:
    """The context's bearer token: a static one, or what its exec credential plugin prints."""
    ctx = next(c["context"] for c in kubeconfig["contexts"] if c["name"] == context)
    user = next(u["user"] for u in kubeconfig["users"] if u["name"] == ctx["user"])
    if "token" in user:
        return str(user["token"])
    plugin = user["exec"]
    out = subprocess.run(
        [plugin["command"], *plugin.get("args", [])], capture_output=True, check=True, timeout=TIMEOUT
    )
    return str(json.loads(out.stdout)["status"]["token"])


def create_namespace(kubeconfig: Path, endpoints: Mapping[str, Any], cluster: str, namespace: str) -> None:
    """Make ``namespace`` in ``cluster`` (a deployment's manifests do this); one that exists is fine."""
    config = yaml.safe_load(kubeconfig.read_text())
    try:
        token = _cluster_token(config, cluster)
    except (subprocess.SubprocessError, OSError, ValueError, KeyError, StopIteration) as exc:
        raise DemoError(f"no token for cluster {cluster} from {kubeconfig}: {exc}") from None
    context = ssl.create_default_context(cafile=str(endpoints["ca_file"]))
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    try:
        _request(
            "POST",
            f"{endpoints['clusters'][cluster]['api']}/api/v1/namespaces",
            headers={"Authorization": f"Bearer {token}"},
            body=body,
            context=context,
        )
    except urllib.error.HTTPError as err:
        if err.code != 409:  # 409: it exists
            raise DemoError(f"cluster {cluster} refused namespace {namespace}: {_message(err)}") from None


# ------------------------------------------------------------------ the hub and the service


def _hub(state: DemoState, path: str) -> Any:
    return _request(
        "GET", urllib.parse.urljoin(state.url, path), headers={"Authorization": f"token {state.token}"}
    )


def capacity(state: DemoState) -> dict[str, Any] | None:
    """The service's api/capacity, or None when it does not answer."""
    try:
        return dict(_hub(state, "services/hybridhub/api/capacity"))
    except (OSError, ValueError):
        return None


def wait_healthy(state: DemoState, cluster: str, timeout: float) -> str:
    """Wait up to ``timeout`` seconds for the service to call ``cluster`` HEALTHY; say how it went."""
    started = time.monotonic()
    seen = "the service did not answer"
    while True:
        rows = {c.get("name"): c for c in (capacity(state) or {}).get("clusters", [])}
        row = rows.get(cluster)
        if row is not None:
            if row.get("health") == "healthy":
                return f"the service calls {cluster} healthy after {time.monotonic() - started:.1f} s"
            seen = f"{row.get('health')}" + (f" ({row['reason']})" if row.get("reason") else "")
        if time.monotonic() - started >= timeout:
            return f"the service does not call {cluster} healthy after {timeout:g} s: it is {seen}"
        time.sleep(0.25)


def servers(state: DemoState) -> list[ServerRow]:
    """Every server the hub knows, with the cluster and node the service sees its pod on."""
    try:
        users = _hub(state, "hub/api/users")
    except (OSError, ValueError) as exc:
        raise DemoError(
            f"the hub did not answer at {state.url} ({exc}): is the demo still running?"
        ) from None
    rows = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            pending = server.get("pending")
            status = "ready" if server.get("ready") else f"pending {pending}" if pending else "not ready"
            cluster = node = ""
            try:
                path = f"services/hybridhub/api/servers/{urllib.parse.quote(user['name'])}"
                where = _hub(state, f"{path}/{urllib.parse.quote(name)}" if name else path)
                cluster, node = str(where.get("cluster", "")), str(where.get("node") or "")
            except (OSError, ValueError):
                pass  # no pod seen (not made yet, or its cluster cannot be reached)
            rows.append(ServerRow(user["name"], name, status, cluster, node))
    return rows
