"""The Kubernetes executor's log follower: an answer that is not the log is never the job's log.

With `_preload_content=False`, kubernetes_asyncio returns error answers as they are (no
ApiException): a Status saying the container is not started yet, or that the kubelet cannot
serve the log yet. Seen on the real control plane (tests/e2e_k8s/test_cluster_journey.py) when
the follower asked in the instant between the pod's Running phase and its log being served."""
import json
from types import SimpleNamespace

from astrago.hub.jobs.executors.base import JobRun
from astrago.hub.jobs.executors.kubernetes import KubernetesExecutor

RUN = JobRun(id="0123456789ab", owner="ann", attempt=1, kind="script", name="cell", input="", code="print(1)",
             command="", parameters={}, workdir="/home/jovyan", slice="cpu", cpu=1, memory_gib=1, image="", env={},
             placement={}, max_runtime_s=60, started_at=None)

NOT_YET = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400,
                      "message": 'container "job" in pod "p" is waiting to start: ContainerCreating'}).encode()


class Answer:
    def __init__(self, status, chunks):
        self.status = status
        self.chunks = chunks
        self.released = False
        self.content = SimpleNamespace(iter_any=self._iter)

    async def _iter(self):
        for chunk in self.chunks:
            yield chunk

    async def read(self):
        return b"".join(self.chunks)

    def release(self):
        self.released = True


class Core:
    def __init__(self, answers):
        self.answers = list(answers)
        self.asked = 0

    async def read_namespaced_pod_log(self, name, namespace, **kwargs):
        assert kwargs["follow"] is True and kwargs["_preload_content"] is False
        self.asked += 1
        return self.answers.pop(0)


async def test_an_error_answer_is_not_written_as_the_log_and_the_log_is_asked_for_again(tmp_path):
    executor = KubernetesExecutor(SimpleNamespace(data_dir=str(tmp_path), namespace="astrago"))
    answers = [Answer(400, [NOT_YET]), Answer(200, [b"step 1\n", b"step 2\n"])]
    core = Core(answers)
    pod = SimpleNamespace(status=SimpleNamespace(phase="Running"), metadata=SimpleNamespace(name="p"))

    async def _pod(run, rank=0):
        return pod

    async def _core():
        return core

    executor._pod, executor._core = _pod, _core
    executor.log_path(RUN).parent.mkdir(parents=True)
    await executor._stream_log(RUN, retry_seconds=0)
    assert executor.log_path(RUN).read_text() == "step 1\nstep 2\n"
    assert core.asked == 2
