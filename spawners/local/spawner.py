"""LocalGPUSpawner: JupyterLab as the user's own system account, on a GPU slice.

Policy lives elsewhere: accounts.py (who runs it), devices.py (what is free and
who holds it), the inventory sources (what exists). This class glues them onto
JupyterHub's LocalProcessSpawner.
"""
from __future__ import annotations

import asyncio
import html
import os
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, SpawnException, set_user_setuid
from traitlets import Bool, Dict, List, Unicode, default

from .accounts import AccountError, ensure_account, system_username
from .devices import (Allocation, InvalidSliceName, LocalDeviceLedger, NoCapacity, devices_from_inventory,
                      process_env)


class MachineInventory:
    """The GPUs of this machine, read once per hub process, and their ledger."""

    def __init__(self, devices, simulated: bool, source_note: str, mps_shares: list[int]):
        self.simulated = simulated
        self.source_note = source_note
        self.ledger = LocalDeviceLedger(devices, mps_shares)

    @classmethod
    def discover(cls, inventory_file: str, mps_shares: list[int], log) -> "MachineInventory":
        if inventory_file:
            from ..inventory.static import load_static_inventory

            cluster = load_static_inventory(inventory_file)
            gpus = [gpu for node in cluster.nodes for gpu in node.gpus]
            return cls(devices_from_inventory(gpus), True,
                       f"Simulated GPUs from {Path(inventory_file).name}: no real GPU is attached.", mps_shares)
        try:
            from ..inventory.nvml import InventoryUnavailable, read_nvml_inventory
        except ImportError as exc:  # inventory package missing: treat as no GPU, say so
            log.warning("GPU inventory unavailable: %s", exc)
            return cls([], False, "This machine has no usable NVIDIA GPU: CPU-only workspaces.", mps_shares)
        try:
            node = read_nvml_inventory(os.uname().nodename)
        except InventoryUnavailable as exc:
            log.info("No NVML: %s", exc)
            return cls([], False, "This machine has no NVIDIA GPU (NVML is not available): CPU-only workspaces.",
                       mps_shares)
        return cls(devices_from_inventory(node.gpus), False, f"{len(node.gpus)} NVIDIA GPU(s) found through NVML.",
                   mps_shares)


class LocalGPUSpawner(LocalProcessSpawner):
    """Spawn each user's JupyterLab as their own account, with a GPU slice's environment."""

    system_user_prefix = Unicode("astrago-", config=True,
                                 help="Prefix of the system account made for each hub user (astrago-alice).")
    create_system_users = Bool(config=True, help="Create missing system accounts (needs root). "
                               "Default: True when the hub runs as root.")

    @default("create_system_users")
    def _create_default(self):
        return os.geteuid() == 0

    home_dir_template = Unicode("/home/{system_user}", config=True,
                                help="Home directory of new accounts; {system_user} is the account name.")
    inventory_file = Unicode(config=True, help="A static inventory YAML describing GPUs, for hosts "
                             "without NVML (demos, tests). The UI says such GPUs are simulated.")

    @default("inventory_file")
    def _inventory_file_default(self):
        return os.environ.get("ASTRAGO_INVENTORY_FILE", "")

    mps_shares = List(default_value=[25, 50], config=True,
                      help="MPS share sizes (thread percentage) offered on GPUs run in MPS mode.")
    mps_pipe_dir = Unicode("/tmp/nvidia-mps", config=True, help="CUDA_MPS_PIPE_DIRECTORY of the MPS daemon.")
    mps_log_dir = Unicode("/var/log/nvidia-mps", config=True, help="CUDA_MPS_LOG_DIRECTORY of the MPS daemon.")
    user_env_prefix = Unicode(config=True, help="Python environment that runs users' servers (must be "
                              "readable by every user). Default: the hub's own environment.")

    @default("user_env_prefix")
    def _user_env_prefix_default(self):
        return os.environ.get("ASTRAGO_USER_ENV", sys.prefix)

    cpu_profile_label = Unicode("CPU only", config=True, help="Label of the CPU-only choice.")
    extra_user_env = Dict(config=True, help="Extra environment variables for every user's server.")

    @default("cmd")
    def _cmd_default(self):
        return [str(Path(self.user_env_prefix) / "bin" / "jupyterhub-singleuser")]

    @default("default_url")
    def _default_url_default(self):
        return "/lab"

    _machines: dict = {}

    # -- machine inventory (one per hub process) ------------------------

    @property
    def machine(self) -> MachineInventory:
        key = (self.inventory_file, tuple(self.mps_shares))
        if key not in LocalGPUSpawner._machines:
            LocalGPUSpawner._machines[key] = MachineInventory.discover(self.inventory_file, list(self.mps_shares),
                                                                       self.log)
        return LocalGPUSpawner._machines[key]

    @property
    def owner_key(self) -> str:
        return f"{self.user.name}/{self.name}"

    @property
    def system_user(self) -> str:
        return system_username(self.user.name, self.system_user_prefix)

    # -- options form --------------------------------------------------

    @default("options_form")
    def _options_form_default(self):
        return self._render_options_form

    def _render_options_form(self, spawner):
        machine = self.machine
        rows = []
        first = True
        for offer in machine.ledger.offers(self.cpu_profile_label):
            disabled = offer.free <= 0
            checked = " checked" if first and not disabled else ""
            if checked:
                first = False
            units = f"{float(offer.gpu_units):.2f} GPU units" if offer.gpu_units else "0 GPU units"
            mem = f", {offer.memory_gb:g} GB GPU memory" if offer.memory_gb else ""
            avail = "" if offer.kind == "cpu" else f" — {offer.free} of {offer.total} free"
            note = f'<div class="astrago-note">{html.escape(offer.note)}</div>' if offer.note else ""
            rows.append(
                f'<label class="astrago-slice{" disabled" if disabled else ""}">'
                f'<input type="radio" name="slice" value="{html.escape(offer.name)}"{checked}'
                f'{" disabled" if disabled else ""}> <strong>{html.escape(offer.label)}</strong> '
                f'<span>({units}{mem}{avail})</span>{note}</label>'
            )
        banner_class = "alert-warning" if machine.simulated else "alert-info"
        return (
            f'<div class="alert {banner_class}" id="astrago-inventory-note">{html.escape(machine.source_note)}</div>'
            '<fieldset id="astrago-slices"><legend>Choose where your JupyterLab runs</legend>'
            + "".join(rows) + "</fieldset>"
            "<style>.astrago-slice{display:block;padding:6px 0}.astrago-slice.disabled{opacity:.5}"
            ".astrago-note{margin-left:22px;font-size:90%;color:#666}</style>"
        )

    def options_from_form(self, formdata):
        return {"slice": (formdata.get("slice") or ["cpu"])[0]}

    # -- progress ------------------------------------------------------

    def _note(self, progress: int, message: str):
        self._events.append({"progress": progress, "message": message})
        self._event_signal.set()

    _events: list = []
    _spawn_finished = True

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

    # -- lifecycle -----------------------------------------------------

    allocation: Allocation | None = None

    def load_state(self, state):
        super().load_state(state)
        saved = state.get("astrago_allocation")
        if saved:
            self.allocation = Allocation.from_state(saved)
            try:
                self.machine.ledger.restore(self.allocation)
            except NoCapacity as exc:
                self.log.warning("%s", exc)

    def get_state(self):
        state = super().get_state()
        if self.allocation:
            state["astrago_allocation"] = self.allocation.to_state()
        return state

    def clear_state(self):
        super().clear_state()
        self.allocation = None

    def make_preexec_fn(self, name):
        return set_user_setuid(self.system_user)

    def user_env(self, env):
        account = ensure_account(self.system_user, self._home(), create=False)
        env["USER"] = account.pw_name
        env["HOME"] = account.pw_dir
        env["SHELL"] = account.pw_shell or "/bin/bash"
        env["PATH"] = f"{Path(self.user_env_prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin"
        return env

    def get_env(self):
        env = super().get_env()
        env.update(self.extra_user_env)
        if self.allocation:
            env.update(process_env(self.allocation, mps_pipe_dir=self.mps_pipe_dir, mps_log_dir=self.mps_log_dir))
        return env

    def _home(self) -> str:
        return self.home_dir_template.format(system_user=self.system_user, username=self.user.name)

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
        slice_name = str((self.user_options or {}).get("slice") or "cpu")
        try:
            account = await asyncio.to_thread(ensure_account, self.system_user, self._home(),
                                              create=self.create_system_users)
        except AccountError as exc:
            raise SpawnException(str(exc), reason="account") from None
        self._note(10, f"Running as system account {account.pw_name}")
        # server-side re-check: the REST API may send any slice name
        try:
            self.allocation = self.machine.ledger.allocate(self.owner_key, slice_name)
        except InvalidSliceName as exc:
            raise SpawnException(f"{exc} Choose one of the offered slices.", reason="invalid-slice") from None
        except NoCapacity as exc:
            raise SpawnException(f"{exc} Try a smaller slice or try again later.", reason="capacity") from None
        where = ", ".join(self.allocation.uuids) or "no GPU"
        self._note(30, f"Allocated {slice_name} ({where})")
        if not shutil.which(self.cmd[0]):
            self.machine.ledger.release(self.owner_key)
            self.allocation = None
            raise SpawnException(f"{self.cmd[0]} is missing: run 'make run' again to set up the user environment.",
                                 reason="environment")
        self._note(50, "Starting JupyterLab")
        try:
            return await super().start()
        except Exception:
            self.machine.ledger.release(self.owner_key)
            self.allocation = None
            raise

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            released = self.machine.ledger.release(self.owner_key)
            if released and released.slice_name != "cpu":
                self.log.info("Released %s of %s", released.slice_name, self.owner_key)
            self.allocation = None
