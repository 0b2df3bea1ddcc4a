"""Mount points the process runtime makes on the host, counted per pod across every simcluster here.

A pod's mount namespace starts as a copy of the host's, so a bind mount needs its target to exist on
the host filesystem. A missing target is created there, empty, and must go once no pod mounts on it
any more. It must not go sooner: removing a directory that another mount namespace mounts on
detaches that mount (Linux 3.18 and later), so the other pod would lose its volume. Pods of several
clusters, and of several simclusters on this machine, may share one target such as
``/home/jovyan``. So each claim is a file in a registry under ``/run`` (``/run`` is per boot, as
mounts are), made and read under one ``flock``. A claim names the process ID that made it, and the
claims of a simcluster that died without cleaning up no longer count.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["REGISTRY", "MountPoints"]

REGISTRY = Path("/run/simcluster/mountpoints")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MountPoints:
    """Host paths made for mount points, each removed when the last pod that claimed it lets go.

    Every call is a few file operations under a lock that is held for no longer: safe on the event loop.
    """

    def __init__(self, registry: Path = REGISTRY) -> None:
        self.registry = registry

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.registry.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.registry / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _entry(self, path: Path) -> Path:
        """The registry's directory for ``path``: one claim file in it per pod."""
        return self.registry / hashlib.sha256(str(path).encode()).hexdigest()

    def _claims(self, entry: Path) -> list[Path]:
        """The live claims of an entry; those of processes that are gone are removed."""
        live = []
        for claim in entry.iterdir() if entry.is_dir() else ():
            pid = claim.name.partition("-")[0]
            if pid.isdigit() and _alive(int(pid)):
                live.append(claim)
            else:
                with contextlib.suppress(OSError):
                    claim.unlink()
        return live

    def claim(self, target: Path, *, is_file: bool, owner: str) -> list[Path]:
        """Make ``target`` exist for a bind mount; returns the paths ``owner`` now holds for it.

        They are the missing ones, created now, and those some pod created before that are still
        held: the walk up from ``target`` stops at the first path that was there before simcluster.
        """
        held: list[Path] = []
        with self._locked():
            probe = target
            while probe != probe.parent:
                entry = self._entry(probe)
                ours = entry.is_dir()
                if probe.exists() and not ours:
                    break
                held.append(probe)
                probe = probe.parent
            for path in reversed(held):  # the outermost first
                entry = self._entry(path)
                if not path.exists():
                    if path == target and is_file:
                        path.touch()
                    else:
                        path.mkdir()
                entry.mkdir(exist_ok=True)
                (entry / f"{os.getpid()}-{owner}").touch()
        return held

    def release(self, paths: Sequence[Path], *, owner: str) -> None:
        """``owner`` lets go of ``paths``; each that nobody holds any more is removed from the host."""
        with self._locked():
            for path in sorted(set(paths), key=lambda p: len(p.parts), reverse=True):  # the innermost first
                entry = self._entry(path)
                with contextlib.suppress(OSError):
                    (entry / f"{os.getpid()}-{owner}").unlink()
                if not entry.is_dir() or self._claims(entry):
                    continue
                with contextlib.suppress(OSError):
                    if path.is_dir() and not path.is_symlink():
                        path.rmdir()  # only if empty: the host never saw what was mounted there
                    elif path.exists():
                        path.unlink()
                with contextlib.suppress(OSError):
                    entry.rmdir()
