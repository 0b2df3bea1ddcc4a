"""simcluster starts, serves kubectl over TLS with both kinds of credentials, and stops cleanly."""

from __future__ import annotations

from simcluster.testing import SimProcess


def test_both_contexts_answer_kubectl(sim: SimProcess) -> None:
    onprem = sim.kubectl("get", "nodes", "-o", "name").stdout.split()
    eks = sim.kubectl("get", "nodes", "-l", "eks.amazonaws.com/nodegroup=system", "-o", "name", context="eks")
    eks = eks.stdout.split()
    assert onprem == ["node/dgx-a100-1", "node/dgx-a100-2", "node/l40s-1", "node/l40s-2"]
    assert len(eks) == 2  # the system node group (the GPU pools start at zero and grow in other tests)


def test_stop_removes_endpoints_file(tmp_path) -> None:
    proc = SimProcess(tmp_path).start()
    assert proc.endpoints_file.exists()
    assert proc.stop() == 0
    assert not proc.endpoints_file.exists()
