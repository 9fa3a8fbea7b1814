"""Real tus clients (tuspy, tus-js-client on Node) upload through a proxy that cuts connections, and resume."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.platform import REPO
from cutting_proxy import CuttingProxy
from tuskit import require, sha256_file, upload_id

pytestmark = pytest.mark.e2e

MIB = 1 << 20


def _source(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    with open(path, "wb") as fh:
        for _ in range(size // MIB):
            fh.write(os.urandom(MIB))
        fh.write(os.urandom(size % MIB))
    return path


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "sha1-checksum"])
def test_tuspy_survives_cut_connections(alice, platform, tmp_path, checksum):
    from tusclient import client as tus_client

    src = _source(tmp_path, f"tuspy-{int(checksum)}.bin", 6 * MIB + 12345)
    with CuttingProxy(platform.port, cut_after=600_000, cuts=3) as proxy:  # tuspy opens a connection per chunk
        c = tus_client.TusClient(proxy.url("/services/astrago/api/uploads/"),
                                 headers={"Authorization": f"token {alice.token}"})
        up = c.uploader(str(src), chunk_size=MIB, retries=20, retry_delay=1, upload_checksum=checksum,
                        metadata={"filename": src.name, "dir": "interop-py"})
        up.upload()
        assert proxy.cuts_done >= 1
    assert up.offset == src.stat().st_size
    stored = alice.home / "interop-py" / src.name
    assert sha256_file(stored) == sha256_file(src)
    assert alice.info(alice.url("/services/astrago/api/uploads/" + upload_id(up.url)))["state"] == "finished"


def test_tuspy_resumes_an_upload_another_client_started(alice, platform, tmp_path):
    from tusclient import client as tus_client

    src = _source(tmp_path, "tuspy-resume.bin", 5 * MIB)
    c = tus_client.TusClient(f"{platform.service_url}api/uploads/", headers={"Authorization": f"token {alice.token}"})
    first = c.uploader(str(src), chunk_size=MIB, metadata={"filename": src.name, "dir": "interop-py"})
    first.upload(stop_at=2 * MIB)  # the laptop goes to sleep here
    assert first.offset == 2 * MIB
    with CuttingProxy(platform.port, cut_after=MIB, cuts=2) as proxy:
        c2 = tus_client.TusClient(proxy.url("/services/astrago/api/uploads/"),
                                  headers={"Authorization": f"token {alice.token}"})
        second = c2.uploader(str(src), url=proxy.url(f"/services/astrago/api/uploads/{upload_id(first.url)}"),
                             chunk_size=MIB, retries=20, retry_delay=1)
        assert second.offset == 2 * MIB  # resumed where the first stopped
        second.upload()
    assert sha256_file(alice.home / "interop-py" / src.name) == sha256_file(src)


def _node_upload(proxy_url: str, token: str, src: Path, storage: Path, chunk: int, abort_after: int | None = None):
    script = Path(__file__).with_name("tus_js_upload.mjs")
    args = ["node", str(script), proxy_url, token, str(src), str(storage), str(chunk)]
    if abort_after:
        args.append(str(abort_after))
    out = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tus_js_client_survives_cut_connections_and_resumes_after_a_restart(alice, platform, tmp_path):
    require(shutil.which("node") is not None, "node")
    require((REPO / "node_modules" / "tus-js-client").is_dir(), "tus-js-client (npm ci)")
    src = _source(tmp_path, "tusjs.bin", 7 * MIB + 321)
    storage = tmp_path / "tus-url-storage.json"
    with CuttingProxy(platform.port, cut_after=int(1.5 * MIB), cuts=4) as proxy:
        endpoint = proxy.url("/services/astrago/api/uploads/")
        first = _node_upload(endpoint, alice.token, src, storage, MIB, abort_after=3 * MIB)
        assert first["aborted"] is True
        offset = int(alice.head(alice.url(first["url"].replace(f"http://127.0.0.1:{proxy.port}", ""))).headers["Upload-Offset"])
        assert 0 < offset < src.stat().st_size
        second = _node_upload(endpoint, alice.token, src, storage, MIB)
        assert second["done"] is True
        assert proxy.cuts_done >= 1
    assert upload_id(second["url"]) == upload_id(first["url"])  # resumed, not started again
    assert sha256_file(alice.home / "interop-js" / src.name) == sha256_file(src)
