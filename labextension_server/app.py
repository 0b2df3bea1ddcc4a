"""The hybridhub jupyter-server extension: its settings and its routes under ``hybridhub/api``."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, TraitError, Unicode, default, validate

from .handlers import (
    CapacityHandler,
    GpusHandler,
    RunHandler,
    RunLogsHandler,
    RunsHandler,
)

__all__ = ["API_PREFIX", "HybridHubExtension", "keep_hub_token_off_disk"]

# The REST prefix under the server's base URL that the kernel-side client speaks to.
API_PREFIX = "hybridhub/api"
# Kinds and names of runs as Kubernetes spells them: no slash, so the logs route stays apart.
_PART = r"[^/]+"


def _service_url(url: str) -> str:
    """The service's prefix as the routes are joined to it: an http(s) URL ending with a slash, or empty."""
    url = url.strip()
    if not url:
        return ""
    if urlsplit(url).scheme not in ("http", "https"):
        raise TraitError(f"service_url must be an http or https URL, not {url!r}")
    return url if url.endswith("/") else url + "/"


def keep_hub_token_off_disk(serverapp: Any, hub_token: str) -> bool:
    """Keep the hub token out of the server's runtime files; returns whether it had to.

    JupyterHub 5's single-user server gives the hub token as the server's own token, and jupyter-server
    writes that token into its runtime files in the home directory: ``jpserver-PID.json`` and the
    browser-open page, whose URL carries it. The notebook side promises no token on disk, so the info
    file gets an empty token, as before JupyterHub 5, and the browser-open page is not written. Runs
    before the server starts, which is when it writes both. A server outside JupyterHub keeps its own.
    """
    if serverapp is None or not hub_token or serverapp.identity_provider.token != hub_token:
        return False
    serverapp.no_browser_open_file = True
    server_info = serverapp.server_info
    # An attribute on this one server object: the class and other servers stay as they are.
    serverapp.server_info = lambda: {**server_info(), "token": ""}
    return True


class HybridHubExtension(ExtensionApp):
    """Cluster capacity, the user's runs, their logs and this pod's GPUs, for notebooks and kernels.

    Every call goes to the hybridhub service with this server's own hub token. The extension holds no
    cluster credentials and makes no decision of its own: the service says who may see what.
    """

    name = "hybridhub"
    # The server's other extensions (JupyterLab first) load as usual beside this one.
    load_other_extensions = True

    service_url = Unicode(
        config=True,
        help="""The hybridhub service's URL prefix, as this pod reaches it, e.g.
        ``http://hub:8081/services/hybridhub/``. HybridSpawner sets ``$HYBRIDHUB_SERVICE_URL`` in every
        notebook pod, and that is the default. Empty turns the service's routes into 503 answers.""",
    )

    api_token = Unicode(
        config=True,
        help="""The hub API token sent to the service as ``Authorization: token ...``. The default is this
        server's own token, ``$JUPYTERHUB_API_TOKEN``, whose scopes the hub's
        ``c.Spawner.server_token_scopes`` sets. It is never logged.""",
    )

    request_timeout = Float(
        10.0,
        config=True,
        help="""Seconds a call to the service may take, connecting included, e.g. 10. A service that does
        not answer in time gives 504. Followed logs are bounded by log_follow_timeout instead.""",
    )

    log_follow_timeout = Float(
        6 * 3600.0,
        config=True,
        help="""Seconds a followed log stream may last, e.g. 21600 for six hours. The service ends the
        stream when the run ends; this bounds a stream whose run never ends.""",
    )

    @default("service_url")
    def _default_service_url(self) -> str:
        # traitlets checks assigned values, not defaults: the environment's value is checked here
        return _service_url(os.environ.get("HYBRIDHUB_SERVICE_URL", ""))

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @validate("service_url")
    def _check_service_url(self, proposal: dict[str, Any]) -> str:
        return _service_url(str(proposal["value"]))

    @validate("request_timeout", "log_follow_timeout")
    def _check_positive(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError(f"{proposal['trait'].name} must be a positive number of seconds, not {value}")
        return value

    def initialize_settings(self) -> None:
        keep_hub_token_off_disk(self.serverapp, self.api_token)

    def initialize_handlers(self) -> None:
        run = rf"{API_PREFIX}/runs/(?P<kind>{_PART})/(?P<name>{_PART})"
        self.handlers.extend(
            [
                (rf"/{API_PREFIX}/capacity", CapacityHandler),
                (rf"/{API_PREFIX}/runs", RunsHandler),
                (rf"/{run}", RunHandler),
                (rf"/{run}/logs", RunLogsHandler),
                (rf"/{API_PREFIX}/gpus", GpusHandler),
            ]
        )
        if self.service_url:
            self.log.info("hybridhub: forwarding to the service at %s", self.service_url)
        else:
            self.log.warning("hybridhub: no service_url ($HYBRIDHUB_SERVICE_URL): its routes answer 503")
