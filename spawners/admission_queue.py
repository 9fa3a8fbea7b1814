"""Waiting for admission: ask the AstraGo service, then follow the queue with progress notes.

Shared by both spawners, over the plain HTTP client: admitted with a placement, queued with a position (polled until admitted or
`timeout` passes, then the request leaves the queue), or refused with the service's words.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from typing import Callable

from jupyterhub.spawner import SpawnException

from .admission_client import AdmissionClient, AdmissionRefused, ServiceUnavailable

__all__ = ["wait_for_admission", "queue_note", "refuse"]


def refuse(message: str, reason: str) -> SpawnException:
    """A policy refusal whose message the hub shows on its pages (JupyterHub 6.1 reads
    `jupyterhub_message` there, not SpawnException.message)."""
    exc = SpawnException(message, reason=reason)
    exc.jupyterhub_message = message
    return exc


def queue_note(decision: dict, slice_name: str) -> str:
    """What a queued request says on the spawn page."""
    return (f"Queued: position {decision.get('position')} of {decision.get('queue_length')} for {slice_name} "
            f"({decision.get('reason') or 'waiting for capacity'})")


async def wait_for_admission(client: AdmissionClient, *, owner_id: str, user: str, groups: list[str],
                             slice_name: str, cpu: float, memory_gib: float, note: Callable[[int, str], None],
                             timeout: float, poll_interval: float) -> dict:
    """The admitted decision; raises SpawnException on refusal, cancellation or timeout."""
    try:
        decision = await client.admit(owner_kind="workspace", owner_id=owner_id, user=user, groups=groups,
                                      slice_name=slice_name, cpu=cpu, memory_gib=memory_gib,
                                      client_key=f"workspace:{owner_id}:{secrets.token_hex(8)}")
    except AdmissionRefused as exc:
        raise refuse(exc.detail, reason=exc.kind) from None
    except ServiceUnavailable as exc:
        raise refuse(f"{exc} Try again in a minute; tell an administrator if it lasts.",
                             reason="service-unavailable") from None
    deadline = time.monotonic() + timeout
    last = None
    try:
        while decision["status"] == "queued":
            message = queue_note(decision, slice_name)
            if message != last:
                note(20, message)
                last = message
            if time.monotonic() > deadline:
                await client.release(decision["id"], "gave up waiting in the queue")
                raise refuse(f"Still waiting for a free {slice_name} after {int(timeout)} s; left the queue. "
                                     "Try a smaller slice or try again later.", reason="queue-timeout")
            await asyncio.sleep(poll_interval)
            try:
                decision = await client.status(decision["id"])
            except (AdmissionRefused, ServiceUnavailable) as exc:
                raise refuse(f"Lost track of the queue: {exc}", reason="queue") from None
    except asyncio.CancelledError:
        # the spawn was stopped while queued (JupyterHub cancels a pending spawn): leave the
        # queue, or the request would wait there for nobody and be admitted for nobody
        try:
            await client.release(decision["id"], "the spawn was stopped while queued")
        except (AdmissionRefused, ServiceUnavailable):
            pass
        raise
    if decision["status"] != "admitted":
        raise refuse(f"The request for {slice_name} was {decision['status']}: {decision.get('reason')}",
                             reason="cancelled")
    return decision
