"""Pods on KWOK nodes really run (the container-runtime double, tests/controlplane/pod_runtime.py):
a server in a pod answers at its pod IP, its log is read through the API server's pods/log,
a claim is bound by the real PV binder and is the pod's volume, and the real Job controller
completes or fails a Job from its pod's exit code."""
import requests

from controlplane.pod_runtime import RUN_LABEL

TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

SERVER = ("import http.server, os, socketserver\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        body = (os.environ['POD_NAME'] + ' ' + os.getcwd()).encode()\n"
          "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
          "print('serving', flush=True)\n"
          "http.server.HTTPServer((os.environ['BIND'], 8888), H).serve_forever()\n")


def test_a_pod_serves_at_its_ip_with_its_env_its_volume_and_its_log(control_plane, namespace):
    cp = control_plane
    cp.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "home", "namespace": namespace},
              "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    claim = cp.wait_for(lambda: (lambda c: c if c["status"].get("phase") == "Bound" else None)(
        cp.rest.read("v1", "PersistentVolumeClaim", "home", namespace)), "the claim bound by the PV binder")
    assert claim["spec"]["storageClassName"] == "standard"  # the DefaultStorageClass admission plugin
    cp.rest.create({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "web", "namespace": namespace, "labels": {RUN_LABEL: "true"}},
                    "spec": {"containers": [{
                        "name": "web", "image": "python:3", "command": ["python", "-c", SERVER],
                        "workingDir": "/home/jovyan",
                        "env": [{"name": "BIND", "value": "0.0.0.0"},
                                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]}],
                        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home"}}],
                        "tolerations": [TOLERATION]}})
    pod = cp.wait_for(lambda: (lambda p: p if p["status"].get("podIP") else None)(
        cp.rest.read("v1", "Pod", "web", namespace)), "the pod running")

    def answer():
        try:
            return requests.get(f"http://{pod['status']['podIP']}:8888/", timeout=2).text
        except requests.ConnectionError:
            return None

    text = cp.wait_for(answer, "the server answering at the pod IP")
    assert text == f"web {cp.storage.volume_path(namespace, 'home')}"
    log = cp.wait_for(lambda: cp.rest.request("GET", f"/api/v1/namespaces/{namespace}/pods/web/log"),
                      "the pod's log through the API server")
    assert log.startswith("serving\n") and '"GET / HTTP/1.1" 200' in log  # stdout and stderr
    cp.rest.delete("v1", "Pod", "web", namespace)
    cp.wait_for(lambda: cp.runtime.container_of(namespace, "web").process.poll() is not None,
                "the process ended with its pod")


def job(name, namespace, code):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": {RUN_LABEL: "true"}},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "job", "image": "python:3",
                    "command": ["python", "-c", f"print('step 1'); print('step 2'); raise SystemExit({code})"]}]}}}}


def condition(cp, namespace, name):
    found = cp.rest.read("batch/v1", "Job", name, namespace)
    for c in (found or {}).get("status", {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return c
    return None


def test_the_job_controller_completes_or_fails_a_job_from_its_pods_exit_code(control_plane, namespace):
    cp = control_plane
    cp.apply([job("ok", namespace, 0), job("bad", namespace, 3)])
    assert cp.wait_for(lambda: condition(cp, namespace, "ok"), "job ok to end")["type"] == "Complete"
    failed = cp.wait_for(lambda: condition(cp, namespace, "bad"), "job bad to end")
    assert (failed["type"], failed["reason"]) == ("Failed", "BackoffLimitExceeded")
    pod = cp.rest.list("v1", "Pod", namespace, labelSelector="job-name=bad")["items"][0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Failed", 3)
    log = cp.rest.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/log")
    assert log == "step 1\nstep 2\n"
