"""Pod Security admission: the level a namespace's ``pod-security.kubernetes.io/enforce`` label names.

The checks and their wording are those of Kubernetes' pod-security-admission (policy version latest):
each failed check is reported as ``reason (detail)``, in the order of the checks' IDs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .errors import ApiError
from .resources import ResourceType
from .store import Store

__all__ = ["LEVELS", "PodSecurityAdmission", "violations"]

LEVELS = ("privileged", "baseline", "restricted")
ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}

Pod = Mapping[str, Any]
Check = Callable[[Pod], "tuple[str, str] | None"]


def _quote(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _plural(names: Sequence[str], one: str, many: str) -> str:
    return f"{one if len(names) == 1 else many} {_quote(names)}"


def _containers(pod: Pod) -> Iterator[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _sc(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("securityContext") or {}


def _pod_sc(pod: Pod) -> Mapping[str, Any]:
    return _sc(pod.get("spec") or {})


# ---------------------------------------------------------------------------------------- baseline


def _host_namespaces(pod: Pod) -> tuple[str, str] | None:
    spec = pod.get("spec") or {}
    found = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    return ("host namespaces", ", ".join(found)) if found else None


def _host_path_volumes(pod: Pod) -> tuple[str, str] | None:
    names = [v.get("name", "") for v in (pod.get("spec") or {}).get("volumes") or [] if "hostPath" in v]
    return ("hostPath volumes", _plural(names, "volume", "volumes")) if names else None


def _host_ports(pod: Pod) -> tuple[str, str] | None:
    names, ports = [], []
    for c in _containers(pod):
        used = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            names.append(c.get("name", ""))
            ports += used
    if not names:
        return None
    verb = "uses hostPort" if len(names) == 1 and len(ports) == 1 else "use hostPorts"
    if len(names) == 1 and len(ports) > 1:
        verb = "uses hostPorts"
    elif len(names) > 1 and len(ports) == 1:
        verb = "use hostPort"
    return "hostPort", f"{_plural(names, 'container', 'containers')} {verb} {', '.join(ports)}"


def _privileged(pod: Pod) -> tuple[str, str] | None:
    names = [c.get("name", "") for c in _containers(pod) if _sc(c).get("privileged")]
    if not names:
        return None
    return (
        "privileged",
        f"{_plural(names, 'container', 'containers')} must not set securityContext.privileged=true",
    )


def _added(c: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in (_sc(c).get("capabilities") or {}).get("add") or []]


def _capabilities_baseline(pod: Pod) -> tuple[str, str] | None:
    names: list[str] = []
    caps: list[str] = []
    for c in _containers(pod):
        bad = [a for a in _added(c) if a not in _BASELINE_CAPABILITIES]
        if bad:
            names.append(c.get("name", ""))
            caps += [a for a in bad if a not in caps]
    if not names:
        return None
    where = _plural(names, "container", "containers")
    return (
        "non-default capabilities",
        f"{where} must not include {_quote(caps)} in securityContext.capabilities.add",
    )


def _proc_mount(pod: Pod) -> tuple[str, str] | None:
    names = [c.get("name", "") for c in _containers(pod) if _sc(c).get("procMount") not in (None, "Default")]
    if not names:
        return None
    return (
        "procMount",
        f'{_plural(names, "container", "containers")} must not set securityContext.procMount to "Unmasked"',
    )


def _unconfined(pod: Pod) -> list[str]:
    details = []
    if (_pod_sc(pod).get("seccompProfile") or {}).get("type") == "Unconfined":
        details.append('pod must not set securityContext.seccompProfile.type to "Unconfined"')
    names = [
        c.get("name", "")
        for c in _containers(pod)
        if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"
    ]
    if names:
        where = _plural(names, "container", "containers")
        details.append(f'{where} must not set securityContext.seccompProfile.type to "Unconfined"')
    return details


def _seccomp_baseline(pod: Pod) -> tuple[str, str] | None:
    details = _unconfined(pod)
    return ("seccompProfile", "; ".join(details)) if details else None


def _sysctls(pod: Pod) -> tuple[str, str] | None:
    names = [
        str(s.get("name")) for s in _pod_sc(pod).get("sysctls") or [] if s.get("name") not in _SAFE_SYSCTLS
    ]
    return ("forbidden sysctls", ", ".join(names)) if names else None


# -------------------------------------------------------------------------------------- restricted


def _restricted_volumes(pod: Pod) -> tuple[str, str] | None:
    bad: dict[str, list[str]] = {}
    for v in (pod.get("spec") or {}).get("volumes") or []:
        kinds = [k for k in v if k != "name" and k not in _RESTRICTED_VOLUMES]
        if kinds:
            bad.setdefault(kinds[0], []).append(v.get("name", ""))
    if not bad:
        return None
    parts = []
    for kind, names in bad.items():
        verb = "uses" if len(names) == 1 else "use"
        parts.append(f'{_plural(names, "volume", "volumes")} {verb} restricted volume type "{kind}"')
    return "restricted volume types", "; ".join(parts)


def _privilege_escalation(pod: Pod) -> tuple[str, str] | None:
    names = [
        c.get("name", "") for c in _containers(pod) if _sc(c).get("allowPrivilegeEscalation") is not False
    ]
    if not names:
        return None
    where = _plural(names, "container", "containers")
    return (
        "allowPrivilegeEscalation != false",
        f"{where} must set securityContext.allowPrivilegeEscalation=false",
    )


def _run_as_non_root(pod: Pod) -> tuple[str, str] | None:
    pod_value = _pod_sc(pod).get("runAsNonRoot")
    details = []
    if pod_value is False:
        details.append("pod must not set securityContext.runAsNonRoot=false")
    explicit_false = [c.get("name", "") for c in _containers(pod) if _sc(c).get("runAsNonRoot") is False]
    if explicit_false:
        where = _plural(explicit_false, "container", "containers")
        details.append(f"{where} must not set securityContext.runAsNonRoot=false")
    if pod_value is not True:
        unset = [c.get("name", "") for c in _containers(pod) if _sc(c).get("runAsNonRoot") is None]
        if unset:
            where = _plural(unset, "pod or container", "pod or containers")
            details.append(f"{where} must set securityContext.runAsNonRoot=true")
    return ("runAsNonRoot != true", "; ".join(details)) if details else None


def _run_as_user(pod: Pod) -> tuple[str, str] | None:
    details = []
    if _pod_sc(pod).get("runAsUser") == 0:
        details.append("pod must not set runAsUser=0")
    names = [c.get("name", "") for c in _containers(pod) if _sc(c).get("runAsUser") == 0]
    if names:
        details.append(f"{_plural(names, 'container', 'containers')} must not set runAsUser=0")
    return ("runAsUser=0", "; ".join(details)) if details else None


def _seccomp_restricted(pod: Pod) -> tuple[str, str] | None:
    details = _unconfined(pod)
    if not (_pod_sc(pod).get("seccompProfile") or {}).get("type"):
        unset = [
            c.get("name", "")
            for c in _containers(pod)
            if not (_sc(c).get("seccompProfile") or {}).get("type")
        ]
        if unset:
            where = _plural(unset, "pod or container", "pod or containers")
            details.append(
                f'{where} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"'
            )
    return ("seccompProfile", "; ".join(details)) if details else None


def _capabilities_restricted(pod: Pod) -> tuple[str, str] | None:
    no_drop: list[str] = []
    adders: list[str] = []
    added: list[str] = []
    for c in _containers(pod):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            no_drop.append(c.get("name", ""))
        bad = [a for a in _added(c) if a != "NET_BIND_SERVICE"]
        if bad:
            adders.append(c.get("name", ""))
            added += [a for a in bad if a not in added]
    details = []
    if no_drop:
        details.append(
            f"{_plural(no_drop, 'container', 'containers')} must set "
            'securityContext.capabilities.drop=["ALL"]'
        )
    if adders:
        where = _plural(adders, "container", "containers")
        details.append(f"{where} must not include {_quote(added)} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


# check ID -> (level it belongs to, check, IDs of the checks it replaces at its level)
_CHECKS: dict[str, tuple[str, Check, tuple[str, ...]]] = {
    "allowPrivilegeEscalation": ("restricted", _privilege_escalation, ()),
    "capabilities_baseline": ("baseline", _capabilities_baseline, ()),
    "capabilities_restricted": ("restricted", _capabilities_restricted, ("capabilities_baseline",)),
    "hostNamespaces": ("baseline", _host_namespaces, ()),
    "hostPathVolumes": ("baseline", _host_path_volumes, ()),
    "hostPorts": ("baseline", _host_ports, ()),
    "privileged": ("baseline", _privileged, ()),
    "procMount": ("baseline", _proc_mount, ()),
    "restrictedVolumes": ("restricted", _restricted_volumes, ("hostPathVolumes",)),
    "runAsNonRoot": ("restricted", _run_as_non_root, ()),
    "runAsUser": ("restricted", _run_as_user, ()),
    "seccompProfile_baseline": ("baseline", _seccomp_baseline, ()),
    "seccompProfile_restricted": ("restricted", _seccomp_restricted, ("seccompProfile_baseline",)),
    "sysctls": ("baseline", _sysctls, ()),
}


def violations(level: str, pod: Pod) -> list[str]:
    """Each failed check of ``level`` as ``reason (detail)``, in check-ID order as the real one has it."""
    if level == "privileged":
        return []
    active = {cid for cid, (lvl, _, _) in _CHECKS.items() if lvl == "baseline" or level == "restricted"}
    for cid in list(active):
        active -= set(_CHECKS[cid][2])
    out = []
    for cid in sorted(active):
        found = _CHECKS[cid][1](pod)
        if found is not None:
            out.append(f"{found[0]} ({found[1]})")
    return out


class PodSecurityAdmission:
    """Refuses a new pod that breaks its namespace's enforced level (a store admission plugin)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pods = store.registry.core("pods")
        self._namespaces = store.registry.core("namespaces")

    def __call__(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if rt is not self._pods or old is not None:
            return  # enforced on creation; a pod's spec cannot change in ways the levels look at
        meta = obj["metadata"]
        ns = self.store.find(self._namespaces, None, meta.get("namespace") or "")
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        level = labels.get(ENFORCE)
        if level is None or level == "privileged":
            return
        if level not in LEVELS:
            level = (
                "restricted"  # an unreadable level is enforced as the most restrictive, as the real one does
            )
        version = labels.get(ENFORCE_VERSION) or "latest"
        found = violations(level, obj)
        if found:
            policy = f'"{level}:{version}"'
            raise ApiError(
                403,
                f'pods "{meta["name"]}" is forbidden: violates PodSecurity {policy}: {", ".join(found)}',
                details={"name": meta["name"], "kind": "pods"},
            )
