"""SSH into notebooks: the asyncssh server in the notebook container and the gateway beside the hub.

The notebook image installs only the ``ssh`` extra, so nothing under this package may import
JupyterHub, KubeSpawner or a Kubernetes client (an import-linter contract in pyproject.toml checks
it). The server and the gateway land here with the SSH issue.
"""
