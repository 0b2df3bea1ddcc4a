"""The demo itself, start to stop: simcluster, then JupyterHub (which starts the proxy and the service)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from .checks import busy_port, check_commands, check_ports, check_state_dir
from .control import capacity, create_namespace, hub_answers, read_endpoints, wait_for
from .plan import CLUSTERS, NAMESPACE, Plan, commands_text, gateway_environment, hub_environment, overlay
from .processes import Child, Supervisor
from .state import DemoError, DemoState, remove_state, write_state

__all__ = ["run"]

SIM_START_TIMEOUT = 60.0  # seconds for simcluster to write its endpoints file
# What the demo leaves behind from an earlier run and makes afresh: the clusters start empty each time,
# so the hub's database and cookies start empty too.
_STALE = ("endpoints.json", "jupyterhub.sqlite", "jupyterhub_cookie_secret", "jupyterhub-proxy.pid")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


@contextlib.contextmanager
def _log_on_error(child: Child) -> Iterator[None]:
    """A failed wait's DemoError names the child's log and its last line, as they are when it failed."""
    try:
        yield
    except DemoError as exc:
        last = child.log_tail(1).strip()
        raise DemoError(f"{exc} (its log: {child.log}{'; last line: ' + last if last else ''})") from None


def _synced(state: DemoState) -> bool:
    """The service answers, and has listed every cluster's nodes and pods once."""
    answer = capacity(state)
    clusters = (answer or {}).get("clusters") or []
    return len(clusters) == len(CLUSTERS) and all(c.get("synced") for c in clusters)


def _program() -> str:
    """How another shell runs this hybridhub script: its name when PATH finds it, else its path."""
    script = Path(sys.executable).parent / "hybridhub"
    found = shutil.which("hybridhub")
    if found and Path(found).resolve() == script.resolve():
        return "hybridhub"
    with contextlib.suppress(ValueError):  # not under the current directory
        return str(script.relative_to(Path.cwd()))
    return str(script)


def _banner(plan: Plan, state: DemoState, shown_dir: str, seconds: float) -> str:
    option = f"--state-dir {shown_dir}" if shown_dir != ".demo" else ""
    lines = [
        f"hybridhub demo: ready in {seconds:.1f} s at {plan.url}",
        f"  Log in with any user name and the password: {plan.password}",
        f"  (the URL, the password and the ports are also in {shown_dir}/demo.json)",
    ]
    if state.runtime != "process":
        lines.append(
            f"  simcluster runs pods without root ({state.runtime}): outages --link and --site need root"
        )
    lines += [
        f"SSH into a notebook: add your public key at {plan.url}services/hybridhub/ssh, which also gives",
        "  a ready ~/.ssh/config snippet; or, with the CA line it shows in ~/.ssh/hybridhub_known_hosts,",
        f"  ssh -J USER@{plan.ssh_address} USER",
        "From another shell:",
        commands_text(_program(), option),
        f"  KUBECONFIG={shown_dir}/kubeconfig kubectl --context onprem get pods -n {NAMESPACE} -o wide",
        "Stop with Ctrl-C.",
    ]
    return "\n".join(lines)


def run(plan: Plan, *, shown_dir: str, startup_timeout: float) -> int:
    """Run the demo until SIGINT or SIGTERM; 0 then, 1 when something fails or ends on its own."""
    began = time.monotonic()
    state_dir = plan.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    check_state_dir(state_dir)
    as_root = os.geteuid() == 0
    # the hub's PATH: this Python's scripts (hybridhub, jupyterhub-singleuser) first
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    check_commands(plan, path)
    check_ports(plan, "process" if as_root else "process-loopback")
    for name in _STALE:
        (state_dir / name).unlink(missing_ok=True)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    env = {**os.environ, "PATH": path}
    env.pop("JUPYTERHUB_API_TOKEN", None)  # a demo started from a notebook must not pass its token on
    supervisor = Supervisor()
    try:
        print("hybridhub demo: starting simcluster (clusters onprem and eks)", flush=True)
        sim = supervisor.start(
            "simcluster",
            [
                *(sys.executable, "-m", "spawner.cli", "sim", "up", "--runtime", "process"),
                *("--kubeconfig", str(plan.kubeconfig), "--endpoints", str(plan.endpoints)),
                *("--state-dir", str(state_dir / "sim"), "--log-level", "INFO"),
            ],
            env=env,
            cwd=state_dir,
            log=state_dir / "simcluster.log",
        )
        with _log_on_error(sim):
            wait_for(
                lambda: stop.is_set() or plan.endpoints.exists(),
                SIM_START_TIMEOUT,
                "simcluster did not start",
                alive=sim.running,
            )
        if stop.is_set():
            return 0
        endpoints = read_endpoints(plan.endpoints)
        runtime = str(endpoints["clusters"][CLUSTERS[0]]["runtime"])
        for cluster in CLUSTERS:
            create_namespace(plan.kubeconfig, endpoints, cluster, NAMESPACE)
        _write_private(plan.hub_config, overlay(plan, runtime=runtime, as_root=as_root, endpoints=endpoints))
        if runtime != "process":
            plan.loopback_home.mkdir(mode=0o700, exist_ok=True)
        print("hybridhub demo: starting JupyterHub, the proxy and the hybridhub service", flush=True)
        hub = supervisor.start(
            "jupyterhub",
            [sys.executable, "-m", "jupyterhub", "-f", str(plan.hub_config)],
            env={**env, **hub_environment(plan, endpoints, runtime)},
            cwd=state_dir,
            log=state_dir / "jupyterhub.log",
        )
        state = DemoState(
            pid=os.getpid(),
            url=plan.url,
            password=plan.password,
            ports=plan.ports.as_dict(),
            token=plan.demo_token,
            endpoints=str(plan.endpoints),
            kubeconfig=str(plan.kubeconfig),
            runtime=runtime,
            hub_log=str(hub.log),
            sim_log=str(sim.log),
        )
        with _log_on_error(hub):
            wait_for(
                lambda: stop.is_set() or (hub_answers(plan.url) and _synced(state)),
                startup_timeout,
                "JupyterHub and the hybridhub service did not come up",
                alive=lambda: hub.running() and sim.running(),
            )
        if stop.is_set():
            return 0
        print("hybridhub demo: starting the SSH gateway", flush=True)
        gateway = supervisor.start(
            "ssh-gateway",
            [
                *(sys.executable, "-m", "spawner.cli", "ssh-gateway", f"--ip={plan.ip or '0.0.0.0'}"),
                *(f"--port={plan.ports.ssh}", f"--host-key={plan.gateway_key}"),
            ],
            env={**env, **gateway_environment(plan)},
            cwd=state_dir,
            log=state_dir / "ssh-gateway.log",
        )
        with _log_on_error(gateway):
            wait_for(
                lambda: stop.is_set() or busy_port(plan.local_host, plan.ports.ssh),
                30,
                "the SSH gateway did not start",
                alive=gateway.running,
            )
        if stop.is_set():
            return 0
        write_state(state_dir, state)
        print(_banner(plan, state, shown_dir, time.monotonic() - began), flush=True)
        while not stop.wait(0.5):
            supervisor.reap_orphans()
            gone = supervisor.exited()
            if gone is not None:
                raise DemoError(
                    f"{gone.name} exited on its own with {gone.proc.returncode} (its log: {gone.log}); "
                    "stopping the demo"
                )
        return 0
    except DemoError as exc:
        print(f"hybridhub demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        remove_state(state_dir)
        print("hybridhub demo: stopping", flush=True)
        supervisor.stop()
        print("hybridhub demo: stopped", flush=True)
