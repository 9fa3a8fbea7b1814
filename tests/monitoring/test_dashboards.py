"""Every dashboard in Chromium, with data: charts drawn by the bundled uPlot, a screenshot of each
(test-artifacts/monitor-*.png)."""
import base64
import time

import requests

from monkit import login_with_a_running_server
from support.fixtures import browser_login


TABS = {  # tab -> what must be on it (`.uplot canvas`: a chart uPlot drew)
    "fleet": ["#collectors", ".ag-gpu svg.ag-slices", "#chart-fleet .uplot canvas"],
    "users": ["#users-table", "#chart-users .uplot canvas"],
    "queue": ["#chart-queue .uplot canvas"],
    "jobs": ["#chart-jobs .uplot canvas", "#chart-durations .uplot canvas", "#running-jobs"],
    "uploads": ["#chart-uploads .uplot canvas"],
    "reclaim": ["#tracks", "#policy-form"],
}


def _upload(gpu_platform, user, size=256 * 1024):
    """A small resumable upload (tus), so the uploads counters move."""
    h = {"Authorization": f"token {user['token']}", "Tus-Resumable": "1.0.0"}
    meta = "filename " + base64.b64encode(b"dashboard-sample.bin").decode()
    r = requests.post(gpu_platform.service_url + "api/uploads/", headers={**h, "Upload-Length": str(size),
                                                                          "Upload-Metadata": meta}, timeout=30)
    assert r.status_code == 201, r.text
    url = requests.compat.urljoin(gpu_platform.service_url, r.headers["Location"])
    r = requests.patch(url, data=b"\0" * size, timeout=60, headers={
        **h, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 204, r.text


def test_each_dashboard_renders_with_data(gpu_platform, chromium, artifacts):
    busy = gpu_platform.user_with_server("dash", "3g.40gb")
    whole = gpu_platform.user_with_server("dashgpu", "gpu-1")
    gpu_platform.admin("PUT", f"api/quotas/user/{busy['name']}",
                       json={"limits": {"gpu_units": 0.5, "gpu_hours": 100}})
    for i, (a, b) in enumerate([(72, 91), (55, 88), (81, 95), (64, 12), (70, 30)]):
        gpu_platform.set_utilisation(busy["devices"][0], a, memory_mib=18000 + 1000 * i)
        gpu_platform.set_utilisation(whole["devices"][0], b, memory_mib=60000)
        if i == 2:
            _upload(gpu_platform, busy)
        gpu_platform.round()
        time.sleep(1.0)

    page = browser_login(chromium, gpu_platform.p, "admin", gpu_platform.p.admin_password)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for tab, selectors in TABS.items():
        resp = page.goto(gpu_platform.service_url + f"admin/monitor/{tab}")
        assert resp.status == 200, tab
        for sel in selectors:
            page.wait_for_selector(sel, timeout=15000)
        page.screenshot(path=str(artifacts / f"monitor-{tab}.png"), full_page=True)
        if tab == "fleet":
            text = page.locator("main").inner_text()
            assert busy["name"] in text and whole["name"] in text
            assert page.locator(f'[data-slice="{busy["devices"][0]}"]').count() == 1  # drawn as a slice
            assert page.locator(".ag-gpu .uplot").count() >= 3  # a chart per GPU
        if tab == "users":
            row = page.locator(f'tr[data-user="{busy["name"]}"]').inner_text()
            assert "86%" in row  # 3/7 GPU units of a 0.5 quota
        if tab == "uploads":
            assert "256.0 KiB" in page.locator('[data-metric="astrago_upload_bytes_received_total"]').inner_text()
    assert page.locator(".ag-subnav a", has_text="Monitoring").count() == 1  # in the admin panel's nav
    page.close()

    user = login_with_a_running_server(chromium, gpu_platform.p, busy["name"], busy["password"])
    user.on("pageerror", lambda e: errors.append(str(e)))
    assert user.goto(gpu_platform.service_url + "me/usage").status == 200
    user.wait_for_selector("#chart-me .uplot canvas", timeout=15000)
    user.wait_for_selector("#chart-days .uplot canvas", timeout=15000)
    assert "3g.40gb" in user.locator("#my-slices").inner_text()
    user.screenshot(path=str(artifacts / "monitor-my-usage.png"), full_page=True)
    user.close()
    assert errors == []
    for u in (busy, whole):
        gpu_platform.stop(u)
