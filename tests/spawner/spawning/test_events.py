"""What a pod's events mean for an attempt: fail fast on capacity in fixed pools only, wait for scale-up."""

from __future__ import annotations

import pytest

from spawner.spawning.events import Verdict, read_event

NO_GPU = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available: ..."
AFFINITY = "0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu."
TAINT = "0/2 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: true}."
CORDONED = "0/2 nodes are available: 2 node(s) were unschedulable."
PVC = "0/4 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: ..."
NO_GROW = "pod didn't trigger scale-up: 1 max node group size reached"


@pytest.mark.parametrize(
    ("reason", "message", "elastic", "verdict"),
    [
        ("FailedScheduling", NO_GPU, False, Verdict.NO_ROOM),
        ("FailedScheduling", AFFINITY, False, Verdict.NO_ROOM),
        ("FailedScheduling", TAINT, False, Verdict.NO_ROOM),
        ("FailedScheduling", CORDONED, False, Verdict.NO_ROOM),
        ("FailedScheduling", PVC, False, Verdict.NOTHING),  # not capacity: a volume still binding
        ("FailedScheduling", NO_GPU, True, Verdict.NOTHING),  # normal before a scale-up
        ("TriggeredScaleUp", "pod triggered scale-up: [{gpu-l40s 0->1 (max: 4)}]", True, Verdict.SCALING_UP),
        ("Nominated", "Pod should schedule on: nodeclaim/gpu-l40s-x7k2p", True, Verdict.SCALING_UP),
        ("NotTriggerScaleUp", NO_GROW, True, Verdict.CANNOT_GROW),
        ("NotTriggerScaleUp", NO_GROW, False, Verdict.NOTHING),
        ("Pulling", 'Pulling image "quay.io/jupyter/base-notebook"', False, Verdict.NOTHING),
        ("Pulled", 'Successfully pulled image "quay.io/jupyter/base-notebook"', True, Verdict.NOTHING),
        ("Scheduled", "Successfully assigned jupyterhub/jupyter-ann to l40s-1", False, Verdict.NOTHING),
    ],
)
def test_events(reason: str, message: str, elastic: bool, verdict: Verdict) -> None:
    assert read_event(reason, message, elastic=elastic) is verdict
