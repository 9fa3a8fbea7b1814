"""What the project ships and builds is accepted by a real API server (server-side dry run:
validation, defaulting and admission, nothing stored): the batch Job for every kind of slice, the
PyTorchJob and the MPIJob against Kubeflow's published CRDs, the GPU operator ConfigMaps and the RBAC files. And
the API server refuses what the device plugin would never publish (`nvidia.com/mig-1g.10gb+me`)."""
import pytest
import yaml

from astrago.hub.jobs.executors.base import JobRun
from astrago.hub.jobs.manifests import job_manifest, mpi_job_manifest, pytorch_job_manifest
from controlplane.binaries import REPO
from controlplane.rest import KubeError

RUN = JobRun(id="0123456789ab", owner="ann.lee@x", attempt=1, kind="command", name="train", input="", code="",
             command="python train.py", parameters={}, workdir="/home/jovyan", slice="cpu", cpu=4, memory_gib=16,
             image="", env={}, placement={}, max_runtime_s=7200, started_at=None)


def dry_run(cp, obj):
    """POST with dryRun=All into `obj`'s namespace (made if missing); returns what the server would store."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    if namespace:
        cp.ensure_namespace(namespace)
    return cp.rest.request("POST", cp.rest.path(obj["apiVersion"], obj["kind"], namespace=namespace), body=obj,
                           params={"dryRun": "All", "fieldValidation": "Strict"})


def dry_run_apply(cp, obj):
    """`kubectl apply --server-side --dry-run=server`: the files may already be applied this session."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    if namespace:
        cp.ensure_namespace(namespace)
    return cp.rest.request("PATCH", cp.rest.path_of(obj), body=obj, content_type="application/apply-patch+yaml",
                           params={"dryRun": "All", "fieldManager": "operator", "force": "true",
                                   "fieldValidation": "Strict"})


@pytest.mark.parametrize("slice_name, model", [("cpu", None), ("1g.10gb", "H100-80GB"), ("1g.10gb+me", "H100-80GB"),
                                               ("3g.40gb", None), ("mps-25", "H100-80GB"), ("gpu-2", "A100-80GB")])
def test_the_job_for_every_kind_of_slice_is_accepted(control_plane, slice_name, model):
    from dataclasses import replace

    manifest = job_manifest(replace(RUN, slice=slice_name), namespace="astrago", image="astrago/singleuser:1",
                            model=model, home_claim="claim-ann", service_account="default")
    stored = dry_run(control_plane, manifest)
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"] == \
        manifest["spec"]["template"]["spec"]["containers"][0]["resources"]


def test_the_pytorch_job_is_accepted_against_kubeflows_crd(control_plane):
    from dataclasses import replace

    run = replace(RUN, slice="gpu-1", distributed={"framework": "pytorch", "workers": 2})
    manifest = pytorch_job_manifest(run, namespace="astrago", image="astrago/singleuser:1", home_claim="claim-ann")
    stored = dry_run(control_plane, manifest)
    assert stored["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2


@pytest.mark.parametrize("slice_name, model", [("1g.10gb", "H100-80GB"), ("mps-25", "H100-80GB"), ("gpu-1", None)])
def test_the_mpi_job_is_accepted_against_the_mpi_operators_crd(control_plane, slice_name, model):
    from dataclasses import replace

    run = replace(RUN, slice=slice_name, distributed={"framework": "mpi", "workers": 3})
    manifest = mpi_job_manifest(run, namespace="astrago", image="astrago/singleuser:1", model=model,
                                home_claim="claim-ann")
    stored = dry_run(control_plane, manifest)
    assert stored["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] == 3
    assert stored["spec"]["runLauncherAsWorker"] is True and stored["spec"]["slotsPerWorker"] == 1
    launcher = stored["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    assert launcher["resources"] == manifest["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"][
        "containers"][0]["resources"]
    manifest["spec"]["mpiImplementation"] = "LAM"  # the CRD's enum refuses it
    with pytest.raises(KubeError) as refused:
        dry_run(control_plane, manifest)
    assert refused.value.status == 422


@pytest.mark.parametrize("path", ["config/gpu-operator/mig-parted-config.yaml", "config/gpu-operator/mps-sharing.yaml",
                                  "config/z2jh/astrago-rbac.yaml", "config/z2jh/user-namespaces-rbac.yaml"])
def test_the_shipped_kubernetes_files_are_accepted(control_plane, path):
    documents = [d for d in yaml.safe_load_all((REPO / path).read_text()) if d]
    assert documents
    for document in documents:
        if document["kind"] == "Namespace":
            continue
        dry_run_apply(control_plane, document)


def test_a_resource_name_the_device_plugin_never_publishes_is_refused(control_plane):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plus-me", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "i", "resources": {
               "limits": {"nvidia.com/mig-1g.10gb+me": "1"}}}]}}
    with pytest.raises(KubeError) as refused:
        dry_run(control_plane, pod)
    assert refused.value.status == 422
    pod["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/mig-1g.10gb.me": "1"}
    dry_run(control_plane, pod)
