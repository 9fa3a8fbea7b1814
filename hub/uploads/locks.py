"""One request at a time per upload, and a lock that cannot wedge.

A client whose connection died reconnects and sends HEAD or PATCH while the server
may still hold the old request open (TCP has not noticed yet). The new request
interrupts the holder (its connection is closed, it keeps what it durably wrote and
lets go) and takes over. Only if the holder does not let go in time does the newcomer
get 423 Locked, which tus clients retry. (One service process: an in-process lock. A
deployment running several upload processes would need a shared lock.)
"""
from __future__ import annotations

import asyncio

from ..service.problems import Problem


class _Hold:
    def __init__(self, interrupt):
        self.interrupt = interrupt
        self.released = asyncio.Event()


class UploadLocks:
    def __init__(self, takeover_seconds: float = 10.0):
        self.takeover_seconds = takeover_seconds
        self._holds: dict[str, _Hold] = {}

    def held(self, upload_id: str) -> bool:
        return upload_id in self._holds

    async def acquire(self, upload_id: str, interrupt=None) -> "_Hold":
        """Take the upload's lock, interrupting the current holder. `interrupt` is how others stop us."""
        while (hold := self._holds.get(upload_id)) is not None:
            if hold.interrupt is not None:
                try:
                    hold.interrupt()
                except Exception:  # noqa: BLE001 -- a holder that fails to stop still times out below
                    pass
            try:
                await asyncio.wait_for(hold.released.wait(), self.takeover_seconds)
            except asyncio.TimeoutError:
                raise Problem("locked", "Another request is still writing to this upload; try again shortly.") from None
        mine = _Hold(interrupt)
        self._holds[upload_id] = mine
        return mine

    def release(self, upload_id: str, hold: "_Hold | None") -> None:
        if hold is None or hold.released.is_set():
            return
        if self._holds.get(upload_id) is hold:
            del self._holds[upload_id]
        hold.released.set()
