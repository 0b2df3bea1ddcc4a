"""A recording Kubernetes API stand-in: the job SDKs run unchanged against it and it keeps every request."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["NAMESPACE", "TRIAL", "Recorded", "record_sdk_calls", "recording_server"]

# The namespace the SDKs are given, as the kubeconfig the service hands out names it.
NAMESPACE = "team-a"
_CREATED = "2026-12-01T10:00:00Z"
_TRAINER = "/apis/trainer.kubeflow.org/v1alpha1"
_KATIB = "/apis/kubeflow.org/v1beta1"
_TRAINING = "/apis/kubeflow.org/v1"
# The one trial every experiment has. Its TrainJob has the same name, as Katib makes it.
TRIAL = "exp-abcdefgh"


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it: the query keeps every value of each key, in order."""

    method: str
    path: str
    query: dict[str, list[str]]


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "creationTimestamp": _CREATED, "uid": name, **extra}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "metadata": {},
    }


def _runtime(name: str) -> dict[str, Any]:
    # The torch-distributed ClusterTrainingRuntime with what TrainerClient reads of it.
    node = {
        "name": "node",
        "replicas": 1,
        "template": {
            "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
            "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "pytorch/pytorch:2"}]}}},
        },
    }
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "ClusterTrainingRuntime",
        "metadata": {
            "name": name,
            "labels": {"trainer.kubeflow.org/framework": "torch"},
            "creationTimestamp": _CREATED,
        },
        "spec": {"mlPolicy": {"numNodes": 1, "torch": {}}, "template": {"spec": {"replicatedJobs": [node]}}},
    }


def _trainjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": _meta(name),
        "spec": {
            "runtimeRef": {"name": "torch-distributed", "kind": "ClusterTrainingRuntime"},
            "trainer": {"numNodes": 1},
        },
        "status": {
            "conditions": [
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "JobSetCompleted",
                    "message": "done",
                    "lastTransitionTime": _CREATED,
                }
            ]
        },
    }


def _experiment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": _meta(name),
        "spec": {
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"},
                }
            ],
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 2,
            "parallelTrialCount": 1,
        },
        "status": {
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "True",
                    "reason": "ExperimentMaxTrialsReached",
                    "lastTransitionTime": _CREATED,
                }
            ],
            "currentOptimalTrial": {
                "bestTrialName": TRIAL,
                "parameterAssignments": [{"name": "lr", "value": "0.01"}],
                "observation": {"metrics": [{"name": "loss", "latest": "0.3", "min": "0.3", "max": "0.9"}]},
            },
        },
    }


def _trial(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": _meta(name, labels={"katib.kubeflow.org/experiment": "exp"}),
        "spec": {
            "parameterAssignments": [{"name": "lr", "value": "0.01"}],
            "primaryPodLabels": {"jobset.sigs.k8s.io/replicatedjob-name": "node"},
            "metricsCollector": {"collector": {"kind": "StdOut"}},
        },
        "status": {
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "TrialSucceeded"}],
            "observation": {"metrics": [{"name": "loss", "latest": "0.3", "min": "0.3", "max": "0.9"}]},
        },
    }


def _pytorchjob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": _meta(name),
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None"},
            "pytorchReplicaSpecs": {
                "Master": {
                    "replicas": 1,
                    "template": {"spec": {"containers": [{"name": "pytorch", "image": "pytorch/pytorch:2"}]}},
                }
            },
        },
        "status": {
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "True",
                    "reason": "PyTorchJobSucceeded",
                    "lastTransitionTime": _CREATED,
                    "lastUpdateTime": _CREATED,
                }
            ],
            "replicaStatuses": {"Master": {"succeeded": 1}},
        },
    }


def _pod(selector: str) -> dict[str, Any]:
    # A running pod whose labels fit the selector's first requirement, as each SDK expects them.
    if "jobset.sigs.k8s.io/jobset-name=" in selector:
        job = selector.split("jobset.sigs.k8s.io/jobset-name=", 1)[1].split(",", 1)[0]
        labels = {
            "jobset.sigs.k8s.io/jobset-name": job,
            "jobset.sigs.k8s.io/replicatedjob-name": "node",
            "batch.kubernetes.io/job-completion-index": "0",
        }
        name, container = f"{job}-node-0-0-abcde", "node"
    else:
        job = selector.split("=", 1)[1].split(",", 1)[0] if "=" in selector else "pod"
        labels = {"training.kubeflow.org/job-name": job, "training.kubeflow.org/job-role": "master"}
        name, container = f"{job}-master-0", "pytorch"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(name, labels=labels),
        "spec": {"containers": [{"name": container, "image": "pytorch/pytorch:2", "resources": {}}]},
        "status": {"phase": "Running"},
    }


_ITEM = re.compile(
    r"^(?P<coll>/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/(?P<plural>[^/]+))"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
_BUILDERS = {
    "trainjobs": _trainjob,
    "clustertrainingruntimes": _runtime,
    "experiments": _experiment,
    "trials": _trial,
    "pytorchjobs": _pytorchjob,
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        self.server.requests.append(Recorded(self.command, parts.path, query))
        return parts.path, query

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:
        path, query = self._record()
        if path.endswith("/configmaps/kubeflow-trainer-public"):
            self._send(
                200,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": _meta("kubeflow-trainer-public"),
                    "data": {"kubeflow_trainer_version": "2.3.0"},
                },
            )
            return
        match = _ITEM.match(path)
        if match is None:
            self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return
        plural, name, sub = match["plural"], match["name"], match["sub"]
        if sub is not None and (sub != "log" or plural != "pods"):
            self._send(404, _status(404, "NotFound", f"{plural}/{sub} not recorded"))
        elif plural == "pods" and sub == "log":
            self._log(query)
        elif plural == "trainingruntimes":
            self._send(404, _status(404, "NotFound", f'trainingruntimes "{name}" not found'))
        elif name is None and plural == "pods":
            selector = query.get("labelSelector", [""])[0]
            self._send(
                200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [_pod(selector)]}
            )
        elif name is None and plural == "events":
            self._send(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": []})
        elif name is None and plural in _BUILDERS:
            item = TRIAL if plural in ("trials", "trainjobs") else "job-1"
            self._send(200, {"metadata": {}, "items": [_BUILDERS[plural](item)]})
        elif name is not None and plural in _BUILDERS:
            self._send(200, _BUILDERS[plural](name))
        else:
            self._send(404, _status(404, "NotFound", f"{plural} not recorded"))

    def _log(self, query: dict[str, list[str]]) -> None:
        lines = "epoch 1 loss=0.9\nepoch 2 loss=0.3\n"
        if query.get("follow", ["false"])[0] != "true":
            self._send(200, lines, "text/plain")
            return
        # A followed log is streamed with chunked encoding and ends when the container does.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines.splitlines(keepends=True):
            data = line.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:
        self._record()
        body = self._body()
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", NAMESPACE)
        meta.setdefault("creationTimestamp", _CREATED)
        self._send(201, body)

    def do_DELETE(self) -> None:
        self._record()
        self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})

    def do_PATCH(self) -> None:
        path, _ = self._record()
        match = _ITEM.match(path)
        plural = match["plural"] if match else ""
        name = match["name"] if match else None
        self._body()
        self._send(200, _BUILDERS[plural](name) if plural in _BUILDERS and name else {})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Recorded] = []


@contextlib.contextmanager
def recording_server() -> Iterator[tuple[str, list[Recorded]]]:
    """Serve on 127.0.0.1 for the block; yield the base URL and the live list of recorded requests."""
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# The SDK calls, driven unchanged
# ---------------------------------------------------------------------------------------------


def _configuration(base: str) -> Any:
    import kubernetes

    cfg = kubernetes.client.Configuration()
    cfg.host = base
    cfg.api_key = {"authorization": "hub-token"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return cfg


def _objective(lr: float) -> None:
    print(f"loss={lr}")


def _training_client_calls(base: str) -> list[tuple[str, Callable[[], object]]]:
    from kubernetes.client import V1Container, V1ObjectMeta, V1PodSpec, V1PodTemplateSpec

    # The SDKs are untyped or export loosely; they are used here only as their users call them.
    training: Any = importlib.import_module("kubeflow.training")
    TrainingClient, models = training.TrainingClient, training.models

    client = TrainingClient(client_configuration=_configuration(base), namespace=NAMESPACE)
    master = models.KubeflowOrgV1ReplicaSpec(
        replicas=1,
        template=V1PodTemplateSpec(spec=V1PodSpec(containers=[V1Container(name="pytorch", image="torch:2")])),
    )
    job = models.KubeflowOrgV1PyTorchJob(
        api_version="kubeflow.org/v1",
        kind="PyTorchJob",
        metadata=V1ObjectMeta(name="ptj"),
        spec=models.KubeflowOrgV1PyTorchJobSpec(
            run_policy=models.KubeflowOrgV1RunPolicy(clean_pod_policy="None"),
            pytorch_replica_specs={"Master": master},
        ),
    )
    return [
        ("create_job(job)", lambda: client.create_job(job)),
        ("get_job", lambda: client.get_job("ptj")),
        ("list_jobs", lambda: client.list_jobs()),
        ("get_job_logs(follow=False)", lambda: client.get_job_logs("ptj")),
        ("get_job_logs(follow=True)", lambda: client.get_job_logs("ptj", follow=True)),
        ("get_job_logs(verbose=True)", lambda: client.get_job_logs("ptj", verbose=True)),
        ("wait_for_job_conditions", lambda: client.wait_for_job_conditions("ptj", polling_interval=1)),
        ("get_job_pods", lambda: client.get_job_pods("ptj")),
        (
            "get_job_pods(worker 0)",
            lambda: client.get_job_pods("ptj", replica_type="worker", replica_index=0),
        ),
        ("update_job", lambda: client.update_job(job, "ptj")),
        ("delete_job", lambda: client.delete_job("ptj")),
    ]


def _optimizer_client_calls(base: str) -> list[tuple[str, Callable[[], object]]]:
    from kubeflow.common.types import KubernetesBackendConfig
    from kubeflow.optimizer import OptimizerClient, Search, TrainJobTemplate, TrialConfig

    Objective: Any = importlib.import_module("kubeflow.optimizer").Objective
    from kubeflow.trainer import CustomTrainer

    backend = KubernetesBackendConfig(namespace=NAMESPACE, client_configuration=_configuration(base))
    client: Any = None

    def start() -> None:
        nonlocal client
        client = OptimizerClient(backend_config=backend)

    def optimize() -> object:
        template = TrainJobTemplate(
            trainer=CustomTrainer(func=_objective, num_nodes=1, resources_per_node={"gpu": 1})
        )
        return client.optimize(
            template,
            search_space={"lr": Search.loguniform(0.001, 0.1)},
            trial_config=TrialConfig(num_trials=2, parallel_trials=1),
            objectives=[Objective(metric="loss", direction="minimize")],
        )

    return [
        ("OptimizerClient()", start),
        ("optimize", optimize),
        ("get_job", lambda: client.get_job("exp")),
        ("list_jobs", lambda: client.list_jobs()),
        ("get_best_results", lambda: client.get_best_results("exp")),
        ("get_job_logs(follow=False)", lambda: list(client.get_job_logs("exp"))),
        ("get_job_logs(follow=True)", lambda: list(client.get_job_logs("exp", follow=True))),
        ("wait_for_job_status", lambda: client.wait_for_job_status("exp", polling_interval=1, timeout=5)),
        ("get_job_events", lambda: client.get_job_events("exp")),
        ("delete_job", lambda: client.delete_job("exp")),
    ]


def _trainer_client_calls(base: str) -> list[tuple[str, Callable[[], object]]]:
    from kubeflow.common.types import KubernetesBackendConfig
    from kubeflow.trainer import CustomTrainer, TrainerClient

    backend = KubernetesBackendConfig(namespace=NAMESPACE, client_configuration=_configuration(base))
    client: Any = None

    def start() -> None:
        nonlocal client
        client = TrainerClient(backend_config=backend)

    return [
        ("TrainerClient()", start),
        ("list_runtimes", lambda: client.list_runtimes()),
        ("train", lambda: client.train(trainer=CustomTrainer(func=_objective, func_args={"lr": 0.1}))),
        ("list_jobs", lambda: client.list_jobs()),
        ("get_job", lambda: client.get_job(TRIAL)),
        ("get_job_logs(follow=True)", lambda: list(client.get_job_logs(TRIAL, follow=True))),
        ("wait_for_job_status", lambda: client.wait_for_job_status(TRIAL, polling_interval=1, timeout=5)),
        ("get_job_events", lambda: client.get_job_events(TRIAL)),
        ("delete_job", lambda: client.delete_job(TRIAL)),
    ]


def _katib_client_calls(base: str) -> list[tuple[str, Callable[[], object]]]:
    katib: Any = importlib.import_module("kubeflow.katib")

    client = katib.KatibClient(client_configuration=_configuration(base), namespace=NAMESPACE)

    def tune() -> None:
        client.tune(
            name="exp",
            objective=_objective,
            parameters={"lr": katib.search.double(min=0.001, max=0.1)},
            objective_metric_name="loss",
            max_trial_count=2,
            resources_per_trial={"gpu": "1"},
        )

    return [
        ("tune", tune),
        ("get_experiment", lambda: client.get_experiment("exp")),
        ("list_experiments", lambda: client.list_experiments()),
        (
            "wait_for_experiment_condition",
            lambda: client.wait_for_experiment_condition("exp", polling_interval=1),
        ),
        ("get_optimal_hyperparameters", lambda: client.get_optimal_hyperparameters("exp")),
        ("list_trials", lambda: client.list_trials("exp")),
        ("get_job_logs(follow=False)", lambda: list(client.get_job_logs("exp", trial_name=TRIAL))),
        ("get_job_logs(follow=True)", lambda: list(client.get_job_logs("exp", TRIAL, follow=True))),
        ("edit_experiment_budget", lambda: client.edit_experiment_budget("exp", max_trial_count=4)),
        ("delete_experiment", lambda: client.delete_experiment("exp")),
    ]


_SDKS = {
    "TrainingClient": _training_client_calls,
    "OptimizerClient": _optimizer_client_calls,
    "TrainerClient": _trainer_client_calls,
    "KatibClient": _katib_client_calls,
}


def record_sdk_calls() -> dict[tuple[str, str], list[Recorded]]:
    """Drive every SDK call against a fresh recorder; give the requests of each (sdk, call).

    A call that raises still keeps what it sent: the table is about requests, not about this stand-in.
    The errors are collected and raised together at the end, so a stand-in too thin for an SDK shows.
    """
    recorded: dict[tuple[str, str], list[Recorded]] = {}
    errors: list[str] = []
    with contextlib.redirect_stdout(io.StringIO()), recording_server() as (base, requests):
        for sdk, calls in _SDKS.items():
            start = len(requests)
            steps = calls(base)
            if len(requests) > start:
                recorded[(sdk, f"{sdk}()")] = requests[start:]
            for label, call in steps:
                start = len(requests)
                try:
                    call()
                except Exception as exc:  # reported below with the call it came from
                    errors.append(f"{sdk}.{label}: {exc!r}")
                recorded[(sdk, label)] = requests[start:]
    if errors:
        raise RuntimeError("SDK calls failed against the recorder: " + "; ".join(errors))
    return recorded
