"""The upload page in Chromium: login redirect, drag-and-drop area, an upload that survives a page reload.

Screenshots land in test-artifacts/ to be looked at.
"""
from __future__ import annotations

import os

import pytest
import requests

from tuskit import Uploader, sha256_file

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

MIB = 1 << 20


@pytest.fixture(scope="module")
def browser(chromium):
    return chromium  # tests/conftest.py: Debian's Chromium through Playwright


def test_page_without_login_redirects_to_the_hub_login(platform):
    r = requests.get(f"{platform.service_url}uploads/", allow_redirects=False, timeout=30)
    assert r.status_code == 302
    assert "/hub/api/oauth2/authorize" in r.headers["Location"]


def test_upload_through_the_page_resumes_after_a_reload(platform, browser, artifacts, tmp_path):
    user = Uploader(platform, "dora")
    src = tmp_path / "page-upload.bin"
    with open(src, "wb") as fh:
        for _ in range(64):
            fh.write(os.urandom(MIB))

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{platform.service_url}uploads/")
    page.wait_for_url("**/services/realm/**")  # the hub's login, not a 401
    page.fill("input[name=username]", user.name)
    page.fill("input[name=password]", user.password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url("**/services/astrago/uploads/**")
    page.wait_for_selector(".uppy-Dashboard-inner")
    assert str(user.home) in page.locator("#ag-dest").inner_text()
    assert "left of" in page.locator(".ag-quota").inner_text()
    page.screenshot(path=str(artifacts / "uploads-01-page.png"), full_page=True)

    seen = []
    page.on("request", lambda req: seen.append((req.method, req.url, dict(req.headers))))
    cdp = context.new_cdp_session(page)  # a slow uplink, so the reload lands mid-upload
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 16 * MIB})

    page.fill("#ag-dir", "from-browser")
    page.locator(".uppy-Dashboard-input").first.set_input_files(str(src))
    page.wait_for_selector(".uppy-StatusBar-actionBtn--upload")
    for _ in range(2):  # two 8 MiB chunks are in
        with page.expect_response(lambda r: r.request.method == "PATCH" and r.status == 204, timeout=120_000):
            if not any(m == "PATCH" for m, _, _ in seen):
                page.click(".uppy-StatusBar-actionBtn--upload")
    page.screenshot(path=str(artifacts / "uploads-02-uploading.png"), full_page=True)
    assert any(m == "POST" for m, _, _ in seen)
    page.reload()

    page.wait_for_selector(".uppy-Dashboard-inner")
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 64 * MIB})
    seen.clear()
    page.on("request", lambda req: seen.append((req.method, req.url, dict(req.headers))))
    page.fill("#ag-dir", "from-browser")
    page.locator(".uppy-Dashboard-input").first.set_input_files(str(src))  # the same file, added again
    page.click(".uppy-StatusBar-actionBtn--upload")
    page.wait_for_function("document.getElementById('ag-status').textContent.includes('is in')", timeout=180_000)
    page.wait_for_function("document.getElementById('ag-stored').textContent === '64.0 MiB'")  # quota refreshed
    page.screenshot(path=str(artifacts / "uploads-03-done.png"), full_page=True)

    assert not any(m == "POST" for m, _, _ in seen), "the upload started over instead of resuming"
    patches = [h for m, _, h in seen if m == "PATCH"]
    assert patches and int(patches[0]["upload-offset"]) >= 16 * MIB
    assert all("x-xsrftoken" in h for h in patches)
    stored = user.home / "from-browser" / src.name
    assert sha256_file(stored) == sha256_file(src)
    listing = requests.get(user.endpoint, headers={"Authorization": f"token {user.token}"}, timeout=30).json()
    assert [u["state"] for u in listing["uploads"] if u["filename"] == src.name] == ["finished"]
    context.close()
