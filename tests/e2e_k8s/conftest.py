"""tests/e2e_k8s: cluster mode on a real Kubernetes control plane, always collected.

`control_plane` (session) is etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
KWOK built by `make controlplane` and started on loopback (tests/controlplane, interface in
its __init__ docstring), with the standard GPU fleet of tests/controlplane/gpu_nodes.py.
Without the binaries the tests skip locally and FAIL under CI=true (support.fixtures.require).

`deployed_cluster_check.py` is not collected: it checks an operator's own deployment when named
on the command line (see its docstring).
"""
from __future__ import annotations

import pytest

from controlplane import binaries
from controlplane.gpu_nodes import STANDARD_NODES
from support.fixtures import require
from support.platform import ARTIFACTS


@pytest.fixture(scope="session")
def control_plane():
    missing = binaries.missing()
    require(not missing, f"the Kubernetes control plane ({', '.join(missing)}; run `make controlplane`)")
    from controlplane import start_control_plane

    cp = start_control_plane(keep_logs_in=ARTIFACTS / "controlplane")
    try:
        for spec in STANDARD_NODES:
            cp.add_node(**spec)
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(control_plane, request):
    """A fresh namespace per test (deleted after it, with everything in it)."""
    import re

    name = "t-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    control_plane.ensure_namespace(name)
    yield name
    control_plane.rest.delete("v1", "Namespace", name)
    # its pods release their slices before the next test counts what is free
    control_plane.wait_for(lambda: control_plane.rest.read("v1", "Namespace", name) is None,
                           f"namespace {name} deleted", 120)
