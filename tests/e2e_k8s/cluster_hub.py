"""ClusterHub: JupyterHub run the way the Zero to JupyterHub chart runs it, on the suite's control plane.

What runs, for real: JupyterHub (`jupyterhub -f`), configurable-http-proxy from node_modules, the
AstraGo service as the hub's managed service, GPUKubeSpawner talking to the real kube-apiserver,
the session's Keycloak (a realm of this hub's own), and users' JupyterLab servers in pods that
kube-scheduler placed on KWOK nodes and the container-runtime double (tests/controlplane/
pod_runtime.py) runs at the pod IP.

The configuration is built in the order the hub pod builds it:

1. the chart's own `jupyterhub_config.py` for config/z2jh/values.yaml: tests/cluster/z2jh_chart.py
   (profile_list = [] unless values say null, image, namespace, hub_connect_url, dynamic storage,
   tolerations) plus the few chart settings a running hub needs that it does not encode
   (`chart_runtime_settings`: singleuser.cmd, the home volume and its mount, uid/fsGid,
   cleanup_servers = False);
2. `hub.extraConfig` of config/z2jh/values.yaml, executed as it is (it calls
   `configure_jupyterhub(c, ClusterSettings.from_env())` of hub/cluster.py), with the hub pod's
   `hub.extraEnv` as the environment (secrets generated here);
3. `pod_stand_ins`: only what a pod in a cluster has and this machine has not, each named:
   the `hub` Service's DNS name (hub and service are on 127.0.0.1), the proxy pod (the hub
   starts CHP itself), the service account's mounted credentials (a kubeconfig with a
   TokenRequest token of ServiceAccount astrago/hub, given to hub and service as KUBECONFIG)
   and its mounted namespace file (--JobsConfig.namespace); the singleuser image's WORKDIR
   (/home/jovyan) as the pod's workingDir, since the runtime double runs no image; and MPIJob
   pods without mpirun and sshd (`MPI_STAND_INS`).

The hub's service account is bound only to the chart's hub Role and config/z2jh/astrago-rbac.yaml,
applied to the real API server (tests/controlplane/hub_rbac.py), so every Kubernetes call of the hub and the service is checked by
the API server's RBAC authorizer.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests
import yaml

from controlplane.hub_rbac import ASTRAGO_RBAC, RELEASE_NAMESPACE, hub_service_account_kubeconfig
from support.kernel import collect_reply
from support.platform import REPO, BrowserSession, free_port, parse_form

TESTS = REPO / "tests"
VALUES_FILE = REPO / "config" / "z2jh" / "values.yaml"


# -- the configuration, in the hub pod's order ----------------------------------------------------

def chart_runtime_settings(c, values: dict) -> None:
    """Chart settings (jupyterhub_config.py at 4.4.0) a running hub needs beyond z2jh_chart.py's:
    `singleuser.cmd` (default jupyterhub-singleuser), the dynamic home volume and its mount,
    `singleuser.uid` / `fsGid`, and `cleanup_servers = False` (servers outlive a hub restart)."""
    from z2jh_chart import get_config

    c.KubeSpawner.cmd = get_config(values, "singleuser.cmd", "jupyterhub-singleuser")
    c.KubeSpawner.uid = get_config(values, "singleuser.uid", 1000)
    c.KubeSpawner.fs_gid = get_config(values, "singleuser.fsGid", 100)
    c.JupyterHub.cleanup_servers = False
    if get_config(values, "singleuser.storage.type") == "dynamic":
        volume = get_config(values, "singleuser.storage.dynamic.volumeNameTemplate", "volume-{user_server}")
        c.KubeSpawner.storage_access_modes = get_config(values, "singleuser.storage.dynamic.storageAccessModes",
                                                        ["ReadWriteOnce"])
        c.KubeSpawner.volumes = [{"name": volume, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
        c.KubeSpawner.volume_mounts = [{"mountPath": get_config(values, "singleuser.storage.homeMountPath"),
                                        "name": volume}]


#: the runtime double runs no image and mounts no Secret or ConfigMap, so an MPIJob's pods have no
#: mpirun, sshd or hostfile: the launcher runs the job as rank 0 itself, each worker says it is up
#: and waits to be removed, as sshd would
MPI_STAND_INS = ["--JobsConfig.mpi_launcher_command=[]", "--JobsConfig.mpi_worker_command=/bin/sh",
                 "--JobsConfig.mpi_worker_command=-c",
                 "--JobsConfig.mpi_worker_command=echo MPI worker up on $ASTRAGO_SLICE; exec sleep 600"]


def pod_stand_ins(c, spec: dict) -> None:
    """What the hub pod has in a cluster and this machine has not (see the module docstring)."""
    # cluster DNS: the `hub` Service is this machine's loopback
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{spec['hub_port']}"
    c.JupyterHub.hub_connect_url = f"http://127.0.0.1:{spec['hub_port']}"
    # the proxy pod: the hub starts configurable-http-proxy itself
    c.JupyterHub.bind_url = f"http://127.0.0.1:{spec['port']}"
    c.ConfigurableHTTPProxy.should_start = True
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{spec['proxy_api_port']}"
    c.ConfigurableHTTPProxy.command = [str(REPO / "node_modules" / ".bin" / "configurable-http-proxy")]
    c.ConfigurableHTTPProxy.pid_file = str(Path(spec["data"]) / "proxy.pid")
    c.JupyterHub.cookie_secret_file = str(Path(spec["data"]) / "cookie_secret")
    c.JupyterHub.pid_file = str(Path(spec["data"]) / "jupyterhub.pid")
    # the pod's service account: KUBECONFIG instead of /var/run/secrets/kubernetes.io/serviceaccount
    for service in c.JupyterHub.services:
        if service["name"] == "astrago":
            service["environment"] = {**service["environment"], "KUBECONFIG": spec["kubeconfig"],
                                      "ASTRAGO_RECONCILE_INTERVAL": "5"}
            service["command"] = [*service["command"], f"--JobsConfig.namespace={RELEASE_NAMESPACE}",
                                  "--JobsConfig.poll_interval=0.5", "--JobsConfig.cycle_interval=1", *MPI_STAND_INS]
    c.GPUKubeSpawner.queue_poll_interval = 1.0
    # the image: the runtime double runs none, so the pod says the singleuser image's WORKDIR
    # (images/singleuser/Dockerfile: /home/jovyan, the home volume's mount)
    c.KubeSpawner.working_dir = "/home/jovyan"


def configure(c, spec: dict) -> None:
    """The whole configuration: the chart's, then hub.extraConfig, then the stand-ins."""
    sys.path.insert(0, str(TESTS / "cluster"))
    from z2jh_chart import chart_config

    values_files = [yaml.safe_load(Path(p).read_text()) for p in spec["values_files"]]
    chart, values = chart_config(*values_files, namespace=RELEASE_NAMESPACE)
    c.merge(chart)
    chart_runtime_settings(c, values)
    for name, snippet in sorted((values.get("hub", {}).get("extraConfig") or {}).items()):
        exec(compile(snippet, f"hub.extraConfig.{name}", "exec"), {"c": c, "get_config": lambda: c})
    pod_stand_ins(c, spec)


CONFIG_FILE = """\
# written by tests/e2e_k8s/cluster_hub.py: the chart's configuration, then hub.extraConfig
import json, sys
sys.path.insert(0, {tests!r})
sys.path.insert(0, {here!r})
from cluster_hub import configure
configure(get_config(), json.loads({spec!r}))
"""


# -- running it --------------------------------------------------------------------------------

@dataclass
class ClusterHub:
    control_plane: object
    keycloak: object  # astrago.hub.realm.server.KeycloakServer (support.keycloak.session_keycloak())
    root: Path
    group_slices: dict = field(default_factory=dict)
    values_files: list = field(default_factory=lambda: [VALUES_FILE])
    rbac_files: list = field(default_factory=lambda: [ASTRAGO_RBAC])  # beside the chart's hub Role
    realm: str = field(default_factory=lambda: f"cluster-{secrets.token_hex(3)}")
    proc: subprocess.Popen | None = None
    created_users: list = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root)
        self.data = self.root / "hub"
        self.data.mkdir(parents=True, exist_ok=True)
        self.ports = {k: free_port() for k in ("port", "hub_port", "proxy_api_port", "service_port")}
        self.client_secret = secrets.token_urlsafe(24)
        self.spawner_token = secrets.token_hex(32)
        self.log_path = self.root / "jupyterhub.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['port']}"

    @property
    def realm_url(self) -> str:
        return f"{self.keycloak.base_url}/realms/{self.realm}"

    @property
    def service_api(self) -> str:
        return f"{self.url}/services/astrago/api/"

    @property
    def realm_admin(self):
        from astrago.hub.realm.admin import RealmAdmin

        return RealmAdmin.from_file(self.keycloak.base_url, self.keycloak.credentials_file, self.realm)

    def hub_env(self) -> dict[str, str]:
        """The hub pod's environment: hub.extraEnv of the values (secrets generated here), POD_NAMESPACE."""
        values = {}
        for path in self.values_files:
            values.update((yaml.safe_load(Path(path).read_text()).get("hub") or {}).get("extraEnv") or {})
        env = {k: v for k, v in values.items() if isinstance(v, str)}
        env.update({
            "POD_NAMESPACE": RELEASE_NAMESPACE,
            "ASTRAGO_PUBLIC_URL": self.url,
            "ASTRAGO_KEYCLOAK_REALM_URL": self.realm_url,
            "ASTRAGO_KEYCLOAK_CLIENT_SECRET": self.client_secret,
            "ASTRAGO_HUB_DB_URL": f"sqlite:///{self.data / 'jupyterhub.sqlite'}",
            "ASTRAGO_DB_URL": f"sqlite:///{self.data / 'astrago.sqlite'}",
            "ASTRAGO_SPAWNER_TOKEN": self.spawner_token,
            "ASTRAGO_GROUP_SLICES": json.dumps(self.group_slices),
            # cluster DNS stand-in: the hub Service's name is loopback here
            "ASTRAGO_SERVICE_HOST": "127.0.0.1",
            "ASTRAGO_SERVICE_PORT": str(self.ports["service_port"]),
            "ASTRAGO_SERVICE_DATA_DIR": str(self.data / "astrago"),
            "ASTRAGO_QUEUE_TIMEOUT": "300",
        })
        return env

    def start(self, timeout: float = 180) -> "ClusterHub":
        from astrago.hub.realm.admin import RealmSpec

        self.realm_admin.ensure(RealmSpec(
            name=self.realm, frontend_url=self.keycloak.base_url, hub_url=self.url,
            backchannel_logout_url=f"http://127.0.0.1:{self.ports['hub_port']}/hub/backchannel-logout",
            client_secret=self.client_secret))
        self.kubeconfig = hub_service_account_kubeconfig(self.control_plane, [Path(p) for p in self.rbac_files])
        spec = {"values_files": [str(p) for p in self.values_files], "data": str(self.data),
                "kubeconfig": str(self.kubeconfig), **self.ports}
        config = self.root / "jupyterhub_config.py"
        config.write_text(CONFIG_FILE.format(tests=str(TESTS), here=str(Path(__file__).parent),
                                             spec=json.dumps(spec)))
        env = {**os.environ, **self.hub_env(), "KUBECONFIG": str(self.kubeconfig),
               "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32), "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)}
        env.pop("ASTRAGO_MODE", None)  # hub.extraConfig configures cluster mode, not config/jupyterhub_config.py
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(Path(sys.prefix) / "bin" / "jupyterhub"), "-f", str(config)],
                                     cwd=self.data, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log()[-6000:]}")
            try:
                hub = requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200
                service = requests.get(f"{self.service_api}openapi.json", timeout=2).status_code == 200
                if hub and service:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the hub did not become healthy in {timeout}s:\n{self.log()[-6000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # the chart's cleanup_servers = False leaves users' pods behind a stopped hub
        rest = self.control_plane.rest
        for pod in rest.list("v1", "Pod", RELEASE_NAMESPACE, labelSelector="component=singleuser-server")["items"]:
            rest.delete("v1", "Pod", pod["metadata"]["name"], RELEASE_NAMESPACE)
        try:
            self.realm_admin.api.delete_realm(self.realm)
        except Exception:  # noqa: BLE001 - the session's Keycloak goes at the end anyway
            pass

    # -- people ------------------------------------------------------------------------------

    def add_user(self, base: str, *, groups=(), roles=()) -> tuple[str, str]:
        admin = self.realm_admin
        name = f"{base}{secrets.token_hex(2)}"
        password = admin.add_user(name, password=secrets.token_urlsafe(12))
        for group in groups:
            admin.add_to_group(name, group)
        for role in roles:
            admin.add_role(name, role)
        self.created_users.append(name)
        return name, password

    def login(self, username: str, password: str) -> requests.Session:
        """Hub -> Keycloak's own login form -> hub callback, over HTTP as a browser does."""
        session = BrowserSession()
        page = session.get(f"{self.url}/hub/oauth_login", timeout=30)
        assert page.url.startswith(self.realm_url), f"expected Keycloak's login page, got {page.url}"
        action, fields = parse_form(page.text, page.url)
        fields.update({"username": username, "password": password})
        page = session.post(action, data=fields, timeout=60)
        assert page.url.startswith(self.url + "/"), f"login did not come back to the hub: {page.url}"
        return session

    def xsrf(self, session: requests.Session) -> str:
        session.get(f"{self.url}/hub/home", timeout=30)
        return session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf")

    def token(self, session: requests.Session, username: str) -> str:
        r = session.post(f"{self.url}/hub/api/users/{username}/tokens", json={"note": "journey", "expires_in": 3600},
                         headers={"X-XSRFToken": self.xsrf(session)}, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def spawn_page_profiles(self, session: requests.Session) -> tuple[str, list[str]]:
        """(the spawn page, the profile slugs its form offers)."""
        page = session.get(f"{self.url}/hub/spawn", timeout=60)
        assert page.status_code == 200, page.text[:2000]
        return page.text, re.findall(r'<input[^>]*name="profile"[^>]*value="([^"]+)"', page.text)

    def spawn_from_form(self, session: requests.Session, username: str, profile: str) -> requests.Response:
        """POST the spawn form as the browser does; the hub answers with the pending page (or a redirect)."""
        return session.post(f"{self.url}/hub/spawn/{username}", data={"profile": profile, "_xsrf": self.xsrf(session)},
                            timeout=60, allow_redirects=False)

    # -- the hub's and the service's APIs -------------------------------------------------------

    def hub_api(self, token: str, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api/{path}", headers={"Authorization": f"token {token}"},
                                timeout=60, **kwargs)

    def service(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        """The AstraGo service's API (as the spawner, which may read everyone's allocations, by default)."""
        return requests.request(method, urljoin(self.service_api, path),
                                headers={"Authorization": f"token {token or self.spawner_token}"}, timeout=60, **kwargs)

    def allocations(self, username: str) -> list[dict]:
        r = self.service("GET", "allocations", params={"user": username})
        assert r.status_code == 200, r.text
        return r.json()["allocations"]

    def server(self, token: str, username: str) -> dict | None:
        model = self.hub_api(token, "GET", f"users/{username}").json()
        return model.get("servers", {}).get("")

    def progress(self, token: str, username: str, until=lambda events: False, timeout: float = 90) -> list[dict]:
        """The spawn's progress events (GET /hub/api/users/<u>/server/progress, an event stream),
        read until `until(events)` holds, the stream ends, or `timeout` passes."""
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        with requests.get(f"{self.url}/hub/api/users/{username}/server/progress", stream=True,
                          headers={"Authorization": f"token {token}"}, timeout=(10, timeout)) as r:
            assert r.status_code == 200, r.text
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if until(events) or events[-1].get("ready") or events[-1].get("failed"):
                        break
                if time.monotonic() > deadline:
                    break
        return events

    def wait_ready(self, token: str, username: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(token, username)
            if server and server.get("ready"):
                return server
            if server is None and time.monotonic() > deadline - timeout + 10:
                raise AssertionError(f"the server of {username} failed to start:\n{self.log()[-6000:]}")
            time.sleep(0.5)
        raise AssertionError(f"the server of {username} was not ready in {timeout}s:\n{self.log()[-6000:]}")

    def stop_server(self, token: str, username: str, timeout: float = 90) -> None:
        self.hub_api(token, "DELETE", f"users/{username}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server(token, username) is None:
                return
            time.sleep(0.5)
        raise AssertionError(f"the server of {username} did not stop:\n{self.log()[-4000:]}")

    def user_pod(self, username: str) -> dict | None:
        pods = self.control_plane.rest.list("v1", "Pod", RELEASE_NAMESPACE,
                                            labelSelector="component=singleuser-server")["items"]
        return next((p for p in pods if (p["metadata"].get("annotations") or {}).get("hub.jupyter.org/username")
                     == username and not p["metadata"].get("deletionTimestamp")), None)


def run_cells(base_url: str, username: str, token: str, cells: list[str], timeout: float = 60) -> list[dict]:
    """Execute `cells` one after another in ONE new kernel of the user's server (Jupyter REST and
    WebSocket API through the proxy); for each, {"stdout", "stderr", "status", "error"}."""
    import uuid

    import websocket

    server = f"{base_url}/user/{username}"
    headers = {"Authorization": f"token {token}"}
    r = requests.post(f"{server}/api/kernels", json={"name": "python3"}, headers=headers, timeout=60)
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    kernel = r.json()["id"]
    ws = websocket.create_connection(server.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels",
                                     header=[f"Authorization: token {token}"], timeout=timeout)
    results = []
    try:
        for code in cells:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": username, "session": uuid.uuid4().hex,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            results.append(collect_reply(ws, msg_id, timeout))
    finally:
        ws.close()
        requests.delete(f"{server}/api/kernels/{kernel}", headers=headers, timeout=30)
    return results
