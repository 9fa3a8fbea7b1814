"""The AstraGo hub service: one tornado process, managed by JupyterHub.

It is the single writer of AstraGo's state (DESIGN.md: "the service owns the
state"). JupyterHub starts it with JUPYTERHUB_* variables saying where it
listens and how to reach the hub.
"""
from __future__ import annotations

import asyncio
import logging
import os
from copy import deepcopy
import signal
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Enum, Float, List, Unicode, default
from traitlets.config import Application
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from astrago import __version__
from ..db.session import Database
from . import areas, contract, openapi
from .base import NotFoundHandler
from .contract import AreaContext
from .config_file import GENERATED_CONFIG, LOCAL_CONFIG
from .environment import config_from_environment


class AstraGoService(Application):
    name = "astrago-service"
    description = "The AstraGo hub service (quota, jobs, uploads, monitoring)."

    version = Unicode(__version__)

    config_file = Unicode(config=True, help="An extra config file (Python or JSON, traitlets) loaded last, e.g. "
                          "one mounted from a ConfigMap. Before it the service loads, when present, "
                          "<data dir>/astrago_service_config.json (written by `astrago up` and, in cluster mode, "
                          "from the AstraGo sections of the hub's config: z2jh hub.config.AstraGoService, "
                          "hub.config.JobsConfig, ...) and <data dir>/astrago_service_config.py (yours). Settings "
                          "are c.AstraGoService.* and the areas' c.JobsConfig.*, c.UploadsConfig.*, "
                          "c.MonitorConfig.*, c.TeamsConfig.*, c.FleetArea.* ...")

    mode = Enum(["embedded", "cluster"], default_value="embedded", config=True,
                help="Embedded (one machine, local spawner) or cluster (Kubernetes).")

    data_dir = Unicode(config=True, help="Where the service keeps its state (sqlite database, uploads).")

    @default("data_dir")
    def _default_data_dir(self):
        return str(Path.cwd() / "astrago-data")

    db_url = Unicode(config=True, help="SQLAlchemy URL of the service database. "
                     "Default: sqlite in the data directory. MariaDB: mysql+pymysql://user:pw@host/db")

    @default("db_url")
    def _default_db_url(self):
        return f"sqlite:///{Path(self.data_dir) / 'astrago.sqlite'}"

    bind_url = Unicode("http://127.0.0.1:10101/", config=True,
                       help="Where to listen. JupyterHub passes its JUPYTERHUB_SERVICE_URL.")

    prefix = Unicode("/services/astrago/", config=True,
                     help="URL prefix. JupyterHub passes its JUPYTERHUB_SERVICE_PREFIX.")

    enabled_areas = List(Unicode(), config=True, help="API areas this process serves (see service.areas).")

    @default("enabled_areas")
    def _default_areas(self):
        return list(areas.AREAS)

    inventory_file = Unicode("", config=True, help="Static GPU inventory (YAML) for machines without NVML; "
                             "shown as simulated.")

    node_selector = Unicode("", config=True, help="Cluster mode: label selector of the nodes AstraGo places "
                            "on (and watches), e.g. 'nvidia.com/gpu.present=true'. Empty: every node.")

    fair_share_half_life_hours = Float(7 * 24.0, config=True,
                                       help="Half-life of past usage in the fair-share queue order (hours).")

    reconcile_interval = Float(30.0, config=True,
                               help="Seconds between reconciliations of allocations with JupyterHub's servers.")

    reconcile_grace = Float(120.0, config=True, help="Seconds an allocation may exist without its server "
                            "(a spawn in progress) before reconciliation releases it.")

    cookie_secret_hex = Unicode("", config=True, help="Secret signing the service's browser cookies (e.g. from "
                                "a Kubernetes Secret). Empty: made once and kept in cookie_secret_file.")

    def initialize(self, argv=None):
        self.parse_command_line(argv)
        command_line = deepcopy(self.config)
        self.update_config(config_from_environment())  # lowest: env, then the file, then the command line
        for path in self.config_files():
            loader = JSONFileConfigLoader if path.suffix == ".json" else PyFileConfigLoader
            self.update_config(loader(path.name, path=str(path.parent), log=self.log).load_config())
        self.update_config(command_line)
        self.log.setLevel(logging.INFO)
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self.db = Database(self.db_url)
        self.db.migrate()
        self.hub_auth = HubOAuth(cache_max_age=60)
        self.context = AreaContext(db=self.db, settings=self, hub_api=self.hub_api, hub_user=self.hub_user,
                                   log=self.log)
        self.areas = areas.load(self.enabled_areas, parent=self)
        for area in contract.setup_order(self.areas):
            area.setup(self.context)

    def config_files(self) -> list[Path]:
        """The config files to load, in order (later ones win); see `config_file`."""
        data = Path(self.data_dir)
        found = [p for p in (data / GENERATED_CONFIG, data / LOCAL_CONFIG) if p.is_file()]
        if self.config_file:
            extra = Path(self.config_file)
            if not extra.is_file():
                raise SystemExit(f"astrago-service: the config file {extra} does not exist "
                                 "(AstraGoService.config_file / $ASTRAGO_SERVICE_CONFIG).")
            found.append(extra)
        return found

    async def hub_api(self, method: str, path: str, body=None):
        """Call JupyterHub's REST API with the service's own token; returns (status, json)."""
        import json as _json

        from tornado.httpclient import AsyncHTTPClient, HTTPRequest

        url = self.hub_auth.api_url.rstrip("/") + path
        req = HTTPRequest(url, method=method, headers={"Authorization": f"token {self.hub_auth.api_token}"},
                          body=None if body is None else _json.dumps(body), allow_nonstandard_methods=True,
                          request_timeout=30)
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        data = _json.loads(resp.body) if resp.body and resp.code != 204 else None
        return resp.code, data

    async def hub_user(self, name: str) -> dict | None:
        from urllib.parse import quote

        code, data = await self.hub_api("GET", f"/users/{quote(name)}")
        return data if code == 200 else None

    def routes(self) -> list[contract.Route]:
        return [r for area in self.areas for r in area.routes()]

    def openapi(self) -> dict:
        schemas = {}
        for area in self.areas:
            schemas.update(area.schemas())
        return openapi.openapi_document(self.version, self.prefix, self.routes(), schemas)

    def admin_sections(self) -> list[contract.AdminSection]:
        found = [s for area in self.areas for s in area.admin_sections()]
        return sorted(found, key=lambda s: s.order)

    def page_context(self) -> list:
        return [fn for area in self.areas for fn in area.page_context()]

    def make_app(self) -> web.Application:
        prefix = self.prefix
        handlers = []
        for area in self.areas:
            for route in area.routes():
                handlers.append((route.regex(prefix), route.handler, {"area": area, **route.kwargs}))
        handlers.append((prefix + "oauth_callback", HubOAuthCallbackHandler))
        return web.Application(
            handlers,
            default_handler_class=NotFoundHandler,
            astrago=self,
            hub_auth=self.hub_auth,
            cookie_secret=self.cookie_secret(),
            xsrf_cookies=False,  # API: token or HubOAuth cookie; HubOAuth checks xsrf on cookie auth
            log_function=self._log_request,
        )

    cookie_secret_file = Unicode(config=True, help="Where the secret signing the service's browser cookies is "
                                 "kept (made once, mode 0600), so a restart logs nobody out. Default: "
                                 "<data dir>/service_cookie_secret. cookie_secret_hex (e.g. from a "
                                 "Kubernetes Secret) wins over the file.")

    @default("cookie_secret_file")
    def _default_cookie_secret_file(self):
        return str(Path(self.data_dir) / "service_cookie_secret")

    def cookie_secret(self) -> bytes:
        """The secret of the service's cookies: the same across restarts."""
        if self.cookie_secret_hex.strip():
            return self.cookie_secret_hex.strip().encode()
        return read_or_create_secret(Path(self.cookie_secret_file)).encode()

    def _log_request(self, handler):
        status = handler.get_status()
        log = self.log.info if status < 400 else self.log.warning
        log("%d %s %s %.1fms", status, handler.request.method, handler.request.uri,
            1000 * handler.request.request_time())

    def start(self):
        asyncio.run(self._serve())

    async def _serve(self):
        _stop_when_hub_dies()
        url = urlparse(self.bind_url)
        server = HTTPServer(self.make_app(), xheaders=True)
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        tasks = [asyncio.create_task(work) for area in self.areas for work in area.background(self.context)]
        self.log.info("AstraGo service %s (%s mode) at %s%s", self.version, self.mode, self.bind_url.rstrip("/"), "")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for task in tasks:
            task.cancel()
        for area in self.areas:
            try:
                await area.stop()
            except Exception:  # noqa: BLE001 -- one area failing to stop must not keep the others running
                self.log.exception("the %s area failed to stop", area.name)
        server.stop()
        try:  # requests still open (an upload whose client vanished) end now, not with a 500 at exit
            await asyncio.wait_for(server.close_all_connections(), 5)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 -- stopping anyway
            pass
        self.db.close()


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """A hex secret kept at `path`, made once (mode 0600, never readable by others)."""
    import secrets

    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_hex(nbytes)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # only the first of two racing starts wins; the other reads its secret
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        os.unlink(tmp)
    return value


def _stop_when_hub_dies() -> None:
    """Ask Linux to SIGTERM us when JupyterHub (our parent) dies, so a crashed hub
    leaves no service holding the port its successor needs."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


main = AstraGoService.launch_instance
