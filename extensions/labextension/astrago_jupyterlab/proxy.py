"""The single-user server's door to the AstraGo service: `/astrago/api/<path>` -> `<service>/api/<path>`.

The browser talks only to its own JupyterLab server (cookie + XSRF, as every JupyterLab request);
this handler adds the SERVER's JupyterHub token (`JUPYTERHUB_API_TOKEN`, scoped by the hub to its
owner's AstraGo things) and forwards to the service named by `ASTRAGO_SERVICE_URL` (the same pair
the notebook magics and `astrago.hub.client` use). So the panel needs no second login.

It is no open proxy: the upstream host and path prefix are fixed by the configured service URL;
the path a browser gives is checked segment by segment (no `..`, no encoded slashes, no scheme)
and only ever appended below `<service>/api/`. Only a few request headers go up (never the
browser's cookies or Authorization) and only a few come back (never Set-Cookie). Responses stream
through as they arrive, so the service's server-sent events (`api/jobs/{id}/events`) reach the
browser unbuffered.
"""
from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import quote, unquote, urlsplit

import httpx
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

#: request headers passed up to the service (everything else, cookies included, stays here)
REQUEST_HEADERS = ("Accept", "Content-Type", "Last-Event-ID", "Idempotency-Key")
#: response headers passed back (no Set-Cookie, no hop-by-hop headers, no encodings: bodies are decoded)
RESPONSE_HEADERS = ("Content-Type", "Cache-Control", "Retry-After", "X-Log-Offset", "X-Log-Next-Offset",
                    "X-Log-Size", "X-Job-Status", "X-Job-Attempt", "Content-Disposition")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_BODY = 1024 * 1024  # job submissions and settings: small JSON


class PathRefused(ValueError):
    """A path that would leave the service's api/ (or is not a plain path at all)."""


def service_base() -> str:
    """The AstraGo service's root URL (`ASTRAGO_SERVICE_URL`, set by the spawner), with a trailing slash."""
    url = os.environ.get("ASTRAGO_SERVICE_URL", "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return url.rstrip("/") + "/"


def upstream_url(base: str, path: str, query: str = "") -> str:
    """`<base>api/<path>?<query>` for a path below the service's api/, or PathRefused.

    `path` is the raw (still percent-encoded) rest of the request path after `/astrago/api/`."""
    if not base:
        raise PathRefused("no service")
    segments = path.split("/") if path else []
    clean = []
    for i, raw in enumerate(segments):
        text = unquote(raw)
        if text in (".", "..") or "/" in text or "\\" in text or "\x00" in text:
            raise PathRefused(path)
        if raw == "" and i != len(segments) - 1:  # `a//b`: only a trailing slash is a plain path
            raise PathRefused(path)
        clean.append(quote(text, safe="@-._~!$&'()*+,;="))
    url = base + "api/" + "/".join(clean)
    if query:
        url += "?" + query
    base_parts, parts = urlsplit(base), urlsplit(url)
    if (parts.scheme, parts.netloc) != (base_parts.scheme, base_parts.netloc) or \
            not parts.path.startswith(base_parts.path.rstrip("/") + "/api/"):
        raise PathRefused(path)  # defence in depth: the joins above cannot leave api/
    return url


class ServiceProxyHandler(APIHandler):
    """Forward one request to the AstraGo service with the server's token; stream the answer back."""

    _task: asyncio.Task | None = None
    _closed = False

    def on_connection_close(self):
        self._closed = True
        if self._task is not None:
            self._task.cancel()  # the browser went away: stop reading the service's stream

    @property
    def client(self) -> httpx.AsyncClient:
        return self.settings["astrago_http_client"]

    @web.authenticated
    async def get(self, path):
        await self._forward(path)

    @web.authenticated
    async def post(self, path):
        await self._forward(path)

    @web.authenticated
    async def put(self, path):
        await self._forward(path)

    @web.authenticated
    async def patch(self, path):
        await self._forward(path)

    @web.authenticated
    async def delete(self, path):
        await self._forward(path)

    def _problem(self, status: int, detail: str, kind: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/problem+json")
        self.finish(json.dumps({"type": f"https://astrago.dev/problems/{kind}", "title": kind.replace("-", " "),
                                "status": status, "detail": detail}))

    async def _forward(self, path: str) -> None:
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        base = service_base()
        if not base or not token:
            self._problem(503, "This server does not know the AstraGo service (ASTRAGO_SERVICE_URL and "
                          "JUPYTERHUB_API_TOKEN are not set): it was not started by AstraGo.", "service-unavailable")
            return
        prefix = url_path_join(self.base_url, "astrago/api/")
        raw_path = self.request.path[len(prefix):] if self.request.path.startswith(prefix) else None
        try:
            if raw_path is None:
                raise PathRefused(self.request.path)
            url = upstream_url(base, raw_path, _without_xsrf(self.request.query))
        except PathRefused:
            self._problem(404, "There is no such AstraGo API path.", "not-found")
            return
        if len(self.request.body or b"") > MAX_BODY:
            self._problem(413, "The request is too large for the AstraGo API.", "invalid-request")
            return
        headers = {k: self.request.headers[k] for k in REQUEST_HEADERS if k in self.request.headers}
        headers["Authorization"] = f"token {token}"
        headers["User-Agent"] = "astrago-jupyterlab"
        streaming = "text/event-stream" in headers.get("Accept", "") or raw_path.rstrip("/").endswith("/events")
        timeout = httpx.Timeout(30.0, read=None if streaming else 120.0)
        request = self.client.build_request(self.request.method, url, headers=headers,
                                            content=self.request.body or None, timeout=timeout)
        self._task = asyncio.ensure_future(self._relay(request, streaming))
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._closed:
                raise
        finally:
            self._task = None

    async def _relay(self, request: httpx.Request, streaming: bool) -> None:
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            self._problem(502, f"The AstraGo service did not answer ({type(exc).__name__}); try again in a moment.",
                          "service-unavailable")
            return
        started = False
        try:
            self.set_status(response.status_code, response.reason_phrase or None)
            for name in RESPONSE_HEADERS:
                if name in response.headers:
                    self.set_header(name, response.headers[name])
            if streaming:
                self.set_header("X-Accel-Buffering", "no")
                self.set_header("Cache-Control", "no-store")
            if response.status_code == 204:
                self.finish()
                return
            if streaming:
                await self.flush()  # the headers now: an EventSource opens before the first event
            async for chunk in response.aiter_bytes():
                if not chunk:
                    continue
                started = True
                self.write(chunk)
                if streaming:
                    await self.flush()
            self.finish()
        except StreamClosedError:
            pass
        except httpx.HTTPError:
            if not started and not streaming:
                self.clear()
                self._problem(502, "The AstraGo service's answer broke off; try again in a moment.",
                              "service-unavailable")
            else:
                self.finish()
        finally:
            await response.aclose()


class ServerInfoHandler(APIHandler):
    """What this server knows about itself: its slice, devices and where its files start."""

    @web.authenticated
    def get(self):
        env = os.environ
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({
            "user": env.get("JUPYTERHUB_USER", ""),
            "server_name": env.get("JUPYTERHUB_SERVER_NAME", ""),
            "slice": env.get("ASTRAGO_SLICE", ""),
            "gpu_units": _number(env.get("ASTRAGO_GPU_UNITS")),
            "visible_devices": [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d],
            "allocation_id": env.get("ASTRAGO_ALLOCATION_ID", ""),
            "root_dir": self.settings.get("server_root_dir", ""),
            "service": bool(service_base() and env.get("JUPYTERHUB_API_TOKEN")),
        }))


def _without_xsrf(query: str) -> str:
    """The query less `_xsrf` (this server's own check; an EventSource can send it only there)."""
    return "&".join(p for p in query.split("&") if p and not p.startswith("_xsrf=")) if query else ""


def _number(text):
    try:
        return float(text) if text else None
    except ValueError:
        return None


def setup_handlers(web_app) -> None:
    base_url = web_app.settings["base_url"]
    web_app.settings.setdefault("astrago_http_client", httpx.AsyncClient(follow_redirects=False))
    web_app.add_handlers(".*$", [
        (url_path_join(base_url, "astrago/server"), ServerInfoHandler),
        (url_path_join(base_url, "astrago/api/(.*)"), ServiceProxyHandler),
    ])
