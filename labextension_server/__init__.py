"""hybridhub notebook side: the Jupyter server extension and the kernel-side client."""

__all__: list[str] = []
