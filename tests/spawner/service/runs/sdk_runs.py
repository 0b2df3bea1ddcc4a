"""Runs as the researchers' SDKs build them, made offline: each SDK's create call is caught, not sent."""

# No "from __future__ import annotations": Hera reads the script functions' annotations as classes.

import copy
import functools
from typing import Any

Manifest = dict[str, Any]
# The namespace the SDKs are given, as the kubeconfig the service hands out names it.
NAMESPACE = "hybridhub-runs-alice"


class _Recorder:
    """Stands in for the kubernetes CustomObjectsApi and keeps the bodies the SDK creates."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    def create_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        self.bodies.append(kwargs.get("body", args[-1] if args else None))

        class _Done:
            def get(self, timeout: float | None = None) -> dict[str, Any]:
                return {}

        return _Done()


@functools.cache
def _hera_workflow() -> Manifest:
    from hera.workflows import DAG, Resources, Workflow, script

    @script(image="python:3.12", resources=Resources(gpus=2))
    def train(x: int) -> None:
        print(x)

    @script(image="python:3.12")
    def prep() -> None:
        print(1)

    with Workflow(generate_name="dag-", entrypoint="d", namespace="default") as w, DAG(name="d"):
        a = prep()
        b = train(arguments={"x": 1})
        a >> b
    built: Manifest = w.to_dict()
    return built


@functools.cache
def _katib_experiment() -> Manifest:
    import kubeflow.katib as katib
    import kubernetes
    from kubeflow.katib import KatibClient

    client = KatibClient.__new__(KatibClient)
    created: list[Any] = []
    client.create_experiment = lambda exp, namespace=None: created.append(exp)  # type: ignore[method-assign]
    api = kubernetes.client.ApiClient()
    client.api_client = api

    def objective(parameters: dict[str, Any]) -> None:
        print(f"loss={parameters['lr']}")

    client.tune(
        name="sweep",
        objective=objective,
        parameters={"lr": katib.search.double(min=0.01, max=0.1)},
        objective_metric_name="loss",
        objective_type="minimize",
        max_trial_count=4,
        parallel_trial_count=2,
        resources_per_trial={"gpu": "1", "cpu": "2", "memory": "4Gi"},
        namespace=NAMESPACE,
    )
    body: Manifest = api.sanitize_for_serialization(created[0])
    return body


@functools.cache
def _trainjob() -> Manifest:
    from kubeflow.trainer import CustomTrainer
    from kubeflow.trainer.backends.kubernetes.backend import KubernetesBackend
    from kubeflow.trainer.types import types

    backend = KubernetesBackend.__new__(KubernetesBackend)
    recorder = _Recorder()
    backend.custom_api = recorder
    backend.namespace = NAMESPACE
    runtime = types.Runtime(
        name="torch-distributed",
        trainer=types.RuntimeTrainer(
            trainer_type=types.TrainerType.CUSTOM_TRAINER,
            framework="torch",
            image="pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime",
            device="gpu",
            device_count="4",
        ),
        kind=types.RuntimeKind.CLUSTER_TRAINING_RUNTIME,
    )
    runtime.trainer.set_command(("torchrun",))

    def train(lr: float) -> None:
        print(lr)

    trainer = CustomTrainer(func=train, func_args={"lr": 0.01}, num_nodes=2, resources_per_node={"gpu": 4})
    backend.train(runtime=runtime, trainer=trainer)
    body: Manifest = recorder.bodies[0]
    return body


@functools.cache
def _pytorchjob() -> Manifest:
    import kubernetes
    from kubeflow.training import TrainingClient

    client = TrainingClient.__new__(TrainingClient)
    recorder = _Recorder()
    client.custom_api = recorder
    client.namespace = NAMESPACE
    client.job_kind = "PyTorchJob"
    api = kubernetes.client.ApiClient()
    client.api_client = api

    def train() -> None:
        print(1)

    client.create_job(name="ptj", train_func=train, num_workers=2, resources_per_worker={"gpu": 2, "cpu": 1})
    body: Manifest = api.sanitize_for_serialization(recorder.bodies[0])
    return body


def _job() -> Manifest:
    # No SDK creates a bare batch Job: Katib's tune() makes one as each trial, so that one stands in.
    trial = copy.deepcopy(_katib_experiment()["spec"]["trialTemplate"]["trialSpec"])
    trial["metadata"] = {"name": "one-off", "namespace": NAMESPACE}
    return dict(trial)


_BUILDERS = {
    "Workflow": _hera_workflow,
    "Experiment": _katib_experiment,
    "TrainJob": _trainjob,
    "PyTorchJob": _pytorchjob,
    "Job": _job,
}


def sdk_run(kind: str) -> Manifest:
    """A fresh copy of the run the SDK builds for ``kind``, free to change."""
    return copy.deepcopy(_BUILDERS[kind]())
