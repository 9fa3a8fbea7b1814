"""Teams and datasets in a real embedded AstraGo: Keycloak logins, real servers and kernels, a real job.

Real: the hub, proxy, service, Keycloak (users put into a Keycloak group), the users' JupyterLab
servers and kernels (each as its own system account), POSIX groups, the job process.
"""
import grp
import re
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import requests

from support.fixtures import new_platform, require
from support.kernel import run_code
from support.platform import api_token, login, start_server, stop_server

PROBLEM = "application/problem+json"


class Member:
    def __init__(self, p, base, groups=()):
        self.p = p
        self.name, self.password = p.add_user(base, groups=groups)
        self.session, _ = login(p, self.name, self.password)
        self.token = api_token(p, self.session, self.name)
        self.account = f"astrago-{self.name}"

    def api(self, method, path, **kw):
        return requests.request(method, self.p.service_url + "api/" + path, timeout=120,
                                headers={"Authorization": f"token {self.token}"}, **kw)

    def run(self, code, timeout=60):
        out = run_code(self.p.url, self.name, self.token, code, timeout=timeout)
        return out


@pytest.fixture(scope="module")
def team_platform():
    require(os.geteuid() == 0, "root (POSIX groups and one system account per user)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-teams-"))
    root = Path(tempfile.mkdtemp(prefix="astrago-team-spaces-"))
    os.chmod(root, 0o711)  # users' accounts traverse it to their team's folder
    p = new_platform(tmp)
    p.extra_env = {"ASTRAGO_TEAMS_ROOT": str(root), "ASTRAGO_TEAMS_SYNC_INTERVAL": "5"}
    p.start()
    p.teams_root = root
    session, _ = login(p, "admin", p.admin_password)
    p.admin_token = api_token(p, session, "admin")
    p.team = "tm" + secrets.token_hex(3)
    yield p
    p.stop()
    p.remove_system_accounts()
    subprocess_run(["groupdel", f"astrago-team-{p.team}"])
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


def subprocess_run(args):
    import subprocess

    subprocess.run(args, capture_output=True)


def admin(p, method, path, **kw):
    return requests.request(method, p.service_url + "api/" + path, timeout=120,
                            headers={"Authorization": f"token {p.admin_token}"}, **kw)


def problem(r, status, kind):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith(PROBLEM), r.headers
    assert r.json()["type"].endswith("/" + kind), r.json()
    return r.json()


def test_team_space_datasets_and_a_job(team_platform, artifacts, chromium):
    p = team_platform
    team = p.team
    a = Member(p, "ana", groups=[f"/{team}"])
    b = Member(p, "ben", groups=[f"/{team}"])
    c = Member(p, "cy")
    # only admins mark teams; a group that is none in the hub is refused
    problem(a.api("PUT", f"teams/{team}", json={"admins": [a.name]}), 403, "forbidden")
    problem(admin(p, "PUT", "teams/nosuchgroup", json={}), 404, "not-found")
    r = admin(p, "PUT", f"teams/{team}", json={"admins": [a.name]})
    assert r.status_code == 201, r.text
    assert [t["name"] for t in a.api("GET", "teams").json()["teams"]] == [team]
    assert c.api("GET", "teams").json()["teams"] == []
    problem(c.api("GET", f"teams/{team}"), 403, "forbidden")

    for m in (a, b, c):
        start_server(p, m.token, m.name)
    try:
        folder = p.teams_root / team
        st = folder.stat()
        assert oct(st.st_mode & 0o7777) == "0o2770" and grp.getgrgid(st.st_gid).gr_name == f"astrago-team-{team}"
        assert set(grp.getgrnam(f"astrago-team-{team}").gr_mem) == {a.account, b.account}

        # two members edit the same file from their own kernels
        out = a.run(f"import os\np=os.path.expanduser('~/teams/{team}/shared.txt')\n"
                    "open(p,'w').write('from ana\\n'); print(os.path.islink(os.path.expanduser('~/teams/"
                    f"{team}')))")
        assert out["error"] is None and out["stdout"].strip() == "True", out
        out = b.run(f"import os\np=os.path.expanduser('~/teams/{team}/shared.txt')\n"
                    "print(open(p).read().strip()); open(p,'a').write('and ben\\n')")
        assert out["error"] is None and out["stdout"].strip() == "from ana", out
        out = a.run(f"print(open(__import__('os').path.expanduser('~/teams/{team}/shared.txt')).read())")
        assert out["stdout"] == "from ana\nand ben\n\n", out
        # a non-member cannot read it
        out = c.run(f"open({str(folder / 'shared.txt')!r}).read()")
        assert out["error"] and out["error"].startswith("PermissionError"), out

        # a dataset from a folder of the team space
        out = a.run(f"import os\nd=os.path.expanduser('~/teams/{team}/data/sub')\nos.makedirs(d)\n"
                    "open(d+'/../a.txt','w').write('alpha')\nopen(d+'/b.bin','wb').write(bytes(range(256)))")
        assert out["error"] is None, out
        problem(c.api("POST", "datasets", json={"name": "ds", "team": team, "source_path": "data"}), 403,
                "forbidden")
        problem(a.api("POST", "datasets", json={"name": "Bad Name", "team": team, "source_path": "data"}), 400,
                "invalid-request")
        r = a.api("POST", "datasets", json={"name": "ds", "team": team, "source_path": f"~/teams/{team}/data"})
        assert r.status_code == 201, r.text
        ds = r.json()
        assert (ds["version"], ds["file_count"], ds["size_bytes"], ds["created_by"]) == (1, 2, 261, a.name)
        assert ds["env"] == "ASTRAGO_DATASET_DS"
        assert a.api("GET", f"datasets/ds/1?team={team}").json()["manifest_sha256"] == ds["manifest_sha256"]
        problem(c.api("GET", f"datasets/ds/1?team={team}"), 403, "forbidden")
        # read-only from a kernel: reading works, writing fails, the checksum matches
        check = (f"import hashlib, os\nroot={ds['path']!r}\nlines=[]\n"
                 "for d, _, fs in os.walk(root):\n"
                 "    for f in fs:\n"
                 "        p=os.path.join(d,f); data=open(p,'rb').read()\n"
                 "        lines.append((os.path.relpath(p,root), hashlib.sha256(data).hexdigest(), len(data)))\n"
                 "text=''.join(f'{h}  {n}  {r}\\n' for r,h,n in sorted(lines))\n"
                 "print(hashlib.sha256(text.encode()).hexdigest())\n"
                 "try:\n    open(root+'/a.txt','a').write('x'); print('WROTE')\n"
                 "except PermissionError: print('READONLY')\n")
        out = b.run(check)
        assert out["error"] is None and out["stdout"].split() == [ds["manifest_sha256"], "READONLY"], out

        # attached to a job: the path in ASTRAGO_DATASET_DS, readable, not writable
        job_code = ("import os, time\np=os.environ['ASTRAGO_DATASET_DS']\nprint('READ', open(p+'/a.txt').read())\n"
                    "try:\n    open(p+'/new.txt','w'); print('WROTE')\nexcept OSError as e: print('WRITE-FAILED', "
                    "type(e).__name__)\ntime.sleep(120)\n")
        r = b.api("POST", "jobs", json={"kind": "script", "code": job_code, "datasets": [f"{team}/ds:1"]})
        assert r.status_code == 201, r.text
        job = r.json()
        problem(b.api("POST", "jobs", json={"kind": "script", "code": "1", "datasets": ["nosuch:1"]}), 404,
                "not-found")
        deadline = time.monotonic() + 90
        log = ""
        while time.monotonic() < deadline and "WRITE-FAILED" not in log:
            log = b.api("GET", f"jobs/{job['id']}/log").text
            time.sleep(0.5)
        assert "READ alpha" in log and "WRITE-FAILED PermissionError" in log, log
        # deleting it while the job runs is refused; a member who is no team admin may not either
        problem(b.api("DELETE", f"datasets/ds/1?team={team}"), 403, "forbidden")
        body = problem(a.api("DELETE", f"datasets/ds/1?team={team}"), 409, "conflict")
        assert body["jobs"][0]["id"] == job["id"]
        assert b.api("POST", f"jobs/{job['id']}/cancel").status_code in (200, 202)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b.api("GET", f"jobs/{job['id']}").json()["status"] != "CANCELLED":
            time.sleep(0.5)

        # the page: members, storage, datasets (screenshot looked at)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(p.url + "/hub/login")
        page.fill("input[name=username]", a.name)
        page.fill("input[name=password]", a.password)
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url(re.compile(r".*/(hub|user)/.*"))  # a running server sends the member to its lab
        page.goto(p.service_url + "teams")
        page.wait_for_selector(f"[data-team={team}]")
        text = page.inner_text("main")
        assert a.name in text and b.name in text and f"{team}/ds:1" in text and "storage used" in text
        page.screenshot(path=str(artifacts / "teams-page.png"), full_page=True)
        page.close()

        assert a.api("DELETE", f"datasets/ds/1?team={team}").status_code == 204
        assert not Path(ds["path"]).exists()
        assert a.api("GET", f"datasets/ds/1?team={team}").status_code == 404

        # out of the Keycloak group: at the next login and sync the account leaves the POSIX group
        p.realm_admin.remove_from_group(b.name, f"/{team}")
        login(p, b.name, b.password)
        assert admin(p, "POST", "teams/sync", json={}).status_code == 200
        assert set(grp.getgrnam(f"astrago-team-{team}").gr_mem) == {a.account}
        assert not os.path.lexists(f"/home/{b.account}/teams/{team}")
    finally:
        for m in (a, b, c):
            try:
                stop_server(p, m.token, m.name)
            except Exception:
                pass
        (artifacts / "teams_platform.log").write_text(p.log())
