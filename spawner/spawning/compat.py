"""The spawn failure users read, on JupyterHub 5.5 and on 6: ``SpawnRefused``."""

from __future__ import annotations

__all__ = ["SpawnRefused"]

try:  # JupyterHub 6: the spawn failure users read, with a reason label for metrics
    from jupyterhub.spawner import SpawnException as _SpawnException
except ImportError:  # JupyterHub 5.5 has none
    _SpawnException = None


if _SpawnException is not None:

    class SpawnRefused(_SpawnException):  # type: ignore[misc]
        """A spawn failure the user reads (JupyterHub 6's SpawnException)."""

        def __init__(self, message: str, reason: str = "hybridhub") -> None:
            super().__init__(message, reason=reason)
            self.jupyterhub_message = message

else:

    class SpawnRefused(Exception):  # type: ignore[no-redef]
        """A spawn failure the user reads: JupyterHub 5.5 shows ``jupyterhub_message``, not "HTTP 500"."""

        def __init__(self, message: str, reason: str = "hybridhub") -> None:
            super().__init__(message)
            self.reason = reason
            self.jupyterhub_message = message
            self.jupyterhub_html_message = None
            self.log_message = "%s"  # the API's write_error formats log_message % args
