"""The service's SSH part: registered keys, the certificate authority, who may reach which server."""

__all__: list[str] = []
