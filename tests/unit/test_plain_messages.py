"""What people read: the CLI's and the client's sentences for common mistakes (issue 14, defect 12),
and that the admission benchmark touches only what it made (defect 9)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from astrago.hub.cli import main as cli_main
from astrago.hub.client import AstraGoError, ServiceClient
from astrago.hub.client.jobs import JobsClient

REPO = Path(__file__).resolve().parents[2]


def test_not_logged_in_says_astrago_login(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ASTRAGO_SERVICE_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    with pytest.raises(AstraGoError) as exc:
        ServiceClient()
    assert "astrago login" in exc.value.detail and "not logged in" in exc.value.detail


def test_job_submit_of_a_missing_file_is_refused_up_front(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASTRAGO_SERVICE_URL", "http://127.0.0.1:9/services/astrago/")  # never reached
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x")
    rc = _exit_code(["job", "submit", "nothere.py"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "There is no file nothere.py here" in err and "Traceback" not in err


def _exit_code(argv) -> int:
    try:
        return cli_main(argv)
    except SystemExit as exc:
        return exc.code


def test_a_job_id_that_is_no_job_says_how_to_list_jobs(monkeypatch):
    monkeypatch.setenv("ASTRAGO_SERVICE_URL", "http://127.0.0.1:9/services/astrago/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x")
    with pytest.raises(AstraGoError) as exc:
        JobsClient().get("no/pe")
    assert "There is no job" in exc.value.detail and "astrago job list" in exc.value.detail


def test_an_mps_gpu_is_not_called_an_uncut_mig_gpu():
    from jinja2 import Environment

    text = (REPO / "hub/templates/astrago/monitor_fleet.html").read_text()
    start = text.index("{% else %}<tr><td colspan=\"5\" class=\"muted\">")
    snippet = text[start + len("{% else %}"): text.index("{% endfor %}</table>", start)]
    for mode, words in (("mps", "MPS"), ("mig", "MIG GPU with no instances"), ("full", "whole GPU")):
        out = Environment().from_string(snippet).render(g={"mode": mode})
        assert words in out and ("uncut MIG" not in out), (mode, out)


def test_the_admission_benchmark_deletes_no_account_and_removes_its_folders():
    tree = ast.parse((REPO / "bench/admission.py").read_text())
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "remove_system_accounts" not in calls  # it would `userdel -r astrago-admin`
    assert "rmtree" in calls
