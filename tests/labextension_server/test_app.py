"""The extension's shape: how jupyter-server finds and enables it, its settings, and how it relays errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError

import labextension_server
from labextension_server.app import HybridHubExtension
from labextension_server.handlers import relayed_error

REPO = Path(__file__).resolve().parents[2]
CONFIG = "jupyter-config/jupyter_server_config.d/labextension_server.json"


def test_jupyter_server_finds_one_extension_app() -> None:
    assert labextension_server._jupyter_server_extension_points() == [
        {"module": "labextension_server.app", "app": HybridHubExtension}
    ]
    assert HybridHubExtension.name == "hybridhub"


def test_the_package_import_leaves_the_server_out() -> None:
    # a kernel imports labextension_server for its client and magics: no tornado, no jupyter-server
    code = (
        "import sys, labextension_server; "
        "print(sorted(m for m in ('tornado', 'jupyter_server', 'pynvml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_installing_the_package_enables_the_extension() -> None:
    enabled = json.loads((REPO / CONFIG).read_text())
    assert enabled == {"ServerApp": {"jpserver_extensions": {"labextension_server": True}}}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    shared = project["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared[CONFIG] == "etc/jupyter/jupyter_server_config.d/labextension_server.json"


def test_the_installed_environment_enables_it() -> None:
    # the editable install in this venv put the file where jupyter-server reads its config
    installed = Path(sys.prefix) / "etc/jupyter/jupyter_server_config.d/labextension_server.json"
    assert (
        json.loads(installed.read_text())["ServerApp"]["jpserver_extensions"]["labextension_server"] is True
    )


@pytest.mark.parametrize("name", sorted(HybridHubExtension.class_own_traits(config=True)))
def test_every_setting_has_a_real_help(name: str) -> None:
    assert len(HybridHubExtension.class_traits()[name].help.split()) >= 8, name


@pytest.mark.parametrize(
    ("environ", "trait", "expected"),
    [
        (
            {"HYBRIDHUB_SERVICE_URL": "http://hub:8081/services/hybridhub/"},
            "service_url",
            "http://hub:8081/services/hybridhub/",
        ),
        # the routes are joined to the prefix, so a missing slash is added
        (
            {"HYBRIDHUB_SERVICE_URL": "http://hub:8081/services/hybridhub"},
            "service_url",
            "http://hub:8081/services/hybridhub/",
        ),
        ({}, "service_url", ""),
        ({"JUPYTERHUB_API_TOKEN": "t0k"}, "api_token", "t0k"),
        ({}, "api_token", ""),
        ({}, "request_timeout", 10.0),
    ],
)
def test_defaults_come_from_the_pod_environment(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], trait: str, expected: Any
) -> None:
    for name in ("HYBRIDHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert getattr(HybridHubExtension(), trait) == expected


@pytest.mark.parametrize(
    ("trait", "value"),
    [
        ("service_url", "hub:8081/services/hybridhub/"),
        ("service_url", "ftp://hub/"),
        ("request_timeout", 0),
        ("log_follow_timeout", -1),
    ],
)
def test_unusable_settings_are_refused(trait: str, value: Any) -> None:
    with pytest.raises(TraitError, match=trait):
        HybridHubExtension(**{trait: value})


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        (
            403,
            b'{"status": 403, "message": "user alice may not do this"}',
            (403, "user alice may not do this"),
        ),
        (404, b'{"status": 404, "message": "Job \\"x\\" not found"}', (404, 'Job "x" not found')),
        (503, b'{"status": 503, "message": "runs are unavailable"}', (503, "runs are unavailable")),
        # the caller cannot fix the server's own token: not their 401
        (
            401,
            b'{"status": 401, "message": "this needs a hub API token"}',
            (502, "the hybridhub service did not accept this server's hub token: this needs a hub API token"),
        ),
        # a proxy's page in front of the service
        (502, b"<html>Bad Gateway</html>", (502, "the hybridhub service answered 502 Bad Gateway")),
        (500, b"", (500, "the hybridhub service answered 500 Internal Server Error")),
        (404, b'{"message": 7}', (404, "the hybridhub service answered 404 Not Found")),
        (302, b"", (502, "the hybridhub service answered 302, which this server does not pass on")),
    ],
)
def test_relayed_error(code: int, body: bytes, expected: tuple[int, str]) -> None:
    assert relayed_error(code, body) == expected


class _Identity:
    def __init__(self, token: str) -> None:
        self.token = token


class _Server:
    """What keep_hub_token_off_disk reads and changes of a jupyter ServerApp."""

    def __init__(self, token: str) -> None:
        self.identity_provider = _Identity(token)
        self.no_browser_open_file = False

    def server_info(self) -> dict[str, Any]:
        return {"url": "http://127.0.0.1:8888/user/alice/", "token": self.identity_provider.token}


@pytest.mark.parametrize(
    ("server_token", "kept_off"), [("hub-token", True), ("own-token", False), ("", False)]
)
def test_the_hub_token_is_kept_out_of_the_servers_runtime_files(server_token: str, kept_off: bool) -> None:
    from labextension_server.app import keep_hub_token_off_disk

    server = _Server(server_token)
    assert keep_hub_token_off_disk(server, "hub-token") is kept_off
    info = server.server_info()
    assert info["url"] == "http://127.0.0.1:8888/user/alice/"
    # JupyterHub 5 hands the hub token to the server as its own: then neither file may carry it
    assert info["token"] == ("" if kept_off else server_token)
    assert server.no_browser_open_file is kept_off
