"""HybridSpawner's parts: its settings and user options with the spawn form, what an attempt's pod
looks like, home storage per cluster, what a pod's events mean, following an attempt, leftover pods,
how the hub talks to the hybridhub service, and KubeSpawner made to work across clusters."""
