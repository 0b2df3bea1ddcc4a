"""Where the SDKs find the hybridhub service, and the variables that say so; a module free of imports.

Both the start-up hook, which every Python process loads and which must stay cheap, and ``sdk_setup``
read these, so they live here rather than in either.
"""

__all__ = [
    "CREDENTIAL_MODULE",
    "EXEC_API_VERSION",
    "KUBECONFIG_VARIABLE",
    "SERVICE_URL_VARIABLE",
    "TOKEN_VARIABLE",
    "argo_host",
    "kubernetes_url",
]

# Set by HybridSpawner in every notebook pod: the service's URL, ending with a slash.
SERVICE_URL_VARIABLE = "HYBRIDHUB_SERVICE_URL"
# The notebook server's hub token, which JupyterHub sets; the service takes it as the user's credential.
TOKEN_VARIABLE = "JUPYTERHUB_API_TOKEN"
# The kubeconfig that kubectl and the kubernetes client read, set by the notebook image and HybridSpawner.
KUBECONFIG_VARIABLE = "KUBECONFIG"
# The exec credential plugin, run as `python -m` by the kubeconfig's user.
CREDENTIAL_MODULE = "labextension_server.credential"
# What the plugin speaks: v1 is what kubectl 1.22+ and the kubernetes Python client both take. In v1 the
# kubeconfig must say interactiveMode.
EXEC_API_VERSION = "client.authentication.k8s.io/v1"


def argo_host(service_url: str) -> str:
    """Hera's host. It must end with a slash: Hera joins ``api/v1/...`` to it with urljoin."""
    return service_url.rstrip("/") + "/argo/"


def kubernetes_url(service_url: str) -> str:
    """The service's Kubernetes endpoint, the kubeconfig's cluster server."""
    return service_url.rstrip("/") + "/k8s"
