"""A real jupyter server with the extension, authenticated as jupyterhub-singleuser does it, by a fake hub.

pytest-jupyter's fixtures and its coroutine runner are imported here, so they apply to this folder only:
its tests are plain ``async def`` functions without an asyncio mark, run on pytest-jupyter's own loop
(the server's), which pytest-asyncio in strict mode leaves alone.

One token table stands for the hub: the fake hub's ``GET /hub/api/user`` answers from it for the jupyter
server (JupyterHub's own ``JupyterHubIdentityProvider`` and ``JupyterHubAuthorizer``), and the service's
``TokenTable`` answers from it for the hybridhub service.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from jupyterhub.singleuser.extension import JupyterHubAuthorizer, JupyterHubIdentityProvider
from pytest_jupyter.jupyter_server import *  # noqa: F403 - pytest-jupyter's fixtures and hooks, here only
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from labextension_server.app import HybridHubExtension
from tests.spawner.service.inprocess import running_service, user
from tests.spawner.service.test_api import fleet

CAPACITY, RUNS = "custom:hybridhub:capacity", "custom:hybridhub:runs"
ACCESS_SERVICE = "access:services!service=hybridhub"
# alice's default server's token, as c.Spawner.server_token_scopes expands in the hub's answer
SERVER_SCOPES = ("access:servers!server=alice/", "users:activity!user=alice", ACCESS_SERVICE, CAPACITY, RUNS)
TOKENS: dict[str, dict[str, Any]] = {
    # the server's own token ($JUPYTERHUB_API_TOKEN): the extension forwards with it
    "alice-server": user("alice", *SERVER_SCOPES),
    # a server token the hub issued without the runs scope (an older server_token_scopes)
    "alice-server-noruns": user("alice", *(s for s in SERVER_SCOPES if s != RUNS)),
    # alice's own API token, as JupyterLab in her browser or her kernel holds it
    "alice": user("alice", "access:servers!user=alice", "read:servers!user=alice"),
    # bob, who may use the service but not alice's server
    "bob": user("bob", "access:servers!user=bob", ACCESS_SERVICE, CAPACITY, RUNS),
}
Fetch = Callable[..., Awaitable[Any]]


class FakeHubUser(web.RequestHandler):
    """``GET /hub/api/user``: the token's model, or 403 for a token the hub does not know."""

    def get(self) -> None:
        token = self.request.headers.get("Authorization", "").split(" ", 1)[-1]
        model = TOKENS.get(token)
        self.set_status(200 if model else 403)
        self.finish(json.dumps(model or {"status": 403, "message": "unknown token"}))


@pytest.fixture
def fake_hub(jp_asyncio_loop: Any) -> Iterator[str]:
    """The hub's API URL, served on the server's loop."""
    sock, port = bind_unused_port()

    async def start() -> HTTPServer:
        server = HTTPServer(web.Application([(r"/hub/api/user", FakeHubUser)]))
        server.add_sockets([sock])
        return server

    server = jp_asyncio_loop.run_until_complete(start())
    yield f"http://127.0.0.1:{port}/hub/api"
    server.stop()


@pytest.fixture
def service_url(jp_asyncio_loop: Any) -> Iterator[str]:
    """The real hybridhub service app over a fleet of snapshots and without a store, on the server's loop."""
    running = running_service(fleet(), TOKENS)
    svc = jp_asyncio_loop.run_until_complete(anext(running))
    yield f"http://127.0.0.1:{svc.port}/services/hybridhub/"
    jp_asyncio_loop.run_until_complete(running.aclose())


@pytest.fixture
def jp_base_url() -> str:
    return "/user/alice/"


@pytest.fixture
def hub_environ(monkeypatch: pytest.MonkeyPatch, fake_hub: str, service_url: str) -> None:
    """What JupyterHub and HybridSpawner put in alice's notebook pod."""
    for name, value in {
        "JUPYTERHUB_API_URL": fake_hub,
        "JUPYTERHUB_API_TOKEN": "alice-server",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/alice/oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(
            ["access:servers!server=alice/", "access:servers!user=alice"]
        ),
        "JUPYTERHUB_OAUTH_SCOPES": json.dumps(["access:servers!server=alice/", "access:servers!user=alice"]),
        "HYBRIDHUB_SERVICE_URL": service_url,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def jp_server_config(hub_environ: None) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"labextension_server": True},
            "identity_provider_class": JupyterHubIdentityProvider,
            "authorizer_class": JupyterHubAuthorizer,
        },
        "HybridHubExtension": {"request_timeout": 2.0},
    }


@pytest.fixture
def hybridhub(jp_serverapp: Any) -> HybridHubExtension:
    """The extension as the server loaded it; a test may change its settings before it calls."""
    app: HybridHubExtension = jp_serverapp.web_app.settings["hybridhub"]
    return app


@pytest.fixture
def api(jp_fetch: Fetch, hybridhub: HybridHubExtension) -> Fetch:
    """``jp_fetch`` under ``hybridhub/api`` that returns the response whatever its status."""

    async def call(*parts: str, token: str | None = "alice-server", **kwargs: Any) -> Any:
        headers = {"Authorization": f"token {token}"} if token else {"Authorization": ""}
        kwargs.setdefault("raise_error", False)
        kwargs.setdefault("request_timeout", 30)
        return await jp_fetch("hybridhub", "api", *parts, headers=headers, **kwargs)

    return call
