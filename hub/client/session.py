"""A session with the AstraGo service: where it is, who calls it, and its errors.

Where the service is and who calls it: `ASTRAGO_SERVICE_URL` + `JUPYTERHUB_API_TOKEN`
(both set inside users' servers), else `~/.config/astrago/client.json` with
`{"url": ..., "token": ...}`. Errors raise `AstraGoError` carrying the problem's `detail`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urljoin

import requests

CONFIG_FILE = Path("~/.config/astrago/client.json")


class AstraGoError(Exception):
    """A refusal or failure of the service, in the words of its problem `detail`."""

    def __init__(self, detail: str, *, status: int | None = None, type: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.type = type


def problem_of(response: requests.Response) -> AstraGoError:
    """The AstraGoError an error response stands for (problem+json when the service sent one)."""
    detail, kind = None, None
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = body.get("detail")
            kind = (body.get("type") or "").rsplit("/", 1)[-1] or None
    except ValueError:
        pass
    if not detail:
        detail = f"The AstraGo service answered {response.status_code} {response.reason} to " \
                 f"{response.request.method} {response.url}."
    return AstraGoError(detail, status=response.status_code, type=kind)


def discover(url: str | None = None, token: str | None = None) -> tuple[str, str]:
    """The service URL and API token: arguments, then the environment, then the config file."""
    url = url or os.environ.get("ASTRAGO_SERVICE_URL")
    token = token or (os.environ.get("JUPYTERHUB_API_TOKEN") if os.environ.get("ASTRAGO_SERVICE_URL") else None)
    if not (url and token):
        path = CONFIG_FILE.expanduser()
        try:
            conf = json.loads(path.read_text())
        except FileNotFoundError:
            conf = {}
        except ValueError as exc:
            raise AstraGoError(f"{path} is not valid JSON ({exc}).") from None
        url = url or conf.get("url")
        token = token or conf.get("token") or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not url or not token:
        raise AstraGoError("You are not logged in to AstraGo: run `astrago login https://<hub>` (it asks for an "
                           "API token from the hub's Token page), or set ASTRAGO_SERVICE_URL and "
                           f"JUPYTERHUB_API_TOKEN, or write {CONFIG_FILE} with "
                           "{\"url\": \"https://<hub>/services/astrago/\", \"token\": \"<JupyterHub API token>\"}.")
    return url.rstrip("/") + "/", token


class ServiceSession:
    """A session with the AstraGo service: `client.get_json("api/whoami")`, `client.uploads.upload(...)`."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 60):
        self.url, self.token = discover(url, token)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"
        self.session.headers["User-Agent"] = "astrago-client"

    def absolute(self, path_or_url: str) -> str:
        """A service path (`api/whoami`), a server path (`/services/...`) or a full URL -> a full URL."""
        return urljoin(self.url, path_or_url)

    def request(self, method: str, path: str, *, ok=(200, 201, 204), **kw) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, self.absolute(path), **kw)
        except requests.ConnectionError as exc:
            raise AstraGoError(f"Cannot reach the AstraGo service at {self.url}: {exc}") from None
        except requests.Timeout:
            raise AstraGoError(f"The AstraGo service at {self.url} did not answer in {kw['timeout']:g} s; "
                               "try again in a moment.") from None
        if response.status_code not in ok:
            raise problem_of(response)
        return response

    def get_json(self, path: str, **kw):
        return self.request("GET", path, **kw).json()

    def whoami(self) -> dict:
        return self.get_json("api/whoami")
