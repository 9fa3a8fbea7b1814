"""Jobs in a real embedded AstraGo: magics in a real kernel, cancellation, quota, ownership, bad specs.

Real: the hub, proxy, service, realm, users' JupyterLab servers and kernels, the job
processes (as each user's system account) and papermill. The GPU inventory is a static file
(a named stand-in for NVML: no GPU here), so slices are simulated devices.
"""
import json
import time
from pathlib import Path

import nbformat
import requests

from support.fixtures import require
from jobs_support import JobUser, admin_api, make_notebook, marker_pids, pid_alive
from jobs_support import jobs_platform, keep_platform_log  # noqa: F401 (fixtures)
from support.kernel import run_code
from support.platform import start_server, stop_server



def test_notebook_job_from_a_magic_in_a_real_kernel(jobs_platform):
    p = jobs_platform
    u = JobUser(p, "nbuser")
    start_server(p, u.token, u.name)
    try:
        autoload = run_code(p.url, u.name, u.token, "print('job' in get_ipython().magics_manager.magics['line'])")
        require(autoload["stdout"].strip() == "True",
                "the AstraGo IPython config in the user environment (make .stamp-user-env)")
        make = run_code(p.url, u.name, u.token, make_notebook("train.ipynb"))
        assert make["error"] is None, make
        out = run_code(p.url, u.name, u.token, "%job run train.ipynb -p lr 0.5 --name train-lr --follow",
                       timeout=180)
        assert out["error"] is None and "Traceback" not in out["stderr"], out
        assert "lr=0.5" in out["stdout"], out  # the followed log carries the cell's output
        assert "completed." in out["stdout"], out
        executed = [line.split("Output: ", 1)[1] for line in out["stdout"].splitlines() if line.startswith("Output: ")]
        assert len(executed) == 1 and executed[0].startswith(str(u.home / "train-")), out
        nb = nbformat.read(executed[0], as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "lr = 0.5" in injected[0].source
        printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert "lr=0.5" in printed
        assert Path(executed[0]).stat().st_uid == (u.home / "train.ipynb").stat().st_uid  # written as the user

        # the same job through the API: owner, kind, parameters, output and history
        jobs = u.api("GET", "jobs").json()["jobs"]
        job = next(j for j in jobs if j["name"] == "train-lr")
        assert job["status"] == "COMPLETED" and job["kind"] == "notebook" and job["parameters"] == {"lr": 0.5}
        assert job["outputs"] == executed and job["exit_code"] == 0
        history = [e["status"] for e in u.job(job["id"])["events"]]
        assert history == ["CREATED", "QUEUED", "RUNNING", "COMPLETED"]

        # %%job submits the cell; %jobs shows the table; a mistake is one line, no traceback
        cell = run_code(p.url, u.name, u.token, "%%job --name cell-job --param epochs=3 --follow\n"
                        "print('epochs', epochs * 2)\n", timeout=120)
        assert "epochs 6" in cell["stdout"] and "completed." in cell["stdout"], cell
        table = run_code(p.url, u.name, u.token, "from IPython.utils.capture import capture_output\n"
                         "with capture_output() as shown:\n    get_ipython().run_line_magic('jobs', '')\n"
                         "print(shown.outputs[0].data['text/plain']); print('html' if '<table>' in "
                         "shown.outputs[0].data['text/html'] else '')")
        assert "cell-job" in table["stdout"] and "COMPLETED" in table["stdout"] and "html" in table["stdout"], table
        bad = run_code(p.url, u.name, u.token, "%job run missing.ipynb")
        assert bad["error"] is None and bad["stderr"].count("\n") == 1 and "there is no file" in bad["stderr"], bad
        bad = run_code(p.url, u.name, u.token, "%job run train.ipynb --slice 9g.1tb")
        assert bad["error"] is None and bad["stderr"].startswith("astrago: ") and "Traceback" not in bad["stderr"]
        assert bad["stderr"].count("\n") == 1, bad
    finally:
        stop_server(p, u.token, u.name)


def test_cancel_a_running_job_kills_its_processes_and_releases_the_allocation(jobs_platform):
    p = jobs_platform
    u = JobUser(p, "canceller")
    job = u.submit(kind="command", command="sleep 600 & sleep 600; wait", slice="1g.10gb", name="sleeper")
    running = u.wait_running_process(job["id"])
    pid = running["process"]["pid"]
    deadline = time.monotonic() + 15  # RUNNING comes as the runner starts; sh forks its sleeps a moment later
    while len(marker_pids(job["id"])) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_alive(pid) and len(marker_pids(job["id"])) >= 3  # the runner, sh and both sleeps
    alloc = admin_api(p, "GET", f"admissions/{running['allocation_id']}").json()
    assert alloc["status"] == "admitted" and alloc["owner"] == {"kind": "job", "id": job["id"]}
    assert running["queue"]["placement"]["visible_devices"][0].endswith("-1g.10gb")

    started = time.monotonic()
    r = u.api("POST", f"jobs/{job['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELLED" and time.monotonic() - started < 15
    # when the answer comes, the processes are gone and the allocation is released
    assert not pid_alive(pid)
    assert marker_pids(job["id"]) == []
    alloc = admin_api(p, "GET", f"admissions/{running['allocation_id']}").json()
    assert alloc["status"] == "released" and "cancelled" in alloc["reason"]
    again = u.api("POST", f"jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.headers["Content-Type"].startswith("application/problem+json")


def test_a_job_over_quota_waits_queued_with_the_reason(jobs_platform):
    p = jobs_platform
    u = JobUser(p, "quotaed")
    r = admin_api(p, "PUT", f"quotas/user/{u.name}", json={"limits": {"gpu_units": 0.5}})
    assert r.status_code == 200, r.text
    first = u.submit(kind="command", command="sleep 600", slice="2g.20gb", name="first")  # 2/7 GPU units
    u.wait_running_process(first["id"])
    second = u.submit(kind="command", command="echo second ran", slice="2g.20gb", name="second")
    time.sleep(3)  # a few scheduling cycles
    waiting = u.job(second["id"])
    assert waiting["status"] == "QUEUED"
    assert "over quota" in waiting["reason"] and "gpu_units" in waiting["reason"], waiting
    assert "position 1 of" in waiting["reason"]
    # more than the quota even with nothing held: refused at once, with the reason
    r = u.api("POST", "jobs", json={"kind": "command", "command": "true", "slice": "gpu-1"})
    assert r.status_code == 403 and r.json()["type"].endswith("/quota-exceeded"), r.text
    assert "gpu_units" in r.json()["detail"]
    # the first one ends: the second is admitted and runs
    assert u.api("POST", f"jobs/{first['id']}/cancel").json()["status"] == "CANCELLED"
    done = u.wait(second["id"], {"COMPLETED", "FAILED"})
    assert done["status"] == "COMPLETED", done
    text = u.api("GET", f"jobs/{second['id']}/log").text
    assert "second ran" in text


def test_user_b_can_neither_see_nor_cancel_user_as_job(jobs_platform):
    p = jobs_platform
    a, b = JobUser(p, "owner-a"), JobUser(p, "other-b")
    job = a.submit(kind="command", command="sleep 600", name="private")
    a.wait_running_process(job["id"])
    for method, path in (("GET", f"jobs/{job['id']}"), ("POST", f"jobs/{job['id']}/cancel"),
                         ("GET", f"jobs/{job['id']}/log"), ("GET", f"jobs/{job['id']}/events"),
                         ("GET", f"jobs?user={a.name}")):
        r = b.api(method, path)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
    assert all(j["owner"] == b.name for j in b.api("GET", "jobs").json()["jobs"])
    assert a.job(job["id"])["status"] == "RUNNING"  # B's cancel did nothing
    denials = admin_api(p, "GET", "audit", params={"actor": b.name, "outcome": "denied"}).json()["entries"]
    assert {"job.read", "job.cancel", "job.log", "job.follow"} <= {e["action"] for e in denials}
    # an administrator sees everyone's jobs and may cancel them
    listed = admin_api(p, "GET", "jobs", params={"user": a.name}).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert admin_api(p, "POST", f"jobs/{job['id']}/cancel").json()["status"] == "CANCELLED"


def test_invalid_specs_are_refused_with_problem_json(jobs_platform):
    p = jobs_platform
    u = JobUser(p, "sloppy")
    cases = [
        ({"kind": "notebook"}, 400, "invalid-request", "needs input"),
        ({"kind": "notebook", "input": "train.py"}, 400, "invalid-request", ".ipynb"),
        ({"kind": "command", "command": "true", "memory": "lots"}, 400, "invalid-request", "memory"),
        ({"kind": "command", "command": "true", "cpu": -1}, 400, "invalid-request", "cpu"),
        ({"kind": "command", "command": "true", "max_runtime": "forever"}, 400, "invalid-request", "max_runtime"),
        ({"kind": "command", "command": "true", "env": {"CUDA_VISIBLE_DEVICES": "0"}}, 400, "invalid-request",
         "set by AstraGo"),
        ({"kind": "command", "command": "true", "image": "evil:latest"}, 400, "invalid-request", "cluster mode"),
        ({"kind": "command", "command": "true", "gpus": 8}, 400, "invalid-request", "Unknown field"),
        ({"kind": "command", "command": "true", "parameters": {"1x": 2}}, 400, "invalid-request", "valid Python"),
        ({"kind": "wizardry"}, 400, "invalid-request", "kind must be"),
        # several replicas run here too (processes, each on its own slice); MPI needs the cluster's MPI Operator
        ({"kind": "command", "command": "mpirun python train.py", "distributed": {"framework": "mpi", "workers": 2}},
         400, "invalid-request", "MPI jobs run only in cluster mode"),
        ({"kind": "command", "command": "true", "slice": "9g.1tb"}, 422, "invalid-slice", ""),
        ({"kind": "command", "command": "true", "slice": "gpu-2"}, 409, "capacity-unavailable", "never be placed"),
    ]
    for body, status, kind, words in cases:
        r = u.api("POST", "jobs", json=body)
        assert r.status_code == status, (body, r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["type"].endswith("/" + kind) and words in problem["detail"], (body, problem)
    r = requests.post(p.service_url + "api/jobs", data="{not json", headers=u.headers, timeout=30)
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    assert requests.post(p.service_url + "api/jobs", json={"kind": "command", "command": "true"},
                         timeout=30).status_code == 401
    assert u.api("GET", "jobs").json()["jobs"] == []  # nothing was half-created


def test_log_from_any_offset_and_the_admin_page(jobs_platform):
    from astrago.hub.client import ServiceClient
    from astrago.hub.client.jobs import JobsClient

    p = jobs_platform
    u = JobUser(p, "reader")
    job = u.submit(kind="command", command="for i in 1 2 3; do echo line-$i; done; echo ünïcode", name="lines")
    u.wait(job["id"], "COMPLETED")
    full = u.api("GET", f"jobs/{job['id']}/log")
    text = full.content.decode()
    assert "line-1\nline-2\nline-3\nünïcode\n" in text
    cut = text.index("line-2")
    part = u.api("GET", f"jobs/{job['id']}/log", params={"offset": len(text[:cut].encode())})
    assert part.content.decode().startswith("line-2") and int(part.headers["X-Log-Next-Offset"]) == len(full.content)
    client = JobsClient(ServiceClient(p.service_url, u.token))
    events = list(client.follow(job["id"], offset=len(text[:cut].encode())))
    kinds = [e for e, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "end" and "log" in kinds
    followed = "".join(d["text"] for e, d in events if e == "log")
    assert followed.startswith("line-2") and followed.endswith("ünïcode\n[astrago] finished with exit code 0 "
                                                               f"after {followed.rsplit('after ', 1)[1]}")
    # raw server-sent events resume from Last-Event-ID
    with requests.get(p.service_url + f"api/jobs/{job['id']}/events", headers={**u.headers, "Last-Event-ID": "1:0"},
                      stream=True, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        raw = r.text
    assert "event: status" in raw and "event: log" in raw and "event: end" in raw
    # the admin page lists everyone's jobs; a user's page only their own
    admin_page = _page(p, "admin", p.admin_password, f"admin/jobs?user={u.name}")
    assert job["id"] in admin_page and "All jobs" in admin_page
    own = requests.Session()
    own.cookies = u.session.cookies
    mine = _page(p, u.name, u.password, "jobs")
    assert job["id"] in mine and "My jobs" in mine
    denied = _page(p, u.name, u.password, "admin/jobs", status=403)
    assert job["id"] not in denied


def _page(p, user, password, path, status=200):
    from support.platform import login

    session, _ = login(p, user, password)
    r = session.get(p.service_url + path, timeout=30)
    assert r.status_code == status, (path, r.status_code, r.text[:500])
    return r.text


def test_the_cli_logs_in_submits_follows_lists_and_cancels(jobs_platform, tmp_path):
    import os
    import subprocess
    import sys

    p = jobs_platform
    u = JobUser(p, "clier")
    env = {k: v for k, v in os.environ.items() if k not in ("ASTRAGO_SERVICE_URL", "JUPYTERHUB_API_TOKEN")}
    env["HOME"] = str(tmp_path)
    astrago = str(Path(sys.prefix) / "bin" / "astrago")

    def cli(*args, code=0):
        r = subprocess.run([astrago, *args], capture_output=True, text=True, env=env, timeout=180)
        assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
        return r

    cli("login", p.url, "--token", u.token)
    saved = json.loads((tmp_path / ".config" / "astrago" / "client.json").read_text())
    assert saved == {"url": p.service_url, "token": u.token}
    assert oct((tmp_path / ".config" / "astrago" / "client.json").stat().st_mode & 0o777) == "0o600"
    out = cli("job", "submit", "--command", "echo from the cli $ASTRAGO_PARAM_N", "-p", "N", "7", "--name", "cli-job",
              "--follow").stdout
    assert "from the cli 7" in out and "Job " in out and "completed." in out, out
    listed = cli("job", "list").stdout
    assert "cli-job" in listed and "COMPLETED" in listed
    job_id = listed.splitlines()[1].split()[0]
    assert "COMPLETED" in cli("job", "status", job_id).stdout
    assert "from the cli 7" in cli("job", "logs", job_id).stdout
    sleeper = json.loads(cli("job", "submit", "--command", "sleep 600", "--json").stdout)
    u.wait_running_process(sleeper["id"])
    assert "CANCELLED" in cli("job", "cancel", sleeper["id"]).stdout
    # user mistakes: one sentence on stderr, exit code 1, no traceback
    for args, words in ((("job", "submit"), "Give a notebook or script"),
                        (("job", "submit", "--command", "true", "--mem", "lots"), "memory must be a size"),
                        (("job", "submit", "--command", "true", "--slice", "gpu-2"), "never be placed"),
                        (("job", "status", "ffffffffffff"), "There is no job ffffffffffff"),
                        (("job", "cancel", job_id), "already ended")):
        err = cli(*args, code=1).stderr
        assert err.startswith("astrago: ") and words in err and err.count("\n") == 1, (args, err)
    other = JobUser(p, "clier-b")
    env2 = dict(env, ASTRAGO_SERVICE_URL=p.service_url, JUPYTERHUB_API_TOKEN=other.token)
    r = subprocess.run([astrago, "job", "status", job_id], capture_output=True, text=True, env=env2, timeout=60)
    assert r.returncode == 1 and "not allowed" in r.stderr and "Traceback" not in r.stderr
