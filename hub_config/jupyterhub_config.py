"""Hub configuration entry point outside the Helm chart: runs jupyterhub_config.d/*.py in name order.

``jupyterhub -f hub_config/jupyterhub_config.py`` (and the tests) use this file. Under
zero-to-jupyterhub the chart's own jupyterhub_config.py does the same for the files mounted into
/usr/local/etc/jupyterhub/jupyterhub_config.d/ (hub.extraFiles), after applying the Helm values.

Each file runs with the shared config object as ``c`` and nothing else from here, so it behaves
alike under both loaders. A file must use the ``c`` it is given: under z2jh, ``get_config`` is z2jh's
``get_config(key)``, a Helm values lookup, so ``c = get_config()`` would fail there.
"""

import glob
import os

c = get_config()  # noqa: F821 -- traitlets' loader gives this file get_config()

CONFIG_D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jupyterhub_config.d")

for path in sorted(glob.glob(os.path.join(CONFIG_D, "*.py"))):
    with open(path, encoding="utf-8") as f:
        source = f.read()
    # compile with the path, so a traceback names the file and line
    exec(compile(source, path, "exec"), {"c": c, "__file__": path, "__name__": "jupyterhub_config_d"})
