"""The user's own storage: where a finished upload lands, safely and atomically.

Every path component below the storage root is opened relative to its parent's file
descriptor with O_NOFOLLOW, so a symlink a user planted anywhere on the way is
refused, never followed. The file is written under a temporary name in the
destination directory, made durable, owned by the user's account, then put in
place: `link` (fails if the name exists: no overwrite unless asked) or `rename`
(overwrite asked: replaces the name itself, never what a link points to).
"""
from __future__ import annotations

import errno
import stat as _stat
import os
import pwd
from dataclasses import dataclass

from ...spawners.local.accounts import AccountError, ensure_account, system_username
from ..service.problems import Problem
from .names import TEMP_PREFIX, check_filename, split_dir

FILE_MODE = 0o644
DIR_MODE = 0o755
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Account:
    system_user: str
    home: str
    uid: int | None
    gid: int | None


class UserStorage:
    def __init__(self, config):
        self.config = config

    # -- who and where ----------------------------------------------------

    def _names(self, user: str) -> tuple[str, str]:
        try:
            system_user = system_username(user, self.config.system_user_prefix)
        except AccountError as exc:
            raise Problem("invalid-request", str(exc)) from None
        root = self.config.storage_template.format(system_user=system_user, username=user)
        return system_user, root

    def root_path(self, user: str) -> str:
        return self._names(user)[1]

    def account(self, user: str, *, create: bool) -> Account:
        """The user's account; created (with its home, as the local spawner does) when allowed."""
        system_user, root = self._names(user)
        may_create = {"yes": True, "no": False}.get(self.config.create_accounts, os.geteuid() == 0)
        if create:
            try:
                entry = ensure_account(system_user, root, create=may_create)
            except AccountError as exc:
                raise Problem("internal-error", f"Your storage cannot be prepared: {exc}") from None
            if os.geteuid() == 0 and not os.path.isdir(root):
                os.makedirs(root, mode=0o700, exist_ok=True)
                os.chown(root, entry.pw_uid, entry.pw_gid)
            return Account(system_user, root, entry.pw_uid, entry.pw_gid)
        try:
            entry = pwd.getpwnam(system_user)
            return Account(system_user, root, entry.pw_uid, entry.pw_gid)
        except KeyError:
            return Account(system_user, root, None, None)

    # -- walking safely ---------------------------------------------------

    def _open_root(self, root: str) -> int | None:
        try:
            return os.open(root, _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise Problem("conflict", "Your storage root is not a directory (or is a link); "
                              "ask an administrator.") from None
            raise

    def _walk(self, root_fd: int, parts: list[str], *, create: bool, account: Account | None) -> int | None:
        """Open `parts` below `root_fd` without following links; None when a part is missing (create=False)."""
        fd = os.dup(root_fd)
        walked = []
        try:
            for part in parts:
                walked.append(part)
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    try:
                        os.mkdir(part, DIR_MODE, dir_fd=fd)
                    except FileExistsError:
                        pass
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    if account is not None and account.uid is not None and os.geteuid() == 0:
                        os.fchown(nxt, account.uid, account.gid)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                        raise Problem("conflict", f"'{'/'.join(walked)}' in your storage is a link or not a "
                                      "directory; AstraGo does not follow links. Choose another dir.") from None
                    raise
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            try:
                os.close(fd)
            except OSError:
                pass
            raise

    # -- before an upload starts --------------------------------------------

    def check_destination(self, user: str, dir_value: str | None, filename: str | None, overwrite: bool) -> str:
        """Refuse early what placement would refuse: bad names, links on the way, a taken name."""
        parts = split_dir(dir_value)
        name = check_filename(filename)
        rel = "/".join(parts + [name])
        root_fd = self._open_root(self.root_path(user))
        if root_fd is None:
            return rel
        try:
            dir_fd = self._walk(root_fd, parts, create=False, account=None)
        finally:
            os.close(root_fd)
        if dir_fd is None:
            return rel
        try:
            self._check_target(dir_fd, name, rel, overwrite)
        finally:
            os.close(dir_fd)
        return rel

    @staticmethod
    def _check_target(dir_fd: int, name: str, rel: str, overwrite: bool) -> int:
        """Size of what the name holds now (0 if nothing); refuses a taken name unless overwrite."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return 0

        if _stat.S_ISDIR(st.st_mode):
            raise Problem("conflict", f"'{rel}' is a directory in your storage; choose another filename.")
        if not overwrite:
            raise Problem("conflict", f"'{rel}' already exists in your storage. Choose another name, or ask to "
                          "overwrite it (metadata overwrite=true, `astrago upload --overwrite`).")
        return st.st_size if _stat.S_ISREG(st.st_mode) else 0

    def existing_size(self, user: str, dir_value: str | None, filename: str) -> int:
        parts = split_dir(dir_value)
        root_fd = self._open_root(self.root_path(user))
        if root_fd is None:
            return 0
        try:
            dir_fd = self._walk(root_fd, parts, create=False, account=None)
        finally:
            os.close(root_fd)
        if dir_fd is None:
            return 0
        try:
            st = os.stat(filename, dir_fd=dir_fd, follow_symlinks=False)
            return st.st_size
        except FileNotFoundError:
            return 0
        finally:
            os.close(dir_fd)

    # -- when it is complete --------------------------------------------

    def place(self, user: str, upload_id: str, src_path: str, dir_value: str | None, filename: str,
              overwrite: bool) -> str:
        """Move the complete data file into the user's storage; returns its path relative to the root."""
        parts = split_dir(dir_value)
        name = check_filename(filename)
        rel = "/".join(parts + [name])
        account = self.account(user, create=True)
        root_fd = self._open_root(account.home)
        if root_fd is None:
            raise Problem("internal-error", f"Your storage {account.home} does not exist.")
        try:
            dir_fd = self._walk(root_fd, parts, create=True, account=account)
        finally:
            os.close(root_fd)
        try:
            self._check_target(dir_fd, name, rel, overwrite)
            tmp = f"{TEMP_PREFIX}{upload_id}"
            try:
                os.unlink(tmp, dir_fd=dir_fd)  # left by an earlier attempt that crashed
            except FileNotFoundError:
                pass
            moved = self._stage(src_path, dir_fd, tmp, account)
            try:
                self._put_in_place(dir_fd, tmp, name, rel, overwrite)
            except BaseException:
                if moved:  # give the bytes back to the upload so a retry can place them
                    os.rename(tmp, src_path, src_dir_fd=dir_fd)
                else:
                    os.unlink(tmp, dir_fd=dir_fd)
                raise
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return rel

    @staticmethod
    def _stage(src_path: str, dir_fd: int, tmp: str, account: Account) -> bool:
        """Put the bytes under `tmp` in the destination; True when moved (same filesystem), False when copied."""
        chown = account.uid is not None and os.geteuid() == 0
        if os.stat(src_path).st_dev == os.fstat(dir_fd).st_dev:
            if chown:
                os.chown(src_path, account.uid, account.gid)
            os.chmod(src_path, FILE_MODE)
            os.rename(src_path, tmp, dst_dir_fd=dir_fd)
            return True
        src = os.open(src_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE,
                          dir_fd=dir_fd)
            try:
                copy_fd(src, out)
                if chown:
                    os.fchown(out, account.uid, account.gid)
                os.fchmod(out, FILE_MODE)
                os.fsync(out)
            except BaseException:
                os.close(out)
                os.unlink(tmp, dir_fd=dir_fd)
                raise
            os.close(out)
        finally:
            os.close(src)
        return False

    @staticmethod
    def _put_in_place(dir_fd: int, tmp: str, name: str, rel: str, overwrite: bool) -> None:
        if overwrite:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return
        try:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            raise Problem("conflict", f"'{rel}' appeared in your storage while the upload ran; it was not "
                          "overwritten. Delete or rename it and resume the upload to finish.") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # a filesystem without hard links: check, then rename (a small race, logged as such)
            try:
                os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                raise Problem("conflict", f"'{rel}' already exists in your storage.")
            except FileNotFoundError:
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                return
        os.unlink(tmp, dir_fd=dir_fd)

    # -- usage ------------------------------------------------------------

    def usage_bytes(self, user: str) -> int:
        """Apparent size of every regular file under the user's storage root (links not followed)."""
        root = self.root_path(user)
        total = 0
        stack = [root]
        while stack:
            path = stack.pop()
            try:
                with os.scandir(path) as it:
                    for entry in it:
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                stack.append(entry.path)
                            elif entry.is_file(follow_symlinks=False):
                                total += entry.stat(follow_symlinks=False).st_size
                        except OSError:
                            continue
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue
        return total


def copy_fd(src: int, out: int, out_offset: int = 0) -> int:
    """Copy all of `src` into `out` at `out_offset`, in the kernel where possible; returns bytes copied."""
    copied = 0
    while True:
        try:
            n = os.copy_file_range(src, out, 1 << 30, copied, out_offset + copied)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
                raise
            break
        if n == 0:
            return copied
        copied += n
    # fallback: plain reads and writes in 4 MiB blocks
    while True:
        block = os.pread(src, 4 << 20, copied)
        if not block:
            return copied
        view = memoryview(block)
        pos = out_offset + copied
        while view:
            w = os.pwrite(out, view, pos)
            view = view[w:]
            pos += w
        copied += len(block)
