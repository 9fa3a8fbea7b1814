"""One real idle-GPU reclaim in the embedded hub, with thresholds of seconds set through the API.

Real: the hub, the spawner, the user's server, the service's rules and actions, JupyterHub's API
stopping the server, the ledger releasing the allocation, the audit log, the webhook POST. The
one stand-in: the slice's utilisation comes from the simulated collector's load file (no GPU).
"""
import pytest
import requests

from monkit import login_with_a_running_server, wait_until
from promkit import WebhookSink

SECOND_IN_HOURS = 1 / 3600
DEFAULTS = {"enabled": True, "dry_run": True, "idle_threshold_percent": 5.0, "idle_hours": 4.0, "grace_hours": 1.0,
            "exempt_groups": [], "webhook_url": ""}


@pytest.fixture
def webhook():
    sink = WebhookSink()
    yield sink
    sink.close()


@pytest.fixture
def restore_policy(gpu_platform):
    yield
    gpu_platform.admin("PUT", "api/monitor/reclaim/policy", json=DEFAULTS)


def _audit(gpu_platform, user):
    entries = gpu_platform.admin("GET", "api/audit?limit=500").json()["entries"]
    return [e for e in entries if e["action"].startswith("reclaim.") and e["target"] == user]


def _rounds_until(gpu_platform, predicate, timeout=40.0, what=""):
    def step():
        gpu_platform.round()
        return predicate()
    return wait_until(step, timeout=timeout, interval=0.5, what=what)


def _server(gpu_platform, user):
    r = gpu_platform.admin("GET", "api/whoami")  # keep the admin token warm; then ask the hub
    assert r.status_code == 200
    model = requests.get(f"{gpu_platform.url}/hub/api/users/{user['name']}",
                         headers={"Authorization": f"token {user['token']}"}, timeout=30).json()
    return model.get("servers", {}).get("")


def test_an_idle_workspace_is_warned_then_stopped_and_its_allocation_released(gpu_platform, webhook, restore_policy,
                                                                               chromium, artifacts):
    idler = gpu_platform.user_with_server("idler", "1g.10gb")
    keeper = gpu_platform.user_with_server("oncaller", "1g.10gb", groups=("/oncall",))
    for u in (idler, keeper):
        gpu_platform.set_utilisation(u["devices"][0], 0.0)
    name = idler["name"]
    browser = login_with_a_running_server(chromium, gpu_platform.p, name, idler["password"])

    # 1. dry run: the audit log says what would happen; nothing else does
    r = gpu_platform.admin("PUT", "api/monitor/reclaim/policy", json={
        "enabled": True, "dry_run": True, "idle_threshold_percent": 10, "idle_hours": 1.5 * SECOND_IN_HOURS,
        "grace_hours": 1.5 * SECOND_IN_HOURS, "exempt_groups": ["oncall"], "webhook_url": webhook.url})
    assert r.status_code == 200, r.text
    _rounds_until(gpu_platform, lambda: {"reclaim.would_warn", "reclaim.would_stop"}
                  <= {e["action"] for e in _audit(gpu_platform, name)}, what="dry-run decisions")
    assert _server(gpu_platform, idler)["ready"] is True
    assert webhook.events == []
    assert requests.get(gpu_platform.service_url + "api/monitor/notices", timeout=30,
                        headers={"Authorization": f"token {idler['token']}"}).json()["notices"] == []

    # 2. for real: a real warning first (banner + hook), then the stop after the grace (now 8 s)
    assert gpu_platform.admin("PUT", "api/monitor/reclaim/policy", json={
        "dry_run": False, "grace_hours": 8 * SECOND_IN_HOURS}).status_code == 200
    _rounds_until(gpu_platform, lambda: any(e["event"] == "astrago.reclaim.warning" for e in webhook.events),
                  what="the warning")
    warning = next(e for e in webhook.events if e["event"] == "astrago.reclaim.warning")
    assert (warning["user"], warning["server"], warning["slice"]) == (name, "", "1g.10gb")
    assert "will be stopped" in warning["message"] and warning["reclaim_at"]
    [notice] = requests.get(gpu_platform.service_url + "api/monitor/notices", timeout=30,
                            headers={"Authorization": f"token {idler['token']}"}).json()["notices"]
    assert notice["state"] == "warned" and notice["reclaim_at"] > notice["warned_at"]
    browser.goto(gpu_platform.service_url + "me/usage")
    banner = browser.locator(".ag-banner.warned").inner_text()
    assert "will be stopped and its GPU given back" in banner
    browser.screenshot(path=str(artifacts / "monitor-reclaim-warning.png"), full_page=True)

    _rounds_until(gpu_platform, lambda: any(e["event"] == "astrago.reclaim.stopped" for e in webhook.events),
                  what="the stop")
    wait_until(lambda: _server(gpu_platform, idler) is None, timeout=60, what="the server stopped")
    alloc = gpu_platform.admin("GET", f"api/admissions/{idler['allocation']['id']}").json()
    # released by whichever came first: the spawner on the server's exit, or the reclaim right after it
    assert alloc["status"] == "released" and alloc["released_at"]
    actions = [(e["action"], e["outcome"]) for e in reversed(_audit(gpu_platform, name))]
    assert ("reclaim.warn", "allowed") in actions and ("reclaim.stop", "allowed") in actions
    assert actions.index(("reclaim.warn", "allowed")) < actions.index(("reclaim.stop", "allowed"))
    stop = next(e for e in _audit(gpu_platform, name) if e["action"] == "reclaim.stop")
    assert stop["actor"] == "astrago-service" and stop["detail"]["dry_run"] is False
    assert stop["detail"]["allocation_id"] == idler["allocation"]["id"]

    # the user is told on their page; the device is free for others
    browser.goto(gpu_platform.service_url + "me/usage")
    banner = browser.locator(".ag-banner.reclaimed").inner_text()
    assert "was stopped" in banner and "its GPU was released for others" in banner
    browser.screenshot(path=str(artifacts / "monitor-reclaim-stopped.png"), full_page=True)
    browser.close()
    fleet = gpu_platform.admin("GET", "api/monitor/fleet").json()
    freed = [s for g in fleet["gpus"] for s in g["slices"] if s["slice"] == idler["devices"][0]]
    assert freed and freed[0]["user"] == ""

    # 3. the member of an exempt group, just as idle, keeps their server
    assert _server(gpu_platform, keeper)["ready"] is True
    assert not [e for e in _audit(gpu_platform, keeper["name"]) if e["action"] in ("reclaim.warn", "reclaim.stop")]
    tracks = gpu_platform.admin("GET", "api/monitor/reclaim").json()["tracks"]
    assert [t["state"] for t in tracks if t["user"] == keeper["name"]] == ["exempt"]
    policy_changes = [e for e in gpu_platform.admin("GET", "api/audit?limit=200&actor=admin").json()["entries"]
                      if e["action"] == "reclaim.policy"]
    assert policy_changes and policy_changes[0]["detail"]["after"]["dry_run"] is False
    gpu_platform.stop(keeper)
