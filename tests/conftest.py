"""Shared fixtures: a real embedded AstraGo platform for end-to-end tests."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from support.platform import ARTIFACTS, RunningPlatform, free_port

IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, what: str):
    """Skip for a missing component locally; under CI=true a missing component fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing: `make test` should have installed it")
    pytest.skip(f"{what} is missing")


def new_platform(tmp_root: Path) -> RunningPlatform:
    data = tmp_root / "data"
    ports = {k: free_port() for k in ("hub", "proxy_api", "service", "realm")}
    return RunningPlatform(data_dir=data, port=free_port(), ports=ports)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def platform():
    """One embedded platform shared by the end-to-end tests of a session."""
    require(os.geteuid() == 0, "root (the local spawner makes a system account per user)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-e2e-"))
    p = new_platform(tmp)
    startup = p.start()
    p.startup_output = startup
    yield p
    p.stop()
    p.remove_system_accounts()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def fresh_platform():
    """A platform of a test's own, for tests that stop or crash it."""
    require(os.geteuid() == 0, "root (the local spawner makes a system account per user)")
    tmp = Path(tempfile.mkdtemp(prefix="astrago-e2e-"))
    p = new_platform(tmp)
    yield p
    p.stop()
    p.remove_system_accounts()
    shutil.rmtree(tmp, ignore_errors=True)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (its own browser download cannot run here)."""
    require(os.path.exists(CHROMIUM), "Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def browser_login(browser, platform, username, password):
    """A new page, logged in through the realm's sign-in form."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(platform.url + "/hub/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/hub/**")
    return page
