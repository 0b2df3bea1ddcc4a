"""The ``process`` runtime: each pod's containers run as local processes in the pod's own namespaces.

A pod sandbox is ``unshare --net --mount --uts --pid --fork --kill-child``: a pause process that is
PID 1 of the pod's PID namespace and holds its anonymous network and mount namespaces. Killing it
kills every process of the pod and frees the namespaces; simcluster dying kills it too
(PR_SET_PDEATHSIG), so a crashed run leaks nothing into the next. The pod is joined to the host by
a veth pair: the pod's ``eth0`` carries its pod IP (/32), the host end carries the link-local
gateway 169.254.1.1 and a /32 route to the pod, so the host reaches pods at their pod IPs and pods
reach the host (a hub, an API server) at 169.254.1.1. Volumes are bind mounts in the pod's mount
namespace: a PVC is a directory that outlives the pod, Secret and ConfigMap volumes are files,
emptyDir is a temporary directory, and a hostPath is a directory of the node's under the state
directory, never this machine's own path. A per-pod /etc/hosts stands in for DNS. Each container
starts in its ``workingDir`` or else in a directory of its own that goes with the pod, so relative
paths stay inside the pod.

The container image is ignored: the command must exist on this machine (PATH is simcluster's, with
its Python's bin directory first). Needs root; without it, :class:`LoopbackRuntime` is the
documented fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..hosts import hosts_file
from ..logs import PodLogs
from ..store import Store
from .base import ContainerError, ExitCallback, pod_key
from .local import (
    GATEWAY,
    ContainerProcess,
    LocalRuntime,
    PodProcesses,
    container_dir,
    die_with_parent,
    send_signal,
)
from .mountpoints import MountPoints

__all__ = ["COMMAND_TIMEOUT", "ProcessRuntime", "can_use_namespaces", "run_tool", "veth_prefix"]

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 15.0  # seconds for each ip/nsenter/mount helper command


async def run_tool(*cmd: str, input: bytes | None = None, limit: float = COMMAND_TIMEOUT) -> str:
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


def veth_prefix(index: int) -> str:
    """What the host-side veth names of the pods of cluster ``index`` in this process start with.

    ``h``, the process ID and the cluster's index, in hex: unique among running simclusters, and one
    nftables wildcard (``h0012ab03*``) matches every pod of the cluster, those still to come too.
    A pod's counter completes the name to the 15 characters Linux allows.
    """
    if not 0 <= index <= 0xFF:
        raise ValueError(f"the process runtime runs at most 256 clusters, not cluster number {index + 1}")
    return f"h{os.getpid():06x}{index:02x}"


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


# hostPath types whose emulated path is created when missing: the emulated node has every directory
# and file a pod asks for, empty at first
_HOST_PATH_DIRS = {"", "Directory", "DirectoryOrCreate"}
_HOST_PATH_FILES = {"File", "FileOrCreate"}
_HOST_PATH_KINDS = {
    "Socket": "a socket file",
    "CharDevice": "a character device",
    "BlockDevice": "a block device",
}


def _absolute(path: str) -> str:
    """A path in the pod, normalised: relative ones start at its root, ``..`` goes no higher than it."""
    return os.path.normpath(os.path.join("/", path))


def _inside(root: Path, path: Path) -> Path:
    """``path`` with its symlinks resolved; ValueError when that leaves ``root``."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(f"{path} leads outside {root}")
    return resolved


def host_path_source(node_root: Path, volume: Mapping[str, Any]) -> Path:
    """Where a ``hostPath`` volume lives: under the node's directory, never at the path on this machine.

    The path is normalised first, so ``/../../etc`` is ``<node_root>/etc``; a symlink a pod made in
    its hostPath cannot lead out either. Raises ContainerError (FailedMount) as the kubelet words it.
    """
    spec = volume["hostPath"]
    wanted, kind = str(spec.get("path") or "/"), str(spec.get("type") or "")
    source = node_root / os.path.normpath("/" + wanted).lstrip("/")
    if kind in _HOST_PATH_KINDS:
        raise ContainerError(
            "", f"hostPath type check failed: {wanted} is not {_HOST_PATH_KINDS[kind]}", reason="FailedMount"
        )
    if kind not in _HOST_PATH_DIRS | _HOST_PATH_FILES:
        raise ContainerError("", f"invalid HostPathType {kind!r}", reason="FailedMount")
    try:
        _inside(node_root, source)
        if kind in _HOST_PATH_FILES:
            source.parent.mkdir(parents=True, exist_ok=True)
            if not source.exists():
                source.touch()
        else:
            source.mkdir(parents=True, exist_ok=True)
        return _inside(node_root, source)
    except ValueError as exc:
        raise ContainerError(
            "", f'MountVolume.SetUp failed for volume "{volume["name"]}": {exc}', reason="FailedMount"
        ) from exc


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


class ProcessRuntime(LocalRuntime):
    """Pods in their own network, mount, UTS and PID namespaces (root)."""

    def __init__(
        self,
        logs: PodLogs,
        store: Store,
        state_dir: Path,
        veth_prefix: str,
        mount_points: MountPoints | None = None,
    ) -> None:
        super().__init__(logs, store, state_dir)
        self.veth_prefix = veth_prefix  # every pod's host-side veth name starts with it
        self._veths = 0  # veths made so far: the last part of the next name
        self.mount_points = mount_points or MountPoints()  # host paths made for mount points
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
        state = PodProcesses(key, meta["uid"], "", self.state_dir / "pods" / meta["uid"])
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

    async def _sandbox(self, state: PodProcesses, pod: Mapping[str, Any]) -> None:
        state.sandbox = await asyncio.create_subprocess_exec(
            "unshare",
            "--net",
            "--mount",
            "--uts",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "--",
            "sleep",
            "infinity",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
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
        await run_tool("nsenter", "-t", str(state.pid1), "-u", "hostname", hostname)

    async def _network(self, state: PodProcesses, allocate_ip: Callable[[], str]) -> None:
        self._veths += 1
        state.veth = f"{self.veth_prefix}{self._veths % 0x1000000:06x}"
        await run_tool(
            "ip", "link", "add", state.veth, "type", "veth", "peer", "name", "eth0", "netns", str(state.pid1)
        )
        await run_tool("ip", "link", "set", state.veth, "up")
        await run_tool("ip", "addr", "add", f"{GATEWAY}/32", "dev", state.veth, "scope", "link")
        for _ in range(64):  # another simcluster on this machine may route the same pod IP
            ip = allocate_ip()
            try:
                await run_tool("ip", "route", "add", f"{ip}/32", "dev", state.veth)
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
        await run_tool("nsenter", "-t", str(state.pid1), "-n", "ip", "-batch", "-", input=batch.encode())

    # ---------------------------------------------------------------- volumes

    def _volume_source(self, state: PodProcesses, pod: Mapping[str, Any], volume: Mapping[str, Any]) -> Path:
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
            node = str(pod["spec"].get("nodeName") or "node")
            return host_path_source(self.state_dir / "hostpath" / node, volume)
        path = state.dir / "volumes" / str(name)
        self._contained(state.dir / "volumes", path, name)
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
                self._contained(path, target, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[item["key"]])
                target.chmod(int(item.get("mode", mode)))
        _apply_fs_group(path, pod)
        return path

    @staticmethod
    def _contained(root: Path, path: Path, volume: str) -> None:
        """A volume's files stay in its directory, whatever names the pod gives them."""
        try:
            _inside(root, path)
        except ValueError as exc:
            raise ContainerError(
                "", f'MountVolume.SetUp failed for volume "{volume}": {exc}', reason="FailedMount"
            ) from exc

    def _mount_point(self, state: PodProcesses, target: Path, *, is_file: bool) -> None:
        """Make a missing mount point on the host (it stays empty there); the pod holds it until it goes."""
        for path in self.mount_points.claim(target, is_file=is_file, owner=state.uid):
            if path not in state.created_dirs:
                state.created_dirs.append(path)

    @staticmethod
    def _sub_path(root: Path, mount: Mapping[str, Any], container: Mapping[str, Any]) -> Path:
        """A volume's ``subPath``, which must stay inside the volume, as the kubelet checks."""
        source = root / str(mount["subPath"])
        try:
            _inside(root, source)
            if not source.exists():  # a missing subPath is made as a directory, as the kubelet does
                source.mkdir(parents=True)
            return _inside(root, source)
        except (ValueError, OSError) as exc:
            raise ContainerError(
                container["name"],
                f'failed to prepare subPath for volumeMount "{mount["name"]}" of container '
                f'"{container["name"]}"',
                reason="CreateContainerConfigError",
            ) from exc

    async def _mounts(self, state: PodProcesses, pod: Mapping[str, Any]) -> None:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        sources: dict[str, Path] = {}
        script = ["set -e"]
        mounted: set[str] = set()
        hosts = state.dir / "hosts"
        self.write_hosts(pod, state)
        script.append(f"mount --bind {shlex.quote(str(hosts))} /etc/hosts")
        for container in [*(pod["spec"].get("initContainers") or []), *pod["spec"]["containers"]]:
            for mount in container.get("volumeMounts") or []:
                target = _absolute(str(mount["mountPath"]))
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
                    source = self._sub_path(source, mount, container)
                self._mount_point(state, Path(target), is_file=source.is_file())
                script.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
                if mount.get("readOnly"):
                    script.append(f"mount -o remount,bind,ro {shlex.quote(target)}")
                mounted.add(target)
        for container in pod["spec"]["containers"]:
            script += self._working_dir(state, pod, container, mounted)
        await run_tool("nsenter", "-t", str(state.pid1), "-m", "sh", "-c", "\n".join(script))

    def _working_dir(
        self, state: PodProcesses, pod: Mapping[str, Any], container: Mapping[str, Any], mounted: set[str]
    ) -> list[str]:
        """What makes a container's working directory in the pod: it must not land on this machine.

        Without ``workingDir`` the container starts in a directory of its own (no mount needed). A
        ``workingDir`` inside a volume is made in the volume, as the runtime would in the container's
        filesystem. One that is missing here is the container's own directory, mounted there. One
        that exists here is used as it is (the image is ignored: this machine's files stand for it).
        """
        own = self._own_dir(state, pod, container)
        wanted = container.get("workingDir")
        if not wanted:
            return []
        path = Path(_absolute(str(wanted)))
        if any(path == Path(t) or path.is_relative_to(t) for t in mounted):
            return [f"mkdir -p {shlex.quote(str(path))}"]
        if path.exists():
            return []
        self._mount_point(state, path, is_file=False)
        mounted.add(str(path))
        return [f"mount --bind {shlex.quote(str(own))} {shlex.quote(str(path))}"]

    def _own_dir(self, state: PodProcesses, pod: Mapping[str, Any], container: Mapping[str, Any]) -> Path:
        """The container's own directory, empty, owned by the user it runs as."""
        path = container_dir(state, container["name"])
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self._uid(pod, container) or 0, self._gid(pod, container) or 0)
        return path

    def write_hosts(self, pod: Mapping[str, Any], state: PodProcesses | None = None) -> None:
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
        self, state: PodProcesses, pod: Mapping[str, Any], container: Mapping[str, Any], on_exit: ExitCallback
    ) -> None:
        env = self.environment(pod, container, state.ip)
        argv = self.argv(container, env)
        cmd = ["nsenter", "-t", str(state.pid1), "-n", "-m", "-u", "-p"]
        workdir = container.get("workingDir") or container_dir(state, container["name"])
        cmd += [
            f"--wdns={workdir}",
            "--",
            *self._credentials(pod, container),
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            *argv,
        ]
        await self._launch(state, container["name"], cmd, on_exit)

    def _main_pids(self, c: ContainerProcess) -> list[int]:
        # nsenter forks into the PID namespace: the container's main process is its child
        return _children(c.proc.pid) or [c.proc.pid]

    async def stop_pod_key(self, key: tuple[str, str], grace: float) -> None:
        state = self.pods.get(key)
        if state is None:
            return
        await self._reap(state, grace)
        if state.pid1:
            send_signal(state.pid1, signal.SIGKILL)  # the whole PID namespace goes with it
        await self._finish(state)
        if state.sandbox is not None:
            if state.sandbox.returncode is None:
                send_signal(state.sandbox.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.sandbox.wait(), timeout=5)
        if state.ip and state.veth:  # the veth died with the namespace; the route with it
            with contextlib.suppress(RuntimeError):
                await run_tool("ip", "link", "del", state.veth)
        self.mount_points.release(state.created_dirs, owner=state.uid)
        shutil.rmtree(state.dir, ignore_errors=True)
        self.pods.pop(key, None)

    def forget_volume(self, pvc_uid: str) -> None:
        """A claim was deleted: its directory goes too (reclaimPolicy Delete)."""
        shutil.rmtree(self.state_dir / "volumes" / f"pvc-{pvc_uid}", ignore_errors=True)

    async def close(self) -> None:
        await super().close()
        if self._forwarding is not None and self._forwarding != "1":
            _set_forwarding(self._forwarding)
        self._forwarding = None
