"""Throughput, CPU and new-connection latency of hybridhub's SSH server and gateway against OpenSSH sshd.

    .venv/bin/python bench/ssh.py              # 1 GiB per transfer, 3 runs each, 10 logins per path: 4 min
    .venv/bin/python bench/ssh.py --quick      # 64 MiB, 1 run each, 3 logins: about 30 s

In one run, with the real OpenSSH client and the same cipher everywhere (``--cipher``, AES-GCM by
default, the first our server offers), each of these paths gets three transfers of ``--size`` bytes,
``--reps`` times, interleaved so that the machine's drift hits every path alike (medians shown):

- ``ours``: the pod's SSH server (``hybridhub ssh-server``) directly;
- ``ours via gateway``: the same server through ``hybridhub ssh-gateway`` (``ssh -J``);
- ``sshd``: Debian's OpenSSH sshd on a port of its own, with its own config, directly;
- ``sshd via sshd``: sshd as the ProxyJump host in front of itself;
- ``ours via sshd``: sshd as the ProxyJump host in front of the pod's server, the peer of our gateway;
- ``asyncssh minimal``: bench/ssh_minimal.py, the least an asyncssh server does (exec through its
  own redirects, its in-process SFTP server): the floor ours is held to.

The transfers: ``stream`` (``ssh HOST 'head -c SIZE /dev/zero'`` read to the end), ``upload``
(``SIZE`` bytes piped to ``ssh HOST 'wc -c'``, which must print SIZE) and ``sftp get`` (a file of
``SIZE`` bytes fetched with ``sftp -b``). Each prints MiB/s, its ratio to sshd's on the same
transfer, and CPU seconds per GiB of the client (``ssh``, its ProxyJump child included), of the jump
host (the gateway, or sshd's jump session), and of the server (with the programs its sessions ran).
Then the median and worst time of ``ssh HOST true`` per path: a new connection and login.

The server and the gateway are the product's own processes, started as the CLI starts them; the hub
and the service they call are the real small stand-in the SSH tests use (tests/ssh/standin.py: a
real CA signs the host certificates), with the gateway's endpoints added. Needs root for sshd, and
the OpenSSH client, sshd and sftp-server (``make test`` installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import psutil
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.ssh.standin import PREFIX, StandIn  # noqa: E402

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
GATEWAY_TOKEN = "tok-bench-gateway"
SERVER_TOKEN = "tok-alice-server"
GiB = 1 << 30


class BenchStandIn(StandIn):
    """The stand-in of the SSH tests plus what the gateway asks: who alice is and that her server runs
    (the hub), where it runs, her registered keys and the gateway's own certificate (the service)."""

    pod_ip: str = "127.0.0.1"

    def gateway_only(self, request: web.Request) -> None:
        if request.headers.get("Authorization", "") != f"token {GATEWAY_TOKEN}":
            raise web.HTTPForbidden(text='{"message": "not the gateway"}', content_type="application/json")

    async def get_user_model(self, request: web.Request) -> web.Response:
        self.gateway_only(request)
        name = request.match_info["name"]
        if name not in self.keys:
            return web.json_response({"status": 404, "message": "no such user"}, status=404)
        servers = {"": {"ready": True, "pending": None}}
        return web.json_response({"name": name, "admin": False, "groups": [], "servers": servers})

    async def get_shares(self, request: web.Request) -> web.Response:
        self.gateway_only(request)
        return web.json_response({"items": []})

    async def get_server(self, request: web.Request) -> web.Response:
        self.gateway_only(request)
        return web.json_response({"cluster": "onprem", "pod": "jupyter-alice", "ip": self.pod_ip})

    async def get_keys(self, request: web.Request) -> web.Response:
        self.gateway_only(request)
        user = request.query.get("user", "")
        return web.json_response({"user": user, "keys": [{"key": k} for k in self.keys.get(user, [])]})

    async def post_gateway_certificate(self, request: web.Request) -> web.Response:
        self.gateway_only(request)
        key = asyncssh.import_public_key((await request.json())["public_key"])
        valid_before = int(time.time() + self.cert_lifetime)
        cert = self.ca.generate_host_certificate(
            key,
            "127.0.0.1",
            principals=["127.0.0.1"],
            valid_after=int(time.time()) - 60,
            valid_before=valid_before,
        )
        return web.json_response(
            {"certificate": cert.export_certificate().decode().strip(), "valid_before": valid_before}
        )

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/hub/api/users/{name}", self.get_user_model)
        app.router.add_get("/hub/api/shares/{owner}/{server}", self.get_shares)
        app.router.add_get(PREFIX + "api/servers/{owner}", self.get_server)
        app.router.add_get(PREFIX + "api/ssh/keys", self.get_keys)
        app.router.add_post(PREFIX + "api/ssh/gateway-certificate", self.post_gateway_certificate)
        return app


class LoopThread:
    """The stand-in's event loop, in a thread of its own, so that this process may wait on clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="standin", daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_banner(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until the process on ``port`` sends an SSH banner; fails at once when the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{shlex.join(map(str, proc.args))} exited with {proc.returncode}")  # type: ignore[arg-type]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered SSH on port {port} within {timeout:g} s")


@contextmanager
def started(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """The CPU time of ``pid`` and of the children it has reaped (sessions, their programs)."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


@dataclass
class Setup:
    work: Path
    config: Path
    server_pid: int
    gateway_pid: int
    sshd_pid: int
    minimal_pid: int
    big_file: Path
    size: int


@dataclass(frozen=True)
class Route:
    name: str
    host: str  # the ssh_config host
    server: str  # which process is the server: "ours", "sshd" or "minimal"
    jump: str | None  # which process is the jump host: "gateway", "sshd" or None


PATHS = (
    Route("ours", "ours", "ours", None),
    Route("ours via gateway", "ours-gw", "ours", "gateway"),
    Route("sshd", "sshd", "sshd", None),
    Route("sshd via sshd", "sshd-via-sshd", "sshd", "sshd"),
    Route("ours via sshd", "ours-via-sshd", "ours", "sshd"),
    Route("asyncssh minimal", "minimal", "minimal", None),
)


OPS = ("stream", "upload", "sftp get")


@dataclass
class Result:
    path: Route
    op: str
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)  # process role -> CPU seconds


def median_result(runs: list[Result]) -> Result:
    """The median time of the runs of one transfer on one path, with the median CPU of each role."""
    cpu = {role: statistics.median(r.cpu[role] for r in runs) for role in runs[0].cpu}
    return Result(runs[0].path, runs[0].op, statistics.median(r.seconds for r in runs), cpu)


def ssh_config(
    work: Path,
    keys: Path,
    *,
    ca_line: str,
    sshd_key: str,
    minimal_key: str,
    ports: dict[str, int],
    cipher: str,
) -> Path:
    known = work / "known_hosts"
    known.write_text(f"@cert-authority * {ca_line}\nsshd-bench {sshd_key}\nminimal-bench {minimal_key}\n")
    common = (
        f"  IdentityFile {keys}\n  IdentitiesOnly yes\n  BatchMode yes\n  StrictHostKeyChecking yes\n"
        f"  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  Ciphers {cipher}\n"
        "  ConnectTimeout 20\n  ControlMaster no\n  ControlPath none\n  LogLevel ERROR\n"
    )
    sshd = f"  HostName 127.0.0.1\n  Port {ports['sshd']}\n  User root\n  HostKeyAlias sshd-bench\n"
    ours = f"  HostName 127.0.0.1\n  Port {ports['ours']}\n  User alice\n  HostKeyAlias alice\n"
    gateway = f"  HostName 127.0.0.1\n  Port {ports['gateway']}\n  User alice\n"
    stanzas = {
        "ours": ours,
        "gw": gateway,
        # the gateway resolves the host name "alice" to alice's default server
        "ours-gw": "  HostName alice\n  User alice\n  ProxyJump gw\n",
        "sshd": sshd,
        "sshd-via-sshd": sshd + "  ProxyJump sshd\n",
        "ours-via-sshd": ours + "  ProxyJump sshd\n",
        "minimal": (
            f"  HostName 127.0.0.1\n  Port {ports['minimal']}\n  User root\n  HostKeyAlias minimal-bench\n"
        ),
    }
    config = work / "ssh_config"
    config.write_text("".join(f"Host {name}\n{body}{common}\n" for name, body in stanzas.items()))
    return config


def sshd_config(work: Path, port: int, authorized: Path, cipher: str) -> Path:
    host_key = work / "sshd_host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile none\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nCiphers {cipher}\n"
        f"Subsystem sftp {SFTP_SERVER}\nAllowTcpForwarding yes\nMaxStartups 100:30:200\n"
    )
    return config


def roles(setup: Setup, path: Route) -> dict[str, int]:
    """The server-side processes a path's CPU is read from (the client is read from its own rusage)."""
    server = {"ours": setup.server_pid, "sshd": setup.sshd_pid, "minimal": setup.minimal_pid}[path.server]
    out = {"server": server}
    if path.jump == "gateway":
        out["jump"] = setup.gateway_pid
    elif path.jump == "sshd" and path.server == "ours":
        out["jump"] = setup.sshd_pid
    return out


def wait_rusage(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """The exit status and the CPU seconds of a finished client (its reaped children included)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{shlex.join(map(str, proc.args))} took over {timeout:g} s")  # type: ignore[arg-type]
        time.sleep(0.005)


def settle(pids: Iterable[int], timeout: float = 10) -> None:
    """Until the servers have reaped the processes of the connection just closed (sshd's per-connection
    process, the sessions' programs): only then are their CPU times in the parent's children times."""
    deadline = time.monotonic() + timeout
    procs = [psutil.Process(pid) for pid in set(pids)]
    while any(p.children() for p in procs) and time.monotonic() < deadline:
        time.sleep(0.01)


def run_op(setup: Setup, path: Route, op: str, timeout: float) -> Result:
    size = setup.size
    ssh = ["ssh", "-F", str(setup.config)]
    pids = roles(setup, path)
    before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    started_at = time.perf_counter()
    if op == "stream":
        client = subprocess.Popen([*ssh, path.host, f"head -c {size} /dev/zero"], stdout=subprocess.PIPE)
        counter = subprocess.run(
            ["wc", "-c"], stdin=client.stdout, capture_output=True, timeout=timeout, check=True
        )
        assert client.stdout is not None
        client.stdout.close()
        rc, client_cpu = wait_rusage(client, timeout)
        received = int(counter.stdout.split()[0])
    elif op == "upload":
        source = subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE)
        client = subprocess.Popen([*ssh, path.host, "wc -c"], stdin=source.stdout, stdout=subprocess.PIPE)
        assert source.stdout is not None and client.stdout is not None
        source.stdout.close()
        out = client.stdout.read()
        rc, client_cpu = wait_rusage(client, timeout)
        source.wait(timeout)
        received = int(out.split()[0]) if out.split() else -1
    else:
        batch = setup.work / "sftp.batch"
        batch.write_text(f"get {setup.big_file} /dev/null\n")
        client = subprocess.Popen(
            ["sftp", "-q", "-F", str(setup.config), "-b", str(batch), path.host],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        rc, client_cpu = wait_rusage(client, timeout)
        received = size if rc == 0 else -1
    seconds = time.perf_counter() - started_at
    if rc != 0 or received != size:
        raise SystemExit(f"{path.name} {op}: exit status {rc}, {received} bytes of {size}")
    settle(pids.values())
    cpu = {role: cpu_seconds(pid) - before[role] for role, pid in pids.items()}
    cpu["client"] = client_cpu
    return Result(path, op, seconds, cpu)


def login_times(setup: Setup, path: Route, count: int) -> list[float]:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        done = subprocess.run(
            ["ssh", "-F", str(setup.config), path.host, "true"], capture_output=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"{path.name}: ssh true failed: {done.stderr.decode(errors='replace')[-500:]}")
        times.append(time.perf_counter() - t0)
    return times


def start_all(stack: ExitStack, work: Path, cipher: str, size: int) -> Setup:
    key = asyncssh.generate_private_key("ssh-ed25519", comment="alice")
    key_file = work / "id_alice"
    key.write_private_key(key_file)
    key_file.chmod(0o600)
    public = key.export_public_key().decode().strip()
    authorized = work / "authorized_keys"
    authorized.write_text(public + "\n")

    standin = BenchStandIn(
        server_tokens={SERVER_TOKEN: ("alice", "")},
        user_tokens={},
        keys={"alice": [public]},
        allowed={"alice": ["alice"]},
    )
    loop = LoopThread()
    stack.callback(loop.close)
    runner = loop.run(standin.start())
    stack.callback(lambda: loop.run(runner.cleanup()))

    ports = {"ours": free_port(), "gateway": free_port(), "sshd": free_port(), "minimal": free_port()}
    hybridhub = str(Path(sys.executable).parent / "hybridhub")
    home = work / "home"
    home.mkdir()
    server = stack.enter_context(
        started(
            [
                hybridhub,
                "ssh-server",
                "--ip=127.0.0.1",
                f"--port={ports['ours']}",
                f"--home={home}",
                f"--SSHServerApp.service_url={standin.url}{PREFIX}",
                f"--SSHServerApp.api_url={standin.url}/hub/api",
                "--SSHServerApp.user=alice",
                "--SSHServerApp.shell=/bin/bash",
            ],
            work / "ssh-server.log",
            env={**os.environ, "JUPYTERHUB_API_TOKEN": SERVER_TOKEN},
        )
    )
    wait_for_banner(ports["ours"], server)
    gateway = stack.enter_context(
        started(
            [
                hybridhub,
                "ssh-gateway",
                "--GatewayApp.ip=127.0.0.1",
                f"--GatewayApp.port={ports['gateway']}",
                f"--GatewayApp.pod_ssh_port={ports['ours']}",
                f"--GatewayApp.api_url={standin.url}/hub/api",
                f"--GatewayApp.service_url={standin.url}{PREFIX}",
                f"--GatewayApp.host_key_file={work / 'gateway_host_key'}",
            ],
            work / "ssh-gateway.log",
            env={**os.environ, "JUPYTERHUB_API_TOKEN": GATEWAY_TOKEN},
        )
    )
    wait_for_banner(ports["gateway"], gateway)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    sshd = stack.enter_context(
        started(
            [SSHD, "-D", "-e", "-f", str(sshd_config(work, ports["sshd"], authorized, cipher))],
            work / "sshd.log",
        )
    )
    wait_for_banner(ports["sshd"], sshd)
    sshd_key = (work / "sshd_host_ed25519.pub").read_text().split()
    minimal_host_key = asyncssh.generate_private_key("ssh-ed25519")
    minimal_host_key.write_private_key(work / "minimal_host_key")
    minimal = stack.enter_context(
        started(
            [
                sys.executable,
                str(Path(__file__).with_name("ssh_minimal.py")),
                str(ports["minimal"]),
                str(work / "minimal_host_key"),
                str(authorized),
            ],
            work / "minimal.log",
        )
    )
    wait_for_banner(ports["minimal"], minimal)
    big = work / "big"
    with big.open("wb") as f:
        f.truncate(size)  # sparse: the disk is not what is measured
    # read once, so that every path reads it from the page cache: the first reader of a sparse file
    # pays for filling the cache, which made whichever path came first look twice as slow
    with big.open("rb") as f:
        while f.read(1 << 20):
            pass
    ca_line = standin.ca.export_public_key().decode().strip()
    config = ssh_config(
        work,
        key_file,
        ca_line=ca_line,
        sshd_key=" ".join(sshd_key[:2]),
        minimal_key=minimal_host_key.export_public_key().decode().strip(),
        ports=ports,
        cipher=cipher,
    )
    return Setup(work, config, server.pid, gateway.pid, sshd.pid, minimal.pid, big, size)


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def report(
    results: list[Result], logins: dict[str, list[float]], size: int, out: Callable[[str], None]
) -> None:
    gib = size / GiB
    by = {(r.path.name, r.op): r for r in results}
    widths = [18, 10, 8, 9, 13, 12, 12, 12]
    out(
        fmt_row(
            [
                "path",
                "transfer",
                "MiB/s",
                "vs sshd",
                "vs sshd jump",
                "client s/GiB",
                "jump s/GiB",
                "server s/GiB",
            ],
            widths,
        )
    )
    out("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for r in results:
        rate = size / (1 << 20) / r.seconds
        sshd = by[("sshd", r.op)]
        ratio = sshd.seconds / r.seconds
        jump_peer = by.get(("ours via sshd", r.op)) if r.path.jump == "gateway" else None
        vs_jump = f"{jump_peer.seconds / r.seconds:.2f}" if jump_peer else ""
        jump = f"{r.cpu['jump'] / gib:.2f}" if "jump" in r.cpu else ""
        out(
            fmt_row(
                [
                    r.path.name,
                    r.op,
                    f"{rate:.0f}",
                    f"{ratio:.2f}",
                    vs_jump,
                    f"{r.cpu['client'] / gib:.2f}",
                    jump,
                    f"{r.cpu['server'] / gib:.2f}",
                ],
                widths,
            )
        )
    out("")
    out(fmt_row(["path", "logins", "median ms", "worst ms", "vs sshd"], [18, 7, 10, 9, 8]))
    sshd_median = statistics.median(logins["sshd"])
    for name, times in logins.items():
        median = statistics.median(times)
        out(
            fmt_row(
                [
                    name,
                    str(len(times)),
                    f"{median * 1000:.0f}",
                    f"{max(times) * 1000:.0f}",
                    f"{median / sshd_median:.2f}",
                ],
                [18, 7, 10, 9, 8],
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB per transfer (default 1024)")
    parser.add_argument("--reps", type=int, default=3, help="runs of each transfer; medians (default 3)")
    parser.add_argument("--logins", type=int, default=10, help="ssh HOST true per path (default 10)")
    parser.add_argument("--cipher", default="aes128-gcm@openssh.com", help="the cipher of every connection")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 3 logins")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per transfer (default 300)")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.logins, args.reps = min(args.size, 64), min(args.logins, 3), 1
    missing = [b for b in ("ssh", "sftp", SSHD, SFTP_SERVER) if not shutil.which(b) and not Path(b).exists()]
    if missing or os.geteuid() != 0:
        print(f"bench/ssh.py needs root and {', '.join(missing) or 'OpenSSH'} (make test installs them)")
        return 2
    given = argv if argv is not None else sys.argv[1:]
    print(f"$ {shlex.join([Path(sys.executable).name, 'bench/ssh.py', *given])}")
    openssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"asyncssh {asyncssh.__version__}, {openssh}, cipher {args.cipher}"
    )
    size = args.size << 20
    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp, ExitStack() as stack:
        setup = start_all(stack, Path(tmp), args.cipher, size)
        runs: dict[tuple[str, str], list[Result]] = {}
        for _ in range(args.reps):  # interleaved, so that the machine's drift hits every path alike
            for path in PATHS:
                for op in OPS:
                    runs.setdefault((path.name, op), []).append(run_op(setup, path, op, args.timeout))
        results = [median_result(r) for r in runs.values()]
        logins = {path.name: login_times(setup, path, args.logins) for path in PATHS}
        print(
            f"# {args.size} MiB per transfer, median of {args.reps}; CPU seconds per GiB moved; "
            "'vs sshd': sshd's time over this"
        )
        report(results, logins, size, print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
