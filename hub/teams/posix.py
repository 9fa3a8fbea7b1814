"""The team spaces on this machine (blocking; run on the area's I/O thread, as root).

A team's folder is owned by root and the team's POSIX group, mode 2770: members (whose system
accounts are in the group) read and write, files made inside keep the group (setgid), others
cannot even list it. Each member's home gets `~/teams/<team>`, a symlink to the folder.
"""
from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
import struct
import subprocess

log = logging.getLogger("astrago.teams")

FOLDER_MODE = 0o2770
LINKS_DIR = "teams"


class PosixError(RuntimeError):
    pass


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise PosixError(f"{' '.join(args)} failed: {result.stderr.strip() or result.returncode}")


def ensure_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        _run(["groupadd", "--system", name])
        return grp.getgrnam(name).gr_gid


def group_members(name: str) -> set[str]:
    try:
        return set(grp.getgrnam(name).gr_mem)
    except KeyError:
        return set()


def account(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def set_members(group: str, accounts: set[str]) -> tuple[list[str], list[str]]:
    """Make the group's supplementary members exactly `accounts`; returns (added, removed)."""
    current = group_members(group)
    added, removed = sorted(accounts - current), sorted(current - accounts)
    for name in added:
        _run(["gpasswd", "-a", name, group])
    for name in removed:
        _run(["gpasswd", "-d", name, group])
    return added, removed


def ensure_root(root: str) -> None:
    """The teams root: root-owned, traversable (0711) so members reach their team's folder."""
    os.makedirs(root, exist_ok=True)
    st = os.lstat(root)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise PosixError(f"{root} must be a directory")
    if os.geteuid() == 0:
        os.chown(root, 0, 0)
    os.chmod(root, 0o711)


def default_acl_group_writable() -> bytes:
    """A POSIX default ACL (the `system.posix_acl_default` xattr, version 2): what is made inside gets
    owner rwx, group rwx, others nothing, whatever the creator's umask (a shared space stays shared)."""
    undefined = 0xFFFFFFFF
    entries = ((0x01, 7), (0x04, 7), (0x20, 0))  # USER_OBJ, GROUP_OBJ, OTHER
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, undefined) for tag, perm in entries)


def share_within_group(path: str) -> bool:
    """Set the group-writable default ACL on a team folder; False where the filesystem has no ACLs."""
    try:
        if os.getxattr(path, "system.posix_acl_default", follow_symlinks=False) == default_acl_group_writable():
            return True
    except OSError:
        pass
    try:
        os.setxattr(path, "system.posix_acl_default", default_acl_group_writable(), follow_symlinks=False)
        return True
    except OSError as exc:
        log.warning("no default ACL on %s (%s): members' umask decides whether teammates can edit files", path, exc)
        return False


def ensure_folder(path: str, gid: int, mode: int = FOLDER_MODE) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise PosixError(f"{path} must be a directory")
    if (st.st_uid, st.st_gid) != (0, gid):
        os.chown(path, 0, gid, follow_symlinks=False)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)


def _links_dir_fd(entry: pwd.struct_passwd, create: bool) -> int | None:
    """An fd of `~/teams` (made, owned by the user, when `create`); None when it is not a plain
    directory of the user's (a symlink there is never followed: root writes into it)."""
    home = entry.pw_dir
    try:
        home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            st = os.stat(LINKS_DIR, dir_fd=home_fd, follow_symlinks=False)
        except FileNotFoundError:
            if not create:
                return None
            os.mkdir(LINKS_DIR, 0o755, dir_fd=home_fd)
            os.chown(LINKS_DIR, entry.pw_uid, entry.pw_gid, dir_fd=home_fd, follow_symlinks=False)
            st = os.stat(LINKS_DIR, dir_fd=home_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != entry.pw_uid:
            log.warning("%s/%s is not a directory of %s: team links left alone", home, LINKS_DIR, entry.pw_name)
            return None
        return os.open(LINKS_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=home_fd)
    finally:
        os.close(home_fd)


def link_team(entry: pwd.struct_passwd, team: str, target: str) -> bool:
    """`~/teams/<team>` -> the team's folder. True when it had to be made."""
    fd = _links_dir_fd(entry, create=True)
    if fd is None:
        return False
    try:
        try:
            if os.readlink(team, dir_fd=fd) == target:
                return False
            os.unlink(team, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError:  # something of the user's own by that name: leave it
            log.warning("~%s/%s/%s is not a link: not replaced", entry.pw_name, LINKS_DIR, team)
            return False
        os.symlink(target, team, dir_fd=fd)
        os.chown(team, entry.pw_uid, entry.pw_gid, dir_fd=fd, follow_symlinks=False)
        return True
    finally:
        os.close(fd)


def unlink_team(entry: pwd.struct_passwd, team: str, target: str) -> bool:
    fd = _links_dir_fd(entry, create=False)
    if fd is None:
        return False
    try:
        try:
            if os.readlink(team, dir_fd=fd) != target:
                return False
        except OSError:
            return False
        os.unlink(team, dir_fd=fd)
        return True
    finally:
        os.close(fd)


def tree_bytes(path: str) -> tuple[int, int]:
    """(bytes, files) below `path`, symlinks not followed."""
    total = files = 0
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                files += 1
    return total, files
