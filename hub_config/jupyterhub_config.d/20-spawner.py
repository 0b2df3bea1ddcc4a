"""HybridSpawner: what users may ask for (GPU count and product, clusters) and how long a start may take.

The chart's own ``singleuser`` values still configure the pods (image, resources, storage): they
set ``c.KubeSpawner.*``, which HybridSpawner, a KubeSpawner, inherits. The service's URL is set by
30-service.py (HYBRIDHUB_SERVICE_*), the placement token comes from the hub's environment
(HYBRIDHUB_HUB_TOKEN, HybridSpawner's default), and the clusters from 10-clusters.py. SSH into
notebooks (HybridSpawner.ssh_enabled, pod_service_urls) is turned on by 30-service.py together with the
SSH gateway it registers.
"""

# `c` is the shared config object the loader runs this file with (see ../jupyterhub_config.py)
c = c  # noqa: F821

c.JupyterHub.spawner_class = "hybrid"  # entry point jupyterhub.spawners: spawner.hybrid:HybridSpawner

# GPU products on offer, as their nvidia.com/gpu.product labels; a request for another is refused
c.HybridSpawner.gpu_products = ["NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"]
c.HybridSpawner.max_gpus = 8  # the largest node's GPUs: one server is one pod on one node
# GPUs one user may hold; today checked against the server being started only (docs/operator-guide.md)
c.HybridSpawner.gpu_limit = 8
# all clusters for everyone; per group, e.g.:
#   c.HybridSpawner.allowed_clusters = lambda spawner: (
#       None if any(g.name == "cloud-burst" for g in spawner.user.groups) else ["onprem"])
c.HybridSpawner.allowed_clusters = None
c.HybridSpawner.max_attempts = 3  # candidates tried (on-prem nodes, then EKS pools) before giving up

# An elastic EKS pool takes minutes to bring a GPU node (the pools' provisioning_deadline: up to 900 s),
# and the last candidate gets what is left of start_timeout: leave room for a failed on-prem try too.
c.HybridSpawner.start_timeout = 1200
c.HybridSpawner.elastic_deadline = 900  # for an elastic pool that sets no provisioning_deadline

# notebook pods hold no cluster credentials (submissions go through the hybridhub service)
c.HybridSpawner.automount_service_account_token = False

# The home page says when a user's server is on a cluster the service calls down (an on-prem outage):
# HybridSpawner's poll, which the home page runs first, writes the sentence, shown as the page's
# announcement (it replaces an announcement_home set elsewhere only while there is a note).
from spawner.spawning.cluster_note import home_announcement  # noqa: E402

c.JupyterHub.template_vars.update({"announcement_home": home_announcement})
