"""Making a dataset version: a read-only copy of a folder, with its manifest (blocking, as root).

The copy is made in a staging folder beside the final one and renamed into place when complete,
so a version either exists whole or not at all. Files are copied (never hardlinked: a hardlink
would share the source's inode, so editing the source would change the dataset), owned by root
and the scope's group, files 0444 and folders 0555: nobody, the creator included, can change them.
Only what the caller could read is copied; symlinks and special files are skipped (counted).
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
from dataclasses import dataclass, field

from .manifest import Entry, manifest_checksum, manifest_text

FILE_MODE = 0o444
DIR_MODE = 0o555


class SnapshotError(RuntimeError):
    """A folder that cannot become a dataset; the message is for people."""


@dataclass
class Snapshot:
    path: str
    size_bytes: int
    file_count: int
    manifest_sha256: str
    skipped: list[str] = field(default_factory=list)


def readable_by(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    """Whether an account (uid, groups) may read a file of this stat (pure)."""
    mode = st.st_mode
    if st.st_uid == uid:
        return bool(mode & stat.S_IRUSR)
    if st.st_gid in gids:
        return bool(mode & stat.S_IRGRP)
    return bool(mode & stat.S_IROTH)


def plan(source: str, uid: int, gids: set[int]) -> tuple[list[tuple[str, str]], list[str], list[str], int]:
    """What a copy of `source` takes: ([(absolute, relative) files], [relative dirs], [skipped], bytes)."""
    files, dirs, skipped, total = [], [], [], 0
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        rel_dir = os.path.relpath(dirpath, source)
        keep = []
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if stat.S_ISDIR(st.st_mode) and readable_by(st, uid, gids) and name != ".datasets":
                keep.append(name)
                dirs.append(rel)
            else:
                skipped.append(rel + "/")
        dirnames[:] = keep
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if stat.S_ISREG(st.st_mode) and readable_by(st, uid, gids):
                files.append((full, rel))
                total += st.st_size
            else:
                skipped.append(rel)
    return files, dirs, skipped, total


def make(source: str, target: str, gid: int, uid: int, gids: set[int]) -> Snapshot:
    """Copy `source` (a resolved directory the caller may read) to `target` (which must not exist)."""
    if os.path.lexists(target):
        raise SnapshotError(f"{target} exists already: a dataset version is never overwritten.")
    files, dirs, skipped, _ = plan(source, uid, gids)
    parent = os.path.dirname(target)
    staging = os.path.join(parent, f".incoming-{os.path.basename(target)}-{secrets.token_hex(4)}")
    os.mkdir(staging, 0o700)
    try:
        for rel in dirs:
            os.mkdir(os.path.join(staging, rel), 0o700)
        entries = []
        for full, rel in files:
            dest = os.path.join(staging, rel)
            h = hashlib.sha256()
            size = 0
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as src, open(dest, "xb") as out:
                while block := src.read(1024 * 1024):
                    h.update(block)
                    out.write(block)
                    size += len(block)
            os.chown(dest, 0, gid)
            os.chmod(dest, FILE_MODE)
            entries.append(Entry(path=rel.replace(os.sep, "/"), size=size, sha256=h.hexdigest()))
        for rel in sorted(dirs, key=lambda d: -d.count(os.sep)):
            os.chown(os.path.join(staging, rel), 0, gid)
            os.chmod(os.path.join(staging, rel), DIR_MODE)
        manifest = target + ".manifest"
        with open(manifest + ".tmp", "w") as fh:
            fh.write(manifest_text(entries))
        os.chown(manifest + ".tmp", 0, gid)
        os.chmod(manifest + ".tmp", FILE_MODE)
        os.chown(staging, 0, gid)
        os.chmod(staging, DIR_MODE)
        os.rename(staging, target)
        os.rename(manifest + ".tmp", manifest)
    except BaseException:
        remove(staging)
        raise
    return Snapshot(path=target, size_bytes=sum(e.size for e in entries), file_count=len(entries),
                    manifest_sha256=manifest_checksum(entries), skipped=skipped)


def remove(path: str) -> None:
    """Delete a version (its folders are 0555: made writable first, as root)."""
    if not os.path.lexists(path):
        return
    for dirpath, dirnames, _ in os.walk(path, followlinks=False):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(path, ignore_errors=True)
    for extra in (path + ".manifest",):
        try:
            os.unlink(extra)
        except FileNotFoundError:
            pass
