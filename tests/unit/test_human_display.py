"""How pages show times, dicts, job reasons and chart axes to people (pure), against literals."""
from datetime import date, datetime, timezone
import json

from astrago.extensions.ipython_config import install_lab_settings
from astrago.hub.jobs.page import lab_link, page_query, resubmit_spec
from astrago.hub.jobs.model import Job
from astrago.hub.quota.charts import axis_label, daily_bars, nice_ceiling
from astrago.hub.service import display


def test_exact_times_are_utc_seconds_whatever_came_in():
    assert display.exact_utc("2026-12-01T18:23:48.432965Z") == "2026-12-01 18:23:48 UTC"
    assert display.exact_utc(datetime(2026, 12, 1, 18, 23, 48, 432965)) == "2026-12-01 18:23:48 UTC"  # naive = UTC
    assert display.exact_utc("2026-12-01T19:23:48+01:00") == "2026-12-01 18:23:48 UTC"
    assert display.exact_utc(0) == "1970-01-01 00:00:00 UTC"
    assert display.exact_utc(None) == "" and display.exact_utc("not a time") == ""


def test_a_time_tag_carries_the_machine_time_and_the_exact_time_on_hover():
    assert str(display.time_tag("2026-12-01T18:23:48.432965Z")) == (
        '<time datetime="2026-12-01T18:23:48Z" title="2026-12-01 18:23:48 UTC">2026-12-01 18:23:48 UTC</time>')
    assert str(display.time_tag(None)) == "-"
    assert str(display.time_tag("", "never")) == "never"


def test_relative_times_in_words():
    assert display.relative(-10) == "just now"
    assert display.relative(10) == "in a few seconds"
    assert display.relative(-60) == "1 minute ago"
    assert display.relative(-150) == "3 minutes ago"
    assert display.relative(-3600) == "1 hour ago"
    assert display.relative(2 * 3600) == "in 2 hours"
    assert display.relative(-86400 * 3) == "3 days ago"
    assert display.relative(-86400 * 14) == "2 weeks ago"
    assert display.relative(-86400 * 400) == "1 year ago"


def test_durations():
    assert [display.duration(s) for s in (None, 0, 45, 725, 3600, 12000, 90000)] == [
        "-", "0 s", "45 s", "12 min 5 s", "1 h", "3 h 20 min", "1 d 1 h"]


def test_dicts_read_as_words_never_json():
    assert display.pairs({"gpu_units": 0.5, "cpu": 4, "memory_gib": 16.0}) == "GPU units 0.5, CPU cores 4, memory (GiB) 16"
    assert display.pairs({"allowed_slices": ["1g.10gb", "cpu"]}) == "allowed slices 1g.10gb, cpu"
    assert display.pairs({}) == "-" and display.pairs(None) == "-"
    assert "{" not in display.pairs({"a": {"b": 1}}) and display.pairs({"a": {"b": 1}}) == "a b 1"


def test_job_reasons_for_their_owner_leave_server_admin_notes_to_admins():
    raw = "running; cpu and memory limits are not enforced here: there is no cgroup v2 hierarchy on this host."
    assert display.user_reason(raw) == "Running."
    assert display.admin_notes(raw) == "cpu and memory limits are not enforced here: there is no cgroup v2 hierarchy on this host."
    assert display.user_reason("exited with code 1") == "Exited with code 1."
    assert display.user_reason("waiting: over quota (gpu_units) (position 1 of 2)") == \
        "Waiting: over quota (gpu_units) (position 1 of 2)"
    assert display.user_reason("") == "" and display.admin_notes("exited with code 0") == ""


def test_the_quota_chart_axis_is_never_zero_at_full_height():
    assert [nice_ceiling(v) for v in (0, 0.04, 0.3, 1, 1.2, 2.4, 3, 7, 40, 60)] == [
        1.0, 0.05, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 50.0, 100.0]
    assert [axis_label(v) for v in (0.05, 2.5, 40.0, 2000.0)] == ["0.05", "2.5", "40", "2,000"]
    svg = daily_bars([{"day": "2026-12-01", "gpu_hours": 0.04}], date(2026, 11, 30), date(2026, 12, 1))
    assert ">0.05</text>" in svg and ">0.0</text>" not in svg


def test_resubmitting_asks_for_what_the_job_ran_not_its_state():
    job = Job(id="a1", owner="u", name="train", kind="script", input="", code="print(1)", command="",
              parameters={"lr": 0.1}, workdir="/home/u", slice="1g.10gb", cpu=2.0, memory_gib=8.0, image="",
              env={}, priority=0, max_runtime_s=600.0, distributed={}, retries=1, status="FAILED")
    assert resubmit_spec(job) == {"name": "train", "kind": "script", "slice": "1g.10gb", "cpu": 2.0, "memory_gib": 8.0,
                                  "workdir": "/home/u", "parameters": {"lr": 0.1}, "priority": 0, "retries": 1,
                                  "code": "print(1)", "max_runtime": 600.0}


def test_outputs_open_in_the_owners_jupyterlab_and_paging_queries():
    assert lab_link("ann", "/home/astrago-ann/train-1 out.ipynb", "/home/astrago-ann") == \
        "/user/ann/lab/tree/train-1%20out.ipynb"
    assert lab_link("ann", "/tmp/x.ipynb", "/home/astrago-ann") is None
    assert page_query(user=None, status="RUNNING", slice="", page=2) == "?status=RUNNING&page=2"
    assert page_query(user="bo", status=None, slice=None, page=1) == "?user=bo"


def test_the_jupyterlab_news_prompt_is_off_in_the_user_environment(tmp_path):
    settings = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}))
    assert install_lab_settings(str(tmp_path)) == settings
    assert json.loads(settings.read_text()) == {
        "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
