"""Katib: the Experiment webhooks and the experiment, suggestion and trial controllers."""
