"""Test accounts' leftovers: processes a test user's jobs or server left running."""
from __future__ import annotations

import os
import signal
from pathlib import Path


def kill_account_processes(account: str) -> None:
    """SIGKILL every process owned by that test account (found by uid in /proc)."""
    import pwd

    try:
        uid = pwd.getpwnam(account).pw_uid
    except KeyError:
        return
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
