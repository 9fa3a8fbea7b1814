"""GPUKubeSpawner: KubeSpawner that asks AstraGo what a user may run and where.

Thin on purpose (kubespawner's 4,000-line spawner is the warning). The policy lives in
pure modules and in the service:

- profiles.py: the spawn page's choices (slice catalogue x groups x quota) and the
  server-side re-check of what a spawn asked for;
- ../admission_queue.py, ../admission_holder.py: admission by the AstraGo service (queue
  positions as progress), the allocation held and released;
- pods.py: the pod's resources, selectors, tolerations, env and labels for the slice;
- events.py: Kubernetes events in plain words.

Kubernetes places the pod; the service only decides admission and which resource to ask
for. Stopping (or a pod found gone) releases the allocation.
"""
from __future__ import annotations

import asyncio
import copy

from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Enum, List, Unicode, default

from ..admission_client import AdmissionRefused, ServiceUnavailable
from ..admission_holder import AdmissionHolder
from ..admission_queue import refuse, wait_for_admission
from ..environment_choice import chosen_environment
from . import events, pods, profiles


async def slice_profile_list(spawner) -> list[dict]:
    """KubeSpawner's `profile_list` as a callable: the slices `spawner`'s user may start now.

    z2jh sets `c.KubeSpawner.profile_list` from `singleuser.profileList` (default `[]`), and a
    configured value beats a trait's `@default`; hub/cluster.py therefore sets
    `c.GPUKubeSpawner.profile_list = slice_profile_list` after the chart's configuration.
    """
    return await spawner.slice_profiles()


def _options_applied_in_start(spawner, user_options) -> None:
    """`apply_user_options`: nothing here; GPUKubeSpawner.start re-checks and applies the choice."""


class GPUKubeSpawner(AdmissionHolder, KubeSpawner):
    """A user's JupyterLab in a pod on the GPU slice they chose, admitted by AstraGo."""

    mig_strategy = Enum(["mixed", "single"], default_value="mixed", config=True,
                        help="The GPU operator's MIG strategy (how the device plugin names MIG slices).")
    pin_gpu_model = Bool(True, config=True, help="Ask Kubernetes for the GPU model the admission counted "
                         "(node affinity on nvidia.com/gpu.product), so quota and the pod agree.")
    group_slices = Dict(value_trait=List(Unicode()), config=True,
                        help="Slices each JupyterHub group may use, e.g. {'team-a': ['1g.10gb', 'mps-25'], "
                             "'*': ['cpu']}; '*' is everyone. Empty: no restriction beyond quota.")

    @default("profile_list")
    def _profile_list_default(self):
        return slice_profile_list

    async def slice_choices(self) -> list[profiles.SliceChoice]:
        offers = await self.admission.offers(self.user.name, self._groups())
        return profiles.slice_choices(offers, self._groups(), self.group_slices)

    async def slice_profiles(self, spawner=None) -> list[dict]:
        """`profile_list` (callable): what this user may start now, in the environments their teams allow."""
        try:
            choices = await self.slice_choices()
        except (ServiceUnavailable, AdmissionRefused) as exc:
            self.log.warning("AstraGo offers for %s unavailable: %s", self.user.name, exc)
            return []
        try:
            environments = await self.admission.environments(self.user.name)
        except (ServiceUnavailable, AdmissionRefused) as exc:  # the deployment's image still works
            self.log.warning("AstraGo environments for %s unavailable: %s", self.user.name, exc)
            environments = None
        return profiles.profile_list(choices, environments)

    async def environment_overrides(self) -> dict:
        """The pod's image for the environment the spawn chose, re-checked with the service (the
        user's teams must allow it); nothing for the base environment (the deployment's image)."""
        chosen = await chosen_environment(self.admission, self.user.name, self.user_options)
        if chosen is None:
            return {}
        if not chosen.get("image"):
            raise refuse(f"The environment {chosen['name']} has no container image; a cluster runs images.",
                         reason="invalid-request")
        overrides = {"image": chosen["image"], "environment": {"ASTRAGO_ENVIRONMENT": chosen["name"]}}
        if chosen.get("pull_policy"):
            overrides["image_pull_policy"] = chosen["pull_policy"]
        return overrides

    # -- progress --------------------------------------------------------

    def _note(self, progress: int, message: str) -> None:
        self._notes.append({"progress": progress, "message": message})
        self._note_signal.set()

    async def progress(self):
        """AstraGo's notes (asking, queue position, admitted), then Kubernetes events in plain words."""
        if hasattr(self, "_notes"):
            sent = 0
            while True:
                while sent < len(self._notes):
                    yield self._notes[sent]
                    sent += 1
                if self._admission_over.is_set() and sent == len(self._notes):
                    break
                self._note_signal.clear()
                try:
                    await asyncio.wait_for(self._note_signal.wait(), timeout=1)
                except asyncio.TimeoutError:
                    pass
            if self.allocation is None:
                return  # refused before a pod was asked for
        last = None
        slice_name = (self.allocation or {}).get("slice")
        async for event in super().progress():
            words = events.plain_words(event["raw_event"], slice_name) if event.get("raw_event") else None
            if words:
                event = {**event, "message": words[0].upper() + words[1:]}
            if event.get("message") != last:
                last = event.get("message")
                yield event

    # -- lifecycle -------------------------------------------------------

    def start(self):
        """Admission first (queue positions as progress), then KubeSpawner's own public `start`.

        Only public hooks are used: `start` is wrapped, `load_user_options` (documented as the
        override point for other options) is a no-op because the choice is applied here after
        admission. Nothing of KubeSpawner's private `_start` is overridden or called.
        """
        self._notes, self._note_signal, self._admission_over = [], asyncio.Event(), asyncio.Event()
        self._admission_future = asyncio.ensure_future(self._admit_then_start())
        return self._admission_future

    async def load_user_options(self):
        """The choice was re-checked and its pod settings applied in `start`, after admission."""

    @default("apply_user_options")
    def _apply_user_options_default(self):
        """JupyterHub's hook (5.3+) before `start`: `profile` / `slice` are handled in `start`
        (re-checked against the offer, applied after admission), so nothing is left unhandled."""
        return _options_applied_in_start

    async def _admit(self) -> None:
        """Re-check the choice, wait for admission, lay the slice's pod settings over the traits."""
        await self._release("a new server starts")  # anything a crashed earlier spawn left behind
        try:
            choice = profiles.choose(self.user_options, await self.slice_choices())
        except profiles.OptionsRefused as exc:
            raise refuse(exc.message, reason=exc.kind) from None
        except (ServiceUnavailable, AdmissionRefused) as exc:
            raise refuse(f"AstraGo cannot check your choice right now: {exc}",
                         reason="service-unavailable") from None
        environment = await self.environment_overrides()
        self._note(10, f"Asking AstraGo for {choice.slice}")
        decision = await wait_for_admission(
            self.admission, owner_id=self.owner_id, user=self.user.name, groups=self._groups(),
            slice_name=choice.slice, cpu=self.default_cpu, memory_gib=self.default_memory_gib,
            note=self._note, timeout=self.queue_timeout, poll_interval=self.queue_poll_interval)
        model = (decision.get("placement") or {}).get("model") if self.pin_gpu_model else None
        self.allocation = {"id": decision["id"], "slice": choice.slice, "model": model}
        slice_traits = pods.slice_overrides(choice.slice, model, self.mig_strategy, allocation_id=decision["id"],
                                            cpu=self.default_cpu, memory_gib=self.default_memory_gib)
        self._apply_pod_settings({**slice_traits, **pods.merged_traits(slice_traits, environment)})
        self._note(30, f"Admitted: {choice.slice} ({decision.get('gpu_units', 0):.2f} GPU units); "
                       "asking Kubernetes for a pod")

    async def _admit_then_start(self):
        try:
            await self._admit()
        finally:
            self._admission_over.set()
            self._note_signal.set()
        try:
            return await super().start()
        except BaseException:
            await self._release("the server did not start")
            raise

    _configured_traits: dict | None = None

    def _apply_pod_settings(self, overrides: dict) -> None:
        """Lay a slice's settings over the configured traits (never over a previous slice's)."""
        if self._configured_traits is None:
            self._configured_traits = {}
        for name, value in self._configured_traits.items():
            setattr(self, name, copy.deepcopy(value))
        for name in overrides:
            self._configured_traits.setdefault(name, copy.deepcopy(getattr(self, name)))
        for name, value in pods.merged_traits(self._configured_traits, overrides).items():
            setattr(self, name, value)
