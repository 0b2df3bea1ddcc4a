"""The fleet inventory: Kubernetes node and pod JSON turned into capacity (``index``, pure) and the
watchers that keep it current (``watcher``)."""
