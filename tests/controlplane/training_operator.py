"""SimulatedTrainingOperator: a TEST DOUBLE of the Kubeflow training operator's PyTorchJob
controller. It is not the training operator (which is not built here); the PyTorchJob CRD
itself is the published one (kubeflow/training-operator manifests/base/crds, from the Go
module proxy), so the API server's validation and pruning are real.

What it does, as the operator's PyTorchJob controller does:
- for a new PyTorchJob, one pod per replica (`<job>-master-0`, `<job>-worker-<i>`) from the
  replica's template, labelled `training.kubeflow.org/job-name`, `replica-type` and
  `replica-index`, owned by the PyTorchJob (so the real garbage collector deletes them with
  it), with the env the operator injects (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, and the
  PET_* names torchrun reads); condition `Created`;
- `Running` when the master's pod runs, then `Succeeded` or `Failed` (reason
  PyTorchJobSucceeded / PyTorchJobFailed) from the master pod's phase.
The pods themselves are run by the container-runtime double like any other.
"""
from __future__ import annotations

import datetime

from .informer import Informer
from .rest import KubeError, KubeREST

API_VERSION = "kubeflow.org/v1"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
REPLICA_INDEX_LABEL = "training.kubeflow.org/replica-index"
MASTER_PORT = "23456"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedTrainingOperator:
    def __init__(self, rest: KubeREST):
        self.rest = rest
        self.jobs = Informer("training-operator-jobs", rest, API_VERSION, "PyTorchJob", self._on_job)
        self.pods = Informer("training-operator-pods", rest, "v1", "Pod", self._on_pod, labelSelector=JOB_NAME_LABEL)

    def start(self) -> None:
        self.jobs.start()
        self.pods.start()

    def stop(self) -> None:
        self.jobs.stop()
        self.pods.stop()

    def _conditions(self, job: dict) -> dict[str, dict]:
        return {c["type"]: c for c in (job.get("status") or {}).get("conditions") or []}

    def _set_condition(self, namespace: str, name: str, kind: str, reason: str, message: str) -> None:
        job = self.rest.read(API_VERSION, "PyTorchJob", name, namespace)
        if job is None:
            return
        conditions = [c for c in (job.get("status") or {}).get("conditions") or [] if c["type"] != kind]
        if kind in ("Succeeded", "Failed"):
            conditions = [dict(c, status="False") if c["type"] == "Running" else c for c in conditions]
        conditions.append({"type": kind, "status": "True", "reason": reason, "message": message,
                           "lastUpdateTime": _now(), "lastTransitionTime": _now()})
        self.rest.merge_patch(API_VERSION, "PyTorchJob", name, {"status": {"conditions": conditions}}, namespace,
                              subresource="status")

    def _on_job(self, event_type: str, job: dict) -> None:
        metadata = job["metadata"]
        if event_type == "DELETED" or metadata.get("deletionTimestamp") or "Created" in self._conditions(job):
            return
        specs = job["spec"]["pytorchReplicaSpecs"]
        world = sum(int(spec.get("replicas", 1)) for spec in specs.values())
        rank = 0
        for replica_type in sorted(specs, key=lambda t: t != "Master"):
            spec = specs[replica_type]
            for index in range(int(spec.get("replicas", 1))):
                self._make_pod(job, replica_type, index, spec, world, rank)
                rank += 1
        self._set_condition(metadata["namespace"], metadata["name"], "Created", "PyTorchJobCreated",
                            f"PyTorchJob {metadata['name']} is created.")

    def _make_pod(self, job: dict, replica_type: str, index: int, spec: dict, world: int, rank: int) -> None:
        metadata = job["metadata"]
        template = spec["template"]
        name = f"{metadata['name']}-{replica_type.lower()}-{index}"
        env = [{"name": "MASTER_ADDR", "value": f"{metadata['name']}-master-0"},
               {"name": "MASTER_PORT", "value": MASTER_PORT}, {"name": "WORLD_SIZE", "value": str(world)},
               {"name": "RANK", "value": str(rank)}, {"name": "PET_MASTER_ADDR", "value": f"{metadata['name']}-master-0"},
               {"name": "PET_MASTER_PORT", "value": MASTER_PORT}, {"name": "PET_NNODES", "value": str(world)},
               {"name": "PET_NODE_RANK", "value": str(rank)}, {"name": "PYTHONUNBUFFERED", "value": "1"}]
        pod_spec = dict(template["spec"])
        pod_spec["restartPolicy"] = "Never" if spec.get("restartPolicy", "Never") in ("Never", "ExitCode") \
            else spec["restartPolicy"]
        pod_spec["containers"] = [dict(c, env=list(c.get("env") or []) + env) for c in template["spec"]["containers"]]
        labels = {**(template.get("metadata") or {}).get("labels", {}), JOB_NAME_LABEL: metadata["name"],
                  REPLICA_TYPE_LABEL: replica_type.lower(), REPLICA_INDEX_LABEL: str(index)}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": metadata["namespace"], "labels": labels,
                            "annotations": (template.get("metadata") or {}).get("annotations", {}),
                            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "PyTorchJob",
                                                 "name": metadata["name"], "uid": metadata["uid"],
                                                 "controller": True, "blockOwnerDeletion": True}]},
               "spec": pod_spec}
        try:
            self.rest.create(pod)
        except KubeError as exc:
            if exc.status != 409:
                raise

    def _on_pod(self, event_type: str, pod: dict) -> None:
        labels = pod["metadata"].get("labels") or {}
        if event_type == "DELETED" or labels.get(REPLICA_TYPE_LABEL) != "master":
            return
        namespace, job = pod["metadata"]["namespace"], labels[JOB_NAME_LABEL]
        phase = (pod.get("status") or {}).get("phase")
        existing = self._conditions(self.rest.read(API_VERSION, "PyTorchJob", job, namespace) or {})
        if any(existing.get(k, {}).get("status") == "True" for k in ("Succeeded", "Failed")):
            return
        if phase == "Running" and "Running" not in existing:
            self._set_condition(namespace, job, "Running", "PyTorchJobRunning", f"PyTorchJob {job} is running.")
        elif phase == "Succeeded":
            self._set_condition(namespace, job, "Succeeded", "PyTorchJobSucceeded",
                                f"PyTorchJob {job} is successfully completed.")
        elif phase == "Failed":
            self._set_condition(namespace, job, "Failed", "PyTorchJobFailed", f"PyTorchJob {job} has failed.")
