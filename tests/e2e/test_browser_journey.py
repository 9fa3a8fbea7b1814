"""A person's first journey, in Chromium: log in, pick a profile, reach JupyterLab, stop.

Screenshots of each page land in test-artifacts/ to be looked at.
"""

import pytest

from support.kernel import run_code
from support.platform import api_token, login, stop_server


@pytest.fixture(scope="module")
def browser(chromium):
    return chromium  # tests/conftest.py: Debian's Chromium through Playwright


def test_login_spawn_jupyterlab_run_code_stop(platform, browser, artifacts):
    name, pw = platform.add_user("pia", groups=["/team-a/vision"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(platform.url + "/")
    page.wait_for_url("**/services/realm/**")
    assert "AstraGo" in page.title()
    page.screenshot(path=str(artifacts / "01-login.png"))

    page.fill("input[name=username]", name)
    page.fill("input[name=password]", pw)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url("**/hub/spawn**")
    assert page.locator("#astrago-slices").is_visible()
    note = page.locator("#astrago-inventory-note").inner_text()
    assert "CPU-only" in note or "simulated" in note.lower() or "GPU" in note
    page.screenshot(path=str(artifacts / "02-spawn-options.png"))

    page.check("input[name=slice][value=cpu]")
    page.click("#spawn_form input[type=submit], #spawn_form button[type=submit]")
    page.wait_for_url(f"**/user/{name}/lab**", timeout=120_000)
    page.wait_for_selector(".jp-LauncherCard, .jp-Launcher", timeout=120_000)
    page.screenshot(path=str(artifacts / "03-jupyterlab.png"))
    page.close()

    session, _ = login(platform, name, pw)
    token = api_token(platform, session, name)
    out = run_code(platform.url, name, token, "print(sum(range(10)) * 6)")
    assert out["status"] == "ok"
    assert out["stdout"].strip() == "270"
    stop_server(platform, token, name)
