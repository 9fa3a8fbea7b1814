"""Helpers of the uploads tests: a real realm user with a token, and tus requests."""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import requests

from support.platform import REPO, api_token, login


from support.fixtures import require  # noqa: E402  (the suite's: fails under CI=true)


TUS = {"Tus-Resumable": "1.0.0"}
OCTET = "application/offset+octet-stream"


class Uploader:
    """A realm user logged in for real, with a JupyterHub API token."""

    def __init__(self, platform, base: str, **kw):
        self.platform = platform
        self.name, self.password = platform.add_user(base, **kw)
        self.session, _ = login(platform, self.name, self.password)
        self.token = api_token(platform, self.session, self.name)

    @property
    def endpoint(self) -> str:
        return f"{self.platform.service_url}api/uploads/"

    @property
    def home(self) -> Path:
        return Path(f"/home/astrago-{self.name}")

    def ensure_home(self) -> Path:
        """The user's storage exists once an upload finished (their account is made then, if needed)."""
        if not self.home.is_dir():
            url = self.new(2, filename="first-upload.txt")
            assert self.patch(url, 0, b"hi").status_code == 204
        assert self.home.is_dir()
        return self.home

    def headers(self, **extra) -> dict:
        h = {"Authorization": f"token {self.token}", **TUS}
        h.update({k.replace("_", "-"): v for k, v in extra.items()})
        return h

    def create(self, length: int | None, filename: str | None = "f.bin", dir: str | None = None,
               overwrite: bool = False, extra_meta: dict | None = None, headers: dict | None = None,
               body: bytes | None = None) -> requests.Response:
        meta = {}
        if filename is not None:
            meta["filename"] = filename
        if dir is not None:
            meta["dir"] = dir
        if overwrite:
            meta["overwrite"] = "true"
        meta.update(extra_meta or {})
        h = self.headers()
        if meta:
            h["Upload-Metadata"] = metadata(meta)
        if length is None:
            h["Upload-Defer-Length"] = "1"
        else:
            h["Upload-Length"] = str(length)
        if body is not None:
            h["Content-Type"] = OCTET
        h.update(headers or {})
        return requests.post(self.endpoint, headers=h, data=body, timeout=60)

    def url(self, location: str) -> str:
        return self.platform.url + location if location.startswith("/") else location

    def new(self, length: int | None, **kw) -> str:
        r = self.create(length, **kw)
        assert r.status_code == 201, (r.status_code, r.text, self.platform.log()[-3000:])
        return self.url(r.headers["Location"])

    def patch(self, url: str, offset: int, data: bytes, **headers) -> requests.Response:
        h = self.headers(Content_Type=OCTET, Upload_Offset=str(offset))
        h.update({k.replace("_", "-"): v for k, v in headers.items()})
        return requests.patch(url, headers=h, data=data, timeout=60)

    def head(self, url: str, **headers) -> requests.Response:
        return requests.head(url, headers=self.headers(**headers), timeout=60)

    def delete(self, url: str) -> requests.Response:
        return requests.delete(url, headers=self.headers(), timeout=60)

    def info(self, url: str) -> dict:
        r = requests.get(url, headers={"Authorization": f"token {self.token}"}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()


def metadata(meta: dict) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v is not None else k for k, v in meta.items())


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]



def age(paths, seconds: float) -> None:
    """Make files look `seconds` old (how an expiry test gets an expired upload without waiting hours)."""
    for p in paths:
        st = os.stat(p)
        os.utime(p, (st.st_atime - seconds, st.st_mtime - seconds))
