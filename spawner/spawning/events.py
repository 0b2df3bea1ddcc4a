"""What a notebook pod's events mean for a spawn attempt: no room here, a pool growing, or nothing."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Verdict", "read_event"]

# A FailedScheduling for these in a fixed pool means the GPUs (or the nodes) are gone. Other reasons,
# such as "pod has unbound immediate PersistentVolumeClaims", are not about capacity: wait them out.
_CAPACITY = (
    "Insufficient",
    "didn't match Pod's node affinity",
    "didn't match Pod's node affinity/selector",
    "untolerated taint",
    "Too many pods",
    "were unschedulable",
)
# An elastic pool is bringing a node: cluster-autoscaler's event, and Karpenter's.
_SCALING_UP = ("TriggeredScaleUp", "Nominated")


class Verdict(StrEnum):
    NO_ROOM = "no-room"  # a fixed pool cannot take the pod: try the next candidate now
    CANNOT_GROW = "cannot-grow"  # an elastic pool will not add a node for it: try the next candidate
    SCALING_UP = "scaling-up"  # an elastic pool is adding a node: wait, and tell the user
    NOTHING = "nothing"  # progress (image pulls), or a wait that is not about capacity


def read_event(reason: str, message: str, *, elastic: bool) -> Verdict:
    """The meaning of one event of the pod for an attempt in a fixed or an elastic pool."""
    if reason == "FailedScheduling" and not elastic and any(k in message for k in _CAPACITY):
        return Verdict.NO_ROOM
    if reason == "NotTriggerScaleUp" and elastic:
        return Verdict.CANNOT_GROW
    if reason in _SCALING_UP and elastic:
        return Verdict.SCALING_UP
    return Verdict.NOTHING
