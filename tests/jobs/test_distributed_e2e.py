"""Jobs of several replicas in a real embedded AstraGo, through the API: a gang admission (all or
none, charged per replica's slice), each process on its own simulated MIG slice with its own
rank, every replica's log (API and job page), and cancellation of every process.

Real: the hub, proxy, service, realm, logins, the job processes (as the user's system account).
The GPU inventory is a static file (a named stand-in for NVML: no GPU here): one H100 with two
1g.10gb instances (jobs_support.INVENTORY), so a 2-replica 1g.10gb job fits exactly when
nothing else holds a 1g.10gb.
"""
import time

from support.fixtures import browser_login
from jobs_support import JobUser, admin_api, marker_pids, pid_alive
from jobs_support import jobs_platform, keep_platform_log  # noqa: F401 (fixtures)

SAYS = 'echo "rank=$RANK of=$WORLD_SIZE cuda=$CUDA_VISIBLE_DEVICES master=$MASTER_ADDR:$MASTER_PORT"'


def said(text: str) -> dict:
    line = next(x for x in text.splitlines() if x.startswith("rank="))
    return dict(part.split("=", 1) for part in line.split())


def test_a_two_replica_job_with_one_free_slot_waits_then_runs_whole(jobs_platform, chromium, artifacts):
    p = jobs_platform
    u = JobUser(p, "ganger")
    holder = u.submit(kind="command", command="sleep 600", slice="1g.10gb", name="holder")
    u.wait_running_process(holder["id"])
    gang = u.submit(kind="command", command=SAYS, slice="1g.10gb", replicas=2, name="ddp")
    assert gang["replicas"] == 2 and gang["distributed"] == {"framework": "pytorch", "workers": 1}
    time.sleep(3)  # a few scheduling cycles: one 1g.10gb is free, the gang needs two
    waiting = u.job(gang["id"])
    assert waiting["status"] == "QUEUED" and waiting["queue"]["status"] == "queued", waiting
    assert waiting["reason"].startswith("waiting") and "1g.10gb" in waiting["reason"], waiting["reason"]
    assert abs(waiting["queue"]["gpu_units"] - 2 / 7) < 1e-9  # charged as two slices
    alloc = admin_api(p, "GET", f"admissions/{waiting['allocation_id']}").json()
    assert (alloc["status"], alloc["replicas"], alloc["placement"]) == ("queued", 2, {})  # holds nothing
    # a second slot frees: admitted whole, each process on its own slice, with its rank
    assert u.api("POST", f"jobs/{holder['id']}/cancel").status_code == 200
    done = u.wait(gang["id"], {"COMPLETED", "FAILED"})
    assert done["status"] == "COMPLETED", done
    logs = []
    for replica in (0, 1):
        r = u.api("GET", f"jobs/{gang['id']}/log", params={"replica": replica})
        assert r.status_code == 200 and r.headers["X-Job-Replica"] == str(replica)
        logs.append(said(r.text))
    assert [(x["rank"], x["of"]) for x in logs] == [("0", "2"), ("1", "2")]
    cuda = [x["cuda"] for x in logs]
    assert len(set(cuda)) == 2 and all(c.startswith("MIG-") and c.endswith("-1g.10gb") for c in cuda), logs
    assert logs[0]["master"] == logs[1]["master"] and logs[0]["master"].startswith("127.0.0.1:")
    assert u.api("GET", f"jobs/{gang['id']}/log").text == u.api(
        "GET", f"jobs/{gang['id']}/log", params={"replica": 0}).text  # replica 0 is the job's log
    wrong = u.api("GET", f"jobs/{gang['id']}/log", params={"replica": 2})
    assert wrong.status_code == 400 and "has 2 replicas: replica must be from 0 to 1" in wrong.json()["detail"]
    alloc = admin_api(p, "GET", f"admissions/{done['allocation_id']}").json()
    assert alloc["status"] == "released" and len(alloc["placement"]["replicas"]) == 2
    # the job page: every replica's log
    page = browser_login(chromium, p, u.name, u.password)
    assert page.goto(p.service_url + f"jobs/{gang['id']}").status == 200
    assert page.locator("#job-replicas").inner_text().startswith("2, each on its own 1g.10gb")
    page.wait_for_function("document.getElementById('log').textContent.includes('rank=0')", timeout=30000)
    page.select_option("#log-replica", "1")
    page.wait_for_function("document.getElementById('log').textContent.includes('rank=1')", timeout=30000)
    assert "rank=0" not in page.locator("#log").inner_text()
    page.screenshot(path=str(artifacts / "job-page-replicas.png"), full_page=True)


def test_cancelling_a_running_gang_stops_every_process(jobs_platform):
    p = jobs_platform
    u = JobUser(p, "gangstop")
    gang = u.submit(kind="command", command="sleep 600 & sleep 600; wait", slice="1g.10gb", replicas=2,
                    name="ddp-long")
    running = u.wait_running_process(gang["id"])
    pids = running["process"]["pids"]
    assert len(pids) == 2 and all(pid_alive(pid) for pid in pids)
    deadline = time.monotonic() + 15
    while len(marker_pids(gang["id"])) < 8 and time.monotonic() < deadline:  # 2 x (runner, sh, 2 sleeps)
        time.sleep(0.2)
    assert len(marker_pids(gang["id"])) >= 8
    r = u.api("POST", f"jobs/{gang['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED", r.text
    assert marker_pids(gang["id"]) == [] and not any(pid_alive(pid) for pid in pids)  # no orphan
    alloc = admin_api(p, "GET", f"admissions/{running['allocation_id']}").json()
    assert alloc["status"] == "released"


def test_too_many_replicas_and_mpi_here_are_refused_in_plain_words(jobs_platform):
    u = JobUser(jobs_platform, "gangrefused")
    for body, words in (({"kind": "command", "command": "x", "replicas": 9}, "at most 8 replicas"),
                        ({"kind": "command", "command": "x", "replicas": 2, "distributed": {"framework": "mpi"}},
                         "MPI jobs run only in cluster mode")):
        r = u.api("POST", "jobs", json=body)
        assert r.status_code == 400 and words in r.json()["detail"], r.text
