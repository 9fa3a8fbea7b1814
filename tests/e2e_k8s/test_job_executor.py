"""The Kubernetes job executor (hub/jobs/executors/kubernetes.py) against the real API server,
as the hub's service account bound only to the shipped RBAC (tests/controlplane/hub_rbac.py):
the real Job controller runs the Job (its pod's command run by the runtime double), the log
is followed through pods/log, a create repeated after a crash adopts the Job, cancel deletes
the Job and its pods (the real garbage collector), and PyTorchJobs are accepted by the API
server with the Kubeflow training operator's published CRD installed (their replicas made
and their conditions set by the training-operator double, tests/controlplane/training_operator.py),
and MPIJobs with the MPI Operator v2's published CRD (their launcher Job and workers made by the
MPI-operator double, tests/controlplane/mpi_operator.py); every replica's log reaches its file."""
import asyncio
import secrets
from dataclasses import replace
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config as kube_config

from astrago.hub.jobs.config import JobsConfig
from astrago.hub.jobs.executors.base import ExecutorError, JobRun
from astrago.hub.jobs.executors.kubernetes import KubernetesExecutor
from controlplane.hub_rbac import RELEASE_NAMESPACE, hub_service_account_kubeconfig

RUN = JobRun(id="", owner="ann", attempt=1, kind="command", name="train", input="", code="",
             command="echo epoch 1; echo epoch 2", parameters={}, workdir="/home/jovyan", slice="cpu", cpu=1,
             memory_gib=1, image="", env={}, placement={}, max_runtime_s=600, started_at=None)


@pytest.fixture(scope="module")
def hub_kubeconfig(control_plane):
    path = hub_service_account_kubeconfig(control_plane)
    control_plane.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "metadata": {"name": "claim-ann", "namespace": RELEASE_NAMESPACE},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    return path


#: no mpirun here (the runtime double mounts no hostfile): the launcher runs the job as rank 0
#: itself, the workers say who they are and wait to be removed, as sshd would
MPI_SETTINGS = {"mpi_launcher_command": [],
                "mpi_worker_command": ["/bin/sh", "-c", "echo worker $K_MPI_JOB_ROLE $ASTRAGO_JOB_REPLICA up; "
                                       "exec sleep 600"]}


async def _executor(hub_kubeconfig, tmp_path, **settings):
    configuration = client.Configuration()
    await kube_config.load_kube_config(config_file=str(hub_kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    jobs_config = JobsConfig(namespace=RELEASE_NAMESPACE, data_dir=str(tmp_path), cancel_grace_seconds=2,
                             image="astrago/singleuser:test", home_claim_template="claim-{username}", **settings)
    return KubernetesExecutor(jobs_config, api_client=api), api


@pytest.fixture
async def executor(hub_kubeconfig, tmp_path):
    executor, api = await _executor(hub_kubeconfig, tmp_path, **MPI_SETTINGS)
    yield executor
    for task in executor._followers.values():
        task.cancel()
    await api.close()


def lost_fields(sent, stored, path="spec") -> list[str]:
    """Paths of `sent` that `stored` does not have with the same value."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        return [p for key, value in sent.items()
                for p in (lost_fields(value, stored[key], f"{path}.{key}") if key in stored else [f"{path}.{key}"])]
    if isinstance(sent, list) and isinstance(stored, list) and len(sent) == len(stored):
        return [p for i, (a, b) in enumerate(zip(sent, stored)) for p in lost_fields(a, b, f"{path}[{i}]")]
    return [] if sent == stored else [path]


def new_run(**changes) -> JobRun:
    return replace(RUN, id=secrets.token_hex(6), **changes)


async def until_ended(executor, run, timeout=90):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ended = await executor.poll(run)
        if ended is not None:
            return ended
        assert asyncio.get_running_loop().time() < deadline, "the job did not end"
        await asyncio.sleep(0.5)


async def launched(executor, run):
    launch = await executor.start(run)
    return replace(run, process=launch.process, log_path=launch.log_path), launch


async def test_a_job_runs_to_completion_and_its_log_reaches_the_job(executor, control_plane):
    run, launch = await launched(executor, new_run())
    name = f"astrago-job-{run.id}-1"
    assert launch.process == {"namespace": RELEASE_NAMESPACE, "name": name}
    job = control_plane.rest.read("batch/v1", "Job", name, RELEASE_NAMESPACE)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "astrago.hub.jobs.runner"]
    ended = await until_ended(executor, run)
    assert (ended.exit_code, ended.lost) == (0, False)
    complete = control_plane.rest.read("batch/v1", "Job", name, RELEASE_NAMESPACE)["status"]
    assert complete["succeeded"] == 1
    log = Path(launch.log_path).read_text()
    # stdout and stderr are two streams (the runner's own lines are on the other one): order per stream
    assert "epoch 1\n" in log and "epoch 2\n" in log and log.index("epoch 1\n") < log.index("epoch 2\n"), log


async def test_a_failing_job_reports_its_exit_code(executor):
    run, _ = await launched(executor, new_run(command="echo bad input >&2; exit 3"))
    ended = await until_ended(executor, run)
    assert (ended.exit_code, ended.reason) == (3, "exited with code 3")


async def test_a_create_repeated_after_a_crash_adopts_the_existing_job(executor, control_plane):
    """The service created the Job and crashed before recording it; on restart it starts the
    attempt again: the API server answers 409 AlreadyExists, which is not a failure."""
    run = new_run()
    first = await executor.start(run)
    again = await executor.start(run)
    assert again.process == first.process
    jobs = control_plane.rest.list("batch/v1", "Job", RELEASE_NAMESPACE,
                                   labelSelector=f"astrago.io/job-id={run.id}")["items"]
    assert len(jobs) == 1
    ended = await until_ended(executor, replace(run, process=again.process, log_path=again.log_path))
    assert ended.exit_code == 0


async def test_cancel_deletes_the_job_and_its_pods(executor, control_plane):
    run, _ = await launched(executor, new_run(command="echo started; sleep 600"))
    selector = f"job-name=astrago-job-{run.id}-1"

    def running_process():
        pods = control_plane.rest.list("v1", "Pod", RELEASE_NAMESPACE, labelSelector=selector)["items"]
        return pods and control_plane.runtime.container_of(RELEASE_NAMESPACE, pods[0]["metadata"]["name"])

    container = await asyncio.to_thread(control_plane.wait_for, running_process, "the job's process running")
    assert await executor.stop(run) == []
    assert control_plane.rest.list("v1", "Pod", RELEASE_NAMESPACE, labelSelector=selector)["items"] == []
    # foreground deletion: the garbage collector removes the Job once its pods are gone
    await asyncio.to_thread(control_plane.wait_for, lambda: control_plane.rest.read(
        "batch/v1", "Job", f"astrago-job-{run.id}-1", RELEASE_NAMESPACE) is None, "the Job deleted")
    await asyncio.to_thread(control_plane.wait_for, lambda: container.process.poll() is not None,
                            "the job's process ended")
    gone = await executor.reattach(run)
    assert gone.lost and "is gone" in gone.reason


def distributed_run(command):
    return new_run(slice="gpu-1", distributed={"framework": "pytorch", "workers": 2}, command=command)


async def test_a_pytorch_job_is_accepted_whole_runs_and_its_masters_log_and_code_count(executor, control_plane):
    run, launch = await launched(executor, distributed_run("echo rank $RANK of $WORLD_SIZE: epoch 1"))
    name = launch.process["name"]
    assert launch.process == {"namespace": RELEASE_NAMESPACE, "name": name, "kind": "PyTorchJob"}
    stored = control_plane.rest.read("kubeflow.org/v1", "PyTorchJob", name, RELEASE_NAMESPACE)
    # the CRD's structural schema prunes fields it does not know: nothing we send may be lost
    # (it may add its defaults, such as runPolicy.suspend)
    assert lost_fields(executor.manifest(run, "")["spec"], stored["spec"]) == []
    assert stored["spec"]["runPolicy"]["suspend"] is False
    ended = await until_ended(executor, run)
    assert (ended.exit_code, ended.lost) == (0, False)
    assert "rank 0 of 3: epoch 1\n" in Path(launch.log_path).read_text()  # the master's log
    for rank in (1, 2):  # and each worker's, beside it
        assert f"rank {rank} of 3: epoch 1\n" in executor.log_path(run, rank).read_text()
    pods = control_plane.rest.list("v1", "Pod", RELEASE_NAMESPACE,
                                   labelSelector=f"training.kubeflow.org/job-name={name}")["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == [f"{name}-master-0", f"{name}-worker-0", f"{name}-worker-1"]
    assert {p["spec"]["nodeName"] for p in pods} <= {"gpu-a100-1", "gpu-h200-1"}  # whole GPUs, no sharing


async def test_a_failing_pytorch_job_reports_the_masters_exit_code(executor):
    run, _ = await launched(executor, distributed_run("exit 2"))
    ended = await until_ended(executor, run)
    assert (ended.exit_code, ended.reason) == (2, "exited with code 2")


async def test_cancel_deletes_the_pytorch_job_and_its_pods(executor, control_plane):
    run, launch = await launched(executor, distributed_run("sleep 600"))
    name = launch.process["name"]
    selector = f"training.kubeflow.org/job-name={name}"

    def all_running():
        pods = control_plane.rest.list("v1", "Pod", RELEASE_NAMESPACE, labelSelector=selector)["items"]
        return len(pods) == 3 and all(control_plane.runtime.container_of(RELEASE_NAMESPACE, p["metadata"]["name"])
                                      for p in pods)

    await asyncio.to_thread(control_plane.wait_for, all_running, "the three replicas running")
    assert await executor.stop(run) == []
    await asyncio.to_thread(control_plane.wait_for, lambda: control_plane.rest.read(
        "kubeflow.org/v1", "PyTorchJob", name, RELEASE_NAMESPACE) is None, "the PyTorchJob deleted")
    await asyncio.to_thread(control_plane.wait_for, lambda: not control_plane.rest.list(
        "v1", "Pod", RELEASE_NAMESPACE, labelSelector=selector)["items"], "its pods deleted")
    gone = await executor.reattach(run)
    assert gone.lost and f"PyTorchJob {name} is gone" in gone.reason


async def test_a_pytorch_job_the_crd_schema_refuses_is_an_executor_error(executor, control_plane):
    run = new_run(slice="gpu-1", distributed={"framework": "pytorch", "workers": 2})
    original = executor.manifest

    def broken(run, output):
        manifest = original(run, output)
        manifest["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = "two"
        return manifest

    executor.manifest = broken
    with pytest.raises(ExecutorError, match="Kubernetes refused the PyTorchJob"):
        await executor.start(run)


def mpi_run(command, slice_name="1g.10gb"):
    return new_run(slice=slice_name, distributed={"framework": "mpi", "workers": 2}, command=command)


async def test_an_mpi_job_is_accepted_whole_its_launcher_runs_to_completion_and_workers_go(executor, control_plane):
    """3 replicas on MIG slices: a launcher (a worker too) and 2 workers, each asking for one
    1g.10gb; the real Job controller runs the launcher's Job, the MPIJob succeeds from it, and
    the workers still running are removed (cleanPodPolicy Running)."""
    run, launch = await launched(executor, mpi_run("echo launcher rank $ASTRAGO_JOB_REPLICA of "
                                                   "$ASTRAGO_JOB_REPLICAS; cat $OMPI_MCA_orte_default_hostfile "
                                                   "2>/dev/null || echo hostfile at $OMPI_MCA_orte_default_hostfile"))
    name = launch.process["name"]
    assert launch.process == {"namespace": RELEASE_NAMESPACE, "name": name, "kind": "MPIJob"}
    stored = control_plane.rest.read("kubeflow.org/v2beta1", "MPIJob", name, RELEASE_NAMESPACE)
    assert lost_fields(executor.manifest(run, "")["spec"], stored["spec"]) == []  # nothing pruned
    selector = f"training.kubeflow.org/job-name={name}"

    def workers():
        return control_plane.rest.list("v1", "Pod", RELEASE_NAMESPACE,
                                       labelSelector=f"{selector},training.kubeflow.org/job-role=worker")["items"]

    await asyncio.to_thread(control_plane.wait_for, lambda: len(workers()) == 2, "the MPI operator's two workers")
    assert sorted(p["metadata"]["name"] for p in workers()) == [f"{name}-worker-0", f"{name}-worker-1"]
    for pod in workers():
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    ended = await until_ended(executor, run)
    assert (ended.exit_code, ended.lost) == (0, False)
    log = Path(launch.log_path).read_text()
    assert "launcher rank launcher of 3\n" in log and "hostfile at /etc/mpi/hostfile" in log, log
    hostfile = control_plane.rest.read("v1", "ConfigMap", f"{name}-config", RELEASE_NAMESPACE)["data"]["hostfile"]
    assert hostfile == "".join(f"{name}-{host}.{name}.{RELEASE_NAMESPACE}.svc slots=1\n"
                               for host in ("launcher", "worker-0", "worker-1"))
    for rank in (1, 2):
        assert "worker worker worker up\n" in executor.log_path(run, rank).read_text()
    launcher = control_plane.rest.read("batch/v1", "Job", f"{name}-launcher", RELEASE_NAMESPACE)
    assert launcher["status"]["succeeded"] == 1
    assert launcher["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    await asyncio.to_thread(control_plane.wait_for, lambda: not workers(), "the running workers removed")
    assert not control_plane.mpi_operator.jobs.errors and not control_plane.mpi_operator.pods.errors


async def test_a_failing_mpi_job_reports_the_launchers_exit_code(executor):
    run, _ = await launched(executor, mpi_run("echo bad >&2; exit 4", slice_name="cpu"))
    ended = await until_ended(executor, run)
    assert (ended.exit_code, ended.reason) == (4, "exited with code 4")


async def test_cancel_deletes_the_mpi_job_its_launcher_and_workers(executor, control_plane):
    run, launch = await launched(executor, mpi_run("sleep 600", slice_name="cpu"))
    name = launch.process["name"]
    selector = f"training.kubeflow.org/job-name={name}"

    def all_running():
        pods = control_plane.rest.list("v1", "Pod", RELEASE_NAMESPACE, labelSelector=selector)["items"]
        return len(pods) == 3 and all(control_plane.runtime.container_of(RELEASE_NAMESPACE, p["metadata"]["name"])
                                      for p in pods)

    await asyncio.to_thread(control_plane.wait_for, all_running, "the launcher and two workers running")
    assert await executor.stop(run) == []
    await asyncio.to_thread(control_plane.wait_for, lambda: control_plane.rest.read(
        "kubeflow.org/v2beta1", "MPIJob", name, RELEASE_NAMESPACE) is None, "the MPIJob deleted")
    await asyncio.to_thread(control_plane.wait_for, lambda: not control_plane.rest.list(
        "v1", "Pod", RELEASE_NAMESPACE, labelSelector=selector)["items"], "its pods deleted")
    gone = await executor.reattach(run)
    assert gone.lost and f"MPIJob {name} is gone" in gone.reason
