"""simcluster: an emulated Kubernetes (+ Argo Server) API that real clients talk to over HTTP.

Submodules are imported lazily: ``import simcluster`` pulls in nothing heavy.
"""

__all__: list[str] = []
