"""Home directories per cluster: the volume a cluster's home storage gives a pod, and what users are told."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spawner.core.clusters import ClusterConfig, HomeStorage
from spawner.core.model import Role

__all__ = ["HOME_VOLUME", "home_note", "usual_home", "with_home"]

HOME_VOLUME = "hybridhub-home"


def _volume(storage: HomeStorage, claim_name: str) -> dict[str, Any] | None:
    if storage.kind == "pvc":
        return {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}}
    if storage.kind == "nfs":
        # one export, a directory per user below it; KubeSpawner expands {username} in volumes
        path = f"{(storage.nfs_path or '/').rstrip('/')}/{{username}}"
        return {"name": HOME_VOLUME, "nfs": {"server": storage.nfs_server, "path": path}}
    return None


def with_home(
    storage: HomeStorage,
    volumes: Sequence[dict[str, Any]],
    mounts: Sequence[dict[str, Any]],
    *,
    claim_name: str,
    mount_path: str,
    other_mounts: Sequence[dict[str, Any]] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and notebook mounts with this cluster's home at ``mount_path``.

    ``none`` keeps the configured ones (the operator's own home, or none). Otherwise a configured
    mount at ``mount_path`` gives way to this cluster's home, and a volume nothing mounts any more
    (``other_mounts``: init and extra containers' mounts) is dropped, so a pod on EKS does not wait
    for an on-prem claim that does not exist there.
    """
    volume = _volume(storage, claim_name)
    if volume is None:
        return [dict(v) for v in volumes], [dict(m) for m in mounts]
    path = mount_path.rstrip("/") or "/"
    kept = [dict(m) for m in mounts if (m.get("mountPath") or "").rstrip("/") != path]
    used = {m.get("name") for m in (*kept, *other_mounts)}
    displaced = {m.get("name") for m in mounts} - used
    gone = displaced | {HOME_VOLUME}
    new_volumes = [dict(v) for v in volumes if v.get("name") not in gone]
    return [*new_volumes, volume], [*kept, {"name": HOME_VOLUME, "mountPath": mount_path}]


def usual_home(clusters: Sequence[ClusterConfig]) -> ClusterConfig | None:
    """The cluster whose home users think of as theirs: the first on-prem one (None: no clusters)."""
    ranked = [c for c in clusters if c.role is Role.ONPREM] or list(clusters)
    return ranked[0] if ranked else None


def _same(a: HomeStorage, b: HomeStorage) -> bool:
    # a PVC lives in one cluster; an NFS export reachable from both is the same home
    return a.kind == "nfs" and b.kind == "nfs" and (a.nfs_server, a.nfs_path) == (b.nfs_server, b.nfs_path)


def _describe(storage: HomeStorage) -> str:
    if storage.kind == "pvc":
        return f"a {storage.size} volume" + (f" ({storage.storage_class})" if storage.storage_class else "")
    return f"{storage.nfs_server}:{storage.nfs_path}"


def home_note(usual: ClusterConfig | None, here: ClusterConfig) -> str | None:
    """What to tell a user whose server starts on ``here`` about their home (None: nothing to say)."""
    if usual is None or usual.name == here.name or usual.home_storage.kind == "none":
        return None
    if _same(usual.home_storage, here.home_storage):
        return None
    if here.home_storage.kind == "none":
        return (
            f"your {usual.name} home is not mounted on {here.name}; files you save in your home there "
            "are lost when the server stops"
        )
    return (
        f"your {usual.name} home is not mounted on {here.name}; you get {here.name}'s own home there "
        f"({_describe(here.home_storage)}), separate from the one on {usual.name}"
    )
