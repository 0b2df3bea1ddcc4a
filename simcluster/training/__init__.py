"""The Training Operator stand-in (kubeflow.org/v1 PyTorchJob): its webhook, defaults and controller."""
