"""Shared fixtures: a real embedded AstraGo platform for end-to-end tests, and Chromium."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from support.contract_check import (  # noqa: F401 -- every service response is checked against openapi.json
    contract_checker, pytest_configure, pytest_terminal_summary, pytest_unconfigure)
from support.fixtures import CHROMIUM, CHROMIUM_ARGS, IN_CI, browser_login, new_platform, require  # noqa: F401
from support.platform import ARTIFACTS


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


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium driven by Playwright (its own browser download cannot run here).

    Module-scoped: Playwright's sync API keeps an event loop running while it is open,
    which would break asyncio-based tests in other modules."""
    require(os.path.exists(CHROMIUM), "Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
