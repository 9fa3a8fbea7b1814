"""System accounts for users: each user's server runs as their own Unix account.

Never root, never `--allow-root`: one user's kernel must not read another's home.
"""
from __future__ import annotations

import os
import pwd
import re
import subprocess

_VALID_SYSTEM_NAME = re.compile(r"^[a-z_][a-z0-9._-]{0,31}$")


class AccountError(RuntimeError):
    """A user's system account cannot be used or made; the message says why."""


def system_username(hub_name: str, prefix: str) -> str:
    """The Unix account name for a JupyterHub user (pure).

    Names that would need changing to be valid Unix names are refused rather
    than mangled, so two hub users can never share one account.
    """
    candidate = f"{prefix}{hub_name}"
    if not _VALID_SYSTEM_NAME.match(candidate):
        raise AccountError(
            f"The user name {hub_name!r} cannot be a system account name ({candidate!r} must be at most "
            "32 lowercase letters, digits, '.', '-' or '_'). Ask an administrator to rename the user."
        )
    return candidate


def ensure_account(name: str, home: str, *, create: bool, shell: str = "/bin/bash") -> pwd.struct_passwd:
    """Return the account, creating it (home 0700) when allowed and missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if not create:
            raise AccountError(
                f"There is no system account {name!r} and this hub may not create accounts "
                "(it does not run as root). Create it, or run AstraGo as root."
            ) from None
        result = subprocess.run(
            ["useradd", "--create-home", "--home-dir", home, "--shell", shell, "--user-group",
             "--comment", "AstraGo user", name],
            capture_output=True, text=True,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise AccountError(f"Could not create the system account {name!r}: {result.stderr.strip()}")
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise AccountError(f"Refusing to run a user's server as {name!r}: it is a root account.")
    if os.geteuid() == 0:
        os.makedirs(entry.pw_dir, exist_ok=True)
        os.chown(entry.pw_dir, entry.pw_uid, entry.pw_gid)
        os.chmod(entry.pw_dir, 0o700)
    return entry
