"""Run at the start of every Python process by hybridhub_sdk.pth: the kubeconfig, and Hera's set-up hook.

Every process pays for this module, so it imports nothing beyond ``os`` and ``sys`` (both already loaded
at start-up) and the import-free ``_endpoints``, and it never raises. The real work lives in ``sdk_setup``,
imported only when a kubeconfig must be written or when the process imports Hera.
"""

from __future__ import annotations

import os
import sys

from ._endpoints import CREDENTIAL_MODULE, KUBECONFIG_VARIABLE, SERVICE_URL_VARIABLE, kubernetes_url

# Not typing.TYPE_CHECKING: importing typing would cost every process a few milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType
    from typing import Any

__all__ = [
    "HERA_MODULES",
    "HeraHook",
    "ensure_kubeconfig",
    "install_hera_hook",
    "kubeconfig_is_current",
    "run",
]

# `hera` is watched as well as `hera.shared`: `import hera` alone does not load hera.shared, and a user
# who then reads hera.shared.global_config must find it set.
HERA_MODULES = frozenset({"hera", "hera.shared"})
# A kubeconfig of ours is well under this. A bigger file is someone else's and is only looked at.
READ_LIMIT = 1 << 16


def _quoted(text: str) -> bytes:
    # How json.dumps writes a string that needs no escaping; one that does simply never matches.
    return b'"' + text.encode() + b'"'


def kubeconfig_is_current(content: bytes, service_url: str, python: str) -> bool:
    """Whether a kubeconfig file's ``content`` must be left as it is.

    A file without the credential plugin in it is someone else's and is never touched. One of ours must
    name this service and this interpreter: a service that moved, or a Python that went, is rewritten.
    """
    if not content.strip():
        return False
    if CREDENTIAL_MODULE.encode() not in content:
        return True
    return _quoted(kubernetes_url(service_url)) in content and _quoted(python) in content


def ensure_kubeconfig(path: str, service_url: str) -> bool:
    """Write the kubeconfig at ``path`` when it is missing, empty or an outdated one of ours; returns
    whether it wrote. The common case, a current file, costs one small read."""
    try:
        with open(path, "rb") as fh:
            content = fh.read(READ_LIMIT)
    except FileNotFoundError:
        content = b""
    if kubeconfig_is_current(content, service_url, sys.executable):
        return False
    from .sdk_setup import write_kubeconfig

    return write_kubeconfig(path, service_url)


class _ThenNotify:
    """A loader that runs the real loader, then tells the hook which module it just executed.

    It puts the real loader back on the module and its spec before the module's code runs, so code that
    inspects ``__loader__`` or ``__spec__.loader`` (importlib.resources, pkgutil) sees the real one.
    """

    def __init__(self, loader: Any, hook: HeraHook) -> None:
        self.loader = loader
        self.hook = hook

    def create_module(self, spec: Any) -> ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.hook.loaded(module)

    def __getattr__(self, name: str) -> Any:
        if name in {"loader", "hook"}:  # not set yet, as in a copy: no endless lookup
            raise AttributeError(name)
        return getattr(self.loader, name)


class HeraHook:
    """A ``sys.meta_path`` finder that configures Hera's global_config right after Hera is imported.

    It finds nothing itself: for the two Hera modules it asks the finders after it for the spec and wraps
    the spec's loader; for every other module it returns None at once. It never calls back into the
    import system while finding, so it cannot recurse, and an error of its own only means Hera stays as
    it was.
    """

    def __init__(self, service_url: str) -> None:
        self.service_url = service_url
        self.configured = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in HERA_MODULES or self.configured:
            return None
        try:
            spec = self._real_spec(name, path, target)
        except Exception:
            return None  # the import system asks the other finders itself, and sees their errors
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ThenNotify(spec.loader, self)
        return spec

    def _real_spec(self, name: str, path: Any, target: Any) -> Any:
        for finder in list(sys.meta_path):
            if finder is self or isinstance(finder, HeraHook):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(name, path, target)
            if spec is not None:
                return spec
        return None

    def loaded(self, module: ModuleType) -> None:
        """Called after ``hera`` or ``hera.shared`` ran; never raises into the user's import."""
        try:
            if module.__name__ == "hera":
                # Loading hera.shared comes back here with it. Hera's modules all import it anyway.
                __import__("hera.shared")
            elif not self.configured:
                self.configure(module)
        except Exception:
            pass

    def configure(self, shared: ModuleType) -> None:
        from .sdk_setup import configure_hera

        configure_hera(shared.global_config, self.service_url)
        self.configured = True


def install_hera_hook(service_url: str) -> HeraHook | None:
    """Put a ``HeraHook`` first on ``sys.meta_path``, or configure Hera now if it is already imported;
    returns the hook, or None when none was needed."""
    shared = sys.modules.get("hera.shared")
    if shared is not None:
        HeraHook(service_url).configure(shared)
        return None
    for finder in sys.meta_path:
        if isinstance(finder, HeraHook):
            return finder
    hook = HeraHook(service_url)
    sys.meta_path.insert(0, hook)
    return hook


def run(environ: Mapping[str, str] | None = None) -> None:
    """Set up the SDKs when $HYBRIDHUB_SERVICE_URL is set in a user's server; elsewhere do nothing.

    A user's server is told by $JUPYTERHUB_SERVICE_PREFIX, which JupyterHub sets to ``.../user/NAME/``
    for every server and its children (kernels, terminals, SSH sessions); the hub's own processes and
    managed services, which may have $HYBRIDHUB_SERVICE_URL too, have none or ``/services/...``, so a
    hub-side $KUBECONFIG with cluster credentials is never touched. $KUBECONFIG names the kubeconfig
    to keep; a list of several files is left to the user.
    """
    try:
        env = os.environ if environ is None else environ
        service_url = env.get(SERVICE_URL_VARIABLE, "").strip()
        if not service_url or "/user/" not in env.get("JUPYTERHUB_SERVICE_PREFIX", ""):
            return
        path = env.get(KUBECONFIG_VARIABLE, "").strip()
        if path and os.pathsep not in path:
            # A read-only or full disk must not stop Hera's set-up. Not contextlib.suppress: contextlib is
            # not loaded at start-up, and importing it would cost every process.
            try:  # noqa: SIM105
                ensure_kubeconfig(path, service_url)
            except Exception:
                pass
        install_hera_hook(service_url)
    except Exception:
        pass
