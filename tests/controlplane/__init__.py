"""The suite's Kubernetes control plane (real components, loopback only) and its named doubles.

Built by `make controlplane` (tests/controlplane/build.sh) into build/controlplane; how it
is put together is in docs/testbed-kubernetes.md.

Interface (the session fixture `control_plane` in tests/e2e_k8s/conftest.py returns one):

    cp = start_control_plane()          # ControlPlane, started (etcd, kube-apiserver,
                                        # kube-controller-manager, kube-scheduler, KWOK, doubles)
    cp.server                           # "https://127.0.0.1:<port>"
    cp.ca_path                          # CA that signed the API server's certificate
    cp.kubeconfig_admin                 # kubeconfig path, client cert in system:masters
    cp.service_account_kubeconfig(ns, name)
                                        # makes ns and the ServiceAccount if missing; a kubeconfig
                                        # with a TokenRequest token: only the RBAC you bind applies
    cp.apply(objects | yaml path | yaml text)   # server-side apply; returns the objects
    cp.add_node(name, capacity, labels, annotations, taints)   # a KWOK node, waits until schedulable
    cp.remove_node(name)
    cp.rest                             # KubeREST (admin): read/list/create/merge_patch/delete/watch
    cp.kubectl(*args)                   # only where a kubectl binary exists (none is built)
    cp.wait_for(condition, what, timeout)
    cp.restart_apiserver()              # same etcd and ports; every watch drops, old versions are gone
    cp.runtime                          # PodRuntime, the container-runtime double (pod_runtime.py):
                                        # runs AstraGo's pods (and ones labelled testbed.astrago.dev/run=true)
                                        # at their pod IP; cp.runtime.container_of(ns, pod) -> the process
    cp.storage                          # HostPathProvisioner (storage_provisioner.py): PVCs bind for real;
                                        # cp.storage.volume_path(ns, claim) -> the claim's directory
    cp.mig_manager                      # SimulatedMigManager (mig_manager.py); hold() / release()
    cp.training_operator                # SimulatedTrainingOperator (training_operator.py), PyTorchJobs
    cp.mpi_operator                     # SimulatedMpiOperator (mpi_operator.py), MPIJobs
    cp.stop()                           # every process it started, and its doubles, are ended

GPU nodes as the GPU operator publishes them: tests/controlplane/gpu_nodes.py (the session adds
STANDARD_NODES: gpu-mig-1, gpu-mps-1, gpu-a100-1, gpu-h200-1, cpu-1). The hub's service account
with exactly the shipped RBAC: hub_rbac.hub_service_account_kubeconfig(cp).
"""
from .cluster import ControlPlane, start_control_plane

__all__ = ["ControlPlane", "start_control_plane"]
