"""A researcher's notebook, run by a real kernel in alice's pod, submits a Hera DAG, a Katib sweep and a
2-node TrainJob through the hub with no host, token or kubeconfig typed; %gpus and %runs agree with
the service; the same Hera code works from a terminal; the pod holds no credential on disk.

How the kernel is driven: nbclient's NotebookClient with jupyter_server's GatewayKernelManager, its
GatewayClient pointed at alice's server through the hub's proxy with alice's hub token. The
GatewayKernelClient (jupyter_server 2.21) opens its websocket with no Authorization header, and a
user's server behind the hub wants the token there, so the one subclass below opens it with the header;
everything else is the library's. The
terminal is the server's terminals REST API plus its websocket (terminado's ["stdin", ...] messages).
"""

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from threading import Thread
from typing import Any

import nbformat
import pytest
import websocket
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_server.gateway.gateway_client import GatewayClient
from jupyter_server.gateway.managers import GatewayKernelClient, GatewayKernelManager
from jupyter_server.utils import url_escape, url_path_join
from nbclient import NotebookClient

from simcluster.testing import SimProcess
from tests.harness.cleanup import CLUSTERS
from tests.harness.hub import HubProcess
from tests.harness.hybrid import wire
from tests.harness.service_api import call, user_token, wait_for_service
from tests.harness.waits import wait_for

pytestmark = pytest.mark.timeout(240)

USER = "alice"
RUN_NAMESPACE = f"hybridhub-runs-{USER}"
ONPREM = {"gpus": 0, "cluster": "onprem"}
# What the deployment's hub_config/jupyterhub_config.d/30-service.py grants notebook servers.
SERVER_SCOPES = [
    "users:activity!user",
    "access:servers!server",
    "access:services!service=hybridhub",
    "custom:hybridhub:capacity",
    "custom:hybridhub:runs",
]


@dataclass
class Notebook:
    hub: HubProcess
    token: str  # alice's own hub token, as her browser's session would carry

    @property
    def server_url(self) -> str:
        return f"{self.hub.public_url}/user/{USER}/"

    def server(self, method: str, path: str, body: Any = None) -> Any:
        """A call to alice's notebook server's REST API through the hub's proxy."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.server_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def notebook(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notebook]:
    """A hub with the service and HybridSpawner whose pods reach the service at the clusters' gateway
    and whose servers' tokens hold the runs scope; alice's server runs the venv's jupyterhub-singleuser
    (with the extension and the SDK start-up hook) on onprem."""
    work = tmp_path_factory.mktemp("nbruns")
    hub = HubProcess(work / "hub", hsim, namespace="jupyterhub")
    hub.wiring = wiring = wire(hub, hsim, work, spawner=True)
    gateway = hsim.endpoints["clusters"]["onprem"]["pod_gateway"]
    with (work / "hybridhub_service_config.py").open("a") as config:
        # pods reach the service at the clusters' gateway address, as pods reach it in-cluster
        config.write(
            f"c.HybridHubService.bind_url = 'http://0.0.0.0:{wiring.service_port}/services/hybridhub/'\n"
        )
    pod_service = f"http://{gateway}:{wiring.service_port}/services/hybridhub/"
    hub.extra_config += f"""
c.HybridSpawner.pod_service_urls = {{"onprem": {pod_service!r}, "eks": {pod_service!r}}}
c.Spawner.server_token_scopes = {SERVER_SCOPES!r}
# Terminals run a plain shell, as the docker-stacks images configure it. A login shell would read this
# host's /etc/profile, whose Debian PATH drops the venv that simcluster's pods run from; the notebook
# image's Ubuntu profile keeps PATH, and there the default login shell finds python too.
c.Spawner.args = [*c.Spawner.args, '--ServerApp.terminado_settings={{"shell_command": ["/bin/sh"]}}']
"""
    with hub:
        wait_for_service(hub)
        token = user_token(hub, USER)
        hub.start_server(USER, ONPREM)
        hub.wait_ready(USER)
        try:
            yield Notebook(hub, token)
        finally:
            hub.stop_all_servers()
            for cluster in CLUSTERS:
                hsim.kubectl(
                    "delete", "namespace", RUN_NAMESPACE, "--wait=false", context=cluster, check=False
                )


# ------------------------------------------------------------------------------------------- kernel


class HubKernelClient(GatewayKernelClient):
    """GatewayKernelClient whose websocket carries the hub token (the library's opens it bare)."""

    async def start_channels(  # type: ignore[override]  # the gateway client's own is async too
        self,
        shell: bool = True,
        iopub: bool = True,
        stdin: bool = True,
        hb: bool = True,
        control: bool = True,
    ) -> None:
        gateway = GatewayClient.instance()
        url = url_path_join(
            gateway.ws_url or "", gateway.kernels_endpoint, url_escape(self.kernel_id), "channels"
        )
        self.channel_socket = websocket.create_connection(
            url,
            timeout=gateway.KERNEL_LAUNCH_TIMEOUT,
            enable_multithread=True,
            header=[f"Authorization: token {gateway.auth_token}"],
        )
        # the base class makes the channels (the gateway client's queues over this socket); it is sync
        AsyncKernelClient.start_channels(self, shell=shell, iopub=iopub, stdin=stdin, hb=hb, control=control)
        self.response_router = Thread(target=self._route_responses, daemon=True)
        self.response_router.start()


def remote_kernel(nb: Notebook) -> GatewayKernelManager:
    """A kernel manager for a new python3 kernel in alice's server, reached through the hub's proxy."""
    base = f"{nb.hub.public_url}/user/{USER}"
    GatewayClient.clear_instance()
    GatewayClient.instance(
        url=base,
        ws_url=base.replace("http://", "ws://", 1),
        auth_token=nb.token,
        request_timeout=60.0,
        connect_timeout=30.0,
    )
    return GatewayKernelManager(  # type: ignore[no-untyped-call]  # jupyter_server's has no annotations
        client_factory=HubKernelClient, kernel_name="python3"
    )


def text_of(outputs: list[Any]) -> str:
    """What a cell showed as text: its streams, its result's text/plain, and any error."""
    parts = []
    for out in outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}\n" + "\n".join(out.traceback))
    return "".join(parts)


class Session:
    """An nbclient session: each ``run`` appends a cell to the notebook and executes it in the kernel."""

    def __init__(self, client: NotebookClient) -> None:
        self.client = client

    async def run(self, source: str) -> str:
        cell = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
        self.client.nb.cells.append(cell)
        index = len(self.client.nb.cells) - 1
        await self.client.async_execute_cell(cell, index)
        return text_of(cell.outputs)


# ------------------------------------------------------------------------------------------- cells

# The Hera DAG a researcher writes, as one source: a kernel cell and the terminal's script run it.
HERA_DAG = """
from hera.workflows import DAG, Workflow, script

@script()
def prep():
    print("prepared")

@script()
def train(epochs: int):
    for i in range(epochs):
        print(f"epoch {{i}} loss={{1.0 / (i + 1):.3f}}")

with Workflow(name="{name}", entrypoint="main") as w:
    with DAG(name="main"):
        prep() >> train(arguments={{"epochs": 3}})

w.create()
done = w.wait(1)
print("phase", done.status.phase)
"""

KATIB_TUNE = """
import kubeflow.katib as katib
from kubeflow.katib import KatibClient

def objective(parameters):
    import time
    time.sleep(4)  # long enough for %runs to see the trials while they run, on a loaded machine too
    x = float(parameters["x"])
    print(f"loss={{(x - 0.33) ** 2:.6f}}")

katib_client = KatibClient()
katib_client.tune(
    name="{name}",
    objective=objective,
    parameters={{"x": katib.search.double(min=0.1, max=0.3, step=0.1)}},
    algorithm_name="grid",
    objective_metric_name="loss",
    objective_type="minimize",
    max_trial_count=3,
    parallel_trial_count=3,
    resources_per_trial={{"cpu": "1"}},
    retain_trials=True,
)
"""

KATIB_WAIT = """
katib_client.wait_for_experiment_condition("{name}", timeout=120, polling_interval=1)
best = katib_client.get_optimal_hyperparameters("{name}")
print("best", [(p.name, round(float(p.value), 6)) for p in best.parameter_assignments])
"""

TRAINER = """
from kubeflow.trainer import CustomTrainer, TrainerClient

def exchange_ranks():
    import os
    print(f"rank={os.environ.get('RANK')} world={os.environ.get('WORLD_SIZE')}")

trainer = TrainerClient()
job_name = trainer.train(
    trainer=CustomTrainer(func=exchange_ranks, num_nodes=2, resources_per_node={"cpu": 1})
)
job = trainer.wait_for_job_status(job_name, timeout=90, polling_interval=1)
print("trainjob", job_name, job.status, job.num_nodes)
print("logs", list(trainer.get_job_logs(job_name)))
"""

# Run by the kernel in the pod, after the runs: what a process of the server finds on disk and in its
# environment. It prints JSON so that the test reads every finding. The token's own variable and
# JPY_API_TOKEN, JupyterHub's older name for it, are where the design keeps the token.
CREDENTIAL_SCAN = """
import json, os
token = os.environ["JUPYTERHUB_API_TOKEN"]
found = []
for top in ("/tmp/hybridhub", os.path.expanduser("~")):
    for folder, _, files in os.walk(top):
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as fh:
                    if token.encode() in fh.read():
                        found.append(path)
            except OSError:
                pass
kubeconfig = open(os.environ["KUBECONFIG"]).read()
print(json.dumps({
    "token_in": found,
    "kubeconfig": kubeconfig,
    "kubernetes_env": sorted(k for k in os.environ if k.startswith("KUBERNETES")),
    "env_with_token": sorted(
        k for k, v in os.environ.items() if token in v and k not in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
    ),
    "service_account": os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"),
    "home": os.path.expanduser("~"),
}))
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def gpus_numbers(text: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(cluster, product) -> (free, total) from %gpus's plain text."""
    numbers: dict[tuple[str, str], tuple[int, int]] = {}
    cluster = ""
    for line in text.splitlines():
        if line and not line.startswith(" "):
            cluster = line.split(" (", 1)[0]
        elif found := re.match(r"^  (\S+)\s.*?(\d+)/(\d+) free", line):
            numbers[(cluster, found[1])] = (int(found[2]), int(found[3]))
    return numbers


def capacity_numbers(body: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int]]:
    return {
        (c["name"], p["product"]): (int(p["free"]), int(p["total"]))
        for c in body["clusters"]
        for p in c.get("products") or ()
    }


def runs_rows(text: str) -> dict[str, tuple[str, str, str]]:
    """name -> (kind, cluster, phase) from %runs's plain text table."""
    rows = {}
    for line in text.splitlines()[1:]:
        if line.startswith(" "):
            continue
        cells = line.split()
        if len(cells) >= 4:
            rows[cells[1]] = (cells[0], cells[2], cells[3])
    return rows


def trial_lines(text: str, experiment: str) -> list[str]:
    """The trial lines %runs shows under ``experiment``'s row."""
    lines, under = [], False
    for line in text.splitlines():
        if not line.startswith(" "):
            under = len(line.split()) > 1 and line.split()[1] == experiment
        elif under and line.strip().startswith("trial "):
            lines.append(line.strip())
    return lines


# ------------------------------------------------------------------------------------------- terminal


def terminal_run(nb: Notebook, script: str, until: str, timeout: float = 60.0) -> str:
    """Open a terminal in alice's server, write ``script`` to a file with a heredoc and run it with
    ``python``, as a user at a shell would; the terminal's output up to ``until`` or the timeout."""
    name = nb.server("POST", "api/terminals")["name"]
    url = f"{nb.server_url.replace('http://', 'ws://', 1)}terminals/websocket/{name}"
    sock = websocket.create_connection(url, timeout=10, header=[f"Authorization: token {nb.token}"])
    try:
        typed = f"cat > ~/submit_dag.py <<'EOF'\n{script}\nEOF\npython ~/submit_dag.py; echo done-$?\n"
        sock.send(json.dumps(["stdin", typed]))
        seen = ""
        deadline = time.monotonic() + timeout
        while until not in seen and "done-1" not in seen and time.monotonic() < deadline:
            try:
                kind, *rest = json.loads(sock.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if kind == "stdout":
                seen += rest[0]
        return seen
    finally:
        sock.close()
        nb.server("DELETE", f"api/terminals/{name}")


# ------------------------------------------------------------------------------------------- the test


def pods_left(hsim: SimProcess) -> list[str]:
    return [
        f"{cluster}/{pod}"
        for cluster in CLUSTERS
        for pod in hsim.kubectl(
            "get", "pods", "-n", RUN_NAMESPACE, "-o", "name", context=cluster, check=False
        ).stdout.split()
    ]


def test_a_researchers_notebook_runs_the_sdks_and_sees_its_runs(notebook: Notebook, hsim: SimProcess) -> None:
    try:
        asyncio.run(notebook_session(notebook, hsim))
    finally:
        # GatewayClient is a process-wide singleton: a jupyter server that later tests start in this
        # process would otherwise send its kernels to alice's server
        GatewayClient.clear_instance()
        # what a failed step left running goes before the check of the session's pods
        listing = call(notebook.hub, "GET", "api/runs", notebook.token)[1]
        for row in listing.get("runs", []) if isinstance(listing, dict) else []:
            call(notebook.hub, "DELETE", f"api/runs/{row['kind']}/{row['name']}", notebook.token)
        wait_for("alice's run pods", lambda: pods_left(hsim), 60, until=lambda left: not left, every=0.5)


async def notebook_session(nb: Notebook, hsim: SimProcess) -> None:
    dag, sweep = unique("dag"), unique("tune")
    client = NotebookClient(
        nbformat.v4.new_notebook(),  # type: ignore[no-untyped-call]
        km=remote_kernel(nb),
        timeout=150,
        startup_timeout=60,
        allow_errors=True,
    )
    async with client.async_setup_kernel():
        s = Session(client)
        # the kernel runs in alice's pod: its host name is the pod's, its server alice's
        shown = await s.run(
            "%load_ext labextension_server\nimport os\n"
            'print(os.environ["HOSTNAME"], os.environ["JUPYTERHUB_SERVICE_PREFIX"])'
        )
        assert shown.split() == [f"jupyter-{USER}", f"/user/{USER}/"], shown

        # the sweep goes first and is not waited for: its trials must show in %runs while it runs
        shown = await s.run(KATIB_TUNE.format(name=sweep))
        assert "Error" not in shown, shown
        trials: list[str] = []
        for _ in range(120):
            runs_text = await s.run("%runs")
            trials = trial_lines(runs_text, sweep)
            if trials:
                break
            await asyncio.sleep(0.25)
        assert trials and all("x=" in t for t in trials), runs_text
        kind, cluster, phase = runs_rows(runs_text)[sweep]
        assert (kind, cluster) == ("Experiment", "onprem") and phase not in ("Succeeded", "Failed"), runs_text

        shown = await s.run(HERA_DAG.format(name=dag))
        assert "phase Succeeded" in shown, shown

        shown = await s.run(TRAINER)
        found = re.search(r"trainjob (\S+) Complete 2", shown)
        assert found, shown
        trainjob = found[1]
        assert "logs ['rank=0 world=2']" in shown, shown

        shown = await s.run(KATIB_WAIT.format(name=sweep))
        assert "best [('x', 0.3)]" in shown, shown

        runs_text = await s.run("%runs")
        rows = runs_rows(runs_text)
        assert {n: rows.get(n) for n in (dag, sweep, trainjob)} == {
            dag: ("Workflow", "onprem", "Succeeded"),
            sweep: ("Experiment", "onprem", "Succeeded"),
            trainjob: ("TrainJob", "onprem", "Complete"),  # the TrainJob's own condition
        }, runs_text

        # %gpus against the service's api/capacity read just before and just after: when the two reads
        # agree, nothing moved in between, and the cell's numbers must be theirs
        for _ in range(10):
            before = capacity_numbers(call(nb.hub, "GET", "api/capacity", nb.token)[1])
            gpus_text = await s.run("%gpus")
            after = capacity_numbers(call(nb.hub, "GET", "api/capacity", nb.token)[1])
            if before == after:
                break
        assert before == after and before, (before, after)
        assert gpus_numbers(gpus_text) == before, gpus_text

        scan = json.loads((await s.run(CREDENTIAL_SCAN)).strip().splitlines()[-1])

        await s.run(
            f'katib_client.delete_experiment("{sweep}")\ntrainer.delete_job(job_name)\n'
            f'from hera.workflows import WorkflowsService\nWorkflowsService().delete_workflow("{dag}")'
        )

    assert scan["token_in"] == [], scan
    assert scan["env_with_token"] == [] and scan["kubernetes_env"] == [], scan
    assert not scan["service_account"], scan
    assert "labextension_server.credential" in scan["kubeconfig"], scan
    assert nb.token not in scan["kubeconfig"] and "token" not in scan["kubeconfig"].replace(
        "JUPYTERHUB_API_TOKEN", ""
    ), scan

    # the same Hera code from a terminal of the same server, with nothing set up by hand
    term_dag = unique("dag")
    seen = terminal_run(nb, HERA_DAG.format(name=term_dag), "phase Succeeded")
    assert "phase Succeeded" in seen, seen
    status, answer = call(nb.hub, "DELETE", f"api/runs/Workflow/{term_dag}", nb.token)
    assert status in (200, 202, 204), answer
