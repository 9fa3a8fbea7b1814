"""SimulatedMpiOperator: a TEST DOUBLE of the Kubeflow MPI Operator v2's MPIJob controller. It
is not the MPI Operator (which is not built here); the MPIJob CRD itself is the published one
(kubeflow/mpi-operator v0.6.0 manifests/base, from the Go module proxy), so the API server's
validation, defaulting and pruning are real.

What it does, as the operator's controller (pkg/controller/mpi_job_controller.go) does:
- for a new MPIJob: condition `Created`; a headless Service `<job>` for the replicas, a
  ConfigMap `<job>-config` with the hostfile (`<pod>.<job>.<ns>.svc slots=N`, the launcher
  first when `runLauncherAsWorker`), a Secret `<job>-ssh` (kubernetes.io/ssh-auth, a fresh
  ECDSA key) and one pod per worker (`<job>-worker-<i>`) from the Worker template, labelled
  `training.kubeflow.org/operator-name=mpi-operator`, `job-name`, `job-role` and
  `replica-index`, with the worker's env and the SSH volume, and `/usr/sbin/sshd -De` as command
  when the template has none; all owned by the MPIJob (the real garbage collector deletes them);
- the launcher, a batch/v1 Job `<job>-launcher` from the Launcher template (the real Job
  controller makes its pod), at once or, with `launcherCreationPolicy: WaitForWorkersReady`,
  once every worker pod is Ready; its pod gets the OpenMPI variables
  (OMPI_MCA_orte_default_hostfile=/etc/mpi/hostfile, ...) and the hostfile volume;
- `Running` while the launcher's pod and every worker run, `Succeeded` or `Failed` from the
  launcher Job's Complete or Failed condition, and then, with `cleanPodPolicy` Running or All,
  the workers that still run are deleted.
The pods are run by the container-runtime double like any other (it does not mount Secrets or
ConfigMaps, so there is no mpirun here: a job's launcher runs the job's command itself, and
workers run the command the test gives them).
"""
from __future__ import annotations

import base64
import datetime
import threading

from .informer import Informer
from .rest import KubeError, KubeREST

API_VERSION = "kubeflow.org/v2beta1"
OPERATOR_LABEL = "training.kubeflow.org/operator-name"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
ROLE_LABEL = "training.kubeflow.org/job-role"
INDEX_LABEL = "training.kubeflow.org/replica-index"
CONFIG_MOUNT = "/etc/mpi"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner(job: dict) -> list[dict]:
    return [{"apiVersion": API_VERSION, "kind": "MPIJob", "name": job["metadata"]["name"],
             "uid": job["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]


def _ssh_keys() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP521R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public + b"\n"


def hostfile(job: dict) -> str:
    """The hostfile the operator writes for OpenMPI (pure)."""
    metadata, spec = job["metadata"], job["spec"]
    name, namespace, slots = metadata["name"], metadata["namespace"], int(spec.get("slotsPerWorker", 1))
    hosts = [f"{name}-launcher"] if spec.get("runLauncherAsWorker") else []
    hosts += [f"{name}-worker-{i}" for i in range(_workers(job))]
    return "".join(f"{host}.{name}.{namespace}.svc slots={slots}\n" for host in hosts)


def _workers(job: dict) -> int:
    return int((job["spec"]["mpiReplicaSpecs"].get("Worker") or {}).get("replicas", 0))


class SimulatedMpiOperator:
    def __init__(self, rest: KubeREST):
        self.rest = rest
        self._lock = threading.Lock()  # one sync at a time: the informers' threads share the jobs
        self.jobs = Informer("mpi-operator-jobs", rest, API_VERSION, "MPIJob", self._on_job)
        self.pods = Informer("mpi-operator-pods", rest, "v1", "Pod", self._on_owned,
                             labelSelector=f"{OPERATOR_LABEL}=mpi-operator")
        self.launchers = Informer("mpi-operator-launchers", rest, "batch/v1", "Job", self._on_owned,
                                  labelSelector=f"{OPERATOR_LABEL}=mpi-operator")

    def start(self) -> None:
        for informer in (self.jobs, self.pods, self.launchers):
            informer.start()

    def stop(self) -> None:
        for informer in (self.jobs, self.pods, self.launchers):
            informer.stop()

    # -- events -------------------------------------------------------------------------------

    def _on_job(self, event_type: str, job: dict) -> None:
        if event_type != "DELETED":
            self._sync(job["metadata"]["namespace"], job["metadata"]["name"])

    def _on_owned(self, event_type: str, obj: dict) -> None:
        labels = obj["metadata"].get("labels") or {}
        if labels.get(JOB_NAME_LABEL):
            self._sync(obj["metadata"]["namespace"], labels[JOB_NAME_LABEL])

    # -- the controller's sync ----------------------------------------------------------------

    def _sync(self, namespace: str, name: str) -> None:
        with self._lock:
            job = self.rest.read(API_VERSION, "MPIJob", name, namespace)
            if job is None or job["metadata"].get("deletionTimestamp"):
                return
            conditions = self._conditions(job)
            if not conditions:
                self._set_condition(job, "Created", "MPIJobCreated", f"MPIJob {namespace}/{name} is created.")
            if any(conditions.get(k, {}).get("status") == "True" for k in ("Succeeded", "Failed")):
                self._clean_workers(job)
                return
            launcher = self.rest.read("batch/v1", "Job", f"{name}-launcher", namespace)
            if launcher is None or not _finished(launcher):
                self._ensure(self._service(job))
                self._ensure(self._config_map(job))
                self._ensure_secret(job)
                workers = [self._ensure(self._worker(job, i)) for i in range(_workers(job))]
                if launcher is None and (job["spec"].get("launcherCreationPolicy") != "WaitForWorkersReady"
                                         or all(_ready(w) for w in workers)):
                    launcher = self._ensure(self._launcher(job))
            self._update_status(job, launcher)

    def _update_status(self, job: dict, launcher: dict | None) -> None:
        metadata = job["metadata"]
        where = f"{metadata['namespace']}/{metadata['name']}"
        if launcher is None:
            return
        if _condition(launcher, "Complete"):
            self._set_condition(job, "Succeeded", "MPIJobSucceeded", f"MPIJob {where} successfully completed.")
            self._clean_workers(job)
            return
        failed = _condition(launcher, "Failed")
        if failed:
            self._set_condition(job, "Failed", failed.get("reason") or "MPIJobFailed",
                                failed.get("message") or f"MPIJob {where} has failed")
            self._clean_workers(job)
            return
        pods = self.rest.list("v1", "Pod", metadata["namespace"],
                              labelSelector=f"{JOB_NAME_LABEL}={metadata['name']}")["items"]
        running = {p["metadata"]["labels"].get(ROLE_LABEL) for p in pods
                   if (p.get("status") or {}).get("phase") == "Running"}
        workers_running = sum(1 for p in pods if p["metadata"]["labels"].get(ROLE_LABEL) == "worker"
                              and (p.get("status") or {}).get("phase") == "Running")
        if "launcher" in running and workers_running == _workers(job) and "Running" not in self._conditions(job):
            self._set_condition(job, "Running", "MPIJobRunning", f"MPIJob {where} is running.")

    def _clean_workers(self, job: dict) -> None:
        policy = job["spec"].get("runPolicy", {}).get("cleanPodPolicy", "None")
        if policy not in ("Running", "All"):
            return
        metadata = job["metadata"]
        for i in range(_workers(job)):
            pod = self.rest.read("v1", "Pod", f"{metadata['name']}-worker-{i}", metadata["namespace"])
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                continue
            if policy == "Running" and (pod.get("status") or {}).get("phase") not in ("Running", "Pending"):
                continue
            self.rest.delete("v1", "Pod", pod["metadata"]["name"], metadata["namespace"])

    # -- what it makes ----------------------------------------------------------------------------

    def _ensure(self, obj: dict) -> dict:
        metadata = obj["metadata"]
        existing = self.rest.read(obj["apiVersion"], obj["kind"], metadata["name"], metadata["namespace"])
        if existing is not None:
            return existing
        try:
            return self.rest.create(obj)
        except KubeError as exc:
            if exc.status != 409:
                raise
            return self.rest.read(obj["apiVersion"], obj["kind"], metadata["name"], metadata["namespace"]) or obj

    def _service(self, job: dict) -> dict:
        metadata = job["metadata"]
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                             "labels": {"app": metadata["name"]}, "ownerReferences": _owner(job)},
                "spec": {"clusterIP": "None", "selector": {OPERATOR_LABEL: "mpi-operator",
                                                           JOB_NAME_LABEL: metadata["name"]}}}

    def _config_map(self, job: dict) -> dict:
        metadata = job["metadata"]
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": f"{metadata['name']}-config", "namespace": metadata["namespace"],
                             "labels": {"app": metadata["name"]}, "ownerReferences": _owner(job)},
                "data": {"hostfile": hostfile(job)}}

    def _ensure_secret(self, job: dict) -> None:
        metadata = job["metadata"]
        name = f"{metadata['name']}-ssh"
        if self.rest.read("v1", "Secret", name, metadata["namespace"]) is not None:
            return
        private, public = _ssh_keys()
        self._ensure({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/ssh-auth",
                      "metadata": {"name": name, "namespace": metadata["namespace"],
                                   "labels": {"app": metadata["name"]}, "ownerReferences": _owner(job)},
                      "data": {"ssh-privatekey": base64.b64encode(private).decode(),
                               "ssh-publickey": base64.b64encode(public).decode()}})

    def _pod_spec(self, job: dict, replica_type: str, role: str, hostname: str) -> tuple[dict, dict]:
        """(labels, pod spec) of a replica: the template's, with the operator's labels, host
        name, env and SSH volume."""
        metadata, spec = job["metadata"], job["spec"]
        replica = spec["mpiReplicaSpecs"][replica_type]
        template = replica["template"]
        labels = {**(template.get("metadata") or {}).get("labels", {}), OPERATOR_LABEL: "mpi-operator",
                  JOB_NAME_LABEL: metadata["name"], ROLE_LABEL: role}
        pod_spec = dict(template["spec"])
        pod_spec.update(hostname=hostname, subdomain=metadata["name"])
        pod_spec["restartPolicy"] = "Never" if replica.get("restartPolicy", "Never") in ("Never", "ExitCode") \
            else replica["restartPolicy"]
        containers = [dict(c) for c in pod_spec["containers"]]
        first = containers[0]
        first["env"] = list(first.get("env") or []) + [{"name": "K_MPI_JOB_ROLE", "value": role}]
        first["volumeMounts"] = list(first.get("volumeMounts") or []) + [
            {"name": "ssh-auth", "mountPath": spec.get("sshAuthMountPath", "/root/.ssh")}]
        pod_spec["containers"] = containers
        pod_spec["volumes"] = list(pod_spec.get("volumes") or []) + [{"name": "ssh-auth", "secret": {
            "secretName": f"{metadata['name']}-ssh", "items": [
                {"key": "ssh-privatekey", "path": "id_rsa"}, {"key": "ssh-publickey", "path": "id_rsa.pub"},
                {"key": "ssh-publickey", "path": "authorized_keys"}]}}]
        return labels, pod_spec

    def _worker(self, job: dict, index: int) -> dict:
        metadata = job["metadata"]
        name = f"{metadata['name']}-worker-{index}"
        labels, pod_spec = self._pod_spec(job, "Worker", "worker", name)
        labels[INDEX_LABEL] = str(index)
        first = pod_spec["containers"][0]
        if not first.get("command") and not first.get("args"):
            first["command"] = ["/usr/sbin/sshd", "-De"]
        template = job["spec"]["mpiReplicaSpecs"]["Worker"]["template"]
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": metadata["namespace"], "labels": labels,
                             "annotations": (template.get("metadata") or {}).get("annotations", {}),
                             "ownerReferences": _owner(job)},
                "spec": pod_spec}

    def _launcher(self, job: dict) -> dict:
        metadata, spec = job["metadata"], job["spec"]
        name = f"{metadata['name']}-launcher"
        labels, pod_spec = self._pod_spec(job, "Launcher", "launcher", name)
        first = pod_spec["containers"][0]
        first["env"] += [{"name": "OMPI_MCA_orte_keep_fqdn_hostnames", "value": "true"},
                         {"name": "OMPI_MCA_orte_default_hostfile", "value": f"{CONFIG_MOUNT}/hostfile"},
                         {"name": "OMPI_MCA_plm_rsh_args", "value": "-o ConnectionAttempts=10"},
                         {"name": "OMPI_MCA_orte_set_default_slots", "value": str(spec.get("slotsPerWorker", 1))}]
        if not spec.get("runLauncherAsWorker"):  # the launcher holds no GPU of the job's
            first["env"] += [{"name": "NVIDIA_VISIBLE_DEVICES", "value": ""},
                             {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": ""}]
        first["volumeMounts"] = first["volumeMounts"] + [{"name": "mpi-job-config", "mountPath": CONFIG_MOUNT}]
        pod_spec["volumes"] = pod_spec["volumes"] + [{"name": "mpi-job-config", "configMap": {
            "name": f"{metadata['name']}-config", "items": [{"key": "hostfile", "path": "hostfile", "mode": 0o444}]}}]
        template = spec["mpiReplicaSpecs"]["Launcher"]["template"]
        run_policy = spec.get("runPolicy") or {}
        job_spec = {"template": {"metadata": {"labels": labels,
                                              "annotations": (template.get("metadata") or {}).get("annotations", {})},
                                 "spec": pod_spec}}
        for theirs, ours in (("backoffLimit", "backoffLimit"), ("activeDeadlineSeconds", "activeDeadlineSeconds"),
                             ("ttlSecondsAfterFinished", "ttlSecondsAfterFinished")):
            if run_policy.get(theirs) is not None:
                job_spec[ours] = run_policy[theirs]
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": metadata["namespace"],
                             "labels": {"app": metadata["name"], OPERATOR_LABEL: "mpi-operator",
                                        JOB_NAME_LABEL: metadata["name"]},
                             "ownerReferences": _owner(job)},
                "spec": job_spec}

    # -- conditions -----------------------------------------------------------------------------

    @staticmethod
    def _conditions(job: dict) -> dict[str, dict]:
        return {c["type"]: c for c in (job.get("status") or {}).get("conditions") or []}

    def _set_condition(self, job: dict, kind: str, reason: str, message: str) -> None:
        metadata = job["metadata"]
        current = self.rest.read(API_VERSION, "MPIJob", metadata["name"], metadata["namespace"])
        if current is None:
            return
        conditions = [c for c in (current.get("status") or {}).get("conditions") or [] if c["type"] != kind]
        if kind in ("Succeeded", "Failed"):
            conditions = [dict(c, status="False") if c["type"] == "Running" else c for c in conditions]
        conditions.append({"type": kind, "status": "True", "reason": reason, "message": message,
                           "lastUpdateTime": _now(), "lastTransitionTime": _now()})
        status = {"conditions": conditions}
        if kind in ("Succeeded", "Failed"):
            status["completionTime"] = _now()
        self.rest.merge_patch(API_VERSION, "MPIJob", metadata["name"], {"status": status}, metadata["namespace"],
                              subresource="status")
        job.setdefault("status", {})["conditions"] = conditions


def _condition(job: dict, kind: str) -> dict | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def _finished(job: dict) -> bool:
    return bool(_condition(job, "Complete") or _condition(job, "Failed"))


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])
