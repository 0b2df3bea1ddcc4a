"""Hang a simcluster's API with a pod creation and a deletion that its API server carries out during the hang.

No request can reach a hung API, so the two requests are sent just before: under simcluster's
``latency`` fault the API server holds each request for a moment before carrying it out, and the
link hangs while they wait. The request log proves the order: both requests had arrived and neither
had been answered when the hang began, and both were answered while it lasted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client

from simcluster.testing import AdminClient

__all__ = ["Changes", "hang_with_changes"]


@dataclass
class Changes:
    """The two requests; their answers are held until the link returns."""

    created: asyncio.Task[Any]  # create_namespaced_pod
    deleted: asyncio.Task[Any]  # delete_namespaced_pod
    hung_at: float  # time.monotonic() when the hang began

    async def answered(self, within: float = 30.0) -> None:
        """Wait for both answers after the link is back (held data comes at the next retransmission)."""
        async with asyncio.timeout(within):
            await asyncio.gather(self.created, self.deleted)


async def _log(admin: AdminClient, since: int) -> list[dict[str, Any]]:
    return await asyncio.to_thread(admin.requests, since)


async def hang_with_changes(
    admin: AdminClient,
    v1: client.CoreV1Api,
    namespace: str,
    create: dict[str, Any],
    delete: str,
    *,
    latency: float = 0.5,
) -> Changes:
    """Create pod ``create`` and delete pod ``delete`` in ``namespace`` while the API hangs (API part
    only: no root needed). Returns once the API server has carried out both, during the hang."""
    since = await asyncio.to_thread(admin.last_request)
    await asyncio.to_thread(admin.set_faults, latency=latency)
    created = asyncio.create_task(v1.create_namespaced_pod(namespace, create, _request_timeout=60))
    deleted = asyncio.create_task(
        v1.delete_namespaced_pod(delete, namespace, grace_period_seconds=0, _request_timeout=60)
    )
    pods = f"/api/v1/namespaces/{namespace}/pods"

    def ours(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            r for r in log if (r["method"], r["path"]) in {("POST", pods), ("DELETE", f"{pods}/{delete}")}
        ]

    deadline = time.monotonic() + 10
    while len(ours(await _log(admin, since))) < 2:  # each is held for `latency` once it arrives
        if time.monotonic() > deadline:
            raise AssertionError("the create and delete requests never reached the API server")
        await asyncio.sleep(0.01)
    await asyncio.to_thread(admin.set_faults, latency=0, hung=True, hungParts=["api"])
    hung_at = time.monotonic()
    statuses = [r["status"] for r in ours(await _log(admin, since))]
    assert statuses == [0, 0], f"carried out before the hang began ({statuses}): raise the latency"
    while any(r["status"] == 0 for r in ours(await _log(admin, since))):  # carried out, answers held
        if time.monotonic() > deadline:
            raise AssertionError("the API server never carried out the create and delete")
        await asyncio.sleep(0.05)
    assert sorted(r["status"] for r in ours(await _log(admin, since))) == [200, 201]
    return Changes(created, deleted, hung_at)
