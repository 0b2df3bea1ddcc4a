"""The service's REST API under /services/hybridhub/: one module per resource, routed here."""

from __future__ import annotations

from tornado import web

from .argo import ArgoLogHandler, ArgoWatchHandler, ArgoWorkflowHandler, ArgoWorkflowsHandler
from .base import SCOPE_CAPACITY, SCOPE_PLACE, SCOPE_RUNS, SCOPE_SERVERS
from .capacity import CapacityHandler
from .health import HealthHandler
from .k8s import KubeHandler
from .metrics import MetricsHandler
from .placements import ExtendHandler, PlacementsHandler, ReservationHandler
from .runs import RunHandler, RunLogsHandler, RunsHandler
from .servers import ServerHandler
from .ssh import (
    AuthorizedKeysHandler,
    CaHandler,
    ConfigHandler,
    GatewayCertificateHandler,
    HostCertificateHandler,
    KeyHandler,
    KeysHandler,
)
from .ssh_page import OAuthCallbackHandler, SshPageHandler

__all__ = ["SCOPE_CAPACITY", "SCOPE_PLACE", "SCOPE_RUNS", "SCOPE_SERVERS", "handlers"]


def handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """The routes under the service's URL prefix (``/services/hybridhub/``)."""
    p = prefix.rstrip("/")
    return [
        (rf"{p}/api/capacity", CapacityHandler),
        (rf"{p}/api/health", HealthHandler),
        (rf"{p}/api/placements", PlacementsHandler),
        (rf"{p}/api/placements/(?P<rid>[^/]+)", ReservationHandler),
        (rf"{p}/api/placements/(?P<rid>[^/]+)/extend", ExtendHandler),
        (rf"{p}/api/servers/(?P<user>[^/]+)", ServerHandler),
        (rf"{p}/api/servers/(?P<user>[^/]+)/(?P<name>[^/]*)", ServerHandler),
        (rf"{p}/metrics", MetricsHandler),
        (rf"{p}/api/runs", RunsHandler),
        (rf"{p}/api/runs/(?P<kind>[^/]+)/(?P<name>[^/]+)", RunHandler),
        (rf"{p}/api/runs/(?P<kind>[^/]+)/(?P<name>[^/]+)/logs", RunLogsHandler),
        # the Argo Server API subset Hera uses: Hera's host is {prefix}argo/
        (rf"{p}/argo/api/v1/workflows/(?P<namespace>[^/]+)", ArgoWorkflowsHandler),
        (rf"{p}/argo/api/v1/workflows/(?P<namespace>[^/]+)/(?P<name>[^/]+)", ArgoWorkflowHandler),
        (rf"{p}/argo/api/v1/workflows/(?P<namespace>[^/]+)/(?P<name>[^/]+)/log", ArgoLogHandler),
        (rf"{p}/argo/api/v1/workflow-events/(?P<namespace>[^/]+)", ArgoWatchHandler),
        # the Kubernetes API subset the Katib and Kubeflow SDKs use: a kubeconfig's server is {prefix}k8s
        (rf"{p}/k8s(?P<path>/.*)?", KubeHandler),
        (rf"{p}/api/ssh/ca", CaHandler),
        (rf"{p}/api/ssh/host-certificate", HostCertificateHandler),
        (rf"{p}/api/ssh/gateway-certificate", GatewayCertificateHandler),
        (rf"{p}/api/ssh/authorized-keys", AuthorizedKeysHandler),
        (rf"{p}/api/ssh/keys", KeysHandler),
        (rf"{p}/api/ssh/keys/(?P<key_id>[^/]+)", KeyHandler),
        (rf"{p}/api/ssh/config", ConfigHandler),
        (rf"{p}/ssh", SshPageHandler),
        (rf"{p}/oauth_callback", OAuthCallbackHandler),
    ]
