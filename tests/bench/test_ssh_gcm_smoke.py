"""bench/ssh_gcm.py in its quick form: both classes read what the other sealed, every way of sending
put its packets' bytes on the transport, every way of receiving delivered every byte and adjust (the
script exits non-zero otherwise), and every row prints.
The figures are not checked: the machine is shared and noisy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ssh_gcm.py"


@pytest.mark.timeout(60)
def test_ssh_gcm_benchmark_completes() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "ignore", str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=SCRIPT.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "$ python bench/ssh_gcm.py --quick" in out, out
    for cls in ("asyncssh's shim", "KeptGCMEncryption"):
        for op in ("encrypt", "decrypt"):
            assert f"\n{cls:<20}{op:<10}" in out, out
    for op in ("encrypt", "decrypt"):
        assert f"{op}: KeptGCMEncryption takes " in out, out
    ways = ["asyncssh's send_packet", "with drop_aead_ignores", "seal_in_one_pass"]
    ways += ["relay: SSHChannel.write", "relay: send_channel_data"]
    ways += [
        f"receive {kind}: {way}"
        for kind in ("channel data", "window adjust")
        for way in ("asyncssh's data_received", "open_in_one_pass")
    ]
    for way in ways:
        assert f"\n{way}  " in out, out
    assert "send: seal_in_one_pass takes " in out, out
    assert "relay of 256 KiB reads: send_channel_data takes " in out, out
    for kind in ("channel data", "window adjust"):
        assert f"receive {kind}: open_in_one_pass takes " in out, out
