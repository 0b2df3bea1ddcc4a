"""Katib's StdOut metrics-collector injection, pure: the primary container wrapped, the sidecar added."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["METRICS_FILE", "SIDECAR", "inject", "is_primary"]

METRICS_DIR = "/var/log/katib"
METRICS_FILE = f"{METRICS_DIR}/metrics.log"
SIDECAR = "metrics-logger-and-collector"
VOLUME = "metrics-volume"
IMAGE = "ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0"
# katib-config's defaults for a collector without resources of its own (setResourceRequirements)
RESOURCES = {
    "requests": {"cpu": "50m", "memory": "10Mi", "ephemeral-storage": "500Mi"},
    "limits": {"cpu": "500m", "memory": "100Mi", "ephemeral-storage": "5Gi"},
}

# The sidecar stands in for Katib's file-metricscollector: it prints the metrics file as it grows and
# ends once the wrapped command has left its mark. "$$" keeps a "$" past Kubernetes' $(VAR) expansion.
_FOLLOW = f"""
import glob, os, sys, time
mark, path, pos = "{METRICS_DIR}/*.pid", "{METRICS_FILE}", 0
while True:
    done = bool(glob.glob(mark))
    if os.path.exists(path):
        with open(path, "rb") as f:
            f.seek(pos)
            chunk = f.read()
        pos += len(chunk)
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    if done:
        break
    time.sleep(0.05)
"""


def is_primary(labels: Mapping[str, str], primary_labels: Mapping[str, str]) -> bool:
    """isPrimaryPod: every primary pod label is on the pod; no primary labels means every pod."""
    return all(labels.get(k) == v for k, v in primary_labels.items())


def _wrapped(command: Sequence[str], args: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """wrapWorkerContainer for StdOut: output into the metrics file, a mark when the command is done.

    Katib joins the words with spaces and quotes nothing, so a ``python -c "..."`` command must
    already be one ``sh -c`` string. It marks only success; simcluster also marks a failure (and
    keeps its exit code) because its sidecar cannot watch the process as Katib's does.
    """
    words = [*command, *args]
    if not words:
        return None  # Katib reads the image's entrypoint here; simcluster has no images
    shell, rest = ["sh", "-c"], words
    if len(words) >= 2 and words[0] in {"sh", "bash"} and words[1] == "-c":
        shell, rest = words[:2], words[2:]
    line = " ".join(
        [
            *rest,
            f"1>{METRICS_FILE}",
            "2>&1",
            "&&",
            f"echo completed > {METRICS_DIR}/$$$$.pid",
            "||",
            f"{{ rc=$$?; echo failed > {METRICS_DIR}/$$$$.pid; exit $$rc; }}",
        ]
    )
    return shell, [line]


def inject(pod_spec: dict[str, Any], primary: str) -> bool:
    """Wrap container ``primary`` and add the sidecar and the shared volume; False when it is missing."""
    containers: list[dict[str, Any]] = pod_spec.get("containers") or []
    target = next((c for c in containers if c.get("name") == primary), None)
    if target is None or any(c.get("name") == SIDECAR for c in containers):
        return False
    wrapped = _wrapped(target.get("command") or [], target.get("args") or [])
    if wrapped is None:
        return False
    target["command"], target["args"] = wrapped
    mount = {"name": VOLUME, "mountPath": METRICS_DIR}
    target["volumeMounts"] = [*(target.get("volumeMounts") or []), mount]
    containers.append(
        {
            "name": SIDECAR,
            "image": IMAGE,
            "command": ["python3", "-u", "-c", _FOLLOW],
            "resources": {k: dict(v) for k, v in RESOURCES.items()},
            "volumeMounts": [dict(mount)],
        }
    )
    pod_spec["containers"] = containers
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), {"name": VOLUME, "emptyDir": {}}]
    pod_spec["shareProcessNamespace"] = True
    return True
