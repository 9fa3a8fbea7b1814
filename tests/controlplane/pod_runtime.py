"""PodRuntime: a TEST DOUBLE of the container runtime (containerd + the kubelet's container
start) on KWOK nodes. It is not a container runtime: there are no images, namespaces or cgroups.

What it does, per pod that KWOK has made Running (so the real scheduler bound it and KWOK
gave it an IP from 127.77.0.0/16) and that it is asked to run (`runs(pod)`: AstraGo's user
servers, `component=singleuser-server`; AstraGo's jobs, `app.kubernetes.io/managed-by=astrago`;
anything labelled `testbed.astrago.dev/run=true`):

- runs the first container's `command` + `args` (`args` alone when the image's entrypoint
  would run them) as a local process, in its own process group, as `securityContext.runAsUser`
  / `runAsGroup` (pod or container level; 1000:100 when unset, as z2jh's image) when the
  harness runs as root, with the pod's env: `value`, `valueFrom.fieldRef` (metadata.name,
  metadata.namespace, metadata.uid, spec.nodeName, spec.serviceAccountName, status.podIP,
  status.hostIP), `secretKeyRef`, `configMapKeyRef`, and `envFrom`;
- stands in for the pod's network namespace: `0.0.0.0` in args and env becomes the pod IP
  (inside a pod that is what "every interface" means), so a server listens on podIP:port;
- stands in for volume mounts: a mountPath of a PVC-backed volume (the storage double's
  hostPath directory) or an emptyDir is replaced by that directory in `workingDir`, args and
  env values, so /home/jovyan is the user's claim;
- the image is not pulled: executables are found on PATH with `bin_dirs` first (the user
  environment the suite installs, ASTRAGO_USER_ENV);
- writes the process's stdout/stderr in the CRI log format and registers the file with KWOK
  (a `Logs` object, kwok.x-k8s.io/v1alpha1), so `pods/log` through the API server works;
- when the process exits, annotates the pod `testbed.astrago.dev/exit-code=<code>`; KWOK's
  `pod-exited` stage (tests/controlplane/stages) then reports the terminated container and
  phase Succeeded/Failed, and the real Job controller takes it from there;
- when the pod is deleted, ends the process group (SIGTERM, SIGKILL after the grace period).

`stop()` ends every process it started.
"""
from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .informer import Informer
from .rest import KubeError, KubeREST

EXIT_CODE_ANNOTATION = "testbed.astrago.dev/exit-code"
RUN_LABEL = "testbed.astrago.dev/run"
DEFAULT_UID, DEFAULT_GID = 1000, 100


def runs_astrago_pods(pod: dict) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return (labels.get("component") == "singleuser-server" or labels.get("app.kubernetes.io/managed-by") == "astrago"
            or labels.get(RUN_LABEL) == "true")


@dataclass
class RunningContainer:
    namespace: str
    pod: str
    uid: str
    container: str
    process: subprocess.Popen
    log_path: Path
    argv: list[str]
    env: dict[str, str]
    cwd: str
    grace: float = 30
    exit_code: int | None = None
    threads: list[threading.Thread] = field(default_factory=list)


class PodRuntime:
    def __init__(self, rest: KubeREST, root: Path, volume_root: Path, *, bin_dirs: list[str] | None = None,
                 runs=runs_astrago_pods):
        self.rest = rest
        self.root = root
        self.volume_root = volume_root
        self.bin_dirs = list(bin_dirs or [])
        self.runs = runs
        self.containers: dict[str, RunningContainer] = {}  # pod uid -> its container
        self.refused: dict[str, str] = {}  # pod uid -> why it could not be started
        self._lock = threading.Lock()
        self._stopping = False
        self.informer = Informer("pod-runtime", rest, "v1", "Pod", self._on_pod)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.informer.start()

    def stop(self) -> None:
        self._stopping = True
        self.informer.stop()
        with self._lock:
            running = list(self.containers.values())
        for container in running:
            self._kill(container, grace=3)

    # -- what a pod needs -------------------------------------------------------------------

    def _on_pod(self, event_type: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        if event_type == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            with self._lock:
                container = self.containers.get(uid)
            if container is not None and container.exit_code is None:
                grace = pod["metadata"].get("deletionGracePeriodSeconds")
                threading.Thread(target=self._kill, args=(container, 30 if grace is None else grace),
                                 daemon=True).start()
            return
        status = pod.get("status") or {}
        if self._stopping or status.get("phase") != "Running" or not status.get("podIP") or not self.runs(pod):
            return
        with self._lock:
            if uid in self.containers or uid in self.refused:
                return
            try:
                self.containers[uid] = self._start(pod)
            except Exception as exc:  # say why on the pod, as a kubelet's event would
                self.refused[uid] = str(exc)
                self._record_event(pod, "Failed", f"the runtime double could not start the container: {exc}")

    def _record_event(self, pod: dict, reason: str, message: str) -> None:
        metadata = pod["metadata"]
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self.rest.create({"apiVersion": "v1", "kind": "Event",
                              "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
                              "involvedObject": {"kind": "Pod", "name": metadata["name"],
                                                 "namespace": metadata["namespace"], "uid": metadata["uid"]},
                              "reason": reason, "message": message, "type": "Warning",
                              "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
                              "firstTimestamp": now, "lastTimestamp": now, "count": 1})
        except KubeError:
            pass

    def _field(self, pod: dict, path: str) -> str:
        current = pod
        for part in path.split("."):
            current = (current or {}).get(part) if isinstance(current, dict) else None
        return "" if current is None else str(current)

    def _key_ref(self, kind: str, namespace: str, ref: dict) -> str | None:
        obj = self.rest.read("v1", kind, ref["name"], namespace)
        if obj is None:
            if ref.get("optional"):
                return None
            raise RuntimeError(f"{kind} {namespace}/{ref['name']} not found")
        if kind == "Secret":
            import base64

            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        else:
            data = dict(obj.get("data") or {})
        if ref["key"] not in data:
            if ref.get("optional"):
                return None
            raise RuntimeError(f"{kind} {namespace}/{ref['name']} has no key {ref['key']}")
        return data[ref["key"]]

    def _env(self, pod: dict, container: dict) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    obj = self.rest.read("v1", kind, source[key]["name"], namespace) or {}
                    for name, value in (obj.get("data") or {}).items():
                        if kind == "Secret":
                            import base64

                            value = base64.b64decode(value).decode()
                        env[prefix + name] = value
        for item in container.get("env") or []:
            if "valueFrom" not in item:
                env[item["name"]] = item.get("value", "")
                continue
            source = item["valueFrom"]
            if "fieldRef" in source:
                env[item["name"]] = self._field(pod, source["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in source:
                value = self._key_ref("Secret", namespace, source["secretKeyRef"])
                if value is not None:
                    env[item["name"]] = value
            elif "configMapKeyRef" in source:
                value = self._key_ref("ConfigMap", namespace, source["configMapKeyRef"])
                if value is not None:
                    env[item["name"]] = value
        return env

    def _mounts(self, pod: dict, container: dict) -> list[tuple[str, str]]:
        """(mountPath, host directory) for the container's volumes the double can stand in for."""
        namespace = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"]) or {}
            host = None
            if "persistentVolumeClaim" in volume:
                claim = self.rest.read("v1", "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"],
                                       namespace)
                bound = claim and claim["spec"].get("volumeName")
                pv = self.rest.read("v1", "PersistentVolume", bound) if bound else None
                if not pv or "hostPath" not in pv["spec"]:
                    raise RuntimeError(f"volume {mount['name']}: claim "
                                       f"{volume['persistentVolumeClaim']['claimName']} is not bound")
                host = pv["spec"]["hostPath"]["path"]
            elif "emptyDir" in volume:
                host = str(self.root / pod["metadata"]["uid"] / mount["name"])
                Path(host).mkdir(parents=True, exist_ok=True)
                Path(host).chmod(0o777)
            elif "hostPath" in volume:
                host = volume["hostPath"]["path"]
            if host is not None:
                if mount.get("subPath"):
                    host = os.path.join(host, mount["subPath"])
                    Path(host).mkdir(parents=True, exist_ok=True)
                mounts.append((mount["mountPath"].rstrip("/") or "/", host))
        return sorted(mounts, key=lambda m: -len(m[0]))

    @staticmethod
    def _translate(value: str, pod_ip: str, mounts: list[tuple[str, str]]) -> str:
        value = value.replace("0.0.0.0", pod_ip)
        for mount_path, host in mounts:
            value = value.replace(mount_path, host)
        return value

    def _identity(self, pod: dict, container: dict) -> tuple[int | None, int | None]:
        if os.geteuid() != 0:
            return None, None
        pod_context = pod["spec"].get("securityContext") or {}
        context = container.get("securityContext") or {}
        uid = context.get("runAsUser", pod_context.get("runAsUser", DEFAULT_UID))
        gid = context.get("runAsGroup", pod_context.get("runAsGroup", DEFAULT_GID))
        if uid == 0:
            raise RuntimeError("the runtime double runs no container as root")
        return uid, gid

    # -- processes --------------------------------------------------------------------------------

    def _start(self, pod: dict) -> RunningContainer:
        metadata = pod["metadata"]
        container = pod["spec"]["containers"][0]
        pod_ip = pod["status"]["podIP"]
        mounts = self._mounts(pod, container)
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv:
            raise RuntimeError("no command or args: the double cannot run an image's entrypoint")
        argv = [self._translate(a, pod_ip, mounts) for a in argv]
        env = {k: self._translate(v, pod_ip, mounts) for k, v in self._env(pod, container).items()}
        path = os.pathsep.join(self.bin_dirs + [env.get("PATH") or os.environ.get("PATH", "/usr/bin:/bin")])
        env["PATH"] = path
        env.setdefault("HOME", self._translate(container.get("workingDir") or "/tmp", pod_ip, mounts))
        env.setdefault("HOSTNAME", metadata["name"])
        executable = shutil.which(argv[0], path=path)
        if executable is None:
            raise RuntimeError(f"{argv[0]!r} is not on PATH ({path})")
        argv[0] = executable
        cwd = self._translate(container.get("workingDir") or env["HOME"], pod_ip, mounts)
        if not os.path.isdir(cwd):
            cwd = "/tmp"
        uid, gid = self._identity(pod, container)
        log_path = self.root / f"{metadata['namespace']}_{metadata['name']}_{metadata['uid']}" / \
            f"{container['name']}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        self._register_log(pod, container["name"], log_path)
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True, user=uid, group=gid,
                                   extra_groups=[] if uid is not None else None)
        running = RunningContainer(metadata["namespace"], metadata["name"], metadata["uid"], container["name"],
                                   process, log_path, argv, env, cwd,
                                   grace=float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
        writer_lock = threading.Lock()
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            thread = threading.Thread(target=self._copy_log, args=(stream, name, log_path, writer_lock), daemon=True)
            thread.start()
            running.threads.append(thread)
        threading.Thread(target=self._wait, args=(running,), daemon=True).start()
        return running

    def _register_log(self, pod: dict, container: str, log_path: Path) -> None:
        """Tell KWOK's kubelet API where this pod's log is (it serves pods/log from it)."""
        self.rest.apply({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
                         "metadata": {"name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"]},
                         "spec": {"logs": [{"containers": [container], "logsFile": str(log_path), "follow": True}]}})

    @staticmethod
    def _copy_log(stream, name: str, log_path: Path, lock: threading.Lock) -> None:
        """The CRI log format the kubelet reads: `<RFC3339Nano> <stream> F <line>`."""
        with stream:
            for raw in iter(stream.readline, b""):
                stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                line = raw.decode(errors="replace").rstrip("\n")
                with lock, open(log_path, "a") as log:
                    log.write(f"{stamp} {name} F {line}\n")

    def _wait(self, running: RunningContainer) -> None:
        code = running.process.wait()
        for thread in running.threads:
            thread.join(5)
        running.exit_code = code if code >= 0 else 128 - code  # killed by signal N: 128+N, as a runtime says
        if self._stopping:
            return
        try:
            # the uid makes the API server refuse the patch (409) for a newer pod of the same name
            self.rest.merge_patch("v1", "Pod", running.pod, {"metadata": {"uid": running.uid, "annotations": {
                EXIT_CODE_ANNOTATION: str(running.exit_code)}}}, running.namespace)
        except KubeError as exc:
            if exc.status not in (404, 409):  # gone, or another pod now has the name
                raise

    @staticmethod
    def _kill(running: RunningContainer, grace: float) -> None:
        if running.process.poll() is not None:
            return
        try:
            os.killpg(running.process.pid, signal.SIGTERM)
            running.process.wait(max(grace, 1))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(running.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            running.process.wait(5)
        except ProcessLookupError:
            pass

    # -- for tests -----------------------------------------------------------------------------

    def container_of(self, namespace: str, pod: str) -> RunningContainer | None:
        with self._lock:
            return next((c for c in self.containers.values() if c.namespace == namespace and c.pod == pod), None)

    def running(self) -> list[RunningContainer]:
        with self._lock:
            return [c for c in self.containers.values() if c.process.poll() is None]
