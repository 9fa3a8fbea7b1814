"""Waiting in the service's queue (spawners/admission_queue.py), against a scripted client."""
import asyncio

import pytest

from astrago.spawners.admission_queue import wait_for_admission


class QueuedForever:
    """The service's answers for a request that stays queued; records releases."""

    def __init__(self):
        self.released = []

    async def admit(self, **kwargs):
        return {"id": "a1", "status": "queued", "position": 1, "queue_length": 1, "reason": "no free 1g.10gb"}

    async def status(self, allocation_id):
        return {"id": allocation_id, "status": "queued", "position": 1, "queue_length": 1}

    async def release(self, allocation_id, reason="server stopped"):
        self.released.append((allocation_id, reason))
        return {"id": allocation_id, "status": "released"}


def wait(client, notes, timeout=600):
    return wait_for_admission(client, owner_id="u/", user="u", groups=[], slice_name="1g.10gb", cpu=1, memory_gib=1,
                              note=lambda p, m: notes.append(m), timeout=timeout, poll_interval=0.01)


async def test_a_spawn_stopped_while_queued_leaves_the_queue():
    client, notes = QueuedForever(), []
    task = asyncio.ensure_future(wait(client, notes))
    while not notes:
        await asyncio.sleep(0.01)
    task.cancel()  # JupyterHub cancels a pending spawn when the server is stopped
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.released == [("a1", "the spawn was stopped while queued")]


async def test_a_spawn_that_waits_too_long_leaves_the_queue_with_a_reason():
    client, notes = QueuedForever(), []
    with pytest.raises(Exception) as refused:
        await wait(client, notes, timeout=0.05)
    assert "left the queue" in str(refused.value)
    assert client.released == [("a1", "gave up waiting in the queue")]
