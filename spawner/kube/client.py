"""One API client per cluster whose credentials are renewed before they expire and after a 401."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import incluster_config, load_kube_config
from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from spawner.core.clusters import ClusterConfig

__all__ = ["ClusterClient"]

T = TypeVar("T")

# a failed refresh while the current credentials still work is tried again this much later
_RETRY_AFTER_FAILURE = 1.0


class ClusterClient(LoggingConfigurable):
    """The API client of one cluster, with its own ``Configuration`` (never the global default).

    Credentials come from the cluster's kubeconfig and context (static token, or an exec credential
    plugin such as ``aws eks get-token``) or from the in-cluster service account. kubernetes_asyncio
    runs an exec plugin once and keeps its token, so this client loads the credentials again:

    - before a request, when the credentials' expiry (the plugin's ``expirationTimestamp``) is less
      than ``credential_refresh_margin`` away (the in-cluster token file is re-read every minute);
      this hook covers every request made through ``core()``/``custom()``, ``call()`` or not;
    - after a 401 in ``call()``, which then retries the request once.

    One refresh runs at a time; callers that wanted one meanwhile use its result.
    """

    request_timeout = Float(
        20.0,
        config=True,
        help="""Seconds a request made through ``ClusterClient.call()`` may take, unless the caller
        passes its own ``_request_timeout`` (watches should: their server-side ``timeout_seconds``
        plus a margin). Example: 20.""",
    )

    credential_refresh_margin = Float(
        60.0,
        config=True,
        help="""Seconds before the credentials' expiry at which they are renewed (at most a quarter
        of their lifetime, so short-lived tokens are not renewed on every request). EKS tokens from
        ``aws eks get-token`` live about 15 minutes; the default 60 renews them a minute early,
        which also absorbs clock skew between the hub and the API server.""",
    )

    credential_timeout = Float(
        30.0,
        config=True,
        help="""Seconds loading credentials may take: reading the kubeconfig and running its exec
        credential plugin (``aws eks get-token`` calls AWS STS). A plugin that takes longer fails
        the request that needed it. Example: 30.""",
    )

    in_cluster_token_period = Float(
        60.0,
        config=True,
        help="""Seconds between re-reads of credentials that say nothing of their expiry: the in-cluster
        service-account token file, which the kubelet rotates (bound tokens last an hour), and a
        kubeconfig's ``token`` or ``tokenFile``, which an operator or a sidecar rotates. Exec-plugin
        credentials are renewed before the expiry they state instead. Example: 60.""",
    )

    user_agent = Unicode(
        "hybridhub-hub",
        config=True,
        help="""The User-Agent of every request to the cluster's API, which the API server's audit log
        records: it tells the hub's requests from the service's (``hybridhub-service``) and from other
        clients using the same credentials. Example: ``hybridhub-hub``.""",
    )

    def __init__(self, cluster: ClusterConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self._kubeconfig = None if cluster.kubeconfig is None else os.path.expanduser(cluster.kubeconfig)
        self._configuration: Configuration | None = None
        self._api: ApiClient | None = None
        self._core: CoreV1Api | None = None
        self._custom: CustomObjectsApi | None = None
        self._lock = asyncio.Lock()
        self._generation = 0  # credentials loaded so far
        self._expiry: float | None = None  # unix time the credentials expire, when known
        self._refresh_at: float | None = None  # unix time to load them again; None: only after a 401
        self._closed = False

    # -- lifecycle

    async def start(self) -> None:
        """Load the credentials and build the client; raises when they cannot be loaded."""
        if self._closed:
            raise RuntimeError(f"ClusterClient({self.cluster.name}) is closed")
        async with self._lock:
            if self._api is not None:
                return
            configuration = await self._load("start")
            self._generation += 1
            configuration.refresh_api_key_hook = self._before_request
            self._configuration = configuration
            self._api = ApiClient(configuration=configuration)
            self._api.user_agent = self.user_agent
            self._core = CoreV1Api(self._api)
            self._custom = CustomObjectsApi(self._api)

    async def close(self) -> None:
        self._closed = True
        api, self._api = self._api, None
        self._core = self._custom = None
        if api is not None:
            await api.close()

    # -- the API

    @property
    def api_client(self) -> ApiClient:
        if self._api is None:
            raise RuntimeError(f"ClusterClient({self.cluster.name}) is not started")
        return self._api

    @property
    def configuration(self) -> Configuration:
        if self._configuration is None:
            raise RuntimeError(f"ClusterClient({self.cluster.name}) is not started")
        return self._configuration

    def core(self) -> CoreV1Api:
        if self._core is None:
            raise RuntimeError(f"ClusterClient({self.cluster.name}) is not started")
        return self._core

    def custom(self) -> CustomObjectsApi:
        if self._custom is None:
            raise RuntimeError(f"ClusterClient({self.cluster.name}) is not started")
        return self._custom

    @property
    def refreshes(self) -> int:
        """How many times credentials were loaded after start (for tests and metrics)."""
        return max(0, self._generation - 1)

    @property
    def expiry(self) -> float | None:
        """Unix time the current credentials expire, when the plugin said."""
        return self._expiry

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` with a default ``_request_timeout``; after a 401, load the
        credentials again and retry once (a 401 means the server did nothing, so a retry is safe)."""
        if self._api is None:
            raise RuntimeError(f"ClusterClient({self.cluster.name}) is not started")
        kwargs.setdefault("_request_timeout", self.request_timeout)
        seen = self._generation
        try:
            return await fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status != 401:
                raise
            self.log.info("cluster %s: 401 Unauthorized; loading credentials again", self.cluster.name)
        await self._refresh("401", seen)
        return await fn(*args, **kwargs)

    # -- credentials

    async def _before_request(self, configuration: Configuration) -> None:
        """kubernetes_asyncio's ``refresh_api_key_hook``: awaited before every request."""
        if self._refresh_at is not None and time.time() >= self._refresh_at:
            await self._refresh("expiring", self._generation)

    async def _refresh(self, reason: str, seen: int) -> None:
        async with self._lock:
            if self._generation != seen or self._configuration is None:
                return  # another caller loaded them while this one waited
            try:
                loaded = await self._load(reason)
            except Exception:
                # renewing early failed: keep what works until it expires, and try again soon
                if reason != "401" and (self._expiry is None or time.time() < self._expiry):
                    self.log.warning(
                        "cluster %s: renewing credentials failed; trying again in %.0f s",
                        self.cluster.name,
                        _RETRY_AFTER_FAILURE,
                        exc_info=True,
                    )
                    self._refresh_at = time.time() + _RETRY_AFTER_FAILURE
                    return
                raise
            if _endpoint(loaded) != _endpoint(self._configuration):
                self.log.warning(
                    "cluster %s: the server or TLS settings changed; a new ClusterClient applies them",
                    self.cluster.name,
                )
            self._configuration.api_key = dict(loaded.api_key)
            self._generation += 1

    async def _load(self, reason: str) -> Configuration:
        """Fresh credentials in a Configuration of their own; sets the expiry and the refresh time."""
        configuration = Configuration()
        started = time.time()
        expiry: float | None = None
        if self._kubeconfig is None:
            # reads the service-account files; the token is re-read on our schedule, not its hook's
            incluster_config.InClusterConfigLoader(
                token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
                cert_filename=incluster_config.SERVICE_CERT_FILENAME,
                try_refresh_token=False,
            ).load_and_set(configuration)
            refresh_at: float | None = started + self.in_cluster_token_period
        else:
            # a loader of its own each time: a reused one keeps an exec token until 5 minutes before
            # its expiry, even after a 401; persist_config=False: never write the operator's file
            loader = await asyncio.wait_for(
                load_kube_config(
                    config_file=self._kubeconfig,
                    context=self.cluster.context,
                    client_configuration=configuration,
                    persist_config=False,
                ),
                self.credential_timeout,
            )
            stamp = getattr(loader, "exec_plugin_expiry", None)  # set only by an exec plugin's token
            expiry = stamp.timestamp() if isinstance(stamp, dt.datetime) else None
            # credentials with no expiry (a token, or a token file that something outside rotates, such
            # as a bound ServiceAccount token) are read again on a schedule, as in-cluster ones are:
            # KubeSpawner's own requests do not come through call(), so a 401 alone would not renew them
            refresh_at = started + self.in_cluster_token_period
            if expiry is not None:
                lifetime = expiry - started
                if lifetime <= 0:
                    self.log.warning(
                        "cluster %s: the exec plugin gave expired credentials", self.cluster.name
                    )
                margin = min(self.credential_refresh_margin, max(lifetime, 0.0) / 4)
                refresh_at = max(expiry - margin, started + _RETRY_AFTER_FAILURE)
        # a token file written by `kubectl create token > file` ends with a newline, which kubectl
        # drops and the HTTP client refuses in a header: drop it here too
        for key, value in list(configuration.api_key.items()):
            if isinstance(value, str):
                configuration.api_key[key] = value.strip()
        self._expiry = expiry
        self._refresh_at = refresh_at
        self.log.info(
            "cluster %s: loaded credentials (%s) in %.2f s, %s",
            self.cluster.name,
            reason,
            time.time() - started,
            "valid until " + _iso(expiry) if expiry is not None else "no expiry given",
        )
        return configuration


def _endpoint(configuration: Configuration) -> tuple[Any, ...]:
    return (
        configuration.host,
        configuration.ssl_ca_cert,
        configuration.cert_file,
        configuration.key_file,
        configuration.verify_ssl,
    )


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
