"""The manifest of a dataset version and its checksum (pure), and reading a folder into one.

The manifest is one line per regular file, sorted by path: `<sha256 hex>  <size>  <relative path>\n`;
the dataset's checksum is the sha256 of that text (UTF-8). Anyone can recompute it from the files.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str  # relative, '/'-separated
    size: int
    sha256: str


def manifest_text(entries) -> str:
    return "".join(f"{e.sha256}  {e.size}  {e.path}\n" for e in sorted(entries, key=lambda e: e.path))


def manifest_checksum(entries) -> str:
    return hashlib.sha256(manifest_text(entries).encode()).hexdigest()


def file_sha256(path: str, chunk: int = 1024 * 1024) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
