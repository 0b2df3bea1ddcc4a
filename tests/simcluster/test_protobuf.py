"""Protobuf request bodies: what kubectl's typed ``create`` commands send, decoded; other kinds are a 415."""

from __future__ import annotations

import base64
import json

import pytest

from simcluster import protobuf
from simcluster.errors import ApiError
from simcluster.testing import SimProcess

# `kubectl create configmap cm --from-literal=a=b --from-literal=c=d -n default` (kubectl 1.32)
CONFIGMAP = bytes.fromhex(
    "6b3873000a0f0a0276311209436f6e6669674d6170122b"  # magic, typeMeta v1/ConfigMap, raw (43 bytes):
    "0a190a02636d12001a0764656661756c7422002a0032003800420012060a0161120162"  # metadata, data a=b
    "12060a0163120164"  # data c=d
    "1a002200"  # contentEncoding, contentType
)
# `kubectl create secret generic s --from-literal=x=y -n default`
SECRET = bytes.fromhex(
    "6b3873000a0c0a027631120653656372657412240a180a017312001a0764656661756c74"
    "22002a0032003800420012060a01781201791a001a002200"
)


def test_decodes_kubectl_bodies() -> None:
    assert protobuf.decode(CONFIGMAP) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default"},
        "data": {"a": "b", "c": "d"},
    }
    secret = protobuf.decode(SECRET)
    assert secret["metadata"] == {"name": "s", "namespace": "default"}
    assert base64.b64decode(secret["data"]["x"]) == b"y"


def test_unknown_kind_or_garbage_is_415() -> None:
    pod = CONFIGMAP.replace(b"\x0a\x0f\x0a\x02v1\x12\x09ConfigMap", b"\x0a\x0f\x0a\x02v1\x12\x09PodxxxxXX")
    for body in (pod, b"k8s\x00\x0a\x05", b"{}"):
        with pytest.raises(ApiError) as err:
            protobuf.decode(body)
        assert err.value.code == 415


@pytest.mark.kubectl
def test_kubectl_typed_create(sim: SimProcess, namespace: str) -> None:
    sim.kubectl("create", "configmap", "cm", "--from-literal=a=b", "-n", namespace)
    sim.kubectl("create", "secret", "generic", "s", "--from-literal=x=y", "-n", namespace)
    sim.kubectl("create", "serviceaccount", "sa", "-n", namespace)
    cm = json.loads(sim.kubectl("get", "configmap", "cm", "-n", namespace, "-o", "json").stdout)
    assert cm["data"] == {"a": "b"}
    secret = json.loads(sim.kubectl("get", "secret", "s", "-n", namespace, "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["x"]) == b"y"
    sim.kubectl("get", "serviceaccount", "sa", "-n", namespace)
