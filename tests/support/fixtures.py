"""Helpers shared by the test folders (imported as `support.fixtures`, never `conftest`:
several folders have a conftest.py and the module name would clash)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .platform import RunningPlatform, free_port

IN_CI = os.environ.get("CI") == "true"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]


def require(condition: bool, what: str):
    """Skip for a missing component locally; under CI=true a missing component fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing: `make test` should have installed it")
    pytest.skip(f"{what} is missing")


def new_platform(tmp_root: Path, inventory: dict | None = None) -> RunningPlatform:
    """A platform (not started) in `tmp_root`; with `inventory`, its GPUs are that static
    cluster spec (a named stand-in for NVML: every page says "simulated")."""
    from .keycloak import keycloak_available, new_realm_name, session_keycloak

    require(keycloak_available(), "Keycloak (make test fetches and builds it: build/keycloak)")
    keycloak = session_keycloak()
    data = tmp_root / "data"
    ports = {k: free_port() for k in ("hub", "proxy_api", "service", "realm")}
    platform = RunningPlatform(data_dir=data, port=free_port(), ports=ports, realm=new_realm_name(),
                               keycloak_url=keycloak.base_url, keycloak_credentials=str(keycloak.credentials_file))
    if inventory is not None:
        import yaml

        path = tmp_root / "inventory.yaml"
        path.write_text(yaml.safe_dump(inventory))
        platform.extra_args = ["--inventory-file", str(path)]
    return platform


def browser_login(browser, platform, username, password):
    """A new page, logged in through Keycloak's sign-in form."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(platform.url + "/hub/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/hub/**")
    return page
