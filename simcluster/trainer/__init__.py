"""Kubeflow Trainer v2: TrainJobs run as the indexed Jobs JobSet makes, with a torchrun stand-in."""
