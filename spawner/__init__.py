"""hybridhub hub side: HybridSpawner, the hybridhub service, the SSH gateway and server.

Nothing is imported eagerly, so the notebook image (``ssh`` extra only) can import ``spawner.ssh``
without JupyterHub or KubeSpawner installed.
"""

__all__: list[str] = []
