"""Environments in a real embedded AstraGo: the hub, proxy, service, Keycloak, users' JupyterLab servers
and kernels (each as the user's own system account), the `astrago` CLI and Chromium on the spawn page.

An admin builds an environment with one package (a wheel made here) for one team with `astrago env
create`; a member of the team chooses it on the spawn page and their kernel imports the package, its
sys.prefix the environment's; jobs run in it (`%%job` from that server, `astrago job submit --env`);
the refusals (non-admin create, bad name, unknown team, a user outside the team, delete while in
use) are problem+json in plain words.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from env_wheels import make_wheel
from support.fixtures import new_platform, require
from support.kernel import run_code
from support.platform import api_token, login, stop_server

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def env_platform():
    require(os.geteuid() == 0, "root (the local spawner makes a system account per user)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-envs-e2e-"))
    root = Path(tempfile.mkdtemp(prefix="astrago-environments-"))
    os.chmod(root, 0o755)  # users' accounts read their environments
    p = new_platform(tmp)
    p.data_dir.mkdir(parents=True)
    # the operator's own config file, as docs/environments.md tells
    (p.data_dir / "astrago_service_config.py").write_text(f"c.EnvironmentsArea.root = {str(root)!r}\n")
    p.start()
    p.environments_root = root
    session, _ = login(p, "admin", p.admin_password)
    p.admin_token = api_token(p, session, "admin")
    p.tmp = tmp
    yield p
    p.stop()
    p.remove_system_accounts()
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)


class Person:
    def __init__(self, p, base, groups=()):
        self.p = p
        self.name, self.password = p.add_user(base, groups=groups)
        self.session, _ = login(p, self.name, self.password)
        self.token = api_token(p, self.session, self.name)

    def api(self, method, path, **kw):
        return requests.request(method, self.p.service_url + "api/" + path, timeout=120,
                                headers={"Authorization": f"token {self.token}"}, **kw)

    def hub(self, method, path, **kw):
        return requests.request(method, f"{self.p.url}/hub/api/{path}", timeout=60,
                                headers={"Authorization": f"token {self.token}"}, **kw)


def admin(p, method, path, **kw):
    return requests.request(method, p.service_url + "api/" + path, timeout=120,
                            headers={"Authorization": f"token {p.admin_token}"}, **kw)


def problem(r, status, kind):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith(PROBLEM), r.headers
    assert r.json()["type"].endswith("/" + kind), r.json()
    return r.json()


def browser_page(chromium, p, username, password):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(p.url + "/hub/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(r".*/(hub|user)/.*"))
    return page


def spawn_failure(person, timeout=60) -> str:
    """The message of a failed spawn, from the hub's progress stream."""
    with person.hub("GET", f"users/{person.name}/server/progress", stream=True) as r:
        deadline = time.monotonic() + timeout
        for line in r.iter_lines(decode_unicode=True):
            assert time.monotonic() < deadline, "no failure in the progress stream"
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    return event.get("message", "")
    raise AssertionError("the progress stream ended without a failure")


def test_an_environment_is_built_chosen_on_the_spawn_page_and_its_package_imports(env_platform, artifacts, chromium):
    p = env_platform
    team = "et" + secrets.token_hex(3)
    member = Person(p, "ena", groups=[f"/{team}"])
    outsider = Person(p, "oto")
    name = "probe" + secrets.token_hex(2)

    # only admins create; a bad name, an unknown team, a reserved name: 400 in plain words
    problem(member.api("POST", "environments", json={"name": name, "packages": "six"}), 403, "forbidden")
    bad = problem(admin(p, "POST", "environments", json={"name": "Bad Name", "packages": "six"}), 400,
                  "invalid-request")
    assert "cannot name an environment" in bad["detail"]
    unknown = problem(admin(p, "POST", "environments", json={"name": name, "packages": "six",
                                                              "teams": ["nosuchteam" + secrets.token_hex(2)]}),
                      400, "invalid-request")
    assert unknown["detail"].startswith("There is no team nosuchteam")
    problem(admin(p, "POST", "environments", json={"name": "base", "packages": "six"}), 400, "invalid-request")
    problem(admin(p, "POST", "environments", json={"name": name, "packages": "-r /etc/shadow"}), 400,
            "invalid-request")
    assert name not in [e["name"] for e in admin(p, "GET", "environments").json()["environments"]]

    # the CLI builds it and shows the build until it is ready; the admin page shows its progress meanwhile
    wheel = make_wheel(p.tmp, "astrago_probe", "1.0", "probe " + name)
    admin_page = browser_page(chromium, p, "admin", p.admin_password)
    cli = subprocess.Popen([str(Path(sys.prefix) / "bin" / "astrago"), "env", "create", name, "--packages", str(wheel),
                            "--teams", team, "--description", "a probe package"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "ASTRAGO_SERVICE_URL": p.service_url,
                                "JUPYTERHUB_API_TOKEN": p.admin_token})
    try:
        deadline = time.monotonic() + 120
        while True:  # caught early in the build (step 5, the import check, takes seconds)
            seen = admin(p, "GET", f"environments/{name}").json()
            if seen.get("status") == "building" and seen["step"] <= 4:
                break
            assert time.monotonic() < deadline and cli.poll() is None, f"the build never showed as building: {seen}"
            time.sleep(0.1)
        admin_page.goto(p.service_url + "admin/environments")
        progress = admin_page.inner_text(f"tr[data-environment={name}]")
        admin_page.screenshot(path=str(artifacts / "environments-admin-building.png"), full_page=True)
        assert "building" in progress and "step" in progress and " of 6" in progress, progress
        stdout, _ = cli.communicate(timeout=600)
    finally:
        cli.kill()
    (artifacts / "environments-cli.txt").write_text(stdout)
    assert cli.returncode == 0, stdout
    assert f"{name}: queued" in stdout or f"{name}: building" in stdout
    assert "== step 3 of 6: Installing" in stdout and "Successfully installed astrago-probe-1.0" in stdout
    assert f"{name} is ready" in stdout
    problem(admin(p, "POST", "environments", json={"name": name, "packages": "six"}), 409, "conflict")

    env = admin(p, "GET", f"environments/{name}").json()
    prefix = str(p.environments_root / name)
    assert (env["status"], env["step"], env["steps"], env["teams"], env["prefix"]) == ("ready", 6, 6, [team], prefix)
    assert env["size_bytes"] > 0 and "Checking that JupyterLab" in env["log_tail"]
    # who sees it: the team's member, not the outsider
    assert [e["name"] for e in member.api("GET", "environments").json()["environments"]] == ["base", name]
    assert [e["name"] for e in outsider.api("GET", "environments").json()["environments"]] == ["base"]
    problem(outsider.api("GET", f"environments/{name}"), 404, "not-found")
    problem(outsider.api("POST", "environments", json={"name": "x1"}), 403, "forbidden")

    # a server start in an environment the user's teams do not allow is refused in plain words
    r = outsider.hub("POST", f"users/{outsider.name}/server", json={"slice": "cpu", "environment": name})
    # the spawner refuses before the spawn's first seconds are over, so the hub answers with it at once
    # (a slower refusal would come through the progress stream)
    message = r.json()["message"] if r.status_code == 400 else spawn_failure(outsider)
    assert f"The environment '{name}' is for the team(s) {team}, and {outsider.name} is in none of them" in message, \
        message

    # the member chooses it on the spawn page (screenshot looked at) and the server runs from it
    page = browser_page(chromium, p, member.name, member.password)
    try:
        page.goto(p.url + "/hub/spawn")
        page.wait_for_selector("#astrago-environments")
        assert page.is_checked("input[name=environment][value=base]")
        page.check(f"input[name=environment][value={name}]")
        page.screenshot(path=str(artifacts / "environments-spawn-page.png"), full_page=True)
        page.click("#spawn_form button[type=submit]")
        page.wait_for_url(re.compile(rf".*/user/{member.name}/lab.*"), timeout=180_000)
    finally:
        page.close()
    try:
        out = run_code(p.url, member.name, member.token,
                       "import astrago_probe, os, six, sys\nprint(astrago_probe.VALUE)\nprint(sys.prefix)\n"
                       "print(os.environ['ASTRAGO_ENVIRONMENT'])\nprint(six.__file__.startswith(sys.prefix))")
        assert out["error"] is None, out
        assert out["stdout"].splitlines() == [f"probe {name}", prefix, name, "False"], out
        # %%job from this server runs in its environment (the magics load there too: the build's step 4)
        out = run_code(p.url, member.name, member.token, "%%job --follow\nimport astrago_probe, sys\n"
                       "print('MAGIC', astrago_probe.VALUE, sys.prefix)", timeout=240)
        assert f"MAGIC probe {name} {prefix}\n" in out["stdout"] and "completed." in out["stdout"], out["stdout"]

        # deleting it while the member's server runs in it is refused
        body = problem(admin(p, "DELETE", f"environments/{name}"), 409, "conflict")
        assert body["servers"] == [{"user": member.name, "server": ""}] and member.name in body["detail"]
        problem(member.api("DELETE", f"environments/{name}"), 403, "forbidden")
    finally:
        stop_server(p, member.token, member.name)

    # the admin page lists it with its status, size and teams
    try:
        admin_page.goto(p.service_url + "admin/environments")
        text = admin_page.wait_for_selector(f"tr[data-environment={name}]").inner_text()
        assert "ready" in text and team in text and "KiB" in text, text
        admin_page.screenshot(path=str(artifacts / "environments-admin-page.png"), full_page=True)
    finally:
        admin_page.close()

    # a job in it from the terminal: --env NAME chooses the environment, NAME=VALUE stays a variable
    code = "import astrago_probe, os, sys; print('JOB', astrago_probe.VALUE, sys.prefix, os.environ['X'])"
    job = subprocess.run([str(Path(sys.prefix) / "bin" / "astrago"), "job", "submit", "--env", name, "--env", "X=1",
                          "--command", f'python -c "{code}"', "--follow"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "ASTRAGO_SERVICE_URL": p.service_url,
                                           "JUPYTERHUB_API_TOKEN": member.token})
    assert job.returncode == 0 and f"JOB probe {name} {prefix} 1" in job.stdout, job.stdout + job.stderr
    body = problem(outsider.api("POST", "jobs", json={"kind": "command", "command": "true", "environment": name}),
                   403, "forbidden")
    assert body["field"] == "environment" and f"is for the team(s) {team}" in body["detail"]
    problem(member.api("POST", "jobs", json={"kind": "command", "command": "true", "environment": "nosuch"}), 404,
            "not-found")

    assert admin(p, "DELETE", f"environments/{name}").status_code == 204
    assert not os.path.exists(prefix)
    problem(admin(p, "GET", f"environments/{name}"), 404, "not-found")
    actions = [(e["action"], e["outcome"], e["target"]) for e in admin(p, "GET", "audit", params={"actor": "admin", "limit": 500})
               .json()["entries"]]
    assert ("environments.create", "allowed", name) in actions and ("environments.delete", "allowed", name) in actions
    assert ("environments.delete", "denied", name) in actions
