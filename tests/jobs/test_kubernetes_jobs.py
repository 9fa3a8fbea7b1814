"""Cluster mode: batch/v1 Job, Kubeflow PyTorchJob and MPIJob manifests, exact and valid for the target
Kubernetes version (pure functions, compared to literal dicts). The Kubernetes executor itself runs
against the real control plane in tests/e2e_k8s/test_job_executor.py."""
import json
from dataclasses import replace

import kubernetes_validate
import pytest

from astrago.hub.jobs.executors.base import JobRun
from astrago.hub.jobs.manifests import (job_manifest, label_value, mpi_job_manifest, pytorch_job_manifest, quantity_cpu,
                                        quantity_memory)
from astrago.spawners.manifests import TARGET_KUBERNETES_VERSION

RUN = JobRun(id="0123456789ab", owner="ann.lee@x", attempt=1, kind="notebook", name="train.ipynb",
             input="/home/jovyan/train.ipynb", code="", command="", parameters={"lr": 0.1}, workdir="/home/jovyan",
             slice="1g.10gb", cpu=4, memory_gib=16, image="", env={"WANDB_MODE": "offline"}, placement={},
             max_runtime_s=7200, started_at=None)

LABELS = {"app.kubernetes.io/managed-by": "astrago", "app.kubernetes.io/component": "job",
          "astrago.io/job-id": "0123456789ab", "astrago.io/attempt": "1", "astrago.io/user": "ann.lee-x",
          "astrago.io/slice": "1g.10gb"}

SPEC_JSON = ('{"attempt": 1, "code": "", "command": "", "id": "0123456789ab", "input": "/home/jovyan/train.ipynb", '
             '"kind": "notebook", "output": "/home/jovyan/train-20260301T120005Z.ipynb", "parameters": {"lr": 0.1}, '
             '"workdir": "/home/jovyan"}')

EXPECTED_MIG_NOTEBOOK_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "astrago-job-0123456789ab-1", "namespace": "ml", "labels": LABELS,
                 "annotations": {"astrago.io/user": "ann.lee@x", "astrago.io/job-name": "train.ipynb"}},
    "spec": {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 86400,
        "activeDeadlineSeconds": 7200,
        "template": {
            "metadata": {"labels": LABELS, "annotations": {"astrago.io/user": "ann.lee@x"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "job",
                    "image": "astrago/singleuser:1.0",
                    "command": ["python", "-m", "astrago.hub.jobs.runner"],
                    "env": [
                        {"name": "ASTRAGO_GPU_UNITS", "value": "1/7"},
                        {"name": "ASTRAGO_JOB_ATTEMPT", "value": "1"},
                        {"name": "ASTRAGO_JOB_ID", "value": "0123456789ab"},
                        {"name": "ASTRAGO_JOB_MARKER", "value": "0123456789ab.1"},
                        {"name": "ASTRAGO_JOB_NAME", "value": "train.ipynb"},
                        {"name": "ASTRAGO_JOB_SPEC", "value": SPEC_JSON},
                        {"name": "ASTRAGO_SLICE", "value": "1g.10gb"},
                        {"name": "HOME", "value": "/home/jovyan"},
                        {"name": "PYTHONUNBUFFERED", "value": "1"},
                        {"name": "WANDB_MODE", "value": "offline"},
                    ],
                    "resources": {
                        "limits": {"nvidia.com/mig-1g.10gb": "1", "cpu": "4", "memory": "16Gi"},
                        "requests": {"nvidia.com/mig-1g.10gb": "1", "cpu": "4", "memory": "16Gi"},
                    },
                    "workingDir": "/home/jovyan",
                    "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
                    "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
                }],
                "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
                "automountServiceAccountToken": False,
                "serviceAccountName": "astrago-jobs",
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                           "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"]}]}]}}},
                "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ann"}}],
            },
        },
    },
}


def test_mig_notebook_job_manifest_exactly_and_valid():
    m = job_manifest(RUN, namespace="ml", image="astrago/singleuser:1.0",
                     output="/home/jovyan/train-20260301T120005Z.ipynb", model="H100-80GB", home_claim="claim-ann",
                     service_account="astrago-jobs")
    assert m == EXPECTED_MIG_NOTEBOOK_JOB
    assert kubernetes_validate.validate(m, TARGET_KUBERNETES_VERSION, strict=True) == "1.33"


def test_cpu_command_job_manifest_exactly_and_valid():
    from dataclasses import replace

    run = replace(RUN, id="feedfacecafe", owner="bob", kind="command", name="etl", input="", command="make data",
                  parameters={}, slice="cpu", cpu=0.5, memory_gib=1.5, env={}, max_runtime_s=None, attempt=3)
    m = job_manifest(run, namespace="ml", image="reg/etl:2", node_selector={"pool": "cpu"},
                     extra_labels={"team": "data"}, image_pull_secrets=["regcred"], ttl_seconds_after_finished=600)
    labels = {"app.kubernetes.io/managed-by": "astrago", "app.kubernetes.io/component": "job",
              "astrago.io/job-id": "feedfacecafe", "astrago.io/attempt": "3", "astrago.io/user": "bob",
              "astrago.io/slice": "cpu", "team": "data"}
    spec = json.dumps({"attempt": 3, "code": "", "command": "make data", "id": "feedfacecafe", "input": "",
                       "kind": "command", "output": "", "parameters": {}, "workdir": "/home/jovyan"}, sort_keys=True)
    assert m == {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "astrago-job-feedfacecafe-3", "namespace": "ml", "labels": labels,
                     "annotations": {"astrago.io/user": "bob", "astrago.io/job-name": "etl"}},
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 600, "template": {
            "metadata": {"labels": labels, "annotations": {"astrago.io/user": "bob"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "job", "image": "reg/etl:2", "command": ["python", "-m", "astrago.hub.jobs.runner"],
                    "env": [{"name": "ASTRAGO_JOB_ATTEMPT", "value": "3"},
                            {"name": "ASTRAGO_JOB_ID", "value": "feedfacecafe"},
                            {"name": "ASTRAGO_JOB_MARKER", "value": "feedfacecafe.3"},
                            {"name": "ASTRAGO_JOB_NAME", "value": "etl"},
                            {"name": "ASTRAGO_JOB_SPEC", "value": spec},
                            {"name": "ASTRAGO_SLICE", "value": "cpu"},
                            {"name": "HOME", "value": "/home/jovyan"},
                            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"},
                            {"name": "PYTHONUNBUFFERED", "value": "1"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "1536Mi"},
                                  "requests": {"cpu": "500m", "memory": "1536Mi"}},
                    "workingDir": "/home/jovyan",
                    "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
                }],
                "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
                "automountServiceAccountToken": False,
                "nodeSelector": {"pool": "cpu"},
                "imagePullSecrets": [{"name": "regcred"}],
            }}},
    }
    assert kubernetes_validate.validate(m, TARGET_KUBERNETES_VERSION, strict=True) == "1.33"


@pytest.mark.parametrize("slice_name, model, resource", [
    ("gpu-2", "A100-80GB", "nvidia.com/gpu"), ("mps-25", "H100-80GB", "nvidia.com/gpu.shared"),
    ("3g.40gb", None, "nvidia.com/mig-3g.40gb"), ("2g.20gb", "H100-80GB", "nvidia.com/mig-2g.20gb")])
def test_every_slice_kind_gives_a_valid_job(slice_name, model, resource):
    from dataclasses import replace

    m = job_manifest(replace(RUN, slice=slice_name), namespace="ml", image="i:1", model=model)
    limits = m["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert resource in limits
    assert kubernetes_validate.validate(m, TARGET_KUBERNETES_VERSION, strict=True) == "1.33"


def test_the_validator_rejects_a_broken_job_and_root_is_refused():
    m = job_manifest(RUN, namespace="ml", image="i:1")
    m["spec"]["backoffLimit"] = "none"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(m, TARGET_KUBERNETES_VERSION, strict=True)
    with pytest.raises(ValueError, match="root"):
        job_manifest(RUN, namespace="ml", image="i:1", run_as_uid=0)


def test_quantities_and_labels():
    assert [quantity_cpu(x) for x in (1, 0.25, 2.5, 16)] == ["1", "250m", "2500m", "16"]
    assert [quantity_memory(x) for x in (1, 0.5, 16, 1.25)] == ["1Gi", "512Mi", "16Gi", "1280Mi"]
    assert label_value("Ann Lee@Example.org") == "Ann-Lee-Example.org" and len(label_value("x" * 99)) == 63


# -- distributed training: a Kubeflow PyTorchJob -------------------------------------

DIST_RUN = JobRun(id="d15d15d15d15", owner="ann", attempt=2, kind="command", name="ddp", input="", code="",
                  command="torchrun train.py", parameters={}, workdir="/home/jovyan", slice="gpu-1", cpu=8,
                  memory_gib=32, image="", env={}, placement={}, max_runtime_s=3600, started_at=None,
                  distributed={"framework": "pytorch", "workers": 2})

DIST_LABELS = {"app.kubernetes.io/managed-by": "astrago", "app.kubernetes.io/component": "job",
               "astrago.io/job-id": "d15d15d15d15", "astrago.io/attempt": "2", "astrago.io/user": "ann",
               "astrago.io/slice": "gpu-1"}

DIST_SPEC_JSON = json.dumps({"attempt": 2, "code": "", "command": "torchrun train.py", "id": "d15d15d15d15",
                             "input": "", "kind": "command", "output": "", "parameters": {},
                             "workdir": "/home/jovyan"}, sort_keys=True)


def _dist_template(role):
    return {
        "metadata": {"labels": {**DIST_LABELS, "astrago.io/replica": role}, "annotations": {"astrago.io/user": "ann"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "pytorch",
                "image": "astrago/singleuser:1.0",
                "command": ["python", "-m", "astrago.hub.jobs.runner"],
                "env": [
                    {"name": "ASTRAGO_GPU_UNITS", "value": "1"},
                    {"name": "ASTRAGO_JOB_ATTEMPT", "value": "2"},
                    {"name": "ASTRAGO_JOB_ID", "value": "d15d15d15d15"},
                    {"name": "ASTRAGO_JOB_MARKER", "value": "d15d15d15d15.2"},
                    {"name": "ASTRAGO_JOB_NAME", "value": "ddp"},
                    {"name": "ASTRAGO_JOB_REPLICA", "value": role},
                    {"name": "ASTRAGO_JOB_SPEC", "value": DIST_SPEC_JSON},
                    {"name": "ASTRAGO_SLICE", "value": "gpu-1"},
                    {"name": "HOME", "value": "/home/jovyan"},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                ],
                "resources": {"limits": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "32Gi"},
                              "requests": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "32Gi"}},
                "workingDir": "/home/jovyan",
                "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
                "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
            }],
            "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
            "automountServiceAccountToken": False,
            "nodeSelector": {"nvidia.com/gpu.sharing-strategy": "none"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ann"}}],
        },
    }


EXPECTED_PYTORCH_JOB = {
    "apiVersion": "kubeflow.org/v1",
    "kind": "PyTorchJob",
    "metadata": {"name": "astrago-job-d15d15d15d15-2", "namespace": "ml", "labels": DIST_LABELS,
                 "annotations": {"astrago.io/user": "ann", "astrago.io/job-name": "ddp", "astrago.io/workers": "2"}},
    "spec": {
        "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 0, "ttlSecondsAfterFinished": 86400,
                      "activeDeadlineSeconds": 3600},
        "pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "restartPolicy": "Never", "template": _dist_template("master")},
            "Worker": {"replicas": 2, "restartPolicy": "Never", "template": _dist_template("worker")},
        },
    },
}


def _as_pod_template(template):
    """A PyTorchJob replica's template as a core/v1 PodTemplate, the shape kubernetes-validate knows."""
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "replica"}, "template": template}


def test_pytorch_job_manifest_exactly_and_its_pod_templates_valid():
    m = pytorch_job_manifest(DIST_RUN, namespace="ml", image="astrago/singleuser:1.0", home_claim="claim-ann")
    assert m == EXPECTED_PYTORCH_JOB
    # the custom resource's own shape: what the training operator reads
    assert set(m["spec"]) == {"runPolicy", "pytorchReplicaSpecs"}
    assert set(m["spec"]["pytorchReplicaSpecs"]) == {"Master", "Worker"}
    for replica in m["spec"]["pytorchReplicaSpecs"].values():
        assert set(replica) == {"replicas", "restartPolicy", "template"} and isinstance(replica["replicas"], int)
        assert [c["name"] for c in replica["template"]["spec"]["containers"]] == ["pytorch"]
        assert kubernetes_validate.validate(_as_pod_template(replica["template"]), TARGET_KUBERNETES_VERSION,
                                            strict=True) == "1.33"
    # each replica asks for exactly what the plain Job's pod asks for on the same slice
    plain = job_manifest(replace(DIST_RUN, distributed={}), namespace="ml", image="astrago/singleuser:1.0",
                         home_claim="claim-ann")["spec"]["template"]["spec"]
    master = m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert master["containers"][0]["resources"] == plain["containers"][0]["resources"]
    assert master["tolerations"] == plain["tolerations"]


def test_pytorch_job_templates_on_mig_are_valid_and_a_plain_run_is_refused():
    m = pytorch_job_manifest(replace(DIST_RUN, slice="2g.20gb"), namespace="ml", image="i:1", model="H100-80GB",
                             node_selector={"pool": "gpu"})
    worker = m["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]
    assert worker["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-2g.20gb"] == "1"
    assert worker["spec"]["nodeSelector"]["pool"] == "gpu"
    assert kubernetes_validate.validate(_as_pod_template(worker), TARGET_KUBERNETES_VERSION, strict=True) == "1.33"
    broken = _as_pod_template(worker)
    broken["template"]["spec"]["containers"][0]["resources"] = "lots"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, TARGET_KUBERNETES_VERSION, strict=True)
    with pytest.raises(ValueError, match="distributed"):
        pytorch_job_manifest(replace(DIST_RUN, distributed={}), namespace="ml", image="i:1")


# -- distributed training: a Kubeflow MPI Operator v2 MPIJob ------------------------

MPI_RUN = replace(DIST_RUN, id="3b13b13b13b1", name="allreduce", command="python allreduce.py", slice="1g.10gb",
                  cpu=2, memory_gib=8, distributed={"framework": "mpi", "workers": 2})

MPI_LABELS = {**DIST_LABELS, "astrago.io/job-id": "3b13b13b13b1", "astrago.io/slice": "1g.10gb"}


def _mpi_template(role, spec):
    container = {
        "name": "mpi",
        "image": "astrago/singleuser:1.0",
        "command": ["python", "-m", "astrago.hub.jobs.runner"],
        "env": [
            {"name": "ASTRAGO_GPU_UNITS", "value": "1/7"},
            {"name": "ASTRAGO_JOB_ATTEMPT", "value": "2"},
            {"name": "ASTRAGO_JOB_ID", "value": "3b13b13b13b1"},
            {"name": "ASTRAGO_JOB_MARKER", "value": "3b13b13b13b1.2"},
            {"name": "ASTRAGO_JOB_NAME", "value": "allreduce"},
            {"name": "ASTRAGO_JOB_REPLICA", "value": role},
            {"name": "ASTRAGO_JOB_REPLICAS", "value": "3"},
            {"name": "ASTRAGO_JOB_SPEC", "value": spec},
            {"name": "ASTRAGO_SLICE", "value": "1g.10gb"},
            {"name": "HOME", "value": "/home/jovyan"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": {"limits": {"nvidia.com/mig-1g.10gb": "1", "cpu": "2", "memory": "8Gi"},
                      "requests": {"nvidia.com/mig-1g.10gb": "1", "cpu": "2", "memory": "8Gi"}},
        "workingDir": "/home/jovyan",
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
        "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
    }
    if role == "worker":
        del container["command"]  # the operator's default: sshd -De
    return {
        "metadata": {"labels": {**MPI_LABELS, "astrago.io/replica": role}, "annotations": {"astrago.io/user": "ann"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [container],
            "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
            "automountServiceAccountToken": False,
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                       "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"]}]}]}}},
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ann"}}],
        },
    }


_MPI_SPEC = {"attempt": 2, "code": "", "command": "python allreduce.py", "id": "3b13b13b13b1", "input": "",
             "kind": "command", "output": "", "parameters": {}, "workdir": "/home/jovyan"}

EXPECTED_MPI_JOB = {
    "apiVersion": "kubeflow.org/v2beta1",
    "kind": "MPIJob",
    "metadata": {"name": "astrago-job-3b13b13b13b1-2", "namespace": "ml", "labels": MPI_LABELS,
                 "annotations": {"astrago.io/user": "ann", "astrago.io/job-name": "allreduce",
                                 "astrago.io/replicas": "3"}},
    "spec": {
        "slotsPerWorker": 1,
        "runLauncherAsWorker": True,
        "mpiImplementation": "OpenMPI",
        "launcherCreationPolicy": "WaitForWorkersReady",
        "sshAuthMountPath": "/home/jovyan/.ssh",
        "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 0, "ttlSecondsAfterFinished": 86400,
                      "activeDeadlineSeconds": 3600},
        "mpiReplicaSpecs": {
            "Launcher": {"replicas": 1, "restartPolicy": "Never", "template": _mpi_template(
                "launcher", json.dumps({**_MPI_SPEC, "launcher": ["mpirun", "-np", "3"]}, sort_keys=True))},
            "Worker": {"replicas": 2, "restartPolicy": "Never",
                       "template": _mpi_template("worker", json.dumps(_MPI_SPEC, sort_keys=True))},
        },
    },
}


def test_mpi_job_manifest_exactly_each_replica_on_its_own_mig_slice():
    m = mpi_job_manifest(MPI_RUN, namespace="ml", image="astrago/singleuser:1.0", model="H100-80GB",
                         home_claim="claim-ann")
    assert m == EXPECTED_MPI_JOB
    for replica in m["spec"]["mpiReplicaSpecs"].values():
        assert kubernetes_validate.validate(_as_pod_template(replica["template"]), TARGET_KUBERNETES_VERSION,
                                            strict=True) == "1.33"
    # the launcher is a worker too: 3 replicas hold 3 slices, each asking what a plain Job's pod asks for
    plain = job_manifest(replace(MPI_RUN, distributed={}), namespace="ml", image="i:1", model="H100-80GB",
                         home_claim="claim-ann")["spec"]["template"]["spec"]["containers"][0]["resources"]
    for replica in ("Launcher", "Worker"):
        assert m["spec"]["mpiReplicaSpecs"][replica]["template"]["spec"]["containers"][0]["resources"] == plain


def test_mpi_job_commands_are_the_installations_and_a_pytorch_run_is_refused():
    m = mpi_job_manifest(MPI_RUN, namespace="ml", image="i:1", launcher_command=["mpiexec", "-n", "{replicas}",
                                                                                 "--bind-to", "none"],
                         worker_command=["/opt/ssh/sshd", "-De", "-f", "/home/jovyan/.sshd_config"])
    launcher = m["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    worker = m["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    spec = json.loads(next(e["value"] for e in launcher["env"] if e["name"] == "ASTRAGO_JOB_SPEC"))
    assert spec["launcher"] == ["mpiexec", "-n", "3", "--bind-to", "none"]
    assert worker["command"] == ["/opt/ssh/sshd", "-De", "-f", "/home/jovyan/.sshd_config"]
    empty = mpi_job_manifest(MPI_RUN, namespace="ml", image="i:1", launcher_command=[])
    launcher = empty["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    assert "launcher" not in json.loads(next(e["value"] for e in launcher["env"] if e["name"] == "ASTRAGO_JOB_SPEC"))
    with pytest.raises(ValueError, match="framework mpi"):
        mpi_job_manifest(DIST_RUN, namespace="ml", image="i:1")


def test_the_rank_of_each_replicas_pod():
    from astrago.hub.jobs.executors.kubernetes import kind_of, rank_of

    index = "training.kubeflow.org/replica-index"
    assert rank_of({}) == 0  # a batch/v1 Job's one pod
    assert rank_of({"astrago.io/replica": "master", index: "0"}) == 0
    assert rank_of({"astrago.io/replica": "launcher"}) == 0
    assert rank_of({"astrago.io/replica": "worker", index: "0"}) == 1
    assert rank_of({"astrago.io/replica": "worker", index: "4"}) == 5
    assert rank_of({"astrago.io/replica": "worker"}) is None
    assert [kind_of(r) for r in (RUN, DIST_RUN, MPI_RUN)] == ["Job", "PyTorchJob", "MPIJob"]


def test_the_executors_manifest_pins_a_model_only_when_every_replica_has_it(tmp_path):
    from astrago.hub.jobs.config import JobsConfig
    from astrago.hub.jobs.executors.kubernetes import KubernetesExecutor

    executor = KubernetesExecutor(JobsConfig(namespace="ml", data_dir=str(tmp_path), home_claim_template=""))
    same = {"model": "H100-80GB", "replicas": [{"model": "H100-80GB"}] * 3}
    mixed = {"model": "H100-80GB", "replicas": [{"model": "H100-80GB"}, {"model": "A100-80GB"}, {"model": "H100-80GB"}]}
    affinity = lambda m: m["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"].get("affinity")  # noqa: E731
    assert affinity(executor.manifest(replace(MPI_RUN, placement=same), "")) is not None
    assert affinity(executor.manifest(replace(MPI_RUN, placement=mixed), "")) is None
    assert executor.log_path(MPI_RUN, 2) == tmp_path / "3b13b13b13b1" / "attempt-2.replica-2.log"
