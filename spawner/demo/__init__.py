"""``hybridhub demo``: the whole hub on one machine, on simcluster, for a person to log into.

Its parts: ``cli`` (the subcommands), ``plan`` (what the demo runs, as data: settings, the hub's
overlay, outages, the status table), ``state`` (the state file other shells find the demo by),
``processes`` (starting and stopping process trees), ``control`` (HTTP to the hub, the service and
simcluster's admin API) and ``run`` (the demo itself, start to stop). simcluster runs as a
subprocess, so nothing here imports it.
"""
