"""The kubeconfig's exec credential plugin: prints an ExecCredential holding $JUPYTERHUB_API_TOKEN.

kubectl and the ``kubernetes`` Python client run ``python -m labextension_server.credential`` each time
they need a token, so the server's hub token reaches the service's Kubernetes endpoint without ever
being written to a file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

# Not sdk_setup: kubectl runs this for each command, so it loads as little as it can.
from ._endpoints import EXEC_API_VERSION, TOKEN_VARIABLE

__all__ = ["exec_credential", "main"]


def exec_credential(token: str) -> dict[str, Any]:
    """An ExecCredential with ``token`` and no expiry: the hub token lasts as long as the server."""
    return {"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential", "status": {"token": token}}


def main(environ: Mapping[str, str] | None = None) -> int:
    """Print the credential on stdout; without a token say so on stderr in one line and return 1."""
    token = (os.environ if environ is None else environ).get(TOKEN_VARIABLE, "").strip()
    if not token:
        print(
            f"labextension_server.credential: ${TOKEN_VARIABLE} is not set, so there is no token to give "
            "kubectl (it is set in notebook servers that JupyterHub starts)",
            file=sys.stderr,
        )
        return 1
    json.dump(exec_credential(token), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
