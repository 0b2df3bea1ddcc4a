"""What the two runtimes that run pods as processes on this machine share: environment, commands,
logs and exit reporting. ``process`` puts each pod in namespaces of its own (``runtimes.process``);
``process-loopback`` runs plain child processes at 127.x.y.z addresses (``runtimes.loopback``).
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..logs import PodLogs
from ..store import Store
from .base import ContainerError, ExitCallback, pod_key

__all__ = [
    "GATEWAY",
    "ContainerProcess",
    "LocalRuntime",
    "PodProcesses",
    "container_dir",
    "die_with_parent",
    "existing_dir",
    "send_signal",
]

log = logging.getLogger(__name__)

GATEWAY = "169.254.1.1"  # how pods reach the host
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def existing_dir(path: str | None) -> str | None:
    return path if path and os.path.isdir(path) else None


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion in command, args and env values; $$(VAR) escapes."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        m = _VAR.match(text, i)
        if m and m.group(1) in env:
            out.append(env[m.group(1)])
            i = m.end()
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


@dataclass
class ContainerProcess:
    name: str
    proc: asyncio.subprocess.Process
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    waiter: asyncio.Task[None] | None = None


@dataclass
class PodProcesses:
    key: tuple[str, str]
    uid: str
    ip: str
    dir: Path
    sandbox: asyncio.subprocess.Process | None = None
    pid1: int = 0
    veth: str = ""
    created_dirs: list[Path] = field(default_factory=list)
    containers: dict[str, ContainerProcess] = field(default_factory=dict)
    stopping: bool = False


def container_dir(pod: PodProcesses, container: str) -> Path:
    """A container's own directory, where it starts without ``workingDir``: relative paths stay in the pod."""
    return pod.dir / "work" / container


class LocalRuntime(abc.ABC):
    """What both process runtimes share: environment, commands, logs, exit reporting."""

    name = "process"

    def __init__(self, logs: PodLogs, store: Store, state_dir: Path) -> None:
        self.logs = logs
        self.store = store
        self.state_dir = Path(state_dir)
        self.pods: dict[tuple[str, str], PodProcesses] = {}

    # ---------------------------------------------------------------- container environment

    def _lookup(self, namespace: str, kind: str, ref: Mapping[str, Any]) -> Mapping[str, str] | None:
        obj = self.store.find(self.store.registry.core(kind), namespace, str(ref.get("name", "")))
        if obj is None:
            if ref.get("optional"):
                return {}
            return None
        data = dict(obj.get("data") or {})
        if kind == "secrets":
            data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        return data

    def environment(self, pod: Mapping[str, Any], container: Mapping[str, Any], ip: str) -> dict[str, str]:
        meta, spec = pod["metadata"], pod["spec"]
        bin_dir = os.path.dirname(sys.executable)
        env: dict[str, str] = {
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}",
            "HOSTNAME": spec.get("hostname") or meta["name"],
            "HOME": "/root" if int(self._uid(pod, container) or 0) == 0 else "/tmp",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        fields = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": ip,
            "status.hostIP": GATEWAY,
        }
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, ref_key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
                if ref_key in source:
                    data = self._lookup(meta["namespace"], kind, source[ref_key])
                    if data is None:
                        missing = f'{kind[:-1]} "{source[ref_key].get("name")}" not found'
                        raise ContainerError(container["name"], missing, reason="CreateContainerConfigError")
                    env.update({prefix + k: v for k, v in data.items()})
        for var in container.get("env") or []:
            name = var["name"]
            if "value" in var:
                env[name] = _expand(str(var["value"]), env)
                continue
            src = var.get("valueFrom") or {}
            if "fieldRef" in src:
                path = src["fieldRef"].get("fieldPath", "")
                label = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
                if label:
                    env[name] = (meta.get(label.group(1)) or {}).get(label.group(2), "")
                else:
                    env[name] = fields.get(path, "")
            elif "secretKeyRef" in src or "configMapKeyRef" in src:
                kind, ref = (
                    ("secrets", src["secretKeyRef"])
                    if "secretKeyRef" in src
                    else ("configmaps", src["configMapKeyRef"])
                )
                data = self._lookup(meta["namespace"], kind, ref)
                if data is None or (ref.get("key") not in data and not ref.get("optional")):
                    raise ContainerError(
                        container["name"],
                        f"couldn't find key {ref.get('key')} in "
                        f"{kind[:-1]} {meta['namespace']}/{ref.get('name')}",
                        reason="CreateContainerConfigError",
                    )
                if ref.get("key") in data:
                    env[name] = data[ref["key"]]
            elif "resourceFieldRef" in src:
                res = src["resourceFieldRef"].get("resource", "")
                kind_, _, rname = res.partition(".")
                env[name] = str(((container.get("resources") or {}).get(kind_) or {}).get(rname, "0"))
        return env

    @staticmethod
    def _uid(pod: Mapping[str, Any], container: Mapping[str, Any]) -> int | None:
        for ctx in (container.get("securityContext") or {}, pod["spec"].get("securityContext") or {}):
            if ctx.get("runAsUser") is not None:
                return int(ctx["runAsUser"])
        return None

    @staticmethod
    def _gid(pod: Mapping[str, Any], container: Mapping[str, Any]) -> int | None:
        for ctx in (container.get("securityContext") or {}, pod["spec"].get("securityContext") or {}):
            if ctx.get("runAsGroup") is not None:
                return int(ctx["runAsGroup"])
        return None

    def _credentials(self, pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
        """setpriv arguments for runAsUser/runAsGroup, with fsGroup as a supplementary group."""
        uid, gid = self._uid(pod, container), self._gid(pod, container)
        fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
        if uid is None and gid is None and fs_group is None:
            return []
        groups = f"--groups={int(fs_group)}" if fs_group is not None else "--clear-groups"
        return ["setpriv", f"--reuid={uid or 0}", f"--regid={gid or 0}", groups, "--"]

    @staticmethod
    def argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
        argv = [
            _expand(str(a), env) for a in (container.get("command") or []) + (container.get("args") or [])
        ]
        if not argv:
            raise ContainerError(
                container["name"],
                "no command specified: simcluster ignores images, so the pod must name the command",
                reason="CreateContainerError",
            )
        if shutil.which(argv[0], path=env.get("PATH")) is None and not os.path.isabs(argv[0]):
            raise ContainerError(
                container["name"],
                f'failed to create containerd task: exec: "{argv[0]}": executable file not found in $PATH',
                reason="RunContainerError",
            )
        return argv

    async def _launch(
        self, state: PodProcesses, name: str, cmd: list[str], on_exit: ExitCallback, **popen: Any
    ) -> None:
        """Start a container's main process, pump its output into the pod's log, report its exit."""
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
            start_new_session=True,
            **popen,
        )
        c = ContainerProcess(name, proc)
        c.pumps = [self._pump(state, name, proc.stdout), self._pump(state, name, proc.stderr)]
        state.containers[name] = c
        self._watch_exit(state, c, on_exit)

    @abc.abstractmethod
    async def _start_container(
        self, state: PodProcesses, pod: Mapping[str, Any], container: Mapping[str, Any], on_exit: ExitCallback
    ) -> None:
        """Start ``container`` of ``pod`` (in its sandbox, where the runtime has one)."""

    async def restart_container(self, pod: Mapping[str, Any], container: str, on_exit: ExitCallback) -> None:
        state = self.pods.get(pod_key(pod))
        if state is None or state.stopping:
            raise ContainerError(container, "the pod is gone")
        spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
        await self._start_container(state, pod, spec, on_exit)

    def _pump(
        self, pod: PodProcesses, container: str, stream: asyncio.StreamReader | None
    ) -> asyncio.Task[None]:
        async def pump() -> None:
            if stream is None:
                return
            while True:
                line = await stream.readline()
                if not line:
                    return
                self.logs.write(pod.key[0], pod.key[1], container, line.decode(errors="replace").rstrip("\n"))

        return asyncio.get_running_loop().create_task(pump())

    def _watch_exit(self, pod: PodProcesses, c: ContainerProcess, on_exit: ExitCallback) -> None:
        async def wait() -> None:
            code = await c.proc.wait()
            await asyncio.gather(*c.pumps, return_exceptions=True)
            if pod.stopping:
                return
            on_exit(c.name, code if code >= 0 else 128 - code)

        c.waiter = asyncio.get_running_loop().create_task(wait())

    async def _reap(self, pod: PodProcesses, grace: float) -> None:
        """SIGTERM every container's main process, then wait up to ``grace`` for them."""
        pod.stopping = True
        for c in pod.containers.values():
            for pid in self._main_pids(c):
                send_signal(pid, signal.SIGTERM)
        waits = [c.proc.wait() for c in pod.containers.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout=max(0.0, grace))

    def _main_pids(self, c: ContainerProcess) -> list[int]:
        return [c.proc.pid]

    async def _finish(self, pod: PodProcesses) -> None:
        for c in pod.containers.values():
            if c.proc.returncode is None:
                send_signal(c.proc.pid, signal.SIGKILL)
        for c in pod.containers.values():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(c.proc.wait(), timeout=5)
            for task in [*c.pumps, *([c.waiter] if c.waiter else [])]:
                task.cancel()
            await asyncio.gather(*c.pumps, *([c.waiter] if c.waiter else []), return_exceptions=True)
        pod.containers.clear()

    async def close(self) -> None:
        await asyncio.gather(
            *(self.stop_pod_key(key, 0.0) for key in list(self.pods)), return_exceptions=True
        )

    async def stop_pod(self, pod: Mapping[str, Any], grace: float) -> None:
        await self.stop_pod_key(pod_key(pod), grace)

    @abc.abstractmethod
    async def stop_pod_key(self, key: tuple[str, str], grace: float) -> None:
        """Stop one pod: SIGTERM, ``grace`` seconds, SIGKILL, tear down."""
