"""What an SSH session runs: a command or a login shell as the notebook's user, with or without a PTY,
and SFTP rooted at the home directory."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import inspect
import logging
import os
import pty
import signal
import struct
import termios
from collections.abc import Mapping
from dataclasses import dataclass

import asyncssh
from asyncssh.constants import EXTENDED_DATA_STDERR

from .channeldata import send_channel_data

__all__ = ["HomeSFTPServer", "SessionProcess", "SessionSettings", "run_session", "session_env"]

log = logging.getLogger(__name__)

# What the client may set with SendEnv/SetEnv, as OpenSSH's default AcceptEnv in Debian allows.
_CLIENT_ENV_NAMES = frozenset({"LANG", "TERM", "COLORTERM"})


@dataclass(frozen=True)
class SessionSettings:
    """How sessions run: the shell, the home directory and the environment they start from."""

    shell: str
    home: str
    login_name: str
    environment: Mapping[str, str]
    port: int
    # OpenSSH's sftp-server to run for the sftp subsystem; empty: asyncssh's SFTP server, in process
    sftp_server: str = ""


def session_env(
    settings: SessionSettings,
    client_env: Mapping[str, str],
    peer: tuple[str, int],
    term: str | None,
) -> dict[str, str]:
    """The environment of a session: the notebook's, then what sshd sets, then the locale the client sent."""
    env = dict(settings.environment)
    env.update(
        HOME=settings.home,
        USER=settings.login_name,
        LOGNAME=settings.login_name,
        SHELL=settings.shell,
        SSH_CLIENT=f"{peer[0]} {peer[1]} {settings.port}",
        SSH_CONNECTION=f"{peer[0]} {peer[1]} 0.0.0.0 {settings.port}",
    )
    for name, value in client_env.items():
        if name in _CLIENT_ENV_NAMES or name.startswith("LC_"):
            env[name] = value
    if term:
        env["TERM"] = term
    return env


def _argv(settings: SessionSettings, command: str | None) -> list[str]:
    if command is not None:
        return [settings.shell, "-c", command]
    # a leading dash in argv[0] makes the shell a login shell, as sshd starts it
    return ["-" + os.path.basename(settings.shell)]


def _take_terminal() -> None:
    """In the child: make the PTY on stdin its controlling terminal (the child leads a new session)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _str_env(env: Mapping[str, str | bytes] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (env or {}).items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[str(name)] = value
    return out


async def run_session(process: asyncssh.SSHServerProcess[bytes], settings: SessionSettings) -> None:
    """Run the session's command (or a login shell) and send back its exit status or signal."""
    peer = process.channel.get_extra_info("peername") or ("0.0.0.0", 0)
    env = session_env(settings, _str_env(process.env), (str(peer[0]), int(peer[1])), process.term_type)
    if process.subsystem == "sftp" and settings.sftp_server:
        argv, executable = [settings.sftp_server], settings.sftp_server
    elif process.subsystem:
        process.stderr.write(f"subsystem {process.subsystem!r} is not offered here\n".encode())
        process.exit(1)
        return
    else:
        argv, executable = _argv(settings, process.command), settings.shell
    _send_output_uncopied(process)
    try:
        if process.term_type and not process.subsystem:
            rc = await _run_with_pty(process, argv, executable, env, settings.home)
        else:
            rc = await _run_with_pipes(process, argv, executable, env, settings.home)
    except OSError as exc:
        log.warning("could not start %s: %s", executable, exc)
        process.stderr.write(f"could not start {executable}: {exc.strerror}\n".encode())
        process.exit(127)
        return
    if rc < 0:
        process.exit_with_signal(signal.Signals(-rc).name.removeprefix("SIG"))
    else:
        process.exit(rc)
    # until the client closes the channel; this also runs asyncssh's clean-up of the redirects
    await process.wait_closed()


def _send_output_uncopied(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """Make what the program writes to stdout (or the PTY) go out as ``send_channel_data`` sends it,
    not through asyncssh's copies: asyncssh's redirects hand each read to the process's
    ``feed_data``, which writes it to the channel. Standard error keeps the channel's own write."""
    chan = process.channel

    def feed_data(data: bytes, datatype: int | None) -> None:
        if datatype is None:
            send_channel_data(chan, data)
        else:
            chan.write(data, datatype)

    process.feed_data = feed_data  # type: ignore[method-assign]


async def _run_with_pipes(
    process: asyncssh.SSHServerProcess[bytes], argv: list[str], executable: str, env: dict[str, str], cwd: str
) -> int:
    # plain pipes for the outputs, not asyncio streams: asyncssh then relays them without an 8 KiB limit
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    try:
        child = await asyncio.create_subprocess_exec(
            *argv,
            executable=executable,
            stdin=asyncio.subprocess.PIPE,
            stdout=w_out,
            stderr=w_err,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError:
        for fd in (r_out, w_out, r_err, w_err):
            os.close(fd)
        raise
    os.close(w_out)
    os.close(w_err)
    # EOF goes on the channel only once both outputs are drained: an EOF after stdout alone would cut
    # off the rest of stderr (SSH's EOF ends the extended data too)
    await process.redirect(stdout=r_out, stderr=r_err, send_eof=False)
    feeding = asyncio.create_task(_feed_stdin(process, child))
    try:
        rc = await child.wait()
        await process.stdout.drain()
        await process.stderr.drain()
    finally:
        feeding.cancel()
    process.channel.write_eof()
    return rc


async def _feed_stdin(process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process) -> None:
    """Copy the channel's input to the child's stdin, and signals to the child.

    Done here rather than by asyncssh's redirect: asyncssh 2.24.1 passes the channel's EOF to a pipe
    while input it paused for flow control is still queued, so the end of a large upload was lost.
    """
    stdin = child.stdin
    if stdin is None:  # not reached: the child is started with a pipe for stdin
        return
    try:
        while True:
            try:
                data = await process.stdin.read(65536)
            except (asyncssh.SignalReceived, asyncssh.BreakReceived) as exc:
                name = exc.signal if isinstance(exc, asyncssh.SignalReceived) else "INT"
                with contextlib.suppress(AttributeError, ProcessLookupError, ValueError):
                    child.send_signal(signal.Signals[f"SIG{name}"])
                continue
            except asyncssh.TerminalSizeChanged:
                continue
            if not data:
                break
            stdin.write(data)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child stopped reading
    finally:
        stdin.close()


async def _run_with_pty(
    process: asyncssh.SSHServerProcess[bytes], argv: list[str], executable: str, env: dict[str, str], cwd: str
) -> int:
    master, slave = pty.openpty()
    # the size first: asyncssh sets it only when it attaches the PTY, after the program may have asked
    width, height, pixwidth, pixheight = process.term_size
    if width and height:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))
    try:
        child = await asyncio.create_subprocess_exec(
            *argv,
            executable=executable,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
    except OSError:
        os.close(master)
        os.close(slave)
        raise
    os.close(slave)
    # asyncssh sets the window size on a tty it writes to, and again on each window-change request;
    # stderr stays on the channel (redirecting it to DEVNULL would close the whole channel)
    await process.redirect(stdin=os.dup(master), stdout=os.dup(master))
    try:
        rc = await child.wait()
        # the PTY is drained once its reader sees EIO, after the last process holding the slave exits
        await process.stdout.drain()
    finally:
        with contextlib.suppress(OSError):
            os.close(master)
    return rc


class SessionProcess(asyncssh.SSHServerProcess[bytes]):
    """asyncssh's server process, with the sftp subsystem run by OpenSSH's sftp-server when one is set.

    Stock asyncssh accepts the sftp subsystem only for its in-process SFTP server. OpenSSH's binary
    does its file I/O off the event loop and offers OpenSSH's extensions (posix-rename, statvfs,
    fsync, hardlink, limits), so it is preferred where the image has it. Other subsystems are refused.
    """

    def __init__(self, settings: SessionSettings, sftp_factory: asyncssh.SFTPServerFactory) -> None:
        self._relay_sftp = bool(settings.sftp_server)
        super().__init__(
            functools.partial(run_session, settings=settings),
            None if self._relay_sftp else sftp_factory,
            3,
            False,
        )

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"

    def session_started(self) -> None:
        if not (self._relay_sftp and self.channel.get_subsystem() == "sftp"):
            super().session_started()
            return
        # what asyncssh does for a command, for the subsystem it would otherwise hand to its own server
        chan = self.channel
        stdin = asyncssh.SSHReader[bytes](self, chan)
        stdout = asyncssh.SSHWriter[bytes](self, chan)
        stderr = asyncssh.SSHWriter[bytes](self, chan, EXTENDED_DATA_STDERR)
        handler = self._start_process(stdin, stdout, stderr)
        if inspect.isawaitable(handler):
            chan.get_connection().create_task(handler, stdin.logger)


class HomeSFTPServer(asyncssh.SFTPServer):
    """asyncssh's SFTP server with relative paths starting at the home directory, as OpenSSH's do."""

    home: bytes = b"/"

    def map_path(self, path: bytes) -> bytes:
        return path if path.startswith(b"/") else os.path.join(self.home, path)

    def exit(self) -> None:
        # sshd sends the sftp-server's exit status; asyncssh sends none, and scp (which uses SFTP since
        # OpenSSH 9) then fails though every file arrived
        with contextlib.suppress(OSError):
            self.channel.exit(0)
