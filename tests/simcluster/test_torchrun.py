"""simcluster's torchrun stand-in on this machine: two nodes on loopback, their workers and their failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from simcluster.trainer.controller import TORCHRUN_DIR

TORCHRUN = TORCHRUN_DIR / "torchrun"

WORKER = r"""
import os, socket, sys
port = int(os.environ["MASTER_PORT"])
try:
    socket.create_server(("0.0.0.0", port)).close()
    held = False
except OSError:
    held = True
keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR")
# one write per line: the workers share their node's output
sys.stdout.write(" ".join([*(os.environ[k] for k in keys), str(held), *sys.argv[1:]]) + "\n")
sys.stdout.flush()
if os.environ["RANK"] in sys.argv[1:]:
    raise SystemExit(7)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_nodes(tmp_path: Path, *args: str) -> list[subprocess.CompletedProcess[str]]:
    """Both nodes of a 2-node, 2-process run, configured as Trainer configures them: PET_* only."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    nodes = []
    for rank in (1, 0):  # the other node starts first: it must wait for node 0
        env = {
            **os.environ,
            "PET_NNODES": "2",
            "PET_NPROC_PER_NODE": "2",
            "PET_NODE_RANK": str(rank),
            "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": str(port),
        }
        nodes.append(
            subprocess.Popen(
                [sys.executable, str(TORCHRUN), str(script), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    done = []
    for node in reversed(nodes):
        out, err = node.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(node.args, node.returncode, out, err))
    return done


def test_the_stand_in_is_executable_where_the_controller_puts_it_on_the_path() -> None:
    assert os.access(TORCHRUN, os.X_OK)


def test_two_nodes_rendezvous_at_node_0_and_start_their_workers_with_torchruns_variables(
    tmp_path: Path,
) -> None:
    node0, node1 = run_nodes(tmp_path, "--lr", "0.1")
    assert (node0.returncode, node1.returncode) == (0, 0), node0.stderr + node1.stderr
    # node 0's torchrun holds the master port while the workers run (one machine: all see it taken)
    assert sorted(node0.stdout.splitlines()) == [
        "0 0 4 2 0 127.0.0.1 True --lr 0.1",
        "1 1 4 2 0 127.0.0.1 True --lr 0.1",
    ]
    assert sorted(node1.stdout.splitlines()) == [
        "2 0 4 2 1 127.0.0.1 True --lr 0.1",
        "3 1 4 2 1 127.0.0.1 True --lr 0.1",
    ]


def test_a_failing_worker_stops_its_node_with_exit_status_1_and_a_summary(tmp_path: Path) -> None:
    node0, node1 = run_nodes(tmp_path, "3")  # the worker of rank 3 exits 7
    assert node0.returncode == 0 and node1.returncode == 1
    assert "rank      : 3 (local_rank: 1)" in node1.stderr
    assert "exitcode  : 7" in node1.stderr and "worker.py FAILED" in node1.stderr
