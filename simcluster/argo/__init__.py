"""Argo Workflows stand-in: the Argo Server REST subset and a workflow controller running steps as pods."""
