"""What every AstraGo spawner shares: its identity at the service, the allocation it
holds for its server, and letting go of it however the server ends.

Both GPUKubeSpawner and LocalGPUSpawner inherit this before their JupyterHub base
class; each keeps only what differs (processes or pods, the options form, progress).
"""
from __future__ import annotations

import os

from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable

from .admission_client import AdmissionClient, AdmissionRefused, ServiceUnavailable


class AdmissionHolder(LoggingConfigurable):
    """Mixed in before a JupyterHub spawner class (its super() calls reach that spawner)."""

    service_api_url = Unicode(config=True, help="The AstraGo service's API, e.g. "
                              "http://127.0.0.1:10101/services/astrago/api/ (admission, offers).")
    service_api_token = Unicode(config=True, help="Token of the spawner's identity at the service "
                                "(scope custom:astrago:admissions). Default: $ASTRAGO_SPAWNER_TOKEN.")

    @default("service_api_token")
    def _token_default(self):
        return os.environ.get("ASTRAGO_SPAWNER_TOKEN", "")

    queue_timeout = Float(600.0, config=True, help="Seconds a spawn may wait in the queue before it gives up.")
    queue_poll_interval = Float(2.0, config=True, help="Seconds between queue position checks.")
    default_cpu = Float(2.0, config=True, help="CPU cores counted against quota for a workspace.")
    default_memory_gib = Float(8.0, config=True, help="Memory (GiB) counted against quota for a workspace.")

    @property
    def admission(self) -> AdmissionClient:
        return AdmissionClient(self.service_api_url, self.service_api_token)

    @property
    def owner_id(self) -> str:
        return f"{self.user.name}/{self.name}"

    def _groups(self) -> list[str]:
        return sorted(g.name for g in self.user.groups)

    # -- the allocation, kept in the spawner's state ------------------------

    allocation: dict | None = None
    _unreleased: dict | None = None

    def load_state(self, state):
        super().load_state(state)
        self.allocation = state.get("astrago_allocation")
        self._unreleased = state.get("astrago_unreleased") or self._unreleased

    def get_state(self):
        state = super().get_state()
        if self.allocation:
            state["astrago_allocation"] = self.allocation
        if self._unreleased:  # a release the service could not take (it was down): tried again at the next start
            state["astrago_unreleased"] = self._unreleased
        return state

    def clear_state(self):
        # JupyterHub's spawners clear state when they find their server gone (in poll());
        # keep the allocation aside so poll()/stop() still release it at the service
        super().clear_state()
        if self.allocation:
            self._unreleased = self.allocation
        self.allocation = None

    async def poll(self):
        status = await super().poll()
        if status is not None and (self.allocation or self._unreleased):
            await self._release("the server is gone")
        return status

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            await self._release("server stopped")

    async def _release(self, reason: str) -> None:
        held = self.allocation or self._unreleased
        self.allocation = self._unreleased = None
        if not held:
            return
        self.log.info("Releasing %s (%s) of %s: %s", held["id"], held["slice"], self.owner_id, reason)
        try:
            await self.admission.release(held["id"], reason)
        except AdmissionRefused as exc:
            if exc.status != 404:
                self.log.warning("Releasing %s failed: %s", held["id"], exc)
        except ServiceUnavailable as exc:
            # e.g. the hub stopping: JupyterHub stops its services before users' servers. Nothing is
            # lost: the service releases it in its round at start (before its first admission), and
            # this spawner tries again before its next start (kept in its state).
            self.log.warning("Releasing %s failed (the service releases it when it is back): %s", held["id"], exc)
            self._unreleased = held
