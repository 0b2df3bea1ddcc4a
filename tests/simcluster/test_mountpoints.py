"""Mount points made on the host: shared by the pods that claim them, removed after the last one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from simcluster.runtimes.mountpoints import MountPoints


@pytest.fixture
def points(tmp_path: Path) -> MountPoints:
    return MountPoints(tmp_path / "registry")


def test_a_path_two_pods_claim_goes_with_the_second(points: MountPoints, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    target = host / "a" / "b"
    first = points.claim(target, is_file=False, owner="pod-1")
    assert first == [target, target.parent] and target.is_dir()
    assert points.claim(target, is_file=False, owner="pod-2") == first  # made by pod-1, held by both
    points.release(first, owner="pod-1")
    assert target.is_dir()
    points.release(first, owner="pod-2")
    assert not (host / "a").exists() and host.is_dir()  # what was there before stays


def test_what_was_there_before_is_never_claimed(points: MountPoints, tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    assert points.claim(tmp_path / "etc", is_file=False, owner="pod-1") == []
    points.release([tmp_path / "etc"], owner="pod-1")
    assert (tmp_path / "etc").is_dir()


def test_a_file_mount_point_is_an_empty_file(points: MountPoints, tmp_path: Path) -> None:
    target = tmp_path / "conf" / "app.yaml"
    held = points.claim(target, is_file=True, owner="pod-1")
    assert target.is_file() and target.parent.is_dir()
    points.release(held, owner="pod-1")
    assert not target.parent.exists()


def test_the_claims_of_a_simcluster_that_died_do_not_count(points: MountPoints, tmp_path: Path) -> None:
    target = tmp_path / "scratch"
    held = points.claim(target, is_file=False, owner="pod-1")
    entry = points.registry / hashlib.sha256(str(target).encode()).hexdigest()
    (entry / "999999999-pod-of-a-dead-process").touch()  # no such process ID runs
    points.release(held, owner="pod-1")
    assert not target.exists() and not entry.exists()


def test_a_non_empty_directory_is_left_alone(points: MountPoints, tmp_path: Path) -> None:
    target = tmp_path / "data"
    held = points.claim(target, is_file=False, owner="pod-1")
    (target / "written-here").touch()  # something of this machine's landed there meanwhile
    points.release(held, owner="pod-1")
    assert (target / "written-here").exists()
