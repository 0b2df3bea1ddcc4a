"""The service's early checks of a run a user submits, and the facts its admission needs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from spawner.service.runs.podspec import (
    MAX_PODS,
    PodGpus,
    Refused,
    check_container,
    check_pod_template,
    container_gpus,
    mapping,
    optional_mapping,
    text,
    whole,
)
from spawner.service.runs.workflow import check_workflow_spec

__all__ = [
    "KINDS",
    "TRIAL_KINDS",
    "Gang",
    "Kind",
    "Refusal",
    "Run",
    "RunLimits",
    "check_run",
    "resolve_namespace",
    "unchecked_run",
]

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAME_RULES = {
    "DNS-1123 subdomain": re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$"),
    "DNS-1123 label": re.compile(rf"^{_DNS1123_LABEL}$"),
    "DNS-1035 label": re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$"),
}
# Kubernetes adds five random characters to a generateName prefix.
_GENERATED_SUFFIX = "x0000"
# Katib runs this many trials at once when an Experiment does not say.
KATIB_DEFAULT_PARALLEL_TRIALS = 3
# The namespace every SDK falls back to; DESIGN makes it an alias of the user's namespace.
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Kind:
    """One kind of run the service takes: how its name is checked and how it is suspended."""

    api_version: str
    # The syntax its controller wants of a name, a key of _NAME_RULES, and the longest name. The
    # names become label values or prefixes of pod and Service names, hence the limits.
    name_rule: str
    max_name: int
    # The field that holds the run back until admission lets it go; None when the kind has none and
    # the run waits in the service's queue instead.
    suspend_field: str | None


KINDS: Mapping[str, Kind] = {
    "Workflow": Kind("argoproj.io/v1alpha1", "DNS-1123 subdomain", 63, "spec.suspend"),
    "Experiment": Kind("kubeflow.org/v1beta1", "DNS-1035 label", 40, None),
    "TrainJob": Kind("trainer.kubeflow.org/v1alpha1", "DNS-1035 label", 63, "spec.suspend"),
    "PyTorchJob": Kind("kubeflow.org/v1", "DNS-1035 label", 63, "spec.runPolicy.suspend"),
    "Job": Kind("batch/v1", "DNS-1123 label", 63, "spec.suspend"),
}
# What a Katib trial may be, as Katib's own trial resources list them.
TRIAL_KINDS = ("Job", "PyTorchJob", "TrainJob", "Workflow")
# TrainJob fields that patch the pods the runtime makes. No admission sees the result before the
# Trainer builds it, and the service cannot check it, so each is refused.
_TRAINJOB_PATCHES = ("podTemplateOverrides", "podSpecOverrides", "runtimePatches")


@dataclass(frozen=True)
class RunLimits:
    """What one user's run may ask for."""

    # The most GPUs one run's gang may hold at once.
    max_gpus: int


@dataclass(frozen=True)
class Refusal:
    """Why the service refuses a run: the field, and a sentence about it."""

    field: str
    reason: str

    @property
    def message(self) -> str:
        """The field and the reason, as the endpoint's 4xx says them."""
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True)
class Gang:
    """The pods whose GPUs must all fit in one cluster at once before the run may start."""

    pods: tuple[PodGpus, ...]

    @property
    def gpus(self) -> int:
        """The GPUs of the whole gang."""
        return sum(p.gpus for p in self.pods)

    @property
    def products(self) -> frozenset[str]:
        """The GPU products the gang's GPU pods name in their node selectors."""
        return frozenset(p.product for p in self.pods if p.gpus and p.product)


@dataclass(frozen=True)
class Run:
    """An accepted run: what admission needs to know of it."""

    kind: str
    api_version: str
    # The run's name; None when the cluster makes one from ``generate_name`` (Hera's generate_name).
    name: str | None
    generate_name: str | None
    # The user's namespace, whatever alias the run named it by.
    namespace: str
    gang: Gang
    # The field that suspends the run, as "spec.suspend"; None when only the service's queue can
    # hold it back (Katib Experiments).
    suspend_field: str | None

    @property
    def suspendable(self) -> bool:
        """Whether the run can be created suspended and let go later."""
        return self.suspend_field is not None


def resolve_namespace(value: object, user_namespace: str) -> str | None:
    """The namespace a run names, with no namespace and "default" read as the user's; None when it
    names any other."""
    if value in (None, "", DEFAULT_NAMESPACE, user_namespace):
        return user_namespace
    return None


# --------------------------------------------------------------------------- names and kinds


def _kind_of(obj: Mapping[str, object], field: str, allowed: tuple[str, ...]) -> tuple[str, Kind]:
    kind = text(obj.get("kind"), f"{field}kind")
    taken = ", ".join(allowed)
    if not kind:
        raise Refused(f"{field}kind", f"is missing; the service takes {taken}")
    if kind not in allowed:
        raise Refused(f"{field}kind", f"{kind!r} is not a run the service takes; it takes {taken}")
    spec = KINDS[kind]
    api_version = text(obj.get("apiVersion"), f"{field}apiVersion")
    if api_version != spec.api_version:
        raise Refused(f"{field}apiVersion", f"{kind} is served as {spec.api_version}, not {api_version!r}")
    return kind, spec


def _check_name(value: str, field: str, kind: str, spec: Kind, *, prefix: bool = False) -> None:
    # A generateName prefix is checked as the name the cluster makes of it.
    name = value[: spec.max_name - len(_GENERATED_SUFFIX)] + _GENERATED_SUFFIX if prefix else value
    if len(name) > spec.max_name:
        raise Refused(field, f"{kind} names have at most {spec.max_name} characters, not {len(name)}")
    if not _NAME_RULES[spec.name_rule].match(name):
        raise Refused(
            field,
            f"{value!r} is not a valid {kind} name: it must be a {spec.name_rule} "
            "(lower-case letters, digits and '-', starting and ending with a letter or digit)",
        )


def _names(meta: Mapping[str, object], kind: str, spec: Kind) -> tuple[str | None, str | None]:
    name = text(meta.get("name"), "metadata.name") or None
    generate = text(meta.get("generateName"), "metadata.generateName") or None
    if name is not None:
        _check_name(name, "metadata.name", kind, spec)
        return name, None
    if generate is not None:
        _check_name(generate, "metadata.generateName", kind, spec, prefix=True)
        return None, generate
    raise Refused("metadata.name", "a run needs a name or a generateName")


# --------------------------------------------------------------------------- each kind's gang


def _job_gang(spec: Mapping[str, object], field: str) -> tuple[PodGpus, ...]:
    # A Job runs up to parallelism pods at once, and never more than it needs to complete.
    parallel = whole(spec.get("parallelism"), f"{field}.parallelism", default=1)
    if spec.get("completions") is not None:
        parallel = min(parallel, whole(spec.get("completions"), f"{field}.completions", default=1))
    pod = check_pod_template(spec.get("template"), f"{field}.template", service_account=None)
    return (pod,) * parallel


def _pytorchjob_gang(spec: Mapping[str, object], field: str) -> tuple[PodGpus, ...]:
    where = f"{field}.pytorchReplicaSpecs"
    replicas = mapping(spec.get("pytorchReplicaSpecs"), where)
    if not replicas:
        raise Refused(where, "a PyTorchJob needs at least one replica spec (Master, Worker)")
    pods: list[PodGpus] = []
    for role, value in replicas.items():
        at = f"{where}.{role}"
        replica = mapping(value, at)
        count = whole(replica.get("replicas"), f"{at}.replicas", default=1)
        pods += [check_pod_template(replica.get("template"), f"{at}.template", service_account=None)] * count
        if len(pods) > MAX_PODS:
            raise Refused(where, f"a run may start at most {MAX_PODS} pods at once, not {len(pods)}")
    return tuple(pods)


def _trainjob_gang(spec: Mapping[str, object], field: str) -> tuple[PodGpus, ...]:
    for key in _TRAINJOB_PATCHES:
        if spec.get(key) is not None:
            raise Refused(
                f"{field}.{key}",
                "pod patches are not served: the service cannot check the pods they change",
            )
    ref = mapping(spec.get("runtimeRef"), f"{field}.runtimeRef")
    if not text(ref.get("name"), f"{field}.runtimeRef.name"):
        raise Refused(f"{field}.runtimeRef.name", "a TrainJob needs the name of its runtime")
    trainer = optional_mapping(spec.get("trainer"), f"{field}.trainer")
    # Without numNodes the runtime decides; the service does not read runtimes yet and counts one.
    nodes = whole(trainer.get("numNodes"), f"{field}.trainer.numNodes", default=1, least=1)
    per_node = container_gpus(trainer.get("resourcesPerNode"), f"{field}.trainer.resourcesPerNode")
    return (PodGpus(per_node),) * nodes


def _experiment_gang(
    spec: Mapping[str, object], field: str, *, user_namespace: str, runner: str
) -> tuple[PodGpus, ...]:
    # Katib never runs more trials at once than it runs in all.
    default = KATIB_DEFAULT_PARALLEL_TRIALS
    parallel = whole(spec.get("parallelTrialCount"), f"{field}.parallelTrialCount", default=default, least=1)
    if spec.get("maxTrialCount") is not None:
        most = whole(spec.get("maxTrialCount"), f"{field}.maxTrialCount", default=1, least=1)
        parallel = min(parallel, most)
    # A custom metrics collector is a container Katib adds to every trial pod.
    where = f"{field}.metricsCollectorSpec"
    metrics = optional_mapping(spec.get("metricsCollectorSpec"), where)
    collector = optional_mapping(metrics.get("collector"), f"{where}.collector")
    if collector.get("customCollector") is not None:
        check_container(collector.get("customCollector"), f"{where}.collector.customCollector")
    template = mapping(spec.get("trialTemplate"), f"{field}.trialTemplate")
    if template.get("configMap") is not None:
        raise Refused(
            f"{field}.trialTemplate.configMap",
            "trial specs from a ConfigMap are not served: the service cannot check them; use trialSpec",
        )
    where = f"{field}.trialTemplate.trialSpec"
    trial = mapping(template.get("trialSpec"), where)
    kind, _ = _kind_of(trial, f"{where}.", TRIAL_KINDS)
    meta = optional_mapping(trial.get("metadata"), f"{where}.metadata")
    if resolve_namespace(meta.get("namespace"), user_namespace) is None:
        reason = f"trials run in the experiment's namespace {user_namespace!r}"
        raise Refused(f"{where}.metadata.namespace", reason)
    pods = _gang_of(kind, trial.get("spec"), f"{where}.spec", runner=runner, user_namespace=user_namespace)
    if len(pods) * parallel > MAX_PODS:
        count = len(pods) * parallel
        raise Refused(
            f"{field}.parallelTrialCount", f"a run may start at most {MAX_PODS} pods at once, not {count}"
        )
    return pods * parallel


def _gang_of(
    kind: str, value: object, field: str, *, runner: str, user_namespace: str
) -> tuple[PodGpus, ...]:
    spec = mapping(value, field)
    if kind == "Workflow":
        pod, _ = check_workflow_spec(spec, field, runner=runner)
        return (pod,)
    if kind == "Job":
        return _job_gang(spec, field)
    if kind == "PyTorchJob":
        return _pytorchjob_gang(spec, field)
    if kind == "TrainJob":
        return _trainjob_gang(spec, field)
    return _experiment_gang(spec, field, user_namespace=user_namespace, runner=runner)


# The field a refusal over the GPU limit names, per kind: what sets the gang's size.
_GANG_FIELDS = {
    "Experiment": "spec.parallelTrialCount",
    "TrainJob": "spec.trainer",
    "PyTorchJob": "spec.pytorchReplicaSpecs",
    "Job": "spec.template",
}


def _pods_text(pods: tuple[PodGpus, ...]) -> str:
    sizes = sorted(p.gpus for p in pods if p.gpus)
    if len(sizes) == 1:
        return "one pod"
    if sizes[0] == sizes[-1]:
        return f"{len(sizes)} pods of {sizes[0]} GPU" + ("s" if sizes[0] > 1 else "")
    return f"{len(sizes)} pods of " + ", ".join(map(str, sizes)) + " GPUs"


def _check(obj: object, user_namespace: str, runner: str, limits: RunLimits) -> Run:
    run = mapping(obj, "(the run)")
    kind, spec = _kind_of(run, "", tuple(KINDS))
    meta = optional_mapping(run.get("metadata"), "metadata")
    namespace = resolve_namespace(text(meta.get("namespace"), "metadata.namespace"), user_namespace)
    if namespace is None:
        raise Refused(
            "metadata.namespace",
            f"{meta.get('namespace')!r} is not your namespace; runs go in {user_namespace!r} (or 'default')",
        )
    name, generate = _names(meta, kind, spec)
    if run.get("spec") is None:
        raise Refused("spec", f"a {kind} needs a spec")
    if kind == "Workflow":
        pod, gang_field = check_workflow_spec(run.get("spec"), "spec", runner=runner)
        pods: tuple[PodGpus, ...] = (pod,)
    else:
        pods = _gang_of(kind, run.get("spec"), "spec", runner=runner, user_namespace=user_namespace)
        gang_field = _GANG_FIELDS[kind]
    gang = Gang(pods)
    if gang.gpus > limits.max_gpus:
        asked = f"{gang.gpus} GPUs at once ({_pods_text(pods)})"
        raise Refused(gang_field, f"the run asks for {asked}, over your limit of {limits.max_gpus}")
    return Run(kind, spec.api_version, name, generate, namespace, gang, spec.suspend_field)


def check_run(
    obj: object, *, user_namespace: str, runner_service_account: str, limits: RunLimits
) -> Run | Refusal:
    """Check a run a user submits before anything is sent to a cluster.

    ``obj`` is the parsed JSON body. The answer is the accepted run, or the first refusal found, which
    names its field. The cluster's own RBAC, Pod Security and quota still decide after this: these
    checks make their refusals readable and catch what no admission sees in time."""
    try:
        return _check(obj, user_namespace, runner_service_account, limits)
    except Refused as refused:
        return Refusal(refused.field, refused.reason)


def unchecked_run(obj: object, user_namespace: str) -> Run | Refusal:
    """A run read without the service's checks, for the test-only switch that shows what the
    clusters refuse on their own: its kind and names as given, its namespace as named ("default"
    still meaning the user's), no GPU gang. Only what the service cannot send at all is refused."""
    try:
        run = mapping(obj, "(the run)")
        kind, spec = _kind_of(run, "", tuple(KINDS))
        meta = optional_mapping(run.get("metadata"), "metadata")
        named = text(meta.get("namespace"), "metadata.namespace")
        namespace = resolve_namespace(named, user_namespace) or str(named)
        name = text(meta.get("name"), "metadata.name") or None
        generate = text(meta.get("generateName"), "metadata.generateName") or None
        if not (name or generate):
            raise Refused("metadata.name", "a run needs a name or a generateName")
    except Refused as refused:
        return Refusal(refused.field, refused.reason)
    return Run(kind, spec.api_version, name, generate, namespace, Gang(()), spec.suspend_field)
