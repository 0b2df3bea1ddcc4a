"""Home storage per cluster: the pod's home volume and mount, and what users are told on another cluster."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.core.clusters import ClusterConfig, parse_clusters
from spawner.spawning.home import HOME_VOLUME, home_note, usual_home, with_home

NAS = {"kind": "nfs", "nfs_server": "nas.lab", "nfs_path": "/export/home"}
GP3 = {"kind": "pvc", "size": "50Gi", "storage_class": "gp3"}
NONE = {"kind": "none"}


def cluster(name: str, role: str, home: dict[str, Any]) -> ClusterConfig:
    (config,) = parse_clusters(
        [
            {
                "name": name,
                "role": role,
                "namespace": "jupyterhub",
                "hub_connect_url": "http://hub:8081",
                "home_storage": home,
                "pools": [{"name": "gpu"}],
            }
        ]
    )
    return config


CONFIGURED_VOLUMES = [
    {"name": "home", "persistentVolumeClaim": {"claimName": "claim-{username}"}},
    {"name": "shared", "nfs": {"server": "nas.lab", "path": "/export/shared"}},
]
CONFIGURED_MOUNTS = [
    {"name": "home", "mountPath": "/home/jovyan/"},
    {"name": "shared", "mountPath": "/srv/shared"},
]


@pytest.mark.parametrize(
    ("home", "volume"),
    [
        (GP3, {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "claim-ann"}}),
        (NAS, {"name": HOME_VOLUME, "nfs": {"server": "nas.lab", "path": "/export/home/{username}"}}),
    ],
)
def test_a_cluster_home_replaces_the_mount_at_the_home_path(
    home: dict[str, Any], volume: dict[str, Any]
) -> None:
    storage = cluster("c", "cloud", home).home_storage
    volumes, mounts = with_home(
        storage, CONFIGURED_VOLUMES, CONFIGURED_MOUNTS, claim_name="claim-ann", mount_path="/home/jovyan"
    )
    assert volumes == [CONFIGURED_VOLUMES[1], volume]  # the displaced "home" claim is gone
    assert mounts == [CONFIGURED_MOUNTS[1], {"name": HOME_VOLUME, "mountPath": "/home/jovyan"}]


def test_no_home_storage_keeps_what_the_operator_configured() -> None:
    storage = cluster("c", "onprem", NONE).home_storage
    volumes, mounts = with_home(
        storage, CONFIGURED_VOLUMES, CONFIGURED_MOUNTS, claim_name="x", mount_path="/home/jovyan"
    )
    assert (volumes, mounts) == (CONFIGURED_VOLUMES, CONFIGURED_MOUNTS)


def test_a_volume_an_init_container_still_mounts_is_kept() -> None:
    storage = cluster("c", "cloud", GP3).home_storage
    volumes, _ = with_home(
        storage,
        CONFIGURED_VOLUMES,
        CONFIGURED_MOUNTS,
        claim_name="claim-ann",
        mount_path="/home/jovyan",
        other_mounts=[{"name": "home", "mountPath": "/old-home"}],
    )
    assert [v["name"] for v in volumes] == ["home", "shared", HOME_VOLUME]


def test_applying_twice_gives_one_home() -> None:
    storage = cluster("c", "cloud", GP3).home_storage
    once = with_home(storage, [], [], claim_name="claim-ann", mount_path="/home/jovyan")
    twice = with_home(storage, *once, claim_name="claim-ann", mount_path="/home/jovyan")
    assert twice == once


def test_the_usual_home_is_the_first_on_prem_cluster() -> None:
    eks, lab = cluster("eks", "cloud", GP3), cluster("lab", "onprem", NAS)
    lab2 = cluster("lab2", "onprem", NAS)
    assert usual_home([eks, lab, lab2]) is lab
    assert usual_home([eks]) is eks
    assert usual_home([]) is None


@pytest.mark.parametrize(
    ("usual", "here", "note"),
    [
        (
            NAS,
            GP3,
            "your lab home is not mounted on eks; you get eks's own home there (a 50Gi volume (gp3)), "
            "separate from the one on lab",
        ),
        (
            NAS,
            NONE,
            "your lab home is not mounted on eks; files you save in your home there are lost when "
            "the server stops",
        ),
        (
            GP3,
            GP3,
            "your lab home is not mounted on eks; you get eks's own home there (a 50Gi volume (gp3)), "
            "separate from the one on lab",
        ),  # a claim lives in one cluster
        (NAS, NAS, None),  # the same export, reachable from both: the same home
        (
            NAS,
            {**NAS, "nfs_path": "/export/cloud-home"},
            "your lab home is not mounted on eks; you get eks's own home there (nas.lab:/export/cloud-home), "
            "separate from the one on lab",
        ),
        (NONE, GP3, None),  # no persistent home on-prem: nothing is missing
    ],
)
def test_what_users_are_told_about_their_home(
    usual: dict[str, Any], here: dict[str, Any], note: str | None
) -> None:
    assert home_note(cluster("lab", "onprem", usual), cluster("eks", "cloud", here)) == note


def test_nothing_to_say_on_the_usual_cluster() -> None:
    lab = cluster("lab", "onprem", NAS)
    assert home_note(lab, lab) is None
    assert home_note(None, lab) is None
