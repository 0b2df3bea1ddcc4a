"""bench/ssh.py in its smallest form: every path and transfer runs, and its tables print (figures are
not checked: the machine is shared and noisy)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.environment import needs

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ssh.py"

pytestmark = [
    needs(os.geteuid() == 0, "bench/ssh.py starts OpenSSH's sshd, which needs root"),
    needs(
        shutil.which("ssh") and shutil.which("sftp") and Path("/usr/sbin/sshd").exists(),
        "needs the OpenSSH client and sshd (make test installs openssh-client and openssh-server)",
    ),
]


@pytest.mark.timeout(120)
def test_ssh_benchmark_completes() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--size", "4", "--logins", "1", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=SCRIPT.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "$ python bench/ssh.py --quick --size 4" in out, out
    for path in ("ours", "ours via gateway", "sshd", "sshd via sshd", "ours via sshd"):
        for transfer in ("stream", "upload", "sftp get"):
            assert any(line.split("  ")[0] == path and transfer in line for line in out.splitlines()), (
                path,
                transfer,
                out,
            )
    assert "median ms" in out
