"""A job attempt -> a Kubernetes batch/v1 Job, or a Kubeflow PyTorchJob or MPIJob when distributed (pure), the way kubespawner's objects.py builds pods.

GPU resources, node selectors, affinity, tolerations and the slice's environment come from
`astrago.spawners.manifests.container_gpu_resources`, the same function GPUKubeSpawner's
workspaces use, so a job on `1g.10gb` asks the cluster for exactly what a workspace on
`1g.10gb` asks for. Retries are AstraGo's (`backoffLimit: 0`), the max runtime is
`activeDeadlineSeconds`, and the pod runs the AstraGo runner with the launch spec in
ASTRAGO_JOB_SPEC. Validated in tests against the Kubernetes schema at
`astrago.spawners.manifests.TARGET_KUBERNETES_VERSION`.
"""
from __future__ import annotations

import json
import re
from typing import Any

from astrago.spawners.manifests import container_gpu_resources

from .executors.base import JobRun

RUNNER = ["python", "-m", "astrago.hub.jobs.runner"]
CONTAINER = "job"
#: the training operator looks for its container by this name in every replica
PYTORCH_CONTAINER = "pytorch"
PYTORCH_JOB_GROUP, PYTORCH_JOB_VERSION, PYTORCH_JOB_PLURAL = "kubeflow.org", "v1", "pytorchjobs"
#: the MPI Operator v2 runs the first container of each replica; the name is AstraGo's
MPI_CONTAINER = "mpi"
MPI_JOB_GROUP, MPI_JOB_VERSION, MPI_JOB_PLURAL = "kubeflow.org", "v2beta1", "mpijobs"
REPLICA_LABEL = "astrago.io/replica"  # master | worker (PyTorchJob), launcher | worker (MPIJob)
#: both Kubeflow operators number each replica type's pods with this label
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def job_name(job_id: str, attempt: int) -> str:
    return f"astrago-job-{job_id}-{attempt}"


def label_value(text: str) -> str:
    """A string made fit for a label value (pure): 63 chars at most, [A-Za-z0-9_.-], alphanumeric ends."""
    value = _LABEL_BAD.sub("-", text)[:63].strip("-_.")
    return value or "x"


#: KubeSpawner's limit on each name field it expands (`_expand_user_properties`)
_SLUG_MAX_LENGTH = 48


def user_claim_name(template: str, username: str, servername: str = "", slug_scheme: str = "safe") -> str:
    """The PVC name KubeSpawner gives `username`'s server for `template` (pure), with kubespawner's
    own slug functions: under KubeSpawner 7's `safe` scheme `claim-{username}` and z2jh's
    `claim-{user_server}` both give `claim-alice-example-org---7a64adf2` for `alice@example.org`.
    `escape` is the pre-7 scheme. Job pods mount this claim, the volume the spawner made."""
    from kubespawner.slugs import escape_slug, multi_slug, safe_slug

    safe_username = safe_slug(username, max_length=_SLUG_MAX_LENGTH)
    safe_servername = safe_slug(servername, max_length=_SLUG_MAX_LENGTH) if servername else ""
    if len(safe_username) + len(safe_servername) + 2 > _SLUG_MAX_LENGTH:
        safe_user_server = multi_slug([username, servername], max_length=_SLUG_MAX_LENGTH)
    else:
        safe_user_server = f"{safe_username}--{safe_servername}" if servername else safe_username
    if slug_scheme == "safe":
        names = {"username": safe_username, "servername": safe_servername, "user_server": safe_user_server}
    elif slug_scheme == "escape":
        escaped_user, escaped_server = escape_slug(username), escape_slug(servername)
        names = {"username": escaped_user, "servername": escaped_server,
                 "user_server": f"{escaped_user}--{escaped_server}" if servername else escaped_user}
    else:
        raise ValueError(f"slug scheme must be 'safe' or 'escape', not {slug_scheme!r}")
    names.update(unescaped_username=username, unescaped_servername=servername, safe_username=safe_username,
                 safe_servername=safe_servername, safe_user_server=safe_user_server)
    return template.format(**names)


def quantity_cpu(cpu: float) -> str:
    millis = max(1, int(round(cpu * 1000)))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def quantity_memory(memory_gib: float) -> str:
    mib = max(1, int(round(memory_gib * 1024)))
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def labels_for(run: JobRun, extra: dict | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/managed-by": "astrago",
        "app.kubernetes.io/component": "job",
        "astrago.io/job-id": run.id,
        "astrago.io/attempt": str(run.attempt),
        "astrago.io/user": label_value(run.owner),
        "astrago.io/slice": label_value(run.slice),
    }
    labels.update(extra or {})
    return labels


def pod_template(run: JobRun, *, image: str, output: str = "", model: str | None = None, strategy: str = "mixed",
                 service_account: str = "", run_as_uid: int = 1000, run_as_gid: int = 100, home_claim: str = "",
                 home_mount_path: str = "/home/jovyan", node_selector: dict | None = None,
                 extra_labels: dict | None = None, image_pull_secrets=(), container_name: str = CONTAINER,
                 extra_env: dict | None = None, launcher: list | None = None,
                 command: list | None = None) -> dict[str, Any]:
    """The PodTemplateSpec that runs one attempt of `run` on its slice (pure): the AstraGo runner
    with the launch spec, the slice's GPU resources, node selector, affinity and tolerations.
    `launcher`: what the runner starts the job's processes with (an MPIJob's mpirun); `command`:
    the container's command instead of the runner ([]: the image's, or what an operator sets)."""
    if run_as_uid == 0:
        raise ValueError("job containers never run as root (run_as_uid 0)")
    parts = container_gpu_resources(run.slice, model, strategy)
    spec = {"id": run.id, "attempt": run.attempt, "kind": run.kind, "input": run.input, "code": run.code,
            "command": run.command, "parameters": dict(run.parameters), "workdir": run.workdir or home_mount_path,
            "output": output}
    if launcher:
        spec["launcher"] = list(launcher)
    env = dict(run.env)
    env.update(parts["env"])
    env.update({"ASTRAGO_JOB_SPEC": json.dumps(spec, sort_keys=True), "ASTRAGO_JOB_ID": run.id,
                "ASTRAGO_JOB_ATTEMPT": str(run.attempt), "ASTRAGO_JOB_MARKER": run.marker,
                "ASTRAGO_JOB_NAME": run.name, "HOME": home_mount_path, "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    limits = dict(parts["resources"]["limits"])
    requests = dict(parts["resources"]["requests"])
    limits["cpu"] = requests["cpu"] = quantity_cpu(run.cpu)
    limits["memory"] = requests["memory"] = quantity_memory(run.memory_gib)
    container: dict[str, Any] = {
        "name": container_name,
        "image": image,
        "command": list(RUNNER if command is None else command),
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {"limits": limits, "requests": requests},
        "workingDir": run.workdir or home_mount_path,
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    if not container["command"]:
        del container["command"]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "securityContext": {"runAsUser": run_as_uid, "runAsGroup": run_as_gid, "fsGroup": run_as_gid},
        "automountServiceAccountToken": False,
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    selector = dict(parts["node_selector"])
    selector.update(node_selector or {})
    if selector:
        pod_spec["nodeSelector"] = selector
    if parts["tolerations"]:
        pod_spec["tolerations"] = [dict(t) for t in parts["tolerations"]]
    if parts["node_affinity_required"]:
        pod_spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": parts["node_affinity_required"]}}}
    if home_claim:
        pod_spec["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": home_claim}}]
        container["volumeMounts"] = [{"name": "home", "mountPath": home_mount_path}]
    if image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in image_pull_secrets]
    return {"metadata": {"labels": labels_for(run, extra_labels), "annotations": {"astrago.io/user": run.owner}},
            "spec": pod_spec}


def job_manifest(run: JobRun, *, namespace: str, image: str, output: str = "", model: str | None = None,
                 strategy: str = "mixed", service_account: str = "", run_as_uid: int = 1000, run_as_gid: int = 100,
                 home_claim: str = "", home_mount_path: str = "/home/jovyan", ttl_seconds_after_finished: int = 86400,
                 node_selector: dict | None = None, extra_labels: dict | None = None,
                 image_pull_secrets=()) -> dict[str, Any]:
    """The batch/v1 Job for one attempt of `run` (pure)."""
    template = pod_template(run, image=image, output=output, model=model, strategy=strategy,
                            service_account=service_account, run_as_uid=run_as_uid, run_as_gid=run_as_gid,
                            home_claim=home_claim, home_mount_path=home_mount_path, node_selector=node_selector,
                            extra_labels=extra_labels, image_pull_secrets=image_pull_secrets)
    labels = labels_for(run, extra_labels)
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": ttl_seconds_after_finished,
        "template": template,
    }
    if run.max_runtime_s:
        job_spec["activeDeadlineSeconds"] = int(run.max_runtime_s)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(run.id, run.attempt), "namespace": namespace, "labels": labels,
                     "annotations": {"astrago.io/user": run.owner, "astrago.io/job-name": run.name}},
        "spec": job_spec,
    }


def pytorch_job_manifest(run: JobRun, *, namespace: str, image: str, model: str | None = None,
                         strategy: str = "mixed", service_account: str = "", run_as_uid: int = 1000,
                         run_as_gid: int = 100, home_claim: str = "", home_mount_path: str = "/home/jovyan",
                         ttl_seconds_after_finished: int = 86400, node_selector: dict | None = None,
                         extra_labels: dict | None = None, image_pull_secrets=()) -> dict[str, Any]:
    """The Kubeflow training-operator PyTorchJob for one attempt of a distributed `run` (pure).

    One Master and `run.distributed["workers"]` Workers, each with the pod template a batch/v1
    Job of the same run would have (so each replica asks for the job's slice), its container
    named `pytorch` (the operator sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK there)
    and labelled `astrago.io/replica` so the master's pod can be found. Retries are AstraGo's
    (`restartPolicy: Never`, `backoffLimit: 0`)."""
    workers = int(run.distributed.get("workers", 0))
    if run.distributed.get("framework", "pytorch") != "pytorch" or workers < 1:
        raise ValueError("a PyTorchJob needs a run with distributed framework pytorch and at least one worker")
    replicas: dict[str, Any] = {}
    for replica_type, count in (("Master", 1), ("Worker", workers)):
        role = replica_type.lower()
        template = pod_template(run, image=image, model=model, strategy=strategy, service_account=service_account,
                                run_as_uid=run_as_uid, run_as_gid=run_as_gid, home_claim=home_claim,
                                home_mount_path=home_mount_path, node_selector=node_selector,
                                extra_labels={**(extra_labels or {}), REPLICA_LABEL: role},
                                image_pull_secrets=image_pull_secrets, container_name=PYTORCH_CONTAINER,
                                extra_env={"ASTRAGO_JOB_REPLICA": role})
        replicas[replica_type] = {"replicas": count, "restartPolicy": "Never", "template": template}
    run_policy = _run_policy(run, "None", ttl_seconds_after_finished)
    return {
        "apiVersion": f"{PYTORCH_JOB_GROUP}/{PYTORCH_JOB_VERSION}",
        "kind": "PyTorchJob",
        "metadata": {"name": job_name(run.id, run.attempt), "namespace": namespace,
                     "labels": labels_for(run, extra_labels),
                     "annotations": {"astrago.io/user": run.owner, "astrago.io/job-name": run.name,
                                     "astrago.io/workers": str(workers)}},
        "spec": {"runPolicy": run_policy, "pytorchReplicaSpecs": replicas},
    }


def _run_policy(run: JobRun, clean_pod_policy: str, ttl_seconds_after_finished: int) -> dict[str, Any]:
    """The Kubeflow runPolicy of a distributed job: no retries (AstraGo's own), its time limit."""
    policy: dict[str, Any] = {"cleanPodPolicy": clean_pod_policy, "backoffLimit": 0,
                              "ttlSecondsAfterFinished": ttl_seconds_after_finished}
    if run.max_runtime_s:
        policy["activeDeadlineSeconds"] = int(run.max_runtime_s)
    return policy


def mpi_job_manifest(run: JobRun, *, namespace: str, image: str, model: str | None = None, strategy: str = "mixed",
                     service_account: str = "", run_as_uid: int = 1000, run_as_gid: int = 100, home_claim: str = "",
                     home_mount_path: str = "/home/jovyan", ttl_seconds_after_finished: int = 86400,
                     node_selector: dict | None = None, extra_labels: dict | None = None, image_pull_secrets=(),
                     launcher_command=("mpirun", "-np", "{replicas}"), worker_command=()) -> dict[str, Any]:
    """The Kubeflow MPI Operator v2 MPIJob for one attempt of a distributed `run` with framework
    mpi (pure).

    Every replica holds one slice of the job's: the Launcher runs as a worker too
    (`runLauncherAsWorker`, one slot each), so a job of N replicas is a Launcher and N - 1
    Workers, each pod asking for what a batch/v1 Job of the run would ask for. The Launcher runs
    the AstraGo runner, which starts the job through `launcher_command` (mpirun over the hostfile
    the operator mounts); it is created once the workers are ready. Workers run
    `worker_command` (empty: the operator's `sshd -De`). The SSH keys go into the user's home
    (the containers never run as root). Running workers are removed when the launcher ends;
    retries are AstraGo's (`backoffLimit: 0`)."""
    workers = int(run.distributed.get("workers", 0))
    if run.distributed.get("framework") != "mpi" or workers < 1:
        raise ValueError("an MPIJob needs a run with distributed framework mpi and at least one worker")
    replicas = workers + 1
    common = dict(image=image, model=model, strategy=strategy, service_account=service_account,
                  run_as_uid=run_as_uid, run_as_gid=run_as_gid, home_claim=home_claim,
                  home_mount_path=home_mount_path, node_selector=node_selector,
                  image_pull_secrets=image_pull_secrets, container_name=MPI_CONTAINER)
    launcher = [part.replace("{replicas}", str(replicas)) for part in launcher_command]
    specs = {
        "Launcher": {"replicas": 1, "restartPolicy": "Never", "template": pod_template(
            run, **common, extra_labels={**(extra_labels or {}), REPLICA_LABEL: "launcher"},
            extra_env={"ASTRAGO_JOB_REPLICA": "launcher", "ASTRAGO_JOB_REPLICAS": str(replicas)},
            launcher=launcher)},
        "Worker": {"replicas": workers, "restartPolicy": "Never", "template": pod_template(
            run, **common, extra_labels={**(extra_labels or {}), REPLICA_LABEL: "worker"},
            extra_env={"ASTRAGO_JOB_REPLICA": "worker", "ASTRAGO_JOB_REPLICAS": str(replicas)},
            command=list(worker_command))},
    }
    run_policy = _run_policy(run, "Running", ttl_seconds_after_finished)
    return {
        "apiVersion": f"{MPI_JOB_GROUP}/{MPI_JOB_VERSION}",
        "kind": "MPIJob",
        "metadata": {"name": job_name(run.id, run.attempt), "namespace": namespace,
                     "labels": labels_for(run, extra_labels),
                     "annotations": {"astrago.io/user": run.owner, "astrago.io/job-name": run.name,
                                     "astrago.io/replicas": str(replicas)}},
        "spec": {"slotsPerWorker": 1, "runLauncherAsWorker": True, "mpiImplementation": "OpenMPI",
                 "launcherCreationPolicy": "WaitForWorkersReady",
                 "sshAuthMountPath": f"{home_mount_path.rstrip('/')}/.ssh",
                 "runPolicy": run_policy, "mpiReplicaSpecs": specs},
    }
