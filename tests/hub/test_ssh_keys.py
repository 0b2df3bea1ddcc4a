"""The service's SSH part through a real hub: keys, the CA, host certificates, authorized keys, the page."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import psutil
import pytest
from asyncssh.public_key import CERT_TYPE_HOST

from simcluster.testing import SimProcess
from tests.environment import require
from tests.harness.hub import HubProcess
from tests.harness.hybrid import wire
from tests.harness.service_api import call, user_token, wait_for_service
from tests.harness.waits import wait_for

ADMIN = "sshada"
GROUP, MEMBER = "sshlab", "sshgus"  # a group, and its one member
GATEWAY = "ssh.hub.test:2222"
MAX_KEYS = 3

# The production wiring of 30-service.py that the harness's wire() does not carry yet: the server
# tokens' scopes, the service's scopes for who may reach a server, sharing, the page's OAuth login.
EXTRA = f"""
c.JupyterHub.allow_named_servers = True
c.Authenticator.admin_users = {{{ADMIN!r}}}
c.JupyterHub.load_groups = {{{GROUP!r}: {{"users": [{MEMBER!r}]}}}}
c.Spawner.server_token_scopes = [
    "users:activity!user", "access:servers!server", "access:services!service=hybridhub",
    "custom:hybridhub:capacity",
]
for _role in c.JupyterHub.load_roles:
    if _role["name"] == "hybridhub-service":
        _role["scopes"] = [*_role["scopes"], "read:users", "read:shares", "read:groups"]
    if _role["name"] == "user":
        # users share their servers, naming a user or a group
        _role["scopes"] = [*_role["scopes"], "shares!user", "read:users:name", "read:groups:name"]
for _service in c.JupyterHub.services:
    if _service["name"] == "hybridhub":
        _service["oauth_no_confirm"] = True
"""


@pytest.fixture(scope="module")
def ssh_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub with the service (stock KubeSpawner, light echo servers) and the SSH wiring."""
    work = tmp_path_factory.mktemp("sshsvc")
    hub = HubProcess(work / "hub", hsim, namespace="jupyterhub", singleuser="echosu")
    hub.wiring = wire(hub, hsim, work, spawner=False)
    with (work / "hybridhub_service_config.py").open("a") as config:
        config.write(f"c.HybridHubService.ssh_gateway_address = {GATEWAY!r}\n")
        config.write(f"c.HybridHubService.ssh_max_keys_per_user = {MAX_KEYS}\n")
        config.write(f"c.HybridHubService.db_url = 'sqlite:///{work / 'store' / 'hybridhub.sqlite'}'\n")
    # the proxy reaches the hub on this host (the SSH page's login goes through it); pods at the gateway
    gateway = hsim.endpoints["clusters"]["onprem"]["pod_gateway"]
    hub.extra_config += EXTRA + (
        f'c.JupyterHub.hub_connect_url = "http://127.0.0.1:{hub.hub_port}"\n'
        f'c.Spawner.hub_connect_url = "http://{gateway}:{hub.hub_port}"\n'
    )
    with hub:
        wait_for_service(hub)
        yield hub


def public_line(key: asyncssh.SSHKey, comment: str = "") -> str:
    return f"{key.export_public_key().decode().strip()} {comment}".strip()


def add_key(hub: HubProcess, token: str, comment: str = "") -> tuple[int, Any, asyncssh.SSHKey]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    status, body = call(hub, "POST", "api/ssh/keys", token, {"public_key": public_line(key, comment)})
    return status, body, key


def server_token(user: str, name: str = "") -> str:
    """The token the hub gave this server: its process's JUPYTERHUB_API_TOKEN (the pods are processes
    of this machine under simcluster's process runtime)."""
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            env = proc.environ()
            mine = env.get("JUPYTERHUB_USER") == user and env.get("JUPYTERHUB_SERVER_NAME", "") == name
            if mine and env.get("JUPYTERHUB_API_TOKEN"):
                return env["JUPYTERHUB_API_TOKEN"]
    raise AssertionError(f"no process of {user}'s server {name!r} found")


def start_servers(hub: HubProcess, user: str, names: tuple[str, ...]) -> None:
    for name in names:
        hub.api("POST", f"/users/{user}/servers/{name}" if name else f"/users/{user}/server")

    def ready() -> bool:
        servers = hub.user(user).get("servers", {})
        return all(servers.get(name, {}).get("ready") for name in names)

    wait_for(f"{user}'s servers {names} to be ready", ready, 90, explain=hub.log_tail)


def test_the_ca_is_public(ssh_hub: HubProcess) -> None:
    status, body = ssh_hub.proxy_get("/services/hybridhub/api/ssh/ca", token="")
    assert status == 200, body
    answer = json.loads(body)
    assert (
        answer["ca"].startswith("ssh-ed25519 AAAA")
        and answer["known_hosts"] == f"@cert-authority * {answer['ca']}"
    )


def test_users_manage_their_own_keys_only(ssh_hub: HubProcess) -> None:
    alice, bob, ada = (user_token(ssh_hub, name) for name in ("sshalice", "sshbob", ADMIN))
    status, added, key = add_key(ssh_hub, alice, "alice@laptop")
    assert status == 201, added
    assert (
        added["user"] == "sshalice" and added["comment"] == "alice@laptop" and added["type"] == "ssh-ed25519"
    )
    assert added["key"] == public_line(key, "alice@laptop") and added["fingerprint"].startswith("SHA256:")
    status, listed = call(ssh_hub, "GET", "api/ssh/keys", alice)
    assert status == 200 and [k["id"] for k in listed["keys"]] == [added["id"]], listed
    # one key, one user: neither she nor bob may register it again
    for token in (alice, bob):
        status, body = call(ssh_hub, "POST", "api/ssh/keys", token, {"public_key": added["key"]})
        assert status == 409 and added["fingerprint"] in body["message"], body
    # bob sees, reads and removes none of her keys
    status, body = call(ssh_hub, "GET", "api/ssh/keys?user=sshalice", bob)
    assert status == 403 and "sshalice" in body["message"], body
    assert call(ssh_hub, "GET", "api/ssh/keys", bob)[1]["keys"] == []
    for method in ("GET", "DELETE"):
        status, body = call(ssh_hub, method, f"api/ssh/keys/{added['id']}", bob)
        assert status == 404, body
    # an admin may list anyone's keys, and remove them
    status, body = call(ssh_hub, "GET", "api/ssh/keys?user=sshalice", ada)
    assert status == 200 and [k["id"] for k in body["keys"]] == [added["id"]], body
    status, second, _ = add_key(ssh_hub, alice)
    assert status == 201, second
    status, body = call(ssh_hub, "DELETE", f"api/ssh/keys/{second['id']}", ada)
    assert status == 204, body
    # her config snippet names her, the gateway and the CA
    status, snippet = call(ssh_hub, "GET", "api/ssh/config", alice)
    ca = call(ssh_hub, "GET", "api/ssh/ca", alice)[1]
    assert (
        status == 200
        and "Host hub-sshalice\n" in snippet
        and "ProxyJump sshalice@ssh.hub.test:2222" in snippet
    )
    assert ca["known_hosts"] in snippet
    status, body = call(ssh_hub, "DELETE", f"api/ssh/keys/{added['id']}", alice)
    assert status == 204, body
    assert call(ssh_hub, "GET", "api/ssh/keys", alice)[1]["keys"] == []
    assert call(ssh_hub, "DELETE", f"api/ssh/keys/{added['id']}", alice)[0] == 404


def test_a_user_registers_at_most_the_configured_number_of_keys(ssh_hub: HubProcess) -> None:
    token = user_token(ssh_hub, "sshmany")
    for _ in range(MAX_KEYS):
        status, body, _ = add_key(ssh_hub, token)
        assert status == 201, body
    status, body, _ = add_key(ssh_hub, token)
    assert status == 400 and f"has {MAX_KEYS} SSH keys already" in body["message"], body


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"public_key": "ssh-dss AAAAB3NzaC1kc3M="}, 400, "DSA keys are not accepted"),
        ({"public_key": "ssh-ed25519 AAAA"}, 400, "cut short"),
        ({"public_key": "hello"}, 400, "must start with a key type"),
        ({}, 400, "must be a string"),
        ({"public_key": "x" * 20000}, 413, "at most 16384"),
        ("not an object", 400, "must be a JSON object"),
    ],
)
def test_bad_keys_get_400_saying_why(ssh_hub: HubProcess, body: Any, status: int, message: str) -> None:
    token = user_token(ssh_hub, "sshcarol")
    got, answer = call(ssh_hub, "POST", "api/ssh/keys", token, body)
    assert got == status and message in answer["message"], answer


def test_tokens_without_the_scope_or_without_a_user_are_refused(ssh_hub: HubProcess) -> None:
    ssh_hub.create_user("sshdan")
    narrow = ssh_hub.api("POST", "/users/sshdan/tokens", {"scopes": ["read:users:name!user"]})["token"]
    status, body = call(ssh_hub, "GET", "api/ssh/keys", narrow)
    assert status == 403 and "access:services!service=hybridhub" in body["message"], body
    status, body = call(ssh_hub, "GET", "api/ssh/keys", "")
    assert status == 401, body
    status, body = call(ssh_hub, "GET", "api/ssh/keys", "not-a-token")
    assert status == 401, body


def test_servers_get_host_certificates_and_the_keys_of_who_may_enter(ssh_hub: HubProcess) -> None:
    owner, friend, stranger = "sshalice", "sshbob", "sshcarol"
    tokens = {name: user_token(ssh_hub, name) for name in (owner, friend, stranger, ADMIN, MEMBER)}
    keys = {}
    for name, token in tokens.items():
        status, body, _ = add_key(ssh_hub, token, name)
        assert status == 201, body
        keys[name] = body["key"]
    start_servers(ssh_hub, owner, ("", "gpu"))
    default, named = server_token(owner), server_token(owner, "gpu")
    ca = asyncssh.import_public_key(call(ssh_hub, "GET", "api/ssh/ca", tokens[owner])[1]["ca"])

    for token, principal in ((default, owner), (named, f"{owner}.gpu")):
        host = asyncssh.generate_private_key("ssh-ed25519")
        # what the body says of the server is ignored: the name comes from the token
        request = {"public_key": public_line(host), "principals": [stranger], "server": stranger}
        status, body = call(ssh_hub, "POST", "api/ssh/host-certificate", token, request)
        assert status == 200, body
        assert body["principals"] == [principal] and body["valid_before"] > time.time() + 600
        cert = asyncssh.import_certificate(body["certificate"])
        assert cert.key.public_data == host.public_data and cert.signing_key.public_data == ca.public_data
        cert.validate(CERT_TYPE_HOST, principal)
        with pytest.raises(ValueError):
            cert.validate(CERT_TYPE_HOST, stranger)

    # a user named like the named server's host name owns that name: no certificate for it
    ssh_hub.create_user(f"{owner}.gpu")
    host_line = public_line(asyncssh.generate_private_key("ssh-ed25519"))
    status, body = call(ssh_hub, "POST", "api/ssh/host-certificate", named, {"public_key": host_line})
    assert status == 409 and f"user {owner}.gpu's server" in body["message"], body
    ssh_hub.api("DELETE", f"/users/{owner}.gpu")

    # a user's token, the owner's included, is no server's
    for name in (owner, stranger, ADMIN):
        status, body = call(
            ssh_hub, "POST", "api/ssh/host-certificate", tokens[name], {"public_key": host_line}
        )
        assert status == 403 and "notebook server's own token" in body["message"], body
    status, body = call(
        ssh_hub, "POST", "api/ssh/host-certificate", default, {"public_key": "ssh-ed25519 AAAA"}
    )
    assert status == 400, body
    # a server's token may not change its owner's keys (whoever uses a shared server can read it)
    status, body, _ = add_key(ssh_hub, default)
    assert status == 403 and "cannot change SSH keys" in body["message"], body

    def authorized(token: str) -> dict[str, Any]:
        status, body = call(ssh_hub, "GET", "api/ssh/authorized-keys", token)
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    # the owner and the hub's admins; not the others
    answer = authorized(default)
    assert answer["server"] == owner
    assert answer["keys"] == [{"user": owner, "key": keys[owner]}, {"user": ADMIN, "key": keys[ADMIN]}]

    # the owner shares the named server with her friend and with a group: their keys open that server,
    # not the default one
    def share(body: dict[str, str]) -> None:
        req = urllib.request.Request(
            f"{ssh_hub.api_url}/shares/{owner}/gpu",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"token {tokens[owner]}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, timeout=30).read()
        except urllib.error.HTTPError as err:
            raise AssertionError(err.read()) from None

    share({"user": friend})
    share({"group": GROUP})
    assert {k["user"] for k in authorized(named)["keys"]} == {owner, ADMIN, friend, MEMBER}
    assert authorized(named)["server"] == f"{owner}.gpu"
    assert {k["user"] for k in authorized(default)["keys"]} == {owner, ADMIN}
    status, body = call(ssh_hub, "GET", "api/ssh/authorized-keys", tokens[owner])
    assert status == 403, body


def test_the_page_behind_hub_login_adds_keys_with_its_xsrf_token(ssh_hub: HubProcess) -> None:
    page_path = "/services/hybridhub/ssh"
    page_url = f"{ssh_hub.public_url}{page_path}"
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    # not logged in: the page sends the browser to the hub's login form, which logs in and goes on with
    # the hub's OAuth back to the page
    with browser.open(page_url, timeout=30) as resp:
        login_url = resp.url
    assert "/hub/login?next=" in login_url
    xsrf_cookie = next((c.value for c in jar if c.name == "_xsrf"), "")
    form = urllib.parse.urlencode({"username": "sshpage", "password": "x", "_xsrf": xsrf_cookie}).encode()
    with browser.open(login_url, data=form, timeout=30) as resp:
        assert resp.status == 200 and resp.url == page_url
        page = resp.read().decode()
        policy = resp.headers["Content-Security-Policy"]
    assert "SSH keys of sshpage" in page and "script-src 'nonce-" in policy
    assert "frame-ancestors 'none'" in policy
    xsrf = re.search(r'data-xsrf="([^"]+)"', page)
    assert xsrf, page
    key = public_line(asyncssh.generate_private_key("ssh-ed25519"), "<img src=x onerror=alert(1)>")

    def post(headers: dict[str, str]) -> tuple[int, Any]:
        req = urllib.request.Request(
            f"{ssh_hub.public_url}/services/hybridhub/api/ssh/keys",
            data=json.dumps({"public_key": key}).encode(),
            method="POST",
            headers={"Content-Type": "application/json", **headers},
        )
        try:
            with browser.open(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    # another site's form or script holds the cookie but not the xsrf token: refused
    status, body = post({})
    assert status == 401, body
    status, body = post({"X-XSRFToken": xsrf.group(1)})
    assert (
        status == 201 and body["user"] == "sshpage" and body["comment"] == "<img src=x onerror=alert(1)>"
    ), body
    # the page lists keys with the script's textContent: the comment is data, never markup
    with browser.open(page_url, timeout=30) as resp:
        assert "onerror" not in resp.read().decode()


def test_a_person_adds_and_removes_a_key_on_the_page(ssh_hub: HubProcess, tmp_path: Path) -> None:
    """In headless Chromium: log in through the hub, add a key with a comment that looks like markup,
    see it listed as text, see the config snippet, remove the key."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.e2e.browser import CHROMEDRIVER, CHROMIUM

    require(
        Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "needs Debian's chromium and chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    wait = WebDriverWait(driver, 30, poll_frequency=0.1)
    comment = "<img src=x onerror=window.hacked=1>"
    try:
        driver.get(f"{ssh_hub.public_url}/services/hybridhub/ssh")
        wait.until(ec.presence_of_element_located((By.ID, "username_input"))).send_keys("sshweb")
        driver.find_element(By.ID, "password_input").send_keys("x")
        driver.find_element(By.ID, "login_submit").click()
        wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "SSH keys of sshweb"))
        wait.until(ec.text_to_be_present_in_element((By.ID, "config"), "Host hub-sshweb"))
        key = public_line(asyncssh.generate_private_key("ssh-ed25519"), comment)
        driver.find_element(By.ID, "public_key").send_keys(key)
        driver.find_element(By.CSS_SELECTOR, "#add button[type=submit]").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "keys"), comment))
        assert driver.execute_script("return window.hacked") is None
        assert driver.find_elements(By.CSS_SELECTOR, "#keys img") == []
        # a bad key: the page says why
        driver.find_element(By.ID, "public_key").send_keys("ssh-dss AAAAB3NzaC1kc3M=")
        driver.find_element(By.CSS_SELECTOR, "#add button[type=submit]").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "error"), "DSA keys are not accepted"))
        driver.find_element(By.CSS_SELECTOR, "#keys button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#keys tr") == [])
        token = user_token(ssh_hub, "sshweb")
        assert call(ssh_hub, "GET", "api/ssh/keys", token)[1]["keys"] == []
    except Exception:
        print("\n".join(str(entry) for entry in driver.get_log("browser")))
        raise
    finally:
        driver.quit()
