"""``hybridhub demo`` in headless Chromium, as four people use it through an on-prem site outage."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import asyncssh

from tests.demo.test_demo import CHP, Demo
from tests.e2e.browser import CHROMEDRIVER, CHROMIUM, Browser, assigned_node
from tests.environment import needs

pytestmark = [
    needs(os.geteuid() == 0, "the demo's notebooks run in simcluster's process runtime, which needs root"),
    needs(
        shutil.which("node") and CHP.exists(), "needs Node.js and configurable-http-proxy (make test: npm ci)"
    ),
    needs(shutil.which("nft"), "the demo's site outage hangs pod addresses with nft (make test: nftables)"),
    needs(shutil.which("ssh"), "reads a notebook's file with the OpenSSH client (make test: openssh-client)"),
    needs(
        os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK),
        "needs Debian's chromium and chromium-driver (make test installs them)",
    ),
]


def placed(demo: Demo, user: str) -> tuple[str, str]:
    """Where ``hybridhub demo status`` says the user's server runs: its cluster and node."""
    status = demo.hybridhub("status")
    assert status.returncode == 0, status.stderr
    line = next((s for s in status.stdout.splitlines() if s.split()[:1] == [user]), "")
    where = re.search(r"\s(\S+) on (\S+)$", line)
    assert where, f"no place for {user} in:\n{status.stdout}"
    return where.group(1), where.group(2)


def over_ssh(demo: Demo, person: Browser, tmp_path: Path, command: str) -> str:
    """Run ``command`` in the person's notebook with the OpenSSH client: a new key registered on the
    service's page, the config snippet the page shows, and the CA line it tells them to save (in this
    test's folder rather than ~/.ssh, which OpenSSH finds through the passwd entry, not $HOME)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{person.user}@laptop")
    key_file = tmp_path / f"id_{person.user}"
    key_file.write_bytes(key.export_private_key())
    key_file.chmod(0o600)
    snippet = person.add_ssh_key(key.export_public_key().decode().strip())
    with urllib.request.urlopen(f"{demo.state['url']}services/hybridhub/api/ssh/ca", timeout=30) as answer:
        ca = json.loads(answer.read())["known_hosts"]
    known = tmp_path / "hybridhub_known_hosts"
    known.write_text(ca + "\n")
    config = tmp_path / f"ssh_config_{person.user}"
    snippet = snippet.replace("~/.ssh/hybridhub_known_hosts", str(known))
    snippet = snippet.replace("~/.ssh/known_hosts", "/dev/null")  # the CA alone vouches for the gateway
    config.write_text(f"IdentityFile {key_file}\nIdentitiesOnly yes\nBatchMode yes\n{snippet}")
    done = subprocess.run(
        ["ssh", "-F", str(config), f"hub-{person.user}", command], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        logs = subprocess.run(
            [
                *("kubectl", "--kubeconfig", str(demo.state_dir / "kubeconfig"), "--context", "onprem"),
                *("logs", "-n", "jupyterhub", f"jupyter-{person.user}"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        gateway = (demo.state_dir / "ssh-gateway.log").read_text(errors="replace")[-2000:]
        ssh_lines = "\n".join(line for line in logs.stdout.splitlines() if "spawner.ssh" in line)
        raise AssertionError(f"ssh: {done.stderr}\npod log:\n{ssh_lines[-3000:]}\ngateway log:\n{gateway}")
    return done.stdout


def test_four_people_through_an_onprem_site_outage(
    demo: Demo, browsers: Callable[[str], Browser], tmp_path: Path
) -> None:
    password = demo.state["password"]

    # 1. A first person logs in; the form shows what is free where; 1 GPU of a product on-prem has.
    alice = browsers("alice")
    alice.log_in(password)
    form = alice.availability()
    alice.shoot("01-form")
    assert set(form) == {"onprem", "eks"}
    assert form["onprem"] and all(row.free == row.total > 0 for row in form["onprem"]), form  # all free
    assert form["eks"] and all(row.total == 0 for row in form["eks"]), form  # nodes are added on demand
    product = form["onprem"][0].product
    # ... and, for the count and product chosen, where such a server starts now and how long runs wait
    assert alice.wait_line(gpus=1, product=product).startswith(f"For 1 \u00d7 {product}: onprem: now; eks: ")
    assert alice.wait_line(gpus=0) == ""  # CPU only: nothing to wait for
    started = time.monotonic()
    alice.start(gpus=1, product=product)
    alice.wait_for_progress("Successfully assigned")
    alice.shoot("02-progress")
    alice.wait_for_lab()
    one_spawn = time.monotonic() - started
    alice.shoot("03-jupyterlab")
    node = assigned_node(alice.progress())
    assert node and placed(demo, "alice") == ("onprem", node), alice.progress()
    alice.open_notebook()
    code = (
        "import pathlib; print(pathlib.Path('from-the-browser.txt').write_text('alice was here'), 'written')"
    )
    alice.run_cell(code, "14 written")
    alice.shoot("04-cell")
    # the notebook side: her GPU counts against on-prem's, live, and she has no runs yet
    alice.run_cell("%load_ext labextension_server\n%gpus", product)
    alice.run_cell("%runs", "no runs")
    alice.shoot("04a-magics")
    assert alice.contents("from-the-browser.txt")["content"] == "alice was here"
    # the on-prem home volume, where simcluster's process runtime keeps the pod's /home/jovyan
    homes = list((demo.state_dir / "sim" / "onprem" / "volumes").glob("*/from-the-browser.txt"))
    assert [p.read_text() for p in homes] == ["alice was here"]
    # ... and reads it back with OpenSSH through the demo's gateway, as the SSH keys page tells her
    assert over_ssh(demo, alice, tmp_path, "cat from-the-browser.txt") == "alice was here"
    alice.shoot("04b-ssh-keys-page")
    # ... and submits a workflow with Hera from her SSH session, with nothing set up: the notebook
    # container's start-up hook points Hera at the service with her server's token
    hera = (
        "from hera.workflows import Container, Workflow\n"
        "with Workflow(generate_name='from-ssh-', entrypoint='c') as w:\n"
        "    Container(name='c', image='busybox', command=['true'])\n"
        "print(w.create().metadata.namespace)"
    )
    assert over_ssh(demo, alice, tmp_path, f'{sys.executable} -c "{hera}"').strip() == "hybridhub-runs-alice"

    # 2. A second person picks EKS.
    bob = browsers("bob")
    bob.log_in(password)
    taken = {row.product: row.free for row in bob.availability()["onprem"]}
    assert taken[product] == form["onprem"][0].free - 1  # alice's GPU, live
    bob.start(gpus=1, cluster="eks")
    bob.wait_for_lab()
    bob.shoot("05-jupyterlab-eks")
    bob_node = assigned_node(bob.progress())
    assert bob_node and placed(demo, "bob") == ("eks", bob_node), bob.progress()
    bob.open_notebook()
    bob.run_cell("print('before', 6 * 7)", "before 42")

    # 3. The on-prem site goes dark.
    outage = demo.hybridhub("outage", "onprem", "--site")
    assert outage.returncode == 0, outage.stderr
    carol = browsers("carol")
    carol.log_in(password)
    carol.shoot("06-form-outage")
    carol.start(gpus=1)
    # why eks: what the service or the spawn's own try found wrong with onprem, then where it went
    reason = carol.wait_for_progress(r"\bonprem\b.*\bon eks\b")
    carol.shoot("07-progress-fallback")
    print(f"carol's reason: {reason}")
    carol.wait_for_lab()
    carol.shoot("08-jupyterlab-fallback")
    carol_node = assigned_node(carol.progress())
    assert carol_node and placed(demo, "carol") == ("eks", carol_node), carol.progress()
    bob.run_cell("print('during', 6 * 7)", "during 42")
    bob.shoot("09-eks-cell-during-outage")
    home = alice.home_saying("unreachable")
    alice.shoot("10-home-outage")
    assert "onprem, the cluster your server runs on, is unreachable" in home and "Stop My Server" in home

    # 4. The site is back: the next spawn goes on-prem again.
    recovered = time.monotonic()
    back = demo.hybridhub("recover", "onprem")
    assert back.returncode == 0, back.stderr
    dave = browsers("dave")
    dave.log_in(password)
    dave.start(gpus=1, product=product)
    dave.wait_for_lab()
    took = time.monotonic() - recovered
    dave.shoot("11-jupyterlab-onprem-again")
    dave_node = assigned_node(dave.progress())
    assert dave_node and placed(demo, "dave") == ("onprem", dave_node), dave.progress()
    print(f"one spawn: {one_spawn:.1f} s; from recover to dave's JupyterLab: {took:.1f} s")
    # about one spawn's time: no wait for the service to trust onprem again, no failed try first (the
    # slack: dave's login and the recover command)
    assert took < 1.5 * one_spawn + 10, (took, one_spawn, dave.progress())
