"""Fixtures of the uploads tests: users with tokens on the shared real platform."""
from __future__ import annotations

from pathlib import Path

import pytest

from support.platform import api_token, login
from tuskit import Uploader


@pytest.fixture(scope="session")
def alice(platform):
    return Uploader(platform, "alice")


@pytest.fixture(scope="session")
def bob(platform):
    return Uploader(platform, "bob")


@pytest.fixture(scope="session")
def admin_token(platform):
    session, _ = login(platform, "admin", platform.admin_password)
    return api_token(platform, session, "admin")


@pytest.fixture(scope="session")
def upload_store(platform) -> Path:
    """Where the platform's service keeps unfinished uploads (tests read it as root, never write data)."""
    return Path(platform.data_dir) / "uploads"


@pytest.fixture(autouse=True)
def _keep_platform_log(request, artifacts):
    """The platform's log (hub, service, realm) after each test, in test-artifacts/, for diagnosing failures."""
    yield
    if "platform" in request.fixturenames:
        p = request.getfixturevalue("platform")
        (artifacts / "uploads-platform.log").write_text(p.log())
