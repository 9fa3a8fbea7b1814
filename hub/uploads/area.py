"""The uploads area: a tus 1.0.0 server at `api/uploads/`, the upload page, and the expiry cleaner.

It meets other areas only through interfaces (service/interfaces/):
- wants `StorageLimits` (the quota area): a user's `storage_gib` quota; without a provider,
  or for a user whose quota sets none, `UploadsConfig.default_storage_quota_gib`;
- provides a `MetricsSource`: its Prometheus registry, which the monitor area exposes.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from ..service.contract import Area, AreaContext, Route
from ..service.interfaces import MetricsSource, StorageLimits
from .collection import UploadsCollectionHandler
from .config import UploadsConfig
from .expiry import run_cleaner
from .locks import UploadLocks
from .metrics import UploadMetrics
from .page import UploadPageHandler, UploadStaticHandler
from .quota import StorageQuota
from .resource import UPLOAD_ID, UploadHandler
from .schemas import SCHEMAS
from .storage import UserStorage
from .store import UploadStore

COLLECTION = "api/uploads/"


class UploadsArea(Area):
    name = "uploads"
    provides = (MetricsSource,)
    wants = (StorageLimits,)

    def setup(self, context: AreaContext) -> None:
        # (`config` is traitlets' own attribute of every Configurable: the settings are `uploads_config`)
        self.uploads_config = config = UploadsConfig(parent=self)
        self.prefix = context.prefix
        self.base_path = context.prefix + COLLECTION
        self.store = UploadStore(config.data_dir)
        self.store.ensure()
        self.storage = UserStorage(config)
        self.locks = UploadLocks(config.lock_takeover_seconds, config.lock_stall_seconds)
        self.executor = ThreadPoolExecutor(max_workers=config.io_threads, thread_name_prefix="astrago-upload-io")
        self.metrics = UploadMetrics()
        # wants are not ordered (the quota area may be set up after this one): looked up when used
        self.quota = StorageQuota(config, self.store, self.storage, limits=lambda: context.want(StorageLimits))
        context.provide(MetricsSource, self.metrics.registry)

    async def io(self, fn, *args, **kwargs):
        """Run blocking file work on the uploads I/O threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))

    @property
    def receiving_ttl(self) -> float:
        return self.uploads_config.expiry_hours * 3600

    @property
    def finished_ttl(self) -> float:
        return self.uploads_config.finished_record_hours * 3600

    def routes(self) -> list[Route]:
        return [
            Route(COLLECTION, UploadsCollectionHandler),
            Route(COLLECTION + "{upload_id}", UploadHandler, patterns={"upload_id": UPLOAD_ID}),
            Route("uploads", UploadPageHandler, trailing_slash=True),
            Route("uploads/static/{path}", UploadStaticHandler, patterns={"path": ".*"}),
        ]

    def schemas(self) -> dict[str, dict]:
        return SCHEMAS

    def background(self, context: AreaContext) -> list:
        return [run_cleaner(self)]

    # no stop(): the I/O threads stay until the process exits, so requests still open when the
    # service stops (their connections are closed after the areas stop) keep what arrived
