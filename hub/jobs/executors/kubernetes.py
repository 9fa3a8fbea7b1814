"""The Kubernetes executor: each attempt is a batch/v1 Job (built by `astrago.hub.jobs.manifests`).

Kubernetes places and runs it (the scheduler and NVIDIA's device plugin bind the slice); the
service creates the Job, follows its pod's log into the job's log file (so the API streams
logs the same way in both modes), reads the exit code from the pod's terminated container,
and deletes the Job (with its pods) on cancel or timeout. After a restart the Job is found
again by name; one that is gone is FAILED with the reason.

A distributed attempt is a Kubeflow PyTorchJob (framework pytorch) or MPIJob (framework mpi,
the MPI Operator v2) instead, through the custom-objects API: its Succeeded or Failed
condition ends it; rank 0 (the PyTorchJob's master, the MPIJob's launcher) gives the job's log
and exit code, and every other replica's log is followed into its own file (`replica` of the
log API).
"""
from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timezone

from ...service.interfaces.admission import replica_placements
from ..manifests import (CONTAINER, MPI_CONTAINER, MPI_JOB_GROUP, MPI_JOB_PLURAL, MPI_JOB_VERSION, PYTORCH_CONTAINER,
                         PYTORCH_JOB_GROUP, PYTORCH_JOB_PLURAL, PYTORCH_JOB_VERSION, REPLICA_INDEX_LABEL,
                         REPLICA_LABEL, job_manifest, job_name, mpi_job_manifest, pytorch_job_manifest,
                         user_claim_name)
from .base import Executor, ExecutorError, Exit, JobRun, Launch, notebook_output_path

log = logging.getLogger("astrago.jobs")


class KubernetesExecutor(Executor):
    """Jobs as batch/v1 Jobs (or PyTorchJobs) in the service's namespace (the cluster mode's executor)."""

    name = "kubernetes"
    runs_in_containers = True

    def __init__(self, settings, api_client=None, **kwargs):
        super().__init__(settings, **kwargs)
        self._api_client = api_client
        self._followers: dict[tuple, asyncio.Task] = {}  # (marker, rank) -> the task copying that log
        self._copied: set[tuple] = set()  # (marker, rank) whose pod's log was copied to its end

    async def api(self):
        if self._api_client is None:
            from kubernetes_asyncio import client, config as kube_config

            try:
                kube_config.load_incluster_config()
            except kube_config.ConfigException:
                await kube_config.load_kube_config()
            self._api_client = client.ApiClient()
        return self._api_client

    async def _batch(self):
        from kubernetes_asyncio import client

        return client.BatchV1Api(await self.api())

    async def _custom(self):
        from kubernetes_asyncio import client

        return client.CustomObjectsApi(await self.api())

    async def _core(self):
        from kubernetes_asyncio import client

        return client.CoreV1Api(await self.api())

    def home_of(self, user: str) -> str:
        """Every job pod mounts its owner's storage at the same place."""
        return self.settings.home_mount_path

    def home_claim(self, owner: str) -> str:
        """The user's volume as KubeSpawner named it, with the hub's KubeSpawner.slug_scheme
        (JobsConfig.slug_scheme; hub/cluster.py passes it as $ASTRAGO_SLUG_SCHEME)."""
        template = self.settings.home_claim_template
        if not template:
            return ""
        return user_claim_name(template, owner, slug_scheme=self.settings.slug_scheme)

    def manifest(self, run: JobRun, output: str) -> dict:
        """The batch/v1 Job, or the PyTorchJob or MPIJob when `run` is distributed. A job that names no
        image runs JobsConfig.image (in cluster mode the hub's single-user image, set by hub/cluster.py).
        The GPU model pinned is the one every replica was admitted on (none when they differ)."""
        c = self.settings
        models = {p.get("model") for p in replica_placements(run.placement)}
        model = models.pop() if len(models) == 1 else None
        common = dict(namespace=c.namespace, image=run.image or c.image, model=model,
                      strategy=c.mig_strategy, service_account=c.service_account, run_as_uid=c.run_as_uid,
                      run_as_gid=c.run_as_gid, home_claim=self.home_claim(run.owner),
                      home_mount_path=c.home_mount_path, ttl_seconds_after_finished=c.ttl_seconds_after_finished,
                      node_selector=dict(c.node_selector), extra_labels=dict(c.extra_labels),
                      image_pull_secrets=list(c.image_pull_secrets))
        kind = kind_of(run)
        if kind == "MPIJob":
            return mpi_job_manifest(run, **common, launcher_command=list(c.mpi_launcher_command),
                                    worker_command=list(c.mpi_worker_command))
        if kind == "PyTorchJob":
            return pytorch_job_manifest(run, **common)
        return job_manifest(run, output=output, **common)

    def _custom_args(self, run: JobRun) -> dict:
        group, version, plural = _CUSTOM[kind_of(run)][:3]
        return {"group": group, "version": version, "namespace": self.settings.namespace, "plural": plural}

    async def start(self, run: JobRun) -> Launch:
        from kubernetes_asyncio.client.exceptions import ApiException

        output = notebook_output_path(run.input, datetime.now(timezone.utc)) if run.kind == "notebook" else ""
        manifest = self.manifest(run, output)
        self.log_path(run).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        kind = kind_of(run)
        what = {"Job": "job", "PyTorchJob": "PyTorchJob (is the Kubeflow training operator installed?)",
                "MPIJob": "MPIJob (is Kubeflow's MPI Operator v2 installed?)"}[kind]
        try:
            if run.distributed:
                await (await self._custom()).create_namespaced_custom_object(body=manifest, **self._custom_args(run))
            else:
                await (await self._batch()).create_namespaced_job(self.settings.namespace, manifest)
        except ApiException as exc:
            # 409: this attempt's object exists already (created before a crash, not yet recorded):
            # adopt it when it is this job's attempt, so a restart never fails nor runs it twice
            if exc.status != 409 or not await self._is_this_attempt(run, manifest["metadata"]["name"]):
                raise ExecutorError(f"Kubernetes refused the {what}: {exc.status} {exc.reason}") from None
        process = {"namespace": self.settings.namespace, "name": manifest["metadata"]["name"]}
        if run.distributed:
            process["kind"] = kind
        self._follow(run)
        return Launch(process=process, log_path=str(self.log_path(run)), outputs=[output] if output else [])

    async def _is_this_attempt(self, run: JobRun, name: str) -> bool:
        """Whether the existing object `name` carries this job's id and attempt labels."""
        if run.distributed:
            existing = await (await self._custom()).get_namespaced_custom_object(name=name, **self._custom_args(run))
            labels = (existing.get("metadata") or {}).get("labels") or {}
        else:
            existing = await (await self._batch()).read_namespaced_job(name, self.settings.namespace)
            labels = existing.metadata.labels or {}
        return labels.get("astrago.io/job-id") == run.id and labels.get("astrago.io/attempt") == str(run.attempt)

    # -- logs -------------------------------------------------------------------

    def _follow(self, run: JobRun) -> None:
        """Follow every replica's log (one task each, kept until the attempt ends)."""
        for rank in range(run.replicas):
            task = self._followers.get((run.marker, rank))
            # a replica that ended before rank 0 has its whole log already: it is not read again
            if (run.marker, rank) not in self._copied and (task is None or task.done()):
                self._followers[(run.marker, rank)] = asyncio.get_running_loop().create_task(
                    self._stream_log(run, rank=rank))

    async def _pods(self, run: JobRun) -> dict:
        """rank -> pod of the attempt: the Job's one pod (0), or a distributed job's replicas."""
        if run.distributed:
            selector = f"astrago.io/job-id={run.id},astrago.io/attempt={run.attempt},{REPLICA_LABEL}"
        else:
            selector = f"job-name={job_name(run.id, run.attempt)}"
        pods = await (await self._core()).list_namespaced_pod(self.settings.namespace, label_selector=selector)
        ranked = {}
        for pod in pods.items:
            rank = rank_of(pod.metadata.labels or {})
            if rank is not None:
                ranked.setdefault(rank, pod)
        return ranked

    async def _pod(self, run: JobRun, rank: int = 0):
        """The pod of one replica (rank 0: the Job's pod, a PyTorchJob's master, an MPIJob's launcher)."""
        return (await self._pods(run)).get(rank)

    @staticmethod
    def _container(run: JobRun) -> str:
        return _CUSTOM[kind_of(run)][3] if run.distributed else CONTAINER

    async def _stream_log(self, run: JobRun, attempts: int = 30, retry_seconds: float = 1.0, rank: int = 0) -> None:
        """Copy a replica's pod log into its log file as it is written (from the start).

        An answer that is not the log (with `_preload_content=False` the client returns error
        answers too: an API Status saying the container is not started yet, or that its kubelet
        cannot serve the log yet) is never copied into the job's log; the log is asked for again."""
        path = self.log_path(run, rank)
        try:
            for _attempt in range(attempts):
                while True:
                    pod = await self._pod(run, rank)
                    if pod is not None and pod.status.phase in ("Running", "Succeeded", "Failed"):
                        break
                    await asyncio.sleep(retry_seconds)
                response = await (await self._core()).read_namespaced_pod_log(
                    pod.metadata.name, self.settings.namespace, container=self._container(run), follow=True,
                    _preload_content=False)
                status = getattr(response, "status", 200)
                if status != 200:
                    try:
                        body = (await response.read())[:300]
                    finally:
                        response.release()
                    log.info("the log of job %s is not readable yet (HTTP %s: %s); asking again", run.id, status,
                             body.decode(errors="replace"))
                    await asyncio.sleep(retry_seconds)
                    continue
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                try:
                    async for chunk in response.content.iter_any():
                        os.write(fd, chunk)
                finally:
                    os.close(fd)
                    response.release()
                if pod.status.phase in ("Succeeded", "Failed"):
                    self._copied.add((run.marker, rank))
                return
            log.warning("the log of job %s (replica %d) could not be read after %d tries", run.id, rank, attempts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("following the log of job %s failed: %s", run.id, exc)

    # -- watching -------------------------------------------------------------------

    async def poll(self, run: JobRun) -> Exit | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        name = run.process.get("name") or job_name(run.id, run.attempt)
        if run.distributed:
            return await self._poll_kubeflow_job(run, name)
        try:
            job = await (await self._batch()).read_namespaced_job_status(name, self.settings.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return Exit(None, f"its Kubernetes Job {name} is gone", lost=True)
            raise
        self._follow(run)
        status = job.status
        if status.succeeded:
            await self._drain(run)
            return Exit(0, "exited with code 0")
        if status.failed or any(c.type == "Failed" and c.status == "True" for c in (status.conditions or [])):
            reason = next((f"{c.reason}: {c.message}" for c in (status.conditions or [])
                           if c.type == "Failed" and c.status == "True"), "its pod failed")
            code = await self._exit_code(run)
            await self._drain(run)
            if code is None:
                return Exit(None, f"Kubernetes: {reason}")
            return Exit(code, f"exited with code {code}")
        return None

    async def _poll_kubeflow_job(self, run: JobRun, name: str) -> Exit | None:
        """A PyTorchJob or MPIJob ends with its Succeeded or Failed condition (the operator's, from
        the master or the launcher)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            job = await (await self._custom()).get_namespaced_custom_object(name=name, **self._custom_args(run))
        except ApiException as exc:
            if exc.status == 404:
                return Exit(None, f"its {kind_of(run)} {name} is gone", lost=True)
            raise
        self._follow(run)
        conditions = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []
                      if c.get("status") == "True"}
        if "Succeeded" in conditions:
            await self._drain(run)
            return Exit(0, "exited with code 0")
        if "Failed" in conditions:
            failed = conditions["Failed"]
            code = await self._exit_code(run)
            await self._drain(run)
            if code is None:
                return Exit(None, f"Kubernetes: {failed.get('reason', 'Failed')}: {failed.get('message', '')}")
            return Exit(code, f"exited with code {code}")
        return None

    async def _exit_code(self, run: JobRun) -> int | None:
        pod = await self._pod(run)
        if pod is None:
            return None
        for status in pod.status.container_statuses or []:
            if status.name == self._container(run) and status.state and status.state.terminated:
                return status.state.terminated.exit_code
        return None

    async def _drain(self, run: JobRun, timeout: float = 5.0) -> None:
        """Let the log followers copy what is left (a worker removed at the end stops its own)."""
        tasks = [self._followers.pop((run.marker, rank), None) for rank in range(run.replicas)]
        self._copied.difference_update((run.marker, rank) for rank in range(run.replicas))
        for task in filter(None, tasks):
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except (asyncio.TimeoutError, Exception):
                task.cancel()

    async def stop(self, run: JobRun) -> list[str]:
        """Delete the Job (or PyTorchJob, MPIJob) and its pods; returns pod names still there after the grace period."""
        from kubernetes_asyncio.client.exceptions import ApiException

        name = run.process.get("name") or job_name(run.id, run.attempt)
        try:
            if run.distributed:
                await (await self._custom()).delete_namespaced_custom_object(
                    name=name, propagation_policy="Foreground",
                    grace_period_seconds=int(self.settings.cancel_grace_seconds), **self._custom_args(run))
            else:
                await (await self._batch()).delete_namespaced_job(
                    name, self.settings.namespace, propagation_policy="Foreground",
                    grace_period_seconds=int(self.settings.cancel_grace_seconds))
        except ApiException as exc:
            if exc.status != 404:
                raise ExecutorError(f"Kubernetes refused to delete the job: {exc.status} {exc.reason}") from None
        self._copied.difference_update((run.marker, rank) for rank in range(run.replicas))
        for rank in range(run.replicas):
            task = self._followers.pop((run.marker, rank), None)
            if task is not None:
                task.cancel()
        deadline = asyncio.get_running_loop().time() + self.settings.cancel_grace_seconds + 30
        while True:
            pods = await self._pods(run)
            if not pods or asyncio.get_running_loop().time() > deadline:
                return sorted(p.metadata.name for p in pods.values())
            await asyncio.sleep(1.0)

    async def reattach(self, run: JobRun) -> Exit | None:
        ended = await self.poll(run)
        if ended is not None and not ended.lost:
            return Exit(ended.exit_code, f"{ended.reason}, while AstraGo was restarting")
        return ended


#: kind -> (group, version, plural, the container of its replicas)
_CUSTOM = {"PyTorchJob": (PYTORCH_JOB_GROUP, PYTORCH_JOB_VERSION, PYTORCH_JOB_PLURAL, PYTORCH_CONTAINER),
           "MPIJob": (MPI_JOB_GROUP, MPI_JOB_VERSION, MPI_JOB_PLURAL, MPI_CONTAINER)}


def kind_of(run: JobRun) -> str:
    """The Kubernetes kind an attempt runs as (pure): Job, PyTorchJob or MPIJob."""
    if not run.distributed:
        return "Job"
    return "MPIJob" if run.distributed.get("framework") == "mpi" else "PyTorchJob"


def rank_of(labels: dict) -> int | None:
    """A replica's rank from its pod's labels (pure): 0 for the Job's pod, the master or the
    launcher; 1 + the operator's replica index for a worker; None for a pod of no replica."""
    role = labels.get(REPLICA_LABEL)
    if role in (None, "master", "launcher"):
        return 0
    if role == "worker":
        try:
            return 1 + int(labels.get(REPLICA_INDEX_LABEL, ""))
        except ValueError:
            return None
    return None
