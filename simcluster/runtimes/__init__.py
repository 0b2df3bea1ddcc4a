"""The runtimes that run a pod's containers for the kubelet: simulated, process, process-loopback."""
