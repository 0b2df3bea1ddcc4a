"""Argo's names: node ids, v2 pod names, and the labels and annotations on workflow pods."""

from __future__ import annotations

__all__ = [
    "ANNOTATION_NODE_ID",
    "ANNOTATION_NODE_NAME",
    "LABEL_COMPLETED",
    "LABEL_PHASE",
    "LABEL_WORKFLOW",
    "fnv32a",
    "node_id",
    "pod_name",
]

LABEL_WORKFLOW = "workflows.argoproj.io/workflow"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
LABEL_PHASE = "workflows.argoproj.io/phase"
ANNOTATION_NODE_ID = "workflows.argoproj.io/node-id"
ANNOTATION_NODE_NAME = "workflows.argoproj.io/node-name"

# Argo keeps a pod name under 253 characters: the prefix is cut to leave room for "-" and the hash.
_MAX_PREFIX = 253 - 1 - 10


def fnv32a(text: str) -> int:
    """The 32-bit FNV-1a hash Go's hash/fnv computes, which Argo uses for node ids and pod names."""
    value = 0x811C9DC5
    for byte in text.encode():
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def node_id(workflow: str, node_name: str) -> str:
    """The id of a node in ``status.nodes``: the workflow's name for the root, else name plus hash."""
    if node_name == workflow:
        return workflow
    return f"{workflow}-{fnv32a(node_name)}"


def pod_name(workflow: str, node_name: str, template: str) -> str:
    """The pod of a node under Argo's v2 naming: ``<workflow>-<template>-<fnv32a(node name)>``."""
    if node_name == workflow:
        return workflow
    prefix = workflow if ".inline" in node_name else f"{workflow}-{template}"
    return f"{prefix[:_MAX_PREFIX]}-{fnv32a(node_name)}"
