"""The Python clients: `astrago upload` (progress bar, resume) and `astrago.upload()` in a real notebook kernel."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from astrago.hub.client import AstraGoError, ServiceClient
from astrago.hub.client.uploads import ResumeCache
from cutting_proxy import CuttingProxy
from support.kernel import run_code
from support.platform import start_server, stop_server
from tuskit import sha256_file

pytestmark = pytest.mark.e2e

MIB = 1 << 20
ASTRAGO = str(Path(sys.prefix) / "bin" / "astrago")


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _cli(args, *, home: Path, env_url: str | None = None, token: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASTRAGO_", "JUPYTERHUB_"))}
    env["HOME"] = str(home)
    if env_url:
        env["ASTRAGO_SERVICE_URL"] = env_url
    if token:
        env["JUPYTERHUB_API_TOKEN"] = token
    return subprocess.run([ASTRAGO, "upload", *args], capture_output=True, text=True, env=env, timeout=240)


def test_cli_uploads_through_a_flaky_link_with_a_progress_bar(alice, platform, tmp_path):
    src = _file(tmp_path / "cli-flaky.bin", 5 * MIB + 7)
    with CuttingProxy(platform.port, cut_after=1_500_000, cuts=3) as proxy:
        out = _cli([str(src), "--dir", "cli", "--chunk-mib", "2"], home=tmp_path,
                   env_url=proxy.url("/services/astrago/"), token=alice.token)
        assert proxy.cuts_done >= 1
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{src} -> {alice.home}/cli/cli-flaky.bin"
    assert "100.0%" in out.stderr and "[" in out.stderr
    assert sha256_file(alice.home / "cli" / "cli-flaky.bin") == sha256_file(src)
    assert json.loads((tmp_path / ".cache" / "astrago" / "uploads.json").read_text()) == {}


def test_cli_resumes_an_interrupted_upload(alice, platform, tmp_path):
    src = _file(tmp_path / "cli-resume.bin", 6 * MIB)
    cache = ResumeCache(tmp_path / ".cache" / "astrago" / "uploads.json")
    client = ServiceClient(platform.service_url, alice.token)

    def interrupt(sent, total):
        if sent >= 2 * MIB:
            raise KeyboardInterrupt  # Ctrl-C in the middle

    with pytest.raises(KeyboardInterrupt):
        client.uploads.upload(src, "resumed", chunk_size=MIB, progress=interrupt, cache=cache)
    entry = cache.get(ResumeCache.key(src))
    assert entry is not None
    before = int(alice.head(entry["url"]).headers["Upload-Offset"])
    assert 0 < before < src.stat().st_size

    out = _cli([str(src), "--dir", "resumed", "--chunk-mib", "1"], home=tmp_path,
               env_url=platform.service_url, token=alice.token)
    assert out.returncode == 0, out.stderr
    record = alice.info(entry["url"])  # the same upload finished: it resumed, not restarted
    assert record["state"] == "finished"
    assert record["path"] == "resumed/cli-resume.bin"
    assert sha256_file(alice.home / "resumed" / "cli-resume.bin") == sha256_file(src)


def test_cli_reads_the_config_file_and_prints_the_problem_detail(alice, platform, tmp_path):
    conf = tmp_path / ".config" / "astrago" / "client.json"
    conf.parent.mkdir(parents=True)
    conf.write_text(json.dumps({"url": platform.service_url, "token": alice.token}))
    src = _file(tmp_path / "cli-twice.bin", 1000)
    first = _cli([str(src)], home=tmp_path)
    assert first.returncode == 0, first.stderr
    second = _cli([str(src)], home=tmp_path)
    assert second.returncode == 1
    assert second.stderr.startswith("astrago: ") and "already exists" in second.stderr
    third = _cli([str(src), "--overwrite", "--quiet"], home=tmp_path)
    assert third.returncode == 0, third.stderr
    assert third.stderr == ""


def test_client_without_a_service_says_how_to_configure_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("ASTRAGO_SERVICE_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    with pytest.raises(AstraGoError) as exc:
        ServiceClient()
    assert "ASTRAGO_SERVICE_URL" in exc.value.detail and "client.json" in exc.value.detail


def test_empty_file_uploads(alice, platform, tmp_path):
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    client = ServiceClient(platform.service_url, alice.token)
    record = client.uploads.upload(src, "empties", cache=ResumeCache(tmp_path / "c.json"))
    assert record["state"] == "finished"
    assert (alice.home / "empties" / "empty.txt").read_bytes() == b""


def test_notebook_helper_uploads_from_a_users_kernel(platform):
    from tuskit import Uploader

    carol = Uploader(platform, "carol")
    start_server(platform, carol.token, carol.name)
    try:
        code = ("import os, astrago, hashlib\n"
                "p = os.path.expanduser('~/made-in-kernel.bin')\n"
                "data = os.urandom(3 * 1024 * 1024 + 5)\n"
                "open(p, 'wb').write(data)\n"
                "where = astrago.upload(p, dir='from-notebook', chunk_mib=1)\n"
                "print('WHERE', where, hashlib.sha256(data).hexdigest())\n")
        out = run_code(platform.url, carol.name, carol.token, code, timeout=120)
        assert out["status"] == "ok", out
        line = [ln for ln in out["stdout"].splitlines() if ln.startswith("WHERE")][0]
        _, where, digest = line.split()
        assert where == f"{carol.home}/from-notebook/made-in-kernel.bin"
        assert sha256_file(where) == digest
        assert "100.0%" in out["stdout"]
    finally:
        stop_server(platform, carol.token, carol.name)
