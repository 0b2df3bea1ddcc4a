"""The SDKs set up in every Python process of a notebook container: Hera, kubectl and the kubernetes client.

Each process test starts a real Python with hybridhub_sdk.pth active, either as the venv installed it
(real start-up) or from a temporary site directory through ``site.addsitedir``, and reads what it did.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from labextension_server import _startup, sdk_setup
from labextension_server.credential import exec_credential
from simcluster.tls import make_serving_certs

REPO = Path(__file__).resolve().parents[2]
PTH = REPO / "labextension_server" / "hybridhub_sdk.pth"
SERVICE = "http://hub:8081/services/hybridhub/"
TOKEN = "alice-server-token"
# What the fake Kubernetes endpoint answers on /version: every field the kubernetes client requires.
VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}


# ---------------------------------------------------------------- pure builders


@pytest.mark.parametrize(
    ("service_url", "argo", "k8s"),
    [
        (SERVICE, "http://hub:8081/services/hybridhub/argo/", "http://hub:8081/services/hybridhub/k8s"),
        # without the trailing slash the endpoints are the same: urljoin would otherwise drop `hybridhub`
        (
            "http://hub:8081/services/hybridhub",
            "http://hub:8081/services/hybridhub/argo/",
            "http://hub:8081/services/hybridhub/k8s",
        ),
        ("https://hub.example.org/", "https://hub.example.org/argo/", "https://hub.example.org/k8s"),
    ],
)
def test_endpoints(service_url: str, argo: str, k8s: str) -> None:
    assert sdk_setup.argo_host(service_url) == argo
    assert sdk_setup.kubernetes_url(service_url) == k8s
    assert sdk_setup.hera_settings(service_url) == sdk_setup.HeraSettings(host=argo, namespace="default")


def test_kubeconfig_user_is_the_credential_plugin_and_holds_no_token() -> None:
    config = sdk_setup.kubeconfig(SERVICE, python="/opt/venv/bin/python")
    assert config["current-context"] == "hybridhub"
    [cluster] = config["clusters"]
    assert cluster["cluster"] == {"server": "http://hub:8081/services/hybridhub/k8s"}
    [context] = config["contexts"]
    assert context["context"] == {"cluster": "hybridhub", "user": "hybridhub", "namespace": "default"}
    [user] = config["users"]
    assert user["user"] == {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/opt/venv/bin/python",
            "args": ["-m", "labextension_server.credential"],
            "interactiveMode": "Never",
            "provideClusterInfo": False,
        }
    }
    assert sdk_setup.kubeconfig(SERVICE)["users"][0]["user"]["exec"]["command"] == sys.executable


def test_configure_hera_sets_a_token_function_that_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Config:
        """Stands for hera.shared.global_config: the attributes configure_hera sets."""

        host: Any = None
        namespace: Any = None
        token: Any = None

    config = Config()
    sdk_setup.configure_hera(config, SERVICE)
    assert (config.host, config.namespace) == ("http://hub:8081/services/hybridhub/argo/", "default")
    assert callable(config.token)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "first")
    assert config.token() == "first"
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "second")
    assert config.token() == "second"
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    assert config.token() is None


OURS = sdk_setup.render_kubeconfig(sdk_setup.kubeconfig(SERVICE, python="/opt/venv/bin/python"))


@pytest.mark.parametrize(
    ("content", "current"),
    [
        (b"", False),  # missing or empty: write it
        (b"\n  \n", False),
        (OURS, True),
        (OURS.replace(b"hub:8081", b"old-hub:8081"), False),  # the service moved
        (OURS.replace(b"/opt/venv/bin/python", b"/gone/bin/python"), False),  # that Python went
        # someone else's kubeconfig, whatever it names, is never touched
        (b"apiVersion: v1\nkind: Config\nclusters: []\n", True),
        (b'{"clusters": [{"cluster": {"server": "https://elsewhere"}}]}', True),
    ],
)
def test_kubeconfig_is_current(content: bytes, current: bool) -> None:
    assert _startup.kubeconfig_is_current(content, SERVICE, "/opt/venv/bin/python") is current


# ---------------------------------------------------------------- writing the kubeconfig


def test_write_kubeconfig_is_atomic_world_readable_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "kubeconfig"
    old_umask = os.umask(0o077)  # a strict umask must not make the file unreadable to kubectl's user
    try:
        assert sdk_setup.write_kubeconfig(path, SERVICE) is True
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert json.loads(path.read_text()) == sdk_setup.kubeconfig(SERVICE)
    before = path.stat().st_mtime_ns
    assert sdk_setup.write_kubeconfig(path, SERVICE) is False
    assert path.stat().st_mtime_ns == before
    assert sdk_setup.write_kubeconfig(path, "http://other:8081/services/hybridhub/") is True
    assert (
        json.loads(path.read_text())["clusters"][0]["cluster"]["server"]
        == "http://other:8081/services/hybridhub/k8s"
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["kubeconfig"]  # no temporary file left


def test_write_kubeconfig_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("HYBRIDHUB_SERVICE_URL", raising=False)
    with pytest.raises(ValueError, match=r"\$KUBECONFIG is not set"):
        sdk_setup.write_kubeconfig()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "k"))
    with pytest.raises(ValueError, match=r"\$HYBRIDHUB_SERVICE_URL is not set"):
        sdk_setup.write_kubeconfig()
    monkeypatch.setenv("HYBRIDHUB_SERVICE_URL", SERVICE)
    assert sdk_setup.write_kubeconfig() is True
    assert json.loads((tmp_path / "k").read_text()) == sdk_setup.kubeconfig(SERVICE)


@pytest.mark.parametrize(
    ("before", "written"),
    [
        (None, True),
        (b"", True),
        (b"apiVersion: v1\nkind: Config\n# the user's own\n", False),
        (
            OURS.replace(b"hub:8081", b"old-hub:8081").replace(
                b"/opt/venv/bin/python", sys.executable.encode()
            ),
            True,
        ),
    ],
    ids=["missing", "empty", "foreign", "stale"],
)
def test_ensure_kubeconfig(tmp_path: Path, before: bytes | None, written: bool) -> None:
    path = tmp_path / "kubeconfig"
    if before is not None:
        path.write_bytes(before)
    assert _startup.ensure_kubeconfig(str(path), SERVICE) is written
    expected = sdk_setup.render_kubeconfig(sdk_setup.kubeconfig(SERVICE)) if written else before
    assert path.read_bytes() == expected
    assert _startup.ensure_kubeconfig(str(path), SERVICE) is False  # and then it is current


# ---------------------------------------------------------------- the credential plugin


def credential(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labextension_server.credential"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_credential_prints_an_exec_credential_with_the_hub_token() -> None:
    done = credential({"JUPYTERHUB_API_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": TOKEN},
    }
    assert exec_credential(TOKEN) == json.loads(done.stdout)


@pytest.mark.parametrize("env", [{}, {"JUPYTERHUB_API_TOKEN": ""}, {"JUPYTERHUB_API_TOKEN": "  "}])
def test_credential_without_a_token_fails_in_one_line(env: dict[str, str]) -> None:
    done = credential(env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "$JUPYTERHUB_API_TOKEN is not set" in done.stderr


# ---------------------------------------------------------------- processes with the .pth active


def installed_pth() -> Path:
    return Path(sysconfig.get_paths()["purelib"]) / PTH.name


def test_the_venv_carries_the_pth() -> None:
    """The editable install (make's venv target) puts the .pth in site-packages, as the wheel does: the
    demo's notebook pods run this venv's Python. After changing the .pth, `make` installs it again."""
    assert installed_pth().read_text() == PTH.read_text()


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A site directory holding only the repository's .pth, for ``site.addsitedir``."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(PTH, site / PTH.name)
    return site


def python(
    code: str, env: dict[str, str], site: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python whose environment is only ``env`` (plus PATH and HOME).

    With ``site``, only the .pth there is processed, as site.py does at start-up; without it the venv's
    installed .pth has run at start-up."""
    flags, prelude = [], ""
    if site is not None:
        # -S: the venv's own .pth files do not run. Its packages and this checkout go on the path by hand.
        paths = [sysconfig.get_paths()["purelib"], str(REPO)]
        flags, prelude = (
            ["-S"],
            f"import sys, site; sys.path[:0] = {paths!r}; site.addsitedir({str(site)!r})\n",
        )
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd or Path.cwd())}
    if "HYBRIDHUB_SERVICE_URL" in env:  # a user's server and its children, as JupyterHub starts them
        base["JUPYTERHUB_SERVICE_PREFIX"] = "/user/alice/"
    return subprocess.run(
        [sys.executable, *flags, "-c", prelude + textwrap.dedent(code)],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


MODES = ["installed", "addsitedir"]


def site_for(mode: str, site_dir: Path) -> Path | None:
    return site_dir if mode == "addsitedir" else None


HERA_CONFIG = """
import json, sys
{imports}
import hera as h  # no import of hera.shared here: the hook loaded it
g = h.shared.global_config
print(json.dumps({{"host": g.host, "namespace": g.namespace, "token": g.token,
                   "hooks": [type(f).__name__ for f in sys.meta_path].count("HeraHook")}}))
"""


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "imports",
    [
        "import hera",  # hera alone does not load hera.shared: the hook does
        "import hera.shared",
        "from hera.workflows import Workflow, WorkflowsService",
        "import hera.workflows.models",
    ],
)
def test_hera_is_configured_on_import(tmp_path: Path, site_dir: Path, mode: str, imports: str) -> None:
    env = {
        "HYBRIDHUB_SERVICE_URL": SERVICE,
        "JUPYTERHUB_API_TOKEN": TOKEN,
        "KUBECONFIG": str(tmp_path / "kube" / "config"),
    }
    done = python(HERA_CONFIG.format(imports=imports), env, site_for(mode, site_dir))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "host": "http://hub:8081/services/hybridhub/argo/",
        "namespace": "default",
        "token": TOKEN,
        "hooks": 1,
    }
    assert json.loads((tmp_path / "kube" / "config").read_text()) == sdk_setup.kubeconfig(SERVICE)


def test_hera_services_use_the_setup_and_modules_keep_their_loader(site_dir: Path) -> None:
    code = """
    import json, os
    import hera
    from hera.workflows import WorkflowsService
    from hera.workflows.async_service import AsyncWorkflowsService
    first = WorkflowsService()
    os.environ["JUPYTERHUB_API_TOKEN"] = "renewed"  # read again by each new service
    second = AsyncWorkflowsService()
    print(json.dumps({
        "sync": [first.host, first.token, first.namespace],
        "async": [second.host, second.token, second.namespace],
        "loaders": sorted({type(hera.__loader__).__name__, type(hera.__spec__.loader).__name__,
                           type(hera.shared.__spec__.loader).__name__}),
    }))
    """
    done = python(code, {"HYBRIDHUB_SERVICE_URL": SERVICE, "JUPYTERHUB_API_TOKEN": TOKEN}, site_dir)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "sync": ["http://hub:8081/services/hybridhub/argo/", f"Bearer {TOKEN}", "default"],
        "async": ["http://hub:8081/services/hybridhub/argo/", "Bearer renewed", "default"],
        "loaders": ["SourceFileLoader"],
    }


@pytest.mark.parametrize("mode", MODES)
def test_without_the_service_url_nothing_happens(tmp_path: Path, site_dir: Path, mode: str) -> None:
    code = """
    import json, sys
    before = sorted(m for m in sys.modules if m.startswith("labextension_server"))
    import hera.shared
    g = hera.shared.global_config
    print(json.dumps({"modules": before, "host": g.host, "namespace": g.namespace, "token": g.token,
                      "finders": [type(f).__name__ for f in sys.meta_path]}))
    """
    env = {"JUPYTERHUB_API_TOKEN": TOKEN, "KUBECONFIG": str(tmp_path / "config")}
    done = python(code, env, site_for(mode, site_dir))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["modules"] == []  # the .pth did not even import the package
    assert (seen["host"], seen["namespace"], seen["token"]) == (None, None, None)
    assert "HeraHook" not in seen["finders"]
    assert not (tmp_path / "config").exists()


BROKEN: dict[str, dict[str, str | None]] = {
    "KUBECONFIG is a directory": {"KUBECONFIG": "{tmp}"},
    "KUBECONFIG under a file": {"KUBECONFIG": "{tmp}/a-file/config"},
    "KUBECONFIG where nobody may write": {"KUBECONFIG": "/proc/hybridhub/config"},
    "KUBECONFIG lists several files": {"KUBECONFIG": "{tmp}/one:{tmp}/two"},
    "no KUBECONFIG": {},
    "no token": {"JUPYTERHUB_API_TOKEN": None},
    "a service URL that is not a URL": {"HYBRIDHUB_SERVICE_URL": "\x7f not a url ü"},
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_environment_never_breaks_python(
    tmp_path: Path, site_dir: Path, mode: str, case: str
) -> None:
    (tmp_path / "a-file").write_text("")
    env: dict[str, str | None] = {
        "HYBRIDHUB_SERVICE_URL": SERVICE,
        "JUPYTERHUB_API_TOKEN": TOKEN,
        **{k: (v.format(tmp=tmp_path) if v is not None else None) for k, v in BROKEN[case].items()},
    }
    clean = {k: v for k, v in env.items() if v}
    for code in ("pass", "import hera.shared; import hera.workflows"):
        done = python(code, clean, site_for(mode, site_dir), cwd=tmp_path)
        assert (done.returncode, done.stderr) == (0, ""), code
    if case == "KUBECONFIG lists several files":
        assert not (tmp_path / "one").exists() and not (tmp_path / "two").exists()


def test_a_broken_hera_still_imports(tmp_path: Path, site_dir: Path) -> None:
    """The hook's own failure (a Hera without global_config) leaves the user's import alone."""
    fake = tmp_path / "fake"
    (fake / "hera" / "shared").mkdir(parents=True)
    (fake / "hera" / "__init__.py").write_text("LOADED = True\n")
    (fake / "hera" / "shared" / "__init__.py").write_text("SHARED = True\n")
    code = """
    import sys
    sys.path.insert(0, {fake!r})
    import hera, hera.shared
    print(hera.LOADED, hera.shared.SHARED, hera.__file__.startswith({fake!r}))
    import hera.missing
    """.format(fake=str(fake))
    done = python(code, {"HYBRIDHUB_SERVICE_URL": SERVICE}, site_dir)
    assert done.stdout.split() == ["True", "True", "True"]
    # a module that does not exist fails as it always does, not inside the hook
    assert done.returncode == 1 and done.stderr.strip().endswith(
        "ModuleNotFoundError: No module named 'hera.missing'"
    )


def test_the_start_up_hook_loads_only_itself(tmp_path: Path) -> None:
    """Every Python process of the container pays for the hook, so it loads no module beyond the package
    and its own two modules: not typing, json or hera. The package's __init__ must import nothing either."""
    code = "import json, sys; print(json.dumps(sorted(sys.modules)))"
    env = {"HYBRIDHUB_SERVICE_URL": SERVICE, "KUBECONFIG": str(tmp_path / "config")}
    sdk_setup.write_kubeconfig(tmp_path / "config", SERVICE)  # current: the common case
    plain, hooked = python(code, {}), python(code, env)
    assert plain.returncode == hooked.returncode == 0, hooked.stderr
    # json is imported by the code itself, after start-up, in both; __future__ is a few constants
    extra = set(json.loads(hooked.stdout)) - set(json.loads(plain.stdout))
    assert "labextension_server._startup" in extra
    ours = {"labextension_server", "labextension_server._startup", "labextension_server._endpoints"}
    assert extra <= {"__future__", *ours}


def test_a_hub_side_process_leaves_its_kubeconfig_alone(tmp_path: Path) -> None:
    """The hub and its managed services may have $HYBRIDHUB_SERVICE_URL, and a $KUBECONFIG naming
    their clusters' credentials: no user's server prefix, no set-up."""
    path = tmp_path / "hub-kubeconfig"
    for prefix in ({}, {"JUPYTERHUB_SERVICE_PREFIX": "/services/hybridhub/"}):
        env = {
            "HYBRIDHUB_SERVICE_URL": SERVICE,
            "KUBECONFIG": str(path),
            "PATH": os.environ.get("PATH", ""),
            **prefix,
        }
        assert subprocess.run([sys.executable, "-c", "pass"], env=env, timeout=120).returncode == 0
        assert not path.exists()


def test_processes_starting_together_write_one_whole_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kube" / "config"
    env = {
        "HYBRIDHUB_SERVICE_URL": SERVICE,
        "KUBECONFIG": str(path),
        "PATH": os.environ.get("PATH", ""),
        "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
    }
    procs = [subprocess.Popen([sys.executable, "-c", "pass"], env=env) for _ in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    assert json.loads(path.read_text()) == sdk_setup.kubeconfig(SERVICE)
    assert [p.name for p in path.parent.iterdir()] == ["config"]


# ---------------------------------------------------------------- kubectl and the kubernetes client


class FakeKubernetes(BaseHTTPRequestHandler):
    """``GET <prefix>k8s/version``, answered only with the expected bearer token."""

    prefix = "/services/hybridhub/k8s"
    token = TOKEN
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        if self.path.split("?")[0].rstrip("/") != f"{self.prefix}/version":
            self.reply(404, {"kind": "Status", "status": "Failure", "code": 404, "message": self.path})
        elif self.headers.get("Authorization") != f"Bearer {self.token}":
            self.reply(401, {"kind": "Status", "status": "Failure", "code": 401, "reason": "Unauthorized"})
        else:
            self.reply(200, VERSION)

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


Fake = tuple[str, list[str]]


@pytest.fixture
def fake_kubernetes(tmp_path: Path) -> Iterator[Callable[[bool], Fake]]:
    """Starts the fake endpoint, over TLS or not; each start gives the service URL to set and the list of
    Authorization headers the endpoint saw. Over TLS, $SSL_CERT_FILE (tmp_path/ca.pem) trusts it."""
    servers: list[ThreadingHTTPServer] = []

    def start(tls: bool) -> Fake:
        seen: list[str] = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (FakeKubernetes,), {"seen": seen}))
        if tls:
            certs = make_serving_certs(["127.0.0.1"])
            (tmp_path / "ca.pem").write_bytes(certs.ca_pem)
            server.socket = certs.server_context().wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        scheme = "https" if tls else "http"
        return f"{scheme}://127.0.0.1:{server.server_address[1]}/services/hybridhub/", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def kube_env(tmp_path: Path, service_url: str, token: str) -> dict[str, str]:
    return {
        "HYBRIDHUB_SERVICE_URL": service_url,
        "JUPYTERHUB_API_TOKEN": token,
        "KUBECONFIG": str(tmp_path / "kube" / "config"),
        # kubectl (Go) trusts the fake's CA through this variable
        "SSL_CERT_FILE": str(tmp_path / "ca.pem"),
    }


@pytest.mark.kubectl
@pytest.mark.parametrize(("token", "ok"), [(TOKEN, True), ("someone-else", False)])
def test_kubectl_reaches_the_service_with_the_hub_token(
    tmp_path: Path, fake_kubernetes: Callable[[bool], Fake], token: str, ok: bool
) -> None:
    # kubectl sends no credentials at all to an http:// server (client-go, kubernetes/kubectl#744)
    service_url, seen = fake_kubernetes(True)
    env = kube_env(tmp_path, service_url, token)
    # Any Python start writes the kubeconfig; kubectl then finds it through $KUBECONFIG alone.
    assert python("pass", env).returncode == 0
    done = subprocess.run(
        # --raw takes a path from the server's root, so it names the service's prefix
        ["kubectl", "get", "--raw", "/services/hybridhub/k8s/version"],
        env={**env, "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode == 0) is ok, done.stderr
    if ok:
        assert json.loads(done.stdout)["gitVersion"] == "v1.32.0"
    assert seen and set(seen) == {f"Bearer {token}"}
    assert token.encode() not in (tmp_path / "kube" / "config").read_bytes()


@pytest.mark.parametrize(("token", "ok"), [(TOKEN, True), ("someone-else", False)])
def test_the_kubernetes_client_reaches_the_service_with_the_hub_token(
    tmp_path: Path, fake_kubernetes: Callable[[bool], Fake], token: str, ok: bool
) -> None:
    service_url, seen = fake_kubernetes(False)
    code = """
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    config.load_kube_config()  # $KUBECONFIG, as the Katib and Kubeflow SDKs load it
    try:
        print(client.VersionApi().get_code(_request_timeout=30).git_version)
    except ApiException as err:
        print(err.status)
    """
    done = python(code, kube_env(tmp_path, service_url, token))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("v1.32.0" if ok else "401")
    assert seen == [f"Bearer {token}"]
