"""HybridSpawner's parts: user options and the spawn form, what an attempt's pod looks like, home
storage per cluster, what a pod's events mean, how the hub talks to the hybridhub service, and
KubeSpawner made to work across clusters."""
