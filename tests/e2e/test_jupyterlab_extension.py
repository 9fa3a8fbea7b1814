"""The AstraGo JupyterLab extension in Chromium, against a real embedded AstraGo.

Real: hub, proxy, service, Keycloak login, the user's JupyterLab server with the prebuilt extension
from the users' environment, its server extension (the `/astrago/api/` proxy), papermill jobs run
as the user's account. The GPUs are a static inventory (no GPU here). Screenshots land in
test-artifacts/lab-*.png.

One journey: the status bar names the server's MIG slice; the notebook is run as a job from its
toolbar; it waits QUEUED behind another job on the last free 1g.10gb slice; that other job is
cancelled from the panel; the notebook job then runs, its live log streams into the panel, it
COMPLETES, and its executed copy opens in the same JupyterLab.
"""
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from support.accounts import kill_account_processes
from support.fixtures import new_platform, require
from support.platform import api_token, login, start_server, stop_server

INVENTORY = {"nodes": [{"name": "labbox", "gpus": [
    {"model": "H100-80GB", "mode": "mig", "geometry": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}},
    {"model": "H100-80GB", "mode": "full"},
]}]}

NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {"cell_type": "code", "id": "params", "metadata": {"tags": ["parameters"]}, "outputs": [],
         "execution_count": None, "source": "steps = 2"},
        {"cell_type": "code", "id": "work", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "import time\nfor i in range(steps):\n    print(f'step {i} of {steps}', flush=True)\n"
                   "    time.sleep(1.5)\nprint(f'trained with steps={steps}')"},
    ],
}


def _env_has_extension() -> bool:
    env = Path(os.environ.get("ASTRAGO_USER_ENV", sys.prefix))  # what the platform's servers run from
    return (env / "share/jupyter/labextensions/@astrago/jupyterlab/package.json").is_file()


@pytest.fixture(scope="module")
def lab_platform():
    require(os.geteuid() == 0, "root (the local spawner makes a system account per user)")
    require(_env_has_extension(), "the AstraGo JupyterLab extension in the users' environment (make .stamp-user-env)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-lab-"))
    p = new_platform(tmp, INVENTORY)
    p.start()
    yield p
    p.stop()
    for name in p.created_users:
        kill_account_processes(f"astrago-{name}")
    p.remove_system_accounts()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def lab_user(lab_platform):
    p = lab_platform
    name, password = p.add_user("lab")
    session, _ = login(p, name, password)
    token = api_token(p, session, name)
    start_server(p, token, name, "1g.10gb")  # holds one of the two 1g.10gb instances
    yield {"name": name, "password": password, "token": token}
    stop_server(p, token, name)


def _server(p, user) -> str:
    return f"{p.url}/user/{user['name']}"


def _h(user) -> dict:
    return {"Authorization": f"token {user['token']}"}


def _put_notebook(p, user, path: str, notebook: dict) -> None:
    r = requests.put(f"{_server(p, user)}/api/contents/{path}", headers=_h(user), timeout=30,
                     json={"type": "notebook", "format": "json", "content": notebook})
    assert r.status_code in (200, 201), r.text


def _service(p, user, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, f"{p.service_url}api/{path}", headers=_h(user), timeout=60, **kw)


def _wait_job(p, user, job_id: str, statuses, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = _service(p, user, "GET", f"jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not {statuses} after {timeout}s: {job}\n{p.log()[-3000:]}")


def _dismiss_notifications(page) -> None:
    """Jupyter's own toasts (the news question) would cover the status bar in screenshots."""
    for label in ("No", "Dismiss"):
        button = page.locator(f".Toastify button:has-text('{label}')")
        if button.count():
            button.first.click()


def test_server_info_and_proxy_answer_with_the_servers_token(lab_platform, lab_user):
    """The server extension: its own facts, and the service's API through it (no second login)."""
    p, user = lab_platform, lab_user
    info = requests.get(f"{_server(p, user)}/astrago/server", headers=_h(user), timeout=30).json()
    assert info["slice"] == "1g.10gb" and info["service"] is True
    assert info["user"] == user["name"] and info["root_dir"] == f"/home/astrago-{user['name']}"
    assert info["visible_devices"] and info["visible_devices"][0].endswith("-1g.10gb")
    me = requests.get(f"{_server(p, user)}/astrago/api/whoami", headers=_h(user), timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == user["name"]
    # the service sees the SERVER's token (its scopes), not the caller's
    assert all("!user=" in s or s.startswith("access:services") for s in me.json()["scopes"])
    refused = requests.get(f"{_server(p, user)}/astrago/api/..%2F..%2Fhub%2Fapi%2Fusers", headers=_h(user), timeout=30)
    assert refused.status_code == 404
    anonymous = requests.get(f"{_server(p, user)}/astrago/api/whoami", timeout=30, allow_redirects=False)
    assert anonymous.status_code in (302, 403)


def test_status_bar_run_as_job_queue_cancel_live_log_completed_and_open_output(
        lab_platform, lab_user, chromium, artifacts):
    p, user = lab_platform, lab_user
    home = f"/home/astrago-{user['name']}"
    _put_notebook(p, user, "train.ipynb", NOTEBOOK)
    blocker_nb = json.loads(json.dumps(NOTEBOOK))
    blocker_nb["cells"][1]["source"] = "import time\nprint('holding the slice', flush=True)\ntime.sleep(600)"
    _put_notebook(p, user, "hold.ipynb", blocker_nb)
    # another job takes the last free 1g.10gb instance: the notebook's job will wait behind it
    r = _service(p, user, "POST", "jobs", json={"kind": "notebook", "input": f"{home}/hold.ipynb",
                                                 "slice": "1g.10gb", "name": "holder"})
    assert r.status_code == 201, r.text
    holder = _wait_job(p, user, r.json()["id"], {"RUNNING"})

    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{_server(p, user)}/lab/tree/train.ipynb")  # -> the realm's sign-in page -> back here
    page.fill("input[name=username]", user["name"])
    page.fill("input[name=password]", user["password"])
    page.click("button[type=submit]")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    status = page.locator(".astrago-SliceStatus")
    status.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('.astrago-SliceStatus').textContent.includes('GB')",
                           timeout=30_000)
    assert status.inner_text().startswith("MIG 1g.10gb on GPU 0")
    assert "10 GB GPU memory" in status.inner_text()  # no per-slice reading here: the slice's size
    _dismiss_notifications(page)
    page.screenshot(path=str(artifacts / "lab-01-status-bar.png"))

    # "Run as job" in the notebook's toolbar: slice and parameters
    page.click(".astrago-RunAsJob button, button.astrago-RunAsJob, .astrago-RunAsJob")
    dialog = page.locator(".jp-Dialog .astrago-JobForm")
    dialog.wait_for(timeout=30_000)
    options = page.eval_on_selector_all(".astrago-JobForm select[name=slice] option", "os => os.map(o => o.value)")
    assert options[:2] == ["cpu", "1g.10gb"] and "3g.40gb" in options
    page.select_option(".astrago-JobForm select[name=slice]", "1g.10gb")
    page.fill(".astrago-JobForm textarea[name=parameters]", "steps=3")
    page.screenshot(path=str(artifacts / "lab-02-run-as-job-dialog.png"))
    page.click(".jp-Dialog button.jp-mod-accept")

    # the side panel opens on the new job: queued behind the holder, with its place in the queue
    panel = page.locator("#astrago-panel")
    panel.wait_for(state="visible", timeout=30_000)
    job_item = panel.locator(".astrago-Job", has_text="train").first
    job_item.wait_for(timeout=30_000)
    job_id = job_item.get_attribute("data-job-id")
    assert job_item.get_attribute("data-status") == "QUEUED"
    page.wait_for_function(
        f"(document.querySelector('[data-job-id=\"{job_id}\"] .astrago-Job-reason')?.textContent || '')"
        ".includes('Position 1 of 1 in the queue')", timeout=30_000)
    assert "GPU units" in panel.locator(".astrago-Quota").inner_text()
    queued = _service(p, user, "GET", f"jobs/{job_id}").json()
    assert queued["status"] == "QUEUED" and queued["slice"] == "1g.10gb"
    assert queued["parameters"] == {"steps": 3} and queued["input"] == f"{home}/train.ipynb"
    page.screenshot(path=str(artifacts / "lab-03-panel-queued.png"))

    # cancel the holder from the panel (it asks first)
    holder_item = panel.locator(f".astrago-Job[data-job-id='{holder['id']}']")
    holder_item.locator("button.astrago-Job-cancel").click()
    page.click(".jp-Dialog button.jp-mod-accept")
    page.wait_for_function(
        f"document.querySelector('[data-job-id=\"{holder['id']}\"]')?.dataset.status === 'CANCELLED'",
        timeout=60_000)
    assert _service(p, user, "GET", f"jobs/{holder['id']}").json()["status"] == "CANCELLED"
    assert holder_item.locator("button.astrago-Job-cancel").is_hidden()

    # the notebook's job is admitted on the freed slice; its log streams live into the panel
    page.wait_for_function(
        f"document.querySelector('[data-job-id=\"{job_id}\"]')?.dataset.status === 'RUNNING'", timeout=60_000)
    log = job_item.locator(".astrago-Job-log")
    assert log.is_visible()
    page.wait_for_function(
        f"document.querySelector('[data-job-id=\"{job_id}\"] .astrago-Job-log').textContent.includes('step 0 of 3')",
        timeout=90_000)
    running = _service(p, user, "GET", f"jobs/{job_id}").json()["status"]
    page.screenshot(path=str(artifacts / "lab-04-panel-live-log.png"))
    page.wait_for_function(
        f"document.querySelector('[data-job-id=\"{job_id}\"]')?.dataset.status === 'COMPLETED'", timeout=120_000)
    assert running == "RUNNING" or "trained with steps=3" in log.inner_text()
    text = log.inner_text()
    assert text.index("step 0 of 3") < text.index("step 2 of 3")
    assert "trained with steps=3" in text
    assert job_item.locator(".astrago-Job-status").inner_text() == "completed"
    page.screenshot(path=str(artifacts / "lab-05-panel-completed.png"))

    # open the executed notebook in this JupyterLab
    done = _service(p, user, "GET", f"jobs/{job_id}").json()
    output = done["outputs"][0]
    assert output.startswith(f"{home}/train-") and output.endswith(".ipynb")
    job_item.locator("button.astrago-Job-open").click()
    name = output.rsplit("/", 1)[1]
    page.locator(f".lm-TabBar-tab:has-text('{name}')").wait_for(timeout=30_000)
    page.wait_for_function("[...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')]"
                           ".some(o => o.textContent.includes('trained with steps=3'))", timeout=60_000)
    page.screenshot(path=str(artifacts / "lab-06-executed-notebook.png"))
    page.close()
