"""Cluster mode: batch/v1 Job and Kubeflow PyTorchJob manifests (exact, and valid for the target
Kubernetes version), and the Kubernetes executor against `FakeKubernetesAPI`, a named test double of the API server
(no Kubernetes API server runs here; kubernetes_asyncio talks real HTTP to the double)."""
import asyncio
import json
import socket
from dataclasses import replace
from pathlib import Path

import kubernetes_validate
import pytest
from tornado import web
from tornado.httpserver import HTTPServer

from astrago.hub.jobs.config import JobsConfig
from astrago.hub.jobs.executors.base import JobRun
from astrago.hub.jobs.executors.kubernetes import KubernetesExecutor
from astrago.hub.jobs.manifests import job_manifest, label_value, pytorch_job_manifest, quantity_cpu, quantity_memory
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


# -- the executor against a test double of the Kubernetes API ------------------------------

OPERATOR_JOB_LABEL = "training.kubeflow.org/job-name"  # what the training operator puts on a PyTorchJob's pods


class FakeKubernetesAPI:
    """A TEST DOUBLE of the Kubernetes API server: the few batch/v1, kubeflow.org/v1 (PyTorchJob
    custom objects) and core/v1 endpoints the executor uses (create/read/delete Jobs and
    PyTorchJobs, list pods by label, follow a pod's log), with a pod lifecycle the test drives
    (`run_pod`, `log`, `finish` act on a Job's pod or a PyTorchJob's master). Not a Kubernetes,
    and no training operator: it makes a PyTorchJob's replica pods at once and sets its
    conditions only when the test calls `finish`."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.created: list[dict] = []
        self.deleted: list[tuple[str, dict]] = []
        self.logs: dict[str, asyncio.Queue] = {}
        self.main_pod: dict[str, str] = {}  # Job or PyTorchJob name -> the pod whose log and exit code count
        self.port = None

    def _add_pod(self, ns, pod, labels, container):
        self.pods[pod] = {"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": pod, "namespace": ns, "labels": labels},
                          "spec": {"containers": [{"name": container, "image": "i"}]},
                          "status": {"phase": "Pending"}}
        self.logs[pod] = asyncio.Queue()

    def _delete_pods_of(self, name):
        for pod in [p for p, v in self.pods.items() if name in (v["metadata"]["labels"].get("job-name"),
                                                                 v["metadata"]["labels"].get(OPERATOR_JOB_LABEL))]:
            self.pods.pop(pod)
            self.logs[pod].put_nowait(None)

    def app(self):
        api = self

        class Jobs(web.RequestHandler):
            def post(self, ns):
                body = json.loads(self.request.body)
                api.created.append(body)
                name = body["metadata"]["name"]
                api.jobs[name] = {**body, "status": {}}
                pod = f"{name}-x7k2p"
                api._add_pod(ns, pod, {"job-name": name}, "job")
                api.main_pod[name] = pod
                self.set_status(201)
                self.write(api.jobs[name])

        class Job(web.RequestHandler):
            def get(self, ns, name):
                if name not in api.jobs:
                    self.set_status(404)
                    self.write({"kind": "Status", "code": 404, "reason": "NotFound"})
                    return
                self.write(api.jobs[name])

            def delete(self, ns, name):
                options = json.loads(self.request.body or b"{}")
                options.update({k: self.get_argument(k) for k in self.request.arguments})
                api.deleted.append((name, options))
                api.jobs.pop(name, None)
                api._delete_pods_of(name)
                self.write({"kind": "Status", "status": "Success"})

        class PyTorchJobs(web.RequestHandler):
            def post(self, ns):
                body = json.loads(self.request.body)
                assert body["apiVersion"] == "kubeflow.org/v1" and body["kind"] == "PyTorchJob"
                api.created.append(body)
                name = body["metadata"]["name"]
                api.jobs[name] = {**body, "status": {}}
                for replica_type, replica in body["spec"]["pytorchReplicaSpecs"].items():
                    for index in range(replica["replicas"]):
                        pod = f"{name}-{replica_type.lower()}-{index}"
                        labels = {**replica["template"]["metadata"]["labels"], OPERATOR_JOB_LABEL: name}
                        api._add_pod(ns, pod, labels, replica["template"]["spec"]["containers"][0]["name"])
                api.main_pod[name] = f"{name}-master-0"
                self.set_status(201)
                self.write(api.jobs[name])

        class PyTorchJob(Job):
            def get(self, ns, name):
                if name not in api.jobs or api.jobs[name]["kind"] != "PyTorchJob":
                    self.set_status(404)
                    self.write({"kind": "Status", "code": 404, "reason": "NotFound"})
                    return
                self.write(api.jobs[name])

        class Pods(web.RequestHandler):
            def get(self, ns):
                selector = self.get_argument("labelSelector", "")
                wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
                items = [p for p in api.pods.values()
                         if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())]
                self.write({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

        class Log(web.RequestHandler):
            async def get(self, ns, pod):
                container = api.pods[pod]["spec"]["containers"][0]["name"]
                assert self.get_argument("container") == container and self.get_argument("follow").lower() == "true"
                queue = api.logs[pod]
                while True:
                    chunk = await queue.get()
                    if chunk is None:
                        break
                    self.write(chunk)
                    try:
                        await self.flush()
                    except Exception:  # the follower went away
                        return

        return web.Application([
            (r"/apis/batch/v1/namespaces/([^/]+)/jobs", Jobs),
            (r"/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)(?:/status)?", Job),
            (r"/apis/kubeflow.org/v1/namespaces/([^/]+)/pytorchjobs", PyTorchJobs),
            (r"/apis/kubeflow.org/v1/namespaces/([^/]+)/pytorchjobs/([^/]+)(?:/status)?", PyTorchJob),
            (r"/api/v1/namespaces/([^/]+)/pods", Pods),
            (r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log", Log),
        ])

    def start(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = HTTPServer(self.app())
        self.server.listen(self.port, "127.0.0.1")
        return f"http://127.0.0.1:{self.port}"

    def run_pod(self, job):
        self.pods[self.main_pod[job]]["status"] = {"phase": "Running"}

    def log(self, job, text):
        self.logs[self.main_pod[job]].put_nowait(text.encode())

    def finish(self, job, exit_code):
        pod = self.pods[self.main_pod[job]]
        pod["status"] = {"phase": "Succeeded" if exit_code == 0 else "Failed", "containerStatuses": [{
            "name": pod["spec"]["containers"][0]["name"], "ready": False, "restartCount": 0, "image": "i",
            "imageID": "",
            "state": {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}}}]}
        self.logs[self.main_pod[job]].put_nowait(None)
        if self.jobs[job]["kind"] == "PyTorchJob":  # the training operator's conditions
            ended = ("Succeeded", "PyTorchJobSucceeded") if exit_code == 0 else ("Failed", "PyTorchJobFailed")
            self.jobs[job]["status"] = {"conditions": [
                {"type": "Created", "status": "True", "reason": "PyTorchJobCreated"},
                {"type": "Running", "status": "False", "reason": "PyTorchJobRunning"},
                {"type": ended[0], "status": "True", "reason": ended[1], "message": f"PyTorchJob {job} ended"}]}
        elif exit_code == 0:
            self.jobs[job]["status"] = {"succeeded": 1}
        else:
            self.jobs[job]["status"] = {"failed": 1, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "failed"}]}


async def _until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_kubernetes_executor_against_the_api_double(tmp_path):
    from dataclasses import replace

    from kubernetes_asyncio import client

    fake = FakeKubernetesAPI()
    url = fake.start()
    config = JobsConfig(executor="kubernetes", namespace="ml", data_dir=str(tmp_path), cancel_grace_seconds=1,
                        image="astrago/singleuser:1.0", home_claim_template="claim-{username}")
    api = client.ApiClient(client.Configuration(host=url))
    executor = KubernetesExecutor(config, api_client=api)
    try:
        run = replace(RUN, owner="ann", kind="command", command="python train.py", input="", parameters={})
        launch = await executor.start(run)
        name = "astrago-job-0123456789ab-1"
        assert launch.process == {"namespace": "ml", "name": name}
        assert fake.created == [executor.manifest(run, "")]  # exactly the pure function's manifest
        assert kubernetes_validate.validate(fake.created[0], TARGET_KUBERNETES_VERSION, strict=True) == "1.33"
        run = replace(run, process=launch.process, log_path=launch.log_path)
        assert await executor.poll(run) is None  # pending
        fake.run_pod(name)
        fake.log(name, "epoch 1\n")
        log = Path(launch.log_path)
        await _until(lambda: log.exists() and "epoch 1" in log.read_text())
        fake.log(name, "epoch 2\n")
        fake.finish(name, 0)
        ended = await executor.poll(run)
        assert ended.exit_code == 0 and not ended.lost
        assert log.read_text() == "epoch 1\nepoch 2\n"

        failing = replace(run, attempt=2, process={})
        launch = await executor.start(failing)
        failing = replace(failing, process=launch.process, log_path=launch.log_path)
        fake.run_pod("astrago-job-0123456789ab-2")
        fake.finish("astrago-job-0123456789ab-2", 3)
        ended = await executor.poll(failing)
        assert ended.exit_code == 3 and ended.reason == "exited with code 3"

        cancelled = replace(run, attempt=3, process={})
        launch = await executor.start(cancelled)
        cancelled = replace(cancelled, process=launch.process, log_path=launch.log_path)
        fake.run_pod("astrago-job-0123456789ab-3")
        assert await executor.stop(cancelled) == []
        assert fake.deleted[-1][0] == "astrago-job-0123456789ab-3"
        assert fake.deleted[-1][1]["propagationPolicy"] == "Foreground"
        gone = await executor.reattach(cancelled)  # after a restart: the Job is gone
        assert gone.lost and "is gone" in gone.reason
    finally:
        for task in executor._followers.values():
            task.cancel()
        await api.close()
        fake.server.stop()


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


async def test_kubernetes_executor_runs_a_pytorch_job_against_the_api_double(tmp_path):
    from kubernetes_asyncio import client

    fake = FakeKubernetesAPI()
    url = fake.start()
    config = JobsConfig(executor="kubernetes", namespace="ml", data_dir=str(tmp_path), cancel_grace_seconds=1,
                        image="astrago/singleuser:1.0", home_claim_template="claim-{username}")
    api = client.ApiClient(client.Configuration(host=url))
    executor = KubernetesExecutor(config, api_client=api)
    try:
        run = DIST_RUN
        launch = await executor.start(run)
        name = "astrago-job-d15d15d15d15-2"
        assert launch.process == {"namespace": "ml", "name": name, "kind": "PyTorchJob"}
        assert fake.created == [executor.manifest(run, "")] == [EXPECTED_PYTORCH_JOB]
        assert sorted(p for p in fake.pods) == [f"{name}-master-0", f"{name}-worker-0", f"{name}-worker-1"]
        run = replace(run, process=launch.process, log_path=launch.log_path)
        assert await executor.poll(run) is None  # created, no condition yet
        fake.run_pod(name)
        fake.log(name, "rank 0: epoch 1\n")
        log = Path(launch.log_path)
        await _until(lambda: log.exists() and "epoch 1" in log.read_text())
        fake.finish(name, 0)
        ended = await executor.poll(run)
        assert ended.exit_code == 0 and not ended.lost and log.read_text() == "rank 0: epoch 1\n"

        failing = replace(run, attempt=3, process={})
        launch = await executor.start(failing)
        failing = replace(failing, process=launch.process, log_path=launch.log_path)
        fake.run_pod("astrago-job-d15d15d15d15-3")
        fake.finish("astrago-job-d15d15d15d15-3", 2)
        ended = await executor.poll(failing)
        assert ended.exit_code == 2 and ended.reason == "exited with code 2"

        cancelled = replace(run, attempt=4, process={})
        launch = await executor.start(cancelled)
        cancelled = replace(cancelled, process=launch.process, log_path=launch.log_path)
        assert await executor.stop(cancelled) == []
        assert fake.deleted[-1][0] == "astrago-job-d15d15d15d15-4"
        assert fake.deleted[-1][1]["propagationPolicy"] == "Foreground"
        assert not any(p.startswith("astrago-job-d15d15d15d15-4") for p in fake.pods)
        gone = await executor.reattach(cancelled)
        assert gone.lost and "PyTorchJob astrago-job-d15d15d15d15-4 is gone" in gone.reason
    finally:
        for task in executor._followers.values():
            task.cancel()
        await api.close()
        fake.server.stop()
