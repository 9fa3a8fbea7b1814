"""One writer at a time per upload, and a lock that cannot wedge.

Only requests that write (PATCH, DELETE, the creation body, concatenation) take an
upload's lock; HEAD never does, so asking for the offset never interrupts a PATCH in
progress (it reports what is durably there, or waits a moment for a writer whose
connection is already gone to keep what arrived).

A competing writer gets 423 Locked while the holder is alive and receiving, which tus
clients retry. It takes over only a dead holder: one whose connection has closed, or
that has received nothing for `stall_seconds` (a client that vanished without TCP
noticing yet, e.g. a page reload): the holder is interrupted (its connection closed;
it keeps what it durably wrote and lets go) and the newcomer goes on. If the holder
does not let go within `takeover_seconds`, the newcomer gets 423 too. (One service
process: an in-process lock. Several upload processes would need a shared lock.)
"""
from __future__ import annotations

import asyncio
import time

from ..service.problems import Problem


class _Hold:
    def __init__(self, interrupt):
        self.interrupt = interrupt
        self.released = asyncio.Event()
        self.last_activity = time.monotonic()
        self.closing = False  # the holder's connection is gone; it is keeping what arrived

    def touch(self) -> None:
        """The holder received bytes: it is alive."""
        self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        return time.monotonic() - self.last_activity


class UploadLocks:
    def __init__(self, takeover_seconds: float = 10.0, stall_seconds: float = 3.0):
        self.takeover_seconds = takeover_seconds
        self.stall_seconds = stall_seconds
        self._holds: dict[str, _Hold] = {}

    def held(self, upload_id: str) -> bool:
        return upload_id in self._holds

    def holder(self, upload_id: str) -> "_Hold | None":
        return self._holds.get(upload_id)

    async def acquire(self, upload_id: str, interrupt=None) -> "_Hold":
        """Take the upload's lock. A live holder: 423 at once. A dead one (closed, or silent for
        `stall_seconds`): interrupted, and taken over once it lets go. `interrupt` is how a
        later request stops us if we stall."""
        while (hold := self._holds.get(upload_id)) is not None:
            if not hold.closing and hold.idle_for() < self.stall_seconds:
                raise Problem("locked", "Another request is writing to this upload right now; try again shortly "
                              "(tus clients retry by themselves).")
            if not hold.closing and hold.interrupt is not None:
                try:
                    hold.interrupt()
                except Exception:  # noqa: BLE001 -- a holder that fails to stop still times out below
                    pass
            await self._wait_released(hold)
        mine = _Hold(interrupt)
        self._holds[upload_id] = mine
        return mine

    async def settled(self, upload_id: str) -> None:
        """For a reader (HEAD): wait, without interrupting anyone, for a holder whose connection is
        gone to finish keeping what arrived, so the offset read next is final. A live holder is
        not waited for (the offset then is what is durable so far)."""
        hold = self._holds.get(upload_id)
        if hold is not None and hold.closing:
            try:
                await asyncio.wait_for(hold.released.wait(), self.takeover_seconds)
            except asyncio.TimeoutError:
                pass

    async def _wait_released(self, hold: "_Hold") -> None:
        try:
            await asyncio.wait_for(hold.released.wait(), self.takeover_seconds)
        except asyncio.TimeoutError:
            raise Problem("locked", "Another request is still writing to this upload; try again shortly.") from None

    def release(self, upload_id: str, hold: "_Hold | None") -> None:
        if hold is None or hold.released.is_set():
            return
        if self._holds.get(upload_id) is hold:
            del self._holds[upload_id]
        hold.released.set()
