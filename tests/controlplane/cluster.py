"""ControlPlane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK on loopback.

Everything above the container runtime is the real thing: API validation and admission,
RBAC (`--authorization-mode=Node,RBAC`), watches from etcd through the watch cache, the
scheduler's resource accounting, the Job, garbage-collector, namespace, service-account and
PV-binder controllers. KWOK plays the kubelets of nodes annotated `kwok.x-k8s.io/node=fake`
and gives pods IPs from 127.77.0.0/16 (all of 127/8 is loopback on Linux, so a local process
can listen on a pod's IP). The doubles that stand in for what cannot run here (the container
runtime, the storage provisioner, the GPU operator's mig-manager) are started by
`ControlPlane.start` and named as doubles in their own modules.
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Iterable

import requests
import yaml

from . import binaries
from .certificates import CertificateAuthority, service_account_signing_key
from .processes import ComponentFailed, ManagedProcess
from .rest import KubeError, KubeREST

KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
POD_CIDR = "127.77.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
STORAGE_CLASS = "standard"
STORAGE_PROVISIONER = "testbed.astrago.dev/hostpath"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _progress(message: str) -> None:
    print(f"[control plane] {message}", flush=True)


def _healthy(url: str, ca: str | None = None) -> bool:
    """GET /healthz; kube-scheduler serves it with a self-signed certificate of its own."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = requests.Session()
        session.trust_env = False
        return session.get(url, verify=ca or False, timeout=2).status_code == 200


def kubeconfig(server: str, ca_path: Path, user: dict, namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "testbed",
            "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca_path)}}],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "user",
                                                         "namespace": namespace}}]}


class ControlPlane:
    """A running control plane; see tests/controlplane/__init__.py for the interface."""

    def __init__(self, root: Path | None = None, *, keep_logs_in: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="astrago-controlplane-"))
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.keep_logs_in = keep_logs_in
        self.ports = {name: _free_port() for name in ("etcd", "etcd_peer", "apiserver", "controller_manager",
                                                      "scheduler", "kwok")}
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self.etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        self.processes: dict[str, ManagedProcess] = {}
        self.doubles: list = []
        self.rest: KubeREST | None = None
        self._made_namespaces: set[str] = set()

    # -- paths --------------------------------------------------------------------------

    @property
    def ca_path(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def kubeconfig_admin(self) -> Path:
        return self.root / "admin.kubeconfig"

    # -- start --------------------------------------------------------------------------

    def start(self) -> "ControlPlane":
        started = time.monotonic()
        atexit.register(self.stop)  # an interrupted session leaves no component behind
        try:
            self._make_pki()
            self._start_etcd()
            self._start_apiserver()
            self._install_basics()
            self._start_controllers()
            self._start_doubles()
        except BaseException:
            self.stop()
            raise
        _progress(f"ready in {time.monotonic() - started:.1f}s at {self.server} "
                  f"({binaries.versions() or 'versions unknown'}); logs in {self.logs}")
        return self

    def _make_pki(self) -> None:
        ca = CertificateAuthority(self.pki)
        self.ca = ca
        self.serving = ca.issue("apiserver", "kube-apiserver", server=True,
                                dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                     "kubernetes.default.svc.cluster.local"), ips=("127.0.0.1", "10.96.0.1"))
        self.kubelet_serving = ca.issue("kwok-kubelet", "kwok", server=True, dns=("localhost",), ips=("127.0.0.1",))
        self.admin = ca.issue("admin", "astrago-testbed-admin", organisation="system:masters")
        self.apiserver_kubelet_client = ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                                 organisation="system:masters")
        self.sa_key = service_account_signing_key(self.pki)
        for name, cn in (("controller-manager", "system:kube-controller-manager"),
                         ("scheduler", "system:kube-scheduler")):
            pair = ca.issue(name, cn)
            self._write_kubeconfig(self.root / f"{name}.kubeconfig",
                                   {"client-certificate": str(pair.cert), "client-key": str(pair.key)})
        self._write_kubeconfig(self.kubeconfig_admin,
                               {"client-certificate": str(self.admin.cert), "client-key": str(self.admin.key)})
        self.rest = KubeREST(self.server, str(self.ca_path), cert=(str(self.admin.cert), str(self.admin.key)))

    def _write_kubeconfig(self, path: Path, user: dict, namespace: str = "default") -> Path:
        path.write_text(yaml.safe_dump(kubeconfig(self.server, self.ca_path, user, namespace)))
        path.chmod(0o600)
        return path

    def _run(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.logs).start()
        self.processes[name] = process
        return process

    def _start_etcd(self) -> None:
        _progress("starting etcd")
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        etcd = self._run("etcd", [str(binaries.binary("etcd")), "--name", "testbed",
                                  "--data-dir", str(self.root / "etcd"),
                                  "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                                  "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                  "--initial-cluster", f"testbed={peer}", "--unsafe-no-fsync",
                                  # the watch cache's resourceVersion follows etcd's even when
                                  # nothing of a kind changes (bookmarks carry it to watchers)
                                  "--watch-progress-notify-interval", "1s",
                                  "--log-level", "warn"])
        etcd.wait_until(lambda: requests.get(self.etcd_url + "/health", timeout=2).json()["health"] == "true",
                        "answering /health", 30)

    def apiserver_argv(self) -> list[str]:
        return [str(binaries.binary("kube-apiserver")),
                "--etcd-servers", self.etcd_url,
                "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
                "--secure-port", str(self.ports["apiserver"]),
                "--tls-cert-file", str(self.serving.cert), "--tls-private-key-file", str(self.serving.key),
                "--client-ca-file", str(self.ca_path),
                "--service-account-issuer", ISSUER,
                "--service-account-key-file", str(self.sa_key.cert),
                "--service-account-signing-key-file", str(self.sa_key.key),
                "--authorization-mode", "Node,RBAC",
                "--service-cluster-ip-range", SERVICE_CIDR,
                # KWOK serves the kubelet API (logs) on the node's InternalIP (127.0.0.1)
                "--kubelet-preferred-address-types", "InternalIP",
                "--kubelet-client-certificate", str(self.apiserver_kubelet_client.cert),
                "--kubelet-client-key", str(self.apiserver_kubelet_client.key),
                "--enable-priority-and-fairness=false", "--profiling=false",
                # the `kubernetes` Service cannot point at a loopback address; nothing in the
                # suite reaches the API server through it
                "--endpoint-reconciler-type", "none",
                "--v", "1"]

    def _start_apiserver(self) -> None:
        _progress("starting kube-apiserver")
        apiserver = self._run("kube-apiserver", self.apiserver_argv())
        apiserver.wait_until(self._api_ready, "answering /readyz", 90)

    def _api_ready(self) -> bool:
        response = self.rest.http.get(self.server + "/readyz", timeout=2)
        return response.status_code == 200

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver (same etcd, same ports): every watch is dropped and the
        new server's watch cache starts at the current resourceVersion."""
        self.processes["kube-apiserver"].stop()
        self._wait_port_closed(self.ports["apiserver"])
        self._start_apiserver()

    @staticmethod
    def _wait_port_closed(port: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    return
            time.sleep(0.1)

    def _install_basics(self) -> None:
        """What the suite's cluster has before workloads: CRDs and a default StorageClass."""
        # KWOK's Logs CRD and the published CRDs the suite installs (Kubeflow's PyTorchJob and MPIJob)
        crds = sorted((binaries.SHARE / "kwok" / "crds").glob("*.yaml")) + sorted(
            (binaries.SHARE / "crds").glob("*.yaml"))
        self.apply(crds)
        self.apply([{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                     "metadata": {"name": STORAGE_CLASS,
                                  "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                     "provisioner": STORAGE_PROVISIONER, "reclaimPolicy": "Delete",
                     "volumeBindingMode": "Immediate"}])
        for crd in crds:
            name = yaml.safe_load(crd.read_text())["metadata"]["name"]
            self.wait_for(lambda: any(c["type"] == "Established" and c["status"] == "True" for c in (self.rest.read(
                "apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}).get("status", {}).get(
                "conditions", [])), f"CRD {name} established")

    def _stages_file(self) -> Path:
        """KWOK's own node and pod stages plus the harness's pod-exited stage, in one --config file."""
        documents = []
        for path in sorted((binaries.SHARE / "kwok" / "stages").glob("*.yaml")) + sorted(binaries.STAGES.glob("*.yaml")):
            documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
        target = self.root / "kwok-stages.yaml"
        target.write_text(yaml.safe_dump_all(documents))
        return target

    def _start_controllers(self) -> None:
        _progress("starting kube-controller-manager, kube-scheduler and KWOK")
        cm = self._run("kube-controller-manager", [
            str(binaries.binary("kube-controller-manager")),
            "--kubeconfig", str(self.root / "controller-manager.kubeconfig"),
            "--bind-address", "127.0.0.1", "--secure-port", str(self.ports["controller_manager"]),
            "--leader-elect=false", "--use-service-account-credentials=true",
            "--service-account-private-key-file", str(self.sa_key.key), "--root-ca-file", str(self.ca_path),
            "--cluster-signing-cert-file", str(self.ca_path), "--cluster-signing-key-file", str(self.pki / "ca.key"),
            # KWOK heartbeats every 20-45s; a node is not called unreachable on a jittered heartbeat
            "--node-monitor-grace-period", "10m",
            "--concurrent-gc-syncs", "5", "--v", "1"])
        scheduler = self._run("kube-scheduler", [
            str(binaries.binary("kube-scheduler")),
            "--kubeconfig", str(self.root / "scheduler.kubeconfig"),
            "--authentication-kubeconfig", str(self.root / "scheduler.kubeconfig"),
            "--authorization-kubeconfig", str(self.root / "scheduler.kubeconfig"),
            "--bind-address", "127.0.0.1", "--secure-port", str(self.ports["scheduler"]),
            "--leader-elect=false", "--v", "1"])
        kwok = self._run("kwok", [
            str(binaries.binary("kwok")), "--kubeconfig", str(self.kubeconfig_admin),
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector", ",".join(f"{k}={v}" for k, v in KWOK_ANNOTATION.items()),
            "--cidr", POD_CIDR, "--node-ip", "127.0.0.1", "--node-port", str(self.ports["kwok"]),
            "--server-address", f"127.0.0.1:{self.ports['kwok']}",
            "--tls-cert-file", str(self.kubelet_serving.cert),
            "--tls-private-key-file", str(self.kubelet_serving.key),
            "--enable-crds", "Logs", "--config", str(self._stages_file())])
        scheduler.wait_until(lambda: _healthy(f"https://127.0.0.1:{self.ports['scheduler']}/healthz"), "healthy", 60)
        kwok.wait_until(lambda: _healthy(f"https://127.0.0.1:{self.ports['kwok']}/healthz", str(self.ca_path)),
                        "healthy", 60)
        # the service-account controller makes `default` in every namespace: the controllers work
        cm.wait_until(lambda: self.rest.read("v1", "ServiceAccount", "default", "default") is not None,
                      "the default service account exists", 60)

    def _start_doubles(self) -> None:
        from .mig_manager import SimulatedMigManager
        from .pod_runtime import PodRuntime
        from .mpi_operator import SimulatedMpiOperator
        from .training_operator import SimulatedTrainingOperator
        from .storage_provisioner import HostPathProvisioner

        # pods' processes run as an unprivileged uid: it must reach the volumes and logs
        self.root.chmod(0o711)
        self.storage = HostPathProvisioner(self.rest, self.root / "volumes", STORAGE_PROVISIONER)
        user_env = os.environ.get("ASTRAGO_USER_ENV") or str(binaries.REPO / ".venv")
        self.runtime = PodRuntime(self.rest, self.root / "runtime", self.root / "volumes",
                                  bin_dirs=[os.path.join(user_env, "bin")])
        self.mig_manager = SimulatedMigManager(self.rest)
        self.training_operator = SimulatedTrainingOperator(self.rest)
        self.mpi_operator = SimulatedMpiOperator(self.rest)
        for double in (self.storage, self.runtime, self.mig_manager, self.training_operator, self.mpi_operator):
            double.start()
            self.doubles.append(double)

    # -- stop ---------------------------------------------------------------------------

    def stop(self) -> None:
        for double in reversed(self.doubles):
            try:
                double.stop()
            except Exception as exc:  # keep stopping the rest
                _progress(f"stopping {type(double).__name__} failed: {exc}")
        self.doubles.clear()
        for name in ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process is not None:
                process.stop()
        if self.keep_logs_in is not None and self.logs.is_dir():
            self.keep_logs_in.mkdir(parents=True, exist_ok=True)
            for log in self.logs.glob("*.log"):
                shutil.copy(log, self.keep_logs_in / log.name)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- using it ---------------------------------------------------------------------------

    def wait_for(self, condition, what: str, timeout: float = 60, interval: float = 0.2):
        """Poll `condition()` until it returns something true (returned); fail saying `what`."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f}s for {what}")
            time.sleep(interval)

    def apply(self, objects: Iterable[dict | str | Path] | dict | str | Path) -> list[dict]:
        """Server-side apply of objects, YAML files or YAML text (multi-document is fine)."""
        if isinstance(objects, (dict, str, Path)):
            objects = [objects]
        applied = []
        for item in objects:
            if isinstance(item, dict):
                documents = [item]
            else:
                text = Path(item).read_text() if isinstance(item, Path) or (
                    isinstance(item, str) and "\n" not in item and Path(item).exists()) else item
                documents = [d for d in yaml.safe_load_all(text) if d]
            for document in documents:
                if document.get("kind") == "List":
                    applied.extend(self.apply(document.get("items") or []))
                    continue
                applied.append(self.rest.apply(document))
                if document.get("kind") == "CustomResourceDefinition":
                    self.rest.forget_discovery()
        return applied

    def ensure_namespace(self, name: str) -> None:
        if self.rest.read("v1", "Namespace", name) is None:
            self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            self._made_namespaces.add(name)
        self.wait_for(lambda: self.rest.read("v1", "ServiceAccount", "default", name), f"namespace {name} ready")

    def service_account_kubeconfig(self, namespace: str, name: str, expiration_seconds: int = 86400) -> Path:
        """A kubeconfig for service account `namespace/name` (made if missing) with a bound token
        from the TokenRequest API. It can do exactly what RBAC bound to that account allows."""
        self.ensure_namespace(namespace)
        if self.rest.read("v1", "ServiceAccount", name, namespace) is None:
            self.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name,
                                                                                  "namespace": namespace}})
        answer = self.rest.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                                   body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                         "spec": {"expirationSeconds": expiration_seconds}})
        return self._write_kubeconfig(self.root / f"sa-{namespace}-{name}.kubeconfig",
                                      {"token": answer["status"]["token"]}, namespace)

    def add_node(self, name: str, capacity: dict, labels: dict | None = None, annotations: dict | None = None,
                 taints: list[dict] | None = None, wait_ready: bool = True) -> dict:
        """A Node whose kubelet KWOK plays; `capacity` is also its allocatable (as the device plugin
        reports it). Returns it once Ready and schedulable (the not-ready taint gone)."""
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                      "kubernetes.io/arch": "amd64", "type": "kwok",
                                                      **(labels or {})},
                             "annotations": {**KWOK_ANNOTATION, **(annotations or {})}},
                "spec": {"taints": list(taints or [])},
                "status": {"capacity": dict(capacity), "allocatable": dict(capacity)}}
        self.rest.create(node)
        if not wait_ready:
            return node
        return self.wait_for(lambda: self._schedulable(name), f"node {name} Ready and schedulable", 60)

    def _schedulable(self, name: str) -> dict | None:
        node = self.rest.read("v1", "Node", name)
        if node is None:
            return None
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
        tainted = any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints", []))
        return node if ready and not tainted else None

    def remove_node(self, name: str) -> None:
        self.rest.delete("v1", "Node", name)
        self.wait_for(lambda: self.rest.read("v1", "Node", name) is None, f"node {name} deleted")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True):
        """Run kubectl against the admin kubeconfig (only where a kubectl binary exists)."""
        import subprocess

        command = binaries.kubectl()
        if command is None:
            raise FileNotFoundError("no kubectl binary: use ControlPlane.rest / apply instead")
        return subprocess.run([command, "--kubeconfig", str(self.kubeconfig_admin), *args], input=input,
                              capture_output=True, text=True, check=check)

    def token_kubeconfig_user(self, path: Path) -> str:
        """The bearer token in a kubeconfig written by `service_account_kubeconfig`."""
        return yaml.safe_load(Path(path).read_text())["users"][0]["user"]["token"]


def start_control_plane(keep_logs_in: Path | None = None) -> ControlPlane:
    return ControlPlane(keep_logs_in=keep_logs_in).start()
