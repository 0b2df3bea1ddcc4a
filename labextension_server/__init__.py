"""hybridhub notebook side: the Jupyter server extension and the kernel-side client."""

from __future__ import annotations

# typing is not imported at run time: the SDK set-up's .pth imports this package in every Python
# process of a notebook container, and typing would add about 18 ms to each start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["_jupyter_server_extension_points", "load_ipython_extension"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The extension jupyter-server loads: imported here, late, so that a kernel never imports the server."""
    from .app import HybridHubExtension

    return [{"module": "labextension_server.app", "app": HybridHubExtension}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext labextension_server``: the magics, which need neither tornado nor jupyter-server."""
    from . import magics

    magics.load_ipython_extension(ipython)
