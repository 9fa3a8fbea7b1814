"""The spawners' side of admission: plain HTTP to the AstraGo service.

spawners/ never imports hub/ (DESIGN.md arrows); this client speaks the
service's REST contract (openapi.json) and turns its problem documents into
`AdmissionRefused` with the human detail.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPRequest


class AdmissionRefused(Exception):
    def __init__(self, kind: str, detail: str, status: int):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status


class ServiceUnavailable(Exception):
    pass


@dataclass
class AdmissionClient:
    api_url: str  # e.g. http://127.0.0.1:10101/services/astrago/api/
    token: str
    timeout: float = 30.0

    async def _call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        req = HTTPRequest(self.api_url.rstrip("/") + "/" + path.lstrip("/"), method=method,
                          headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
                          body=None if body is None else json.dumps(body), request_timeout=self.timeout,
                          allow_nonstandard_methods=True)
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except OSError as exc:
            raise ServiceUnavailable(f"The AstraGo service is not reachable ({exc}).") from None
        if resp.code == 599:
            raise ServiceUnavailable(f"The AstraGo service is not reachable ({resp.error}).")
        try:
            data = json.loads(resp.body) if resp.body else {}
        except ValueError:
            data = {}
        if resp.code >= 400:
            kind = str(data.get("type", "")).rsplit("/", 1)[-1] or "error"
            raise AdmissionRefused(kind, data.get("detail") or f"HTTP {resp.code}", resp.code)
        return resp.code, data

    async def admit(self, *, owner_kind: str, owner_id: str, user: str, groups: list[str], slice_name: str,
                    cpu: float = 0.0, memory_gib: float = 0.0, client_key: str = "") -> dict:
        _, data = await self._call("POST", "admissions", {
            "owner": {"kind": owner_kind, "id": owner_id}, "user": user, "groups": groups, "slice": slice_name,
            "cpu": cpu, "memory_gib": memory_gib, "client_key": client_key})
        return data

    async def status(self, allocation_id: str) -> dict:
        return (await self._call("GET", f"admissions/{quote(allocation_id)}"))[1]

    async def release(self, allocation_id: str, reason: str = "server stopped") -> dict:
        return (await self._call("DELETE", f"admissions/{quote(allocation_id)}?{urlencode({'reason': reason})}"))[1]

    async def offers(self, user: str, groups: list[str]) -> dict:
        query = urlencode([("group", g) for g in groups] or [("no_groups", "1")])
        return (await self._call("GET", f"users/{quote(user)}/offers?{query}"))[1]

    async def environments(self, user: str) -> dict:
        """The environments the user's teams allow (`{"default", "environments": [...]}`), base first."""
        return (await self._call("GET", f"users/{quote(user)}/environments"))[1]

    async def environment_for(self, user: str, name: str) -> dict:
        """Environment `name` when `user` may run in it now; AdmissionRefused says why not, in plain words."""
        return (await self._call("GET", f"users/{quote(user)}/environments/{quote(name, safe='')}"))[1]
