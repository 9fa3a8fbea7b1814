"""Quota pages in Chromium: the reason for a refused spawn, the admin panel, "My AstraGo"."""
import re

import requests

from support.fixtures import browser_login
from support.platform import api_token, login


def _admin_token(platform):
    return api_token(platform, login(platform, "admin", platform.admin_password)[0], "admin")


def test_spawn_over_quota_shows_which_limit_on_the_page(platform, chromium, artifacts):
    name, pw = platform.add_user("capped")
    admin = _admin_token(platform)
    requests.put(platform.service_url + f"api/quotas/user/{name}", json={"limits": {"servers": 0}},
                 headers={"Authorization": f"token {admin}"}, timeout=30)
    page = browser_login(chromium, platform, name, pw)
    page.goto(platform.url + "/hub/spawn")
    assert "Over your servers quota" in page.locator("#astrago-slices").inner_text()  # said before trying
    page.goto(platform.url + f"/hub/spawn/{name}")
    # every choice is over quota: the form disables them; a REST spawn shows the reason on the pending page
    requests.post(f"{platform.url}/hub/api/users/{name}/server", json={"slice": "cpu"},
                  headers={"Authorization": f"token {api_token(platform, login(platform, name, pw)[0], name)}"},
                  timeout=60)
    page.goto(platform.url + "/hub/home")
    page.goto(platform.url + f"/hub/spawn-pending/{name}")
    page.wait_for_timeout(1500)
    text = page.content()
    page.screenshot(path=str(artifacts / "quota-refused.png"), full_page=True)
    assert "Over your servers quota" in text
    page.close()


def test_admin_edits_a_quota_in_the_panel(platform, chromium, artifacts):
    page = browser_login(chromium, platform, "admin", platform.admin_password)
    page.goto(platform.service_url + "admin/quotas")
    page.select_option("#q-kind", "group")
    page.fill("#q-name", "team-vision")
    page.fill("#q-gpu", "1.5")
    page.fill("#q-servers", "3")
    page.fill("#q-weight", "2")
    page.click("#quota-form button[type=submit]")
    page.wait_for_selector("#q-msg.done")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artifacts / "admin-quotas.png"), full_page=True)
    row = page.locator("#quota-table tr[data-name='team-vision']")
    assert "GPU units 1.5, servers 3" in row.inner_text() and "{" not in row.inner_text()  # words, not JSON
    page.close()


def test_user_sees_their_quota_and_cannot_open_admin_pages(platform, chromium, artifacts):
    name, pw = platform.add_user("viewer")
    page = browser_login(chromium, platform, name, pw)
    page.goto(platform.service_url + "me")
    assert page.locator("h1").inner_text() == "My AstraGo"
    assert page.locator("svg.chart").count() == 1
    page.fill("#rq-gpu", "1")
    page.fill("#rq-reason", "fine-tuning a model")
    page.click("#quota-request button[type=submit]")
    page.wait_for_selector("#rq-msg.done")
    page.screenshot(path=str(artifacts / "my-astrago.png"), full_page=True)
    resp = page.goto(platform.service_url + "admin/quotas")
    assert resp.status == 403
    assert "custom:astrago:quota:admin" in page.content()
    assert not re.search(r"Admin panel", page.goto(platform.url + "/hub/home") and page.content() or "")
    page.close()
