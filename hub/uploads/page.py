"""The upload page at `uploads/`: Uppy (bundled from npm into hub/static/uploads) over the tus API.

A browser without a login is sent to the hub's login (HubOAuth), not answered 401 JSON.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from tornado import template, web

from .. import scopes
from ..service.base import APIHandler
from ..service.pages import nav_html
from .config import GIB

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "uploads"
TEMPLATES = template.Loader(str(Path(__file__).resolve().parent / "templates"))


class UploadPageHandler(APIHandler):
    """`uploads/`: the page; `self.area` is the UploadsArea."""

    log = logging.getLogger("astrago.uploads")

    async def get(self):
        if not self.hub_user:
            self.redirect(self.get_login_url())
            return
        user = self.hub_user["name"]
        if not self.has_scope(scopes.UPLOADS, user=user):
            await self.require(scopes.UPLOADS, user=user, action="uploads.page")  # audits and refuses
        area = self.area
        usage = await area.io(area.quota.usage, user)
        prefix = area.prefix
        page_config = {
            "endpoint": area.base_path,
            "listUrl": area.base_path,
            "xsrf": self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token,
            "user": user,
            "storageRoot": area.storage.root_path(user),
            "maxUploadBytes": int(area.uploads_config.max_upload_size_gib * GIB),
            "chunkBytes": 8 * 1024 * 1024,
            "expiryHours": area.uploads_config.expiry_hours,
            "usage": usage,
        }
        html = TEMPLATES.load("uploads.html").generate(
            user=user, static=prefix + "uploads/static/", hub_url="/hub/home", usage=usage,
            storage_root=page_config["storageRoot"], expiry_hours=area.uploads_config.expiry_hours,
            config_json=json.dumps(page_config).replace("</", "<\\/"), fmt=_fmt_bytes, nav=nav_html(self),
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)


def _fmt_bytes(n: int) -> str:
    for unit, size in (("TiB", 1024 ** 4), ("GiB", GIB), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


class UploadStaticHandler(web.StaticFileHandler):
    """`uploads/static/`: the page's bundle (public: it holds no user data)."""

    def initialize(self, area=None, root: str = str(STATIC_DIR)):
        super().initialize(path=root)

    def validate_absolute_path(self, root, absolute_path):
        if not Path(root).is_dir():
            raise web.HTTPError(404, "the upload page's bundle is not built: run `npm run build`")
        return super().validate_absolute_path(root, absolute_path)
