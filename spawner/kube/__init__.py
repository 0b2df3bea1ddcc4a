"""The one Kubernetes client per cluster the hub side uses, with credentials that renew themselves."""
