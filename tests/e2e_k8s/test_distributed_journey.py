"""Distributed jobs through the service in cluster mode, on the real control plane with the hub as z2jh
runs it (cluster_hub.py): a 2-replica PyTorchJob on MIG slices and a 2-replica MPIJob on MPS shares,
each admitted as a gang (all or none, one slice per replica), accepted by the real API server with
Kubeflow's published CRDs, their pods made by the operators' doubles (tests/controlplane/
training_operator.py, mpi_operator.py) and run by KWOK and the runtime double to completion, and
every replica's log read back through the service's API."""
from __future__ import annotations

import time

from test_cluster_journey import cluster_hub  # noqa: F401 (the module's hub)

RELEASE = "astrago"


def wait(what, check, timeout=180, every=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_pytorch_job_and_an_mpi_job_of_two_replicas_run_to_completion(cluster_hub, control_plane):
    hub, rest = cluster_hub, control_plane.rest
    name, password = hub.add_user("rhea", groups=["/team-gpu", "/team-mps"])
    token = hub.token(hub.login(name, password), name)
    specs = {
        "PyTorchJob": {"kind": "command", "name": "ddp", "slice": "1g.10gb", "replicas": 2, "cpu": 1,
                       "memory": "1G", "command": 'echo "rank $RANK of $WORLD_SIZE on $ASTRAGO_SLICE"'},
        "MPIJob": {"kind": "command", "name": "allreduce", "slice": "mps-25", "replicas": 2, "cpu": 1,
                   "memory": "1G", "distributed": {"framework": "mpi"},
                   "command": 'echo "MPI $ASTRAGO_JOB_REPLICA of $ASTRAGO_JOB_REPLICAS on $ASTRAGO_SLICE"'},
    }
    jobs = {}
    for kind, spec in specs.items():
        r = hub.service("POST", "jobs", token=token, json=spec)
        assert r.status_code == 201, r.text
        jobs[kind] = r.json()
        assert jobs[kind]["replicas"] == 2
    # the user has no server yet: the volume their server would make, which every job pod mounts
    pod = wait("the first job pod", lambda: next(iter(rest.list(
        "v1", "Pod", RELEASE, labelSelector=f"astrago.io/job-id={jobs['PyTorchJob']['id']}")["items"]), None))
    claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    control_plane.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "metadata": {"name": claim, "namespace": RELEASE},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    for kind, job in jobs.items():
        done = wait(f"the {kind} to end", lambda job=job: (lambda j: j if j["status"] in (
            "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT") else None)(
            hub.service("GET", f"jobs/{job['id']}", token=token).json()))
        assert (done["status"], done["exit_code"], done["process"]["kind"]) == ("COMPLETED", 0, kind), done
        kube = rest.read("kubeflow.org/v1" if kind == "PyTorchJob" else "kubeflow.org/v2beta1", kind,
                         done["process"]["name"], RELEASE)
        assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in kube["status"]["conditions"])
        admission = hub.service("GET", f"admissions/{done['allocation_id']}").json()
        assert (admission["replicas"], admission["status"], len(admission["placement"]["replicas"])) == \
            (2, "released", 2), admission  # one gang, one slice per replica
        jobs[kind] = done
    logs = {(kind, replica): hub.service("GET", f"jobs/{job['id']}/log", token=token,
                                         params={"replica": replica}).text
            for kind, job in jobs.items() for replica in (0, 1)}
    assert "rank 0 of 2 on 1g.10gb" in logs["PyTorchJob", 0] and "rank 1 of 2 on 1g.10gb" in logs["PyTorchJob", 1]
    assert "MPI launcher of 2 on mps-25" in logs["MPIJob", 0], logs
    assert "MPI worker up on mps-25" in logs["MPIJob", 1], logs
    pods = rest.list("v1", "Pod", RELEASE, labelSelector=f"astrago.io/job-id={jobs['PyTorchJob']['id']}")["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {"gpu-mig-1"} and len(pods) == 2
    assert hub.allocations(name) == []
