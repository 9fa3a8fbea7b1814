"""Finding a job's processes again: pid + start time, and the job marker in their environment.

A pid alone is not an identity (pids are reused), so a launch records the start time the
kernel gives the process (field 22 of /proc/<pid>/stat, clock ticks since boot); the pair
names one process for the life of the machine. Every process of a job attempt also carries
ASTRAGO_JOB_MARKER=<job id>.<attempt> in its environment, which children inherit (a
notebook's kernel too, though jupyter_client puts it in a session of its own), so
cancellation finds the whole tree.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")
MARKER_VAR = "ASTRAGO_JOB_MARKER"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # the command name (field 2) is in parentheses and may hold spaces or ')'
    rest = raw[raw.rindex(")") + 2:].split()
    return rest  # rest[0] is field 3 (state)


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None: no such process)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def is_alive(pid: int | None, ticks: int | None) -> bool:
    """True while the process `pid` started at `ticks` exists and has not exited (a zombie has)."""
    if not pid:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return ticks is None or int(fields[19]) == int(ticks)


def with_marker(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ASTRAGO_JOB_MARKER=<marker>."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except (OSError, ProcessLookupError):
            continue
        if needle in env.split(b"\0") and state(int(entry.name)) not in (None, "Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def environ_value(pid: int, name: str) -> str | None:
    """The value of `name` in a process's environment (None: not set, or no such process)."""
    try:
        env = (PROC / str(pid) / "environ").read_bytes()
    except (OSError, ProcessLookupError):
        return None
    prefix = name.encode() + b"="
    for entry in env.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def is_session_leader(pid: int) -> bool:
    """The process leads its own session (the executor starts each replica in one)."""
    fields = _stat_fields(pid)
    return bool(fields) and int(fields[3]) == pid


def process_group_members(pgid: int) -> list[int]:
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return out


def signal_pids(pids, sig: int) -> None:
    """Signal each pid; never 0, 1 or ourselves (kill(0) would signal our own process group)."""
    me = os.getpid()
    for pid in pids:
        if not isinstance(pid, int) or pid <= 1 or pid == me:
            continue
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def terminate_tree(marker: str, leader: int | None, grace_s: float, *, extra_check=None) -> list[int]:
    """SIGTERM every process of the attempt (marker, and the leader's process group), wait up to
    `grace_s`, then SIGKILL what is left. Returns the pids that were still there at the end
    (empty when all are gone). Blocking: run it in a thread."""

    def members():
        pids = set(with_marker(marker))
        if leader:
            pids.update(process_group_members(leader))
        if extra_check:
            pids.update(extra_check())
        return {p for p in pids if p > 1 and p != os.getpid()}

    pids = members()
    if leader is not None and (leader <= 1 or leader == os.getpid() or leader == os.getpgrp()):
        leader = None  # never our own process group
    if leader:
        try:
            os.killpg(leader, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    signal_pids(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = members()
    for _ in range(50):
        if not pids:
            break
        if leader:
            try:
                os.killpg(leader, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        signal_pids(pids, signal.SIGKILL)
        time.sleep(0.1)
        pids = members()
    return sorted(pids)
