"""Pods a hub that died mid-start left behind: found by the server's pod name in every cluster, deleted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from spawner.core.clusters import ClusterConfig
from spawner.kube.client import ClusterClient

__all__ = ["remove_leftovers"]

# Seconds each cluster may take to answer: an unreachable cluster must not hold up a spawn elsewhere.
REQUEST_TIMEOUT = 5


async def remove_leftovers(
    clusters: Sequence[ClusterConfig],
    client: Callable[[str], Awaitable[ClusterClient]],
    pod_name: str,
    log: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Delete pod ``pod_name`` in every cluster's namespace, all at once. JupyterHub saves a spawner's
    state only after ``start()`` returns, so a hub that died mid-start never saved where the pod
    went; once the hub starts the server afresh, any such pod is a leftover. Never raises: what
    cannot be checked is logged."""

    async def remove(cluster: ClusterConfig) -> None:
        try:
            api = await client(cluster.name)
            await api.call(
                api.core().delete_namespaced_pod,
                pod_name,
                cluster.namespace,
                grace_period_seconds=0,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("cannot check %s for a leftover pod %s (%s)", cluster.name, pod_name, exc.status)
            return
        except Exception as exc:
            log.warning("cannot check %s for a leftover pod %s (%s)", cluster.name, pod_name, exc)
            return
        log.warning("removed pod %s that an earlier start left in %s", pod_name, cluster.name)

    await asyncio.gather(*(remove(c) for c in clusters))
