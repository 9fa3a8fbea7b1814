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


def test_keycloak_admin_console_is_reachable_for_the_admin_only(platform, browser, artifacts):
    console = f"{platform.url}/services/realm/admin/{platform.realm}/console/"
    for who, password, sees in (("admin", platform.admin_password, True),
                                (platform.add_user("uma")[0], None, False)):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(console)
        page.wait_for_selector("input[name=username]", timeout=60_000)
        page.fill("input[name=username]", who)
        page.fill("input[name=password]", password or _password_of(platform, who))
        page.click("button[type=submit], input[type=submit]")
        if sees:
            page.get_by_text("Realm settings").first.wait_for(timeout=90_000)
            page.get_by_text("Users").first.wait_for(timeout=30_000)
            page.wait_for_timeout(3000)  # the console keeps polling: let its first view render for the screenshot
            page.screenshot(path=str(artifacts / "05-keycloak-console.png"))
        else:
            page.get_by_text("You do not have permission to access this resource").wait_for(timeout=90_000)
            page.screenshot(path=str(artifacts / "05-keycloak-console-refused.png"))
            assert page.get_by_text("Realm settings").count() == 0
        context.close()


def _password_of(platform, name):
    return platform.realm_admin.set_password(name)  # a known password for the test
