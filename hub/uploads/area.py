"""The uploads area inside the running service: its settings, store, locks, I/O threads and cleaner."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from .config import UploadsConfig
from .locks import UploadLocks
from .storage import UserStorage
from .store import UploadStore

log = logging.getLogger("astrago.uploads")


class UploadsArea:
    def __init__(self, config: UploadsConfig):
        self.config = config
        self.store = UploadStore(config.data_dir)
        self.store.ensure()
        self.storage = UserStorage(config)
        self.locks = UploadLocks(config.lock_takeover_seconds, config.lock_stall_seconds)
        self.executor = ThreadPoolExecutor(max_workers=config.io_threads, thread_name_prefix="astrago-upload-io")
        self._cleaner: asyncio.Task | None = None

    @classmethod
    def of(cls, service) -> "UploadsArea":
        """The area of a service instance (made on first use; one per service)."""
        area = getattr(service, "_astrago_uploads_area", None)
        if area is None:
            area = cls(UploadsConfig(parent=service))
            service._astrago_uploads_area = area
        area.start_cleaner()
        return area

    async def io(self, fn, *args, **kwargs):
        """Run blocking file work on the uploads I/O threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))

    @property
    def receiving_ttl(self) -> float:
        return self.config.expiry_hours * 3600

    @property
    def finished_ttl(self) -> float:
        return self.config.finished_record_hours * 3600

    def start_cleaner(self) -> None:
        if self._cleaner is not None and not self._cleaner.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (the app is being built outside one): the first request starts it
        from .expiry import run_cleaner

        self._cleaner = loop.create_task(run_cleaner(self))
