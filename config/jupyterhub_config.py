"""JupyterHub configuration for AstraGo.

Embedded mode (the default, started by `astrago up`) takes every setting from
the ASTRAGO_* environment that `astrago up` exports; see
astrago.hub.embedded.EmbeddedSettings for each of them.
"""
import os

from astrago.hub.embedded import EmbeddedSettings, configure_jupyterhub

c = get_config()  # noqa: F821 (provided by JupyterHub)

if os.environ.get("ASTRAGO_MODE", "embedded") == "embedded":
    configure_jupyterhub(c, EmbeddedSettings.from_env())
elif os.environ["ASTRAGO_MODE"] == "cluster":  # Kubernetes; with z2jh, hub.extraConfig does this instead
    from astrago.hub.cluster import ClusterSettings, configure_jupyterhub as configure_cluster

    configure_cluster(c, ClusterSettings.from_env())
