"""LocalGPUSpawner: JupyterLab as the user's own system account, on a GPU slice, in the chosen environment.

Policy lives elsewhere: accounts.py (who runs it), the AstraGo service (what the
user may have, what is free, who waits: quota, placement and the fair queue),
devices.py (the environment a placement gives a process). This class glues them
onto JupyterHub's LocalProcessSpawner.
"""
from __future__ import annotations

import asyncio
import html
import os
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Any, Bool, Dict, Unicode, default

from ..admission_client import AdmissionRefused, ServiceUnavailable
from ..admission_holder import AdmissionHolder
from ..admission_queue import refuse, wait_for_admission
from ..environment_choice import BASE_ENVIRONMENT, chosen_environment
from .accounts import AccountError, ensure_account, system_username
from .devices import env_for_placement
from .options_form import render_options_form


class LocalGPUSpawner(AdmissionHolder, LocalProcessSpawner):
    """Spawn each user's JupyterLab as their own account, admitted by the AstraGo service."""

    system_user_prefix = Unicode("astrago-", config=True,
                                 help="Prefix of the system account made for each hub user (astrago-alice).")
    create_system_users = Bool(config=True, help="Create missing system accounts (needs root). "
                               "Default: True when the hub runs as root.")

    @default("create_system_users")
    def _create_default(self):
        return os.geteuid() == 0

    home_dir_template = Unicode("/home/{system_user}", config=True,
                                help="Home directory of new accounts; {system_user} is the account name.")
    mps_pipe_dir = Unicode("/tmp/nvidia-mps", config=True, help="CUDA_MPS_PIPE_DIRECTORY of the MPS daemon.")
    mps_log_dir = Unicode("/var/log/nvidia-mps", config=True, help="CUDA_MPS_LOG_DIRECTORY of the MPS daemon.")
    user_env_prefix = Unicode(config=True, help="Python environment that runs users' servers (must be "
                              "readable by every user). Default: the hub's own environment.")

    @default("user_env_prefix")
    def _user_env_prefix_default(self):
        return os.environ.get("ASTRAGO_USER_ENV", sys.prefix)

    extra_user_env = Dict(config=True, help="Extra environment variables for every user's server.")

    account_ready_hook = Any(None, config=True, help="A callable (spawner, account) -> None or awaitable, run "
                             "once the user's system account exists and before the server's process starts "
                             "(e.g. to put the account into its teams' groups). Errors are logged, not raised.")

    @default("cmd")
    def _cmd_default(self):
        return [str(Path(self.user_env_prefix) / "bin" / "jupyterhub-singleuser")]

    @default("default_url")
    def _default_url_default(self):
        return "/lab"

    @property
    def system_user(self) -> str:
        return system_username(self.user.name, self.system_user_prefix)

    # -- options form --------------------------------------------------

    @default("options_form")
    def _options_form_default(self):
        return self._options_form

    async def _options_form(self, spawner):
        try:
            offers = await self.admission.offers(self.user.name, self._groups())
        except (ServiceUnavailable, AdmissionRefused) as exc:
            return (f'<div class="alert alert-danger">AstraGo cannot list your choices right now: '
                    f'{html.escape(str(exc))} Reload in a moment.</div>'
                    '<input type="hidden" name="slice" value="cpu">')
        try:
            environments = await self.admission.environments(self.user.name)
        except (ServiceUnavailable, AdmissionRefused) as exc:  # the shared environment still works
            self.log.warning("AstraGo environments for %s unavailable: %s", self.user.name, exc)
            environments = None
        return render_options_form(offers, environments)

    def options_from_form(self, formdata):
        options = {"slice": (formdata.get("slice") or ["cpu"])[0]}
        if (formdata.get("environment") or [""])[0]:
            options["environment"] = formdata["environment"][0]
        return options

    # -- the environment ------------------------------------------------

    #: the server's Python environment for this start (the chosen one's prefix, else user_env_prefix)
    _environment_prefix: str | None = None
    _configured_cmd: list | None = None

    @property
    def environment_prefix(self) -> str:
        return self._environment_prefix or self.user_env_prefix

    async def _choose_environment(self) -> str:
        """The prefix the server runs from: the environment the spawn chose, re-checked with the
        service (the user's teams must allow it and it must be ready), or the shared one."""
        chosen = await chosen_environment(self.admission, self.user.name, self.user_options)
        if chosen is None:
            return self.user_env_prefix
        if not chosen.get("prefix"):
            raise refuse(f"The environment {chosen['name']} is a container image; this machine runs Python "
                         "environments.", reason="invalid-request")
        return chosen["prefix"]

    def _command_in(self, prefix: str) -> list[str]:
        """The configured command, its program taken from the environment at `prefix`."""
        if self._configured_cmd is None:
            self._configured_cmd = list(self.cmd)
        if prefix == self.user_env_prefix:
            return list(self._configured_cmd)
        return [str(Path(prefix) / "bin" / Path(self._configured_cmd[0]).name)] + self._configured_cmd[1:]

    # -- progress ------------------------------------------------------

    _events: list = []
    _spawn_finished = True

    def _note(self, progress: int, message: str):
        self._events.append({"progress": progress, "message": message})
        self._event_signal.set()

    async def progress(self):
        if not hasattr(self, "_event_signal"):
            return
        sent = 0
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            if self._spawn_finished:
                return
            self._event_signal.clear()
            try:
                await asyncio.wait_for(self._event_signal.wait(), timeout=1)
            except asyncio.TimeoutError:
                pass

    # -- process -------------------------------------------------------

    def make_preexec_fn(self, name):
        return set_user_setuid(self.system_user)

    def user_env(self, env):
        account = ensure_account(self.system_user, self._home(), create=False)
        env["USER"] = account.pw_name
        env["HOME"] = account.pw_dir
        env["SHELL"] = account.pw_shell or "/bin/bash"
        env["PATH"] = f"{Path(self.environment_prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin"
        return env

    def get_env(self):
        env = super().get_env()
        env.update(self.extra_user_env)
        env["ASTRAGO_ENVIRONMENT"] = (self.user_options or {}).get("environment") or BASE_ENVIRONMENT
        if self.allocation:
            env.update(env_for_placement(self.allocation.get("slice", "cpu"), self.allocation.get("placement") or {},
                                         mps_pipe_dir=self.mps_pipe_dir, mps_log_dir=self.mps_log_dir))
        return env

    def _home(self) -> str:
        return self.home_dir_template.format(system_user=self.system_user, username=self.user.name)

    # -- lifecycle -----------------------------------------------------

    async def start(self):
        self._events = []
        self._event_signal = asyncio.Event()
        self._spawn_finished = False
        try:
            return await self._start()
        finally:
            self._spawn_finished = True
            self._event_signal.set()

    async def _start(self):
        await self._release("a new server starts")  # anything a crashed earlier spawn left behind
        slice_name = str((self.user_options or {}).get("slice") or "cpu")
        try:
            account = await asyncio.to_thread(ensure_account, self.system_user, self._home(),
                                              create=self.create_system_users)
        except AccountError as exc:
            raise refuse(str(exc), reason="account") from None
        self._note(10, f"Running as system account {account.pw_name}")
        if self.account_ready_hook is not None:
            try:
                done = self.account_ready_hook(self, account)
                if asyncio.iscoroutine(done):
                    await done
            except Exception:
                self.log.exception("account_ready_hook failed for %s", self.user.name)
        self._environment_prefix = prefix = await self._choose_environment()
        self.cmd = self._command_in(prefix)
        if not shutil.which(self.cmd[0]):
            raise refuse(f"{self.cmd[0]} is missing: run 'make run' again to set up the user environment.",
                         reason="environment")
        if prefix != self.user_env_prefix:
            self._note(12, f"Environment {self.user_options['environment']} ({prefix})")
        self._note(15, f"Asking AstraGo for {slice_name}")
        decision = await wait_for_admission(
            self.admission, owner_id=self.owner_id, user=self.user.name, groups=self._groups(),
            slice_name=slice_name, cpu=self.default_cpu, memory_gib=self.default_memory_gib, note=self._note,
            timeout=self.queue_timeout, poll_interval=self.queue_poll_interval)
        self.allocation = {"id": decision["id"], "slice": slice_name, "placement": decision.get("placement") or {}}
        where = ", ".join(self.allocation["placement"].get("visible_devices") or []) or "no GPU"
        self._note(40, f"Admitted: {slice_name} ({where}, {decision.get('gpu_units', 0):.2f} GPU units)")
        self._note(50, "Starting JupyterLab")
        try:
            return await super().start()
        except Exception:
            await self._release("the server did not start")
            raise
