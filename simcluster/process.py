"""The ``process`` runtime: each pod's containers run as local processes in the pod's own namespaces.

A pod sandbox is ``unshare --net --mount --uts --pid --fork --kill-child``: a pause process that is
PID 1 of the pod's PID namespace and holds its anonymous network and mount namespaces. Killing it
kills every process of the pod and frees the namespaces; simcluster dying kills it too
(PR_SET_PDEATHSIG), so a crashed run leaks nothing into the next. The pod is joined to the host by
a veth pair: the pod's ``eth0`` carries its pod IP (/32), the host end carries the link-local
gateway 169.254.1.1 and a /32 route to the pod, so the host reaches pods at their pod IPs and pods
reach the host (a hub, an API server) at 169.254.1.1. Volumes are bind mounts in the pod's mount
namespace: a PVC is a directory that outlives the pod, Secret and ConfigMap volumes are files,
emptyDir is a temporary directory. A per-pod /etc/hosts stands in for DNS.

The container image is ignored: the command must exist on this machine (PATH is simcluster's, with
its Python's bin directory first). Needs root; without it, :class:`LoopbackRuntime` is the
documented fallback.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import ctypes
import hashlib
import logging
import os
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hosts import hosts_file
from .logs import PodLogs
from .runtime import ContainerError, ExitCallback, pod_key
from .store import Store

__all__ = ["GATEWAY", "LoopbackRuntime", "ProcessRuntime", "can_use_namespaces"]

log = logging.getLogger(__name__)

GATEWAY = "169.254.1.1"  # how pods reach the host
COMMAND_TIMEOUT = 15.0  # seconds for each ip/nsenter/mount helper command
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


async def _run(*cmd: str, input: bytes | None = None, limit: float = COMMAND_TIMEOUT) -> str:
    """Run a helper command; raise RuntimeError with its stderr when it fails."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{cmd[0]} timed out after {limit}s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}...: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def can_use_namespaces() -> tuple[bool, str]:
    """Whether this process may create pod sandboxes, and why not."""
    if os.geteuid() != 0:
        return False, "the process runtime needs root (network and mount namespaces, veth pairs)"
    missing = [tool for tool in ("unshare", "nsenter", "ip", "mount") if shutil.which(tool) is None]
    if missing:
        return False, f"the process runtime needs {', '.join(missing)} (util-linux, iproute2)"
    return True, ""


def _set_forwarding(value: str) -> str:
    """Set net.ipv4.ip_forward; returns the value it had (a /proc write, instant)."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    old = path.read_text().strip()
    if old != value:
        with contextlib.suppress(OSError):
            path.write_text(value + "\n")
    return old


def _apply_fs_group(path: Path, pod: Mapping[str, Any]) -> None:
    """securityContext.fsGroup: the volume belongs to that group, group-writable (setgid dirs)."""
    group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
    if group is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, -1, int(group))
        os.chmod(root, os.stat(root).st_mode | 0o2070)
        for name in files:
            os.chown(os.path.join(root, name), -1, int(group))
        del dirs[:0]


def _existing_dir(path: str | None) -> str | None:
    return path if path and os.path.isdir(path) else None


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _signal(pid: int, sig: int) -> None:
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
class _Container:
    name: str
    proc: asyncio.subprocess.Process
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    waiter: asyncio.Task[None] | None = None


@dataclass
class _Pod:
    key: tuple[str, str]
    uid: str
    ip: str
    dir: Path
    sandbox: asyncio.subprocess.Process | None = None
    pid1: int = 0
    veth: str = ""
    created_dirs: list[Path] = field(default_factory=list)
    containers: dict[str, _Container] = field(default_factory=dict)
    stopping: bool = False


class _Base(abc.ABC):
    """What both process runtimes share: environment, commands, logs, exit reporting."""

    name = "process"

    def __init__(self, logs: PodLogs, store: Store, state_dir: Path) -> None:
        self.logs = logs
        self.store = store
        self.state_dir = Path(state_dir)
        self.pods: dict[tuple[str, str], _Pod] = {}

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
                kind, ref = ("secrets", src["secretKeyRef"]) if "secretKeyRef" in src else (
                    "configmaps", src["configMapKeyRef"])  # fmt: skip
                data = self._lookup(meta["namespace"], kind, ref)
                if data is None or (ref.get("key") not in data and not ref.get("optional")):
                    raise ContainerError(container["name"], f"couldn't find key {ref.get('key')} in "
                                         f"{kind[:-1]} {meta['namespace']}/{ref.get('name')}",
                                         reason="CreateContainerConfigError")  # fmt: skip
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
        self, state: _Pod, name: str, cmd: list[str], on_exit: ExitCallback, **popen: Any
    ) -> None:
        """Start a container's main process, pump its output into the pod's log, report its exit."""
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent, start_new_session=True, **popen,
        )  # fmt: skip
        c = _Container(name, proc)
        c.pumps = [self._pump(state, name, proc.stdout), self._pump(state, name, proc.stderr)]
        state.containers[name] = c
        self._watch_exit(state, c, on_exit)

    @abc.abstractmethod
    async def _start_container(
        self, state: _Pod, pod: Mapping[str, Any], container: Mapping[str, Any], on_exit: ExitCallback
    ) -> None:
        """Start ``container`` of ``pod`` (in its sandbox, where the runtime has one)."""

    async def restart_container(self, pod: Mapping[str, Any], container: str, on_exit: ExitCallback) -> None:
        state = self.pods.get(pod_key(pod))
        if state is None or state.stopping:
            raise ContainerError(container, "the pod is gone")
        spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
        await self._start_container(state, pod, spec, on_exit)

    def _pump(self, pod: _Pod, container: str, stream: asyncio.StreamReader | None) -> asyncio.Task[None]:
        async def pump() -> None:
            if stream is None:
                return
            while True:
                line = await stream.readline()
                if not line:
                    return
                self.logs.write(pod.key[0], pod.key[1], container, line.decode(errors="replace").rstrip("\n"))

        return asyncio.get_running_loop().create_task(pump())

    def _watch_exit(self, pod: _Pod, c: _Container, on_exit: ExitCallback) -> None:
        async def wait() -> None:
            code = await c.proc.wait()
            await asyncio.gather(*c.pumps, return_exceptions=True)
            if pod.stopping:
                return
            on_exit(c.name, code if code >= 0 else 128 - code)

        c.waiter = asyncio.get_running_loop().create_task(wait())

    async def _reap(self, pod: _Pod, grace: float) -> None:
        """SIGTERM every container's main process, then wait up to ``grace`` for them."""
        pod.stopping = True
        for c in pod.containers.values():
            for pid in self._main_pids(c):
                _signal(pid, signal.SIGTERM)
        waits = [c.proc.wait() for c in pod.containers.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout=max(0.0, grace))

    def _main_pids(self, c: _Container) -> list[int]:
        return [c.proc.pid]

    async def _finish(self, pod: _Pod) -> None:
        for c in pod.containers.values():
            if c.proc.returncode is None:
                _signal(c.proc.pid, signal.SIGKILL)
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


class ProcessRuntime(_Base):
    """Pods in their own network, mount, UTS and PID namespaces (root)."""

    def __init__(self, logs: PodLogs, store: Store, state_dir: Path) -> None:
        super().__init__(logs, store, state_dir)
        self._dir_users: dict[Path, int] = {}  # host directories we created for mount points
        self._forwarding: str | None = None

    def _enable_forwarding(self) -> None:
        """Pod-to-pod traffic crosses the host: IPv4 forwarding on, restored on close."""
        if self._forwarding is None:
            self._forwarding = _set_forwarding("1")

    # ---------------------------------------------------------------- sandbox

    async def start_pod(
        self, pod: Mapping[str, Any], allocate_ip: Callable[[], str], on_exit: ExitCallback
    ) -> str:
        key, meta = pod_key(pod), pod["metadata"]
        self._enable_forwarding()
        state = _Pod(key, meta["uid"], "", self.state_dir / "pods" / meta["uid"])
        self.pods[key] = state
        try:
            state.dir.mkdir(parents=True, exist_ok=True)
            await self._sandbox(state, pod)
            await self._network(state, allocate_ip)
            await self._mounts(state, pod)
            for container in pod["spec"]["containers"]:
                await self._start_container(state, pod, container, on_exit)
        except ContainerError:
            await self.stop_pod_key(key, 0.0)
            raise
        except (RuntimeError, OSError) as exc:
            await self.stop_pod_key(key, 0.0)
            raise ContainerError(
                "", f"failed to create pod sandbox: {exc}", reason="CreatePodSandboxError"
            ) from exc
        return state.ip

    async def _sandbox(self, state: _Pod, pod: Mapping[str, Any]) -> None:
        state.sandbox = await asyncio.create_subprocess_exec(
            "unshare", "--net", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
            "--propagation", "private", "--", "sleep", "infinity",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent, start_new_session=True,
        )  # fmt: skip
        for _ in range(200):  # the forked pause process appears within milliseconds
            kids = _children(state.sandbox.pid)
            if kids:
                state.pid1 = kids[0]
                break
            if state.sandbox.returncode is not None:
                break
            await asyncio.sleep(0.01)
        if not state.pid1:
            err = b""
            if state.sandbox.stderr is not None and state.sandbox.returncode is not None:
                err = await state.sandbox.stderr.read()
            raise RuntimeError(f"unshare did not start a pod sandbox: {err.decode(errors='replace').strip()}")
        hostname = (pod["spec"].get("hostname") or pod["metadata"]["name"])[:63]
        await _run("nsenter", "-t", str(state.pid1), "-u", "hostname", hostname)

    async def _network(self, state: _Pod, allocate_ip: Callable[[], str]) -> None:
        digest = hashlib.sha1(f"{os.getpid()}/{state.uid}".encode()).hexdigest()[:10]
        state.veth = f"hh{digest}"
        await _run(
            "ip", "link", "add", state.veth, "type", "veth", "peer", "name", "eth0", "netns", str(state.pid1)
        )
        await _run("ip", "link", "set", state.veth, "up")
        await _run("ip", "addr", "add", f"{GATEWAY}/32", "dev", state.veth, "scope", "link")
        for _ in range(64):  # another simcluster on this machine may route the same pod IP
            ip = allocate_ip()
            try:
                await _run("ip", "route", "add", f"{ip}/32", "dev", state.veth)
            except RuntimeError as exc:
                if "File exists" in str(exc):
                    continue
                raise
            state.ip = ip
            break
        else:
            raise RuntimeError("no free pod IP: every candidate is routed elsewhere")
        batch = (
            f"link set lo up\nlink set eth0 up\naddr add {state.ip}/32 dev eth0\n"
            f"route add {GATEWAY} dev eth0 scope link\nroute add default via {GATEWAY} dev eth0\n"
        )
        await _run("nsenter", "-t", str(state.pid1), "-n", "ip", "-batch", "-", input=batch.encode())

    # ---------------------------------------------------------------- volumes

    def _volume_source(self, state: _Pod, pod: Mapping[str, Any], volume: Mapping[str, Any]) -> Path:
        name, ns = volume["name"], pod["metadata"]["namespace"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            pvc = self.store.find(self.store.registry.core("persistentvolumeclaims"), ns, claim)
            if pvc is None:
                raise ContainerError("", f'persistentvolumeclaim "{claim}" not found', reason="FailedMount")
            claim_dir = self.state_dir / "volumes" / f"pvc-{pvc['metadata']['uid']}"
            claim_dir.mkdir(parents=True, exist_ok=True)
            _apply_fs_group(claim_dir, pod)
            return claim_dir
        if "hostPath" in volume:
            return Path(volume["hostPath"]["path"])
        path = state.dir / "volumes" / str(name)
        path.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            path.chmod(0o777)  # as the kubelet makes it: any user of the pod may write
        for kind, key in (("secrets", "secret"), ("configmaps", "configMap")):
            if key not in volume:
                continue
            ref = volume[key]
            ref_name = ref.get("secretName") if kind == "secrets" else ref.get("name")
            data = self._lookup(ns, kind, {"name": ref_name, "optional": ref.get("optional")})
            if data is None:
                raise ContainerError("", f'{kind[:-1]} "{ref_name}" not found', reason="FailedMount")
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            mode = int(ref.get("defaultMode", 0o644))
            for item in items:
                if item["key"] not in data:
                    continue
                target = path / item["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]])
                target.chmod(int(item.get("mode", mode)))
        _apply_fs_group(path, pod)
        return path

    def _ensure_mount_point(self, target: Path, is_file: bool) -> None:
        """Create a missing mount point on the host (it stays empty there) and remember to remove it."""
        missing = []
        probe = target if not is_file else target.parent
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            self._dir_users[path] = self._dir_users.get(path, 0) + 1
        if is_file and not target.exists():
            target.touch()
            self._dir_users[target] = self._dir_users.get(target, 0) + 1

    async def _mounts(self, state: _Pod, pod: Mapping[str, Any]) -> None:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        sources: dict[str, Path] = {}
        script = ["set -e"]
        mounted: set[str] = set()
        hosts = state.dir / "hosts"
        self.write_hosts(pod, state)
        script.append(f"mount --bind {shlex.quote(str(hosts))} /etc/hosts")
        for container in [*(pod["spec"].get("initContainers") or []), *pod["spec"]["containers"]]:
            for mount in container.get("volumeMounts") or []:
                target = str(mount["mountPath"])
                if target in mounted:  # one mount namespace per pod: the first container's wins
                    continue
                if mount["name"] not in volumes:
                    raise ContainerError(
                        container["name"], f"volume {mount['name']} not found", reason="FailedMount"
                    )
                if mount["name"] not in sources:
                    sources[mount["name"]] = self._volume_source(state, pod, volumes[mount["name"]])
                source = sources[mount["name"]]
                if mount.get("subPath"):
                    source = source / mount["subPath"]
                    if not source.exists():
                        source.mkdir(parents=True)
                self._ensure_mount_point(Path(target), is_file=source.is_file())
                state.created_dirs.append(Path(target))
                script.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
                if mount.get("readOnly"):
                    script.append(f"mount -o remount,bind,ro {shlex.quote(target)}")
                mounted.add(target)
        await _run("nsenter", "-t", str(state.pid1), "-m", "sh", "-c", "\n".join(script))

    def write_hosts(self, pod: Mapping[str, Any], state: _Pod | None = None) -> None:
        """(Re)write a pod's /etc/hosts in place, so the bind mount sees the new names."""
        state = state or self.pods.get(pod_key(pod))
        if state is None or not state.ip:
            return
        pods = self.store.list(self.store.registry.core("pods"))
        services = self.store.list(self.store.registry.core("services"))
        text = hosts_file(pod, state.ip, pods, services)
        path = state.dir / "hosts"
        with path.open("w") as fh:  # in place: a rename would detach the bind mount
            fh.write(text)

    def refresh_hosts(self) -> None:
        pods = self.store.registry.core("pods")
        for key, state in list(self.pods.items()):
            pod = self.store.find(pods, *key)
            if pod is not None and not state.stopping:
                with contextlib.suppress(OSError):
                    self.write_hosts(pod, state)

    # ---------------------------------------------------------------- containers

    async def _start_container(
        self, state: _Pod, pod: Mapping[str, Any], container: Mapping[str, Any], on_exit: ExitCallback
    ) -> None:
        env = self.environment(pod, container, state.ip)
        argv = self.argv(container, env)
        cmd = ["nsenter", "-t", str(state.pid1), "-n", "-m", "-u", "-p"]
        if container.get("workingDir"):
            cmd.append(f"--wdns={container['workingDir']}")
        cmd += [
            "--",
            *self._credentials(pod, container),
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            *argv,
        ]
        await self._launch(state, container["name"], cmd, on_exit)

    def _main_pids(self, c: _Container) -> list[int]:
        # nsenter forks into the PID namespace: the container's main process is its child
        return _children(c.proc.pid) or [c.proc.pid]

    async def stop_pod_key(self, key: tuple[str, str], grace: float) -> None:
        state = self.pods.get(key)
        if state is None:
            return
        await self._reap(state, grace)
        if state.pid1:
            _signal(state.pid1, signal.SIGKILL)  # the whole PID namespace goes with it
        await self._finish(state)
        if state.sandbox is not None:
            if state.sandbox.returncode is None:
                _signal(state.sandbox.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.sandbox.wait(), timeout=5)
        if state.ip and state.veth:  # the veth died with the namespace; the route with it
            with contextlib.suppress(RuntimeError):
                await _run("ip", "link", "del", state.veth)
        for path in reversed(state.created_dirs):
            self._release_mount_point(path)
        shutil.rmtree(state.dir, ignore_errors=True)
        self.pods.pop(key, None)

    def _release_mount_point(self, target: Path) -> None:
        for path in sorted(
            (p for p in self._dir_users if p == target or target.is_relative_to(p)), reverse=True
        ):
            self._dir_users[path] -= 1
            if self._dir_users[path] > 0:
                continue
            del self._dir_users[path]
            with contextlib.suppress(OSError):
                if path.is_dir():
                    path.rmdir()  # only if empty: the host never saw what was mounted there
                else:
                    path.unlink()

    def forget_volume(self, pvc_uid: str) -> None:
        """A claim was deleted: its directory goes too (reclaimPolicy Delete)."""
        shutil.rmtree(self.state_dir / "volumes" / f"pvc-{pvc_uid}", ignore_errors=True)

    async def close(self) -> None:
        await super().close()
        if self._forwarding is not None and self._forwarding != "1":
            _set_forwarding(self._forwarding)
        self._forwarding = None


class LoopbackRuntime(_Base):
    """The fallback without root: plain child processes, each pod at its own 127.x.y.z address.

    No namespaces: commands must bind the address in ``$POD_IP`` (also ``status.podIP`` through
    the downward API) instead of 0.0.0.0, volumes are not mounted, and /etc/hosts is the host's.
    """

    name = "process-loopback"

    def __init__(self, logs: PodLogs, store: Store, state_dir: Path, octet: int = 100) -> None:
        super().__init__(logs, store, state_dir)
        self._octet = octet
        self._next = 0
        self._free: list[str] = []

    def _address(self) -> str:
        if self._free:
            return self._free.pop()
        self._next += 1
        n = self._next
        return f"127.{self._octet}.{n // 250}.{n % 250 + 2}"

    async def start_pod(
        self, pod: Mapping[str, Any], allocate_ip: Callable[[], str], on_exit: ExitCallback
    ) -> str:
        key = pod_key(pod)
        state = _Pod(
            key, pod["metadata"]["uid"], self._address(), self.state_dir / "pods" / pod["metadata"]["uid"]
        )
        self.pods[key] = state
        try:
            for container in pod["spec"]["containers"]:
                await self._start_container(state, pod, container, on_exit)
        except ContainerError:
            await self.stop_pod_key(key, 0.0)
            raise
        return state.ip

    async def _start_container(
        self, state: _Pod, pod: Mapping[str, Any], container: Mapping[str, Any], on_exit: ExitCallback
    ) -> None:
        env = self.environment(pod, container, state.ip)
        env["POD_IP"] = state.ip
        cwd = _existing_dir(container.get("workingDir"))
        await self._launch(state, container["name"], self.argv(container, env), on_exit, env=env, cwd=cwd)

    async def stop_pod_key(self, key: tuple[str, str], grace: float) -> None:
        state = self.pods.get(key)
        if state is None:
            return
        await self._reap(state, grace)
        for c in state.containers.values():  # the whole session: children of the command too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGKILL)
        await self._finish(state)
        self._free.append(state.ip)
        self.pods.pop(key, None)

    def refresh_hosts(self) -> None:
        return None

    def forget_volume(self, pvc_uid: str) -> None:
        return None
