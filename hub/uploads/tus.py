"""The tus 1.0.0 header grammar: parsing and formatting, no I/O (tested by exact comparison)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from email.utils import formatdate
from urllib.parse import urlparse

from ..service.problems import Problem

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

#: what OPTIONS advertises; exactly what the handlers implement
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
)

_DIGITS = re.compile(r"^[0-9]{1,19}$")
_META_KEY = re.compile(r"^[!-+\--~]+$")  # printable ASCII without space and comma


class _CRC32:
    """hashlib-like crc32; the digest is the 4-byte big-endian value."""

    name = "crc32"

    def __init__(self):
        self._value = 0

    def update(self, data) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


CHECKSUM_ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
    "crc32": _CRC32,
}


def parse_size(value: str | None, header: str) -> int | None:
    """A non-negative integer header (Upload-Length, Upload-Offset), or None when absent."""
    if value is None:
        return None
    value = value.strip()
    if not _DIGITS.match(value):
        raise Problem("invalid-request", f"{header} must be a non-negative whole number, not {value!r}.")
    return int(value)


def parse_metadata(value: str | None) -> dict[str, str | None]:
    """`Upload-Metadata: key base64,key2 base64,flag` -> {key: text or None}."""
    result: dict[str, str | None] = {}
    if not value or not value.strip():
        return result
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        parts = [p for p in parts if p]
        if not parts or len(parts) > 2:
            raise Problem("invalid-request", f"Upload-Metadata has a malformed pair {pair.strip()!r}.")
        key = parts[0]
        if not _META_KEY.match(key):
            raise Problem("invalid-request", f"Upload-Metadata key {key!r} is not printable ASCII.")
        if key in result:
            raise Problem("invalid-request", f"Upload-Metadata names {key!r} twice.")
        if len(parts) == 1:
            result[key] = None
            continue
        try:
            raw = base64.b64decode(parts[1], validate=True)
            result[key] = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise Problem("invalid-request", f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text.") from None
    return result


def format_metadata(meta: dict[str, str | None]) -> str:
    out = []
    for key, val in meta.items():
        out.append(key if val is None else f"{key} {base64.b64encode(val.encode()).decode()}")
    return ",".join(out)


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """`Upload-Checksum: <algorithm> <base64 digest>` -> (algorithm, digest)."""
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2 or not parts[0]:
        raise Problem("invalid-request", "Upload-Checksum must be '<algorithm> <base64 digest>'.")
    algo = parts[0].lower()
    if algo not in CHECKSUM_ALGORITHMS:
        raise Problem("invalid-request", f"Checksum algorithm {parts[0]!r} is not supported; use one of "
                      f"{', '.join(CHECKSUM_ALGORITHMS)}.")
    try:
        digest = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise Problem("invalid-request", "The Upload-Checksum digest is not base64.") from None
    return algo, digest


def new_hasher(algo: str):
    return CHECKSUM_ALGORITHMS[algo]()


def parse_concat(value: str | None) -> tuple[str, list[str]] | None:
    """`Upload-Concat: partial` -> ("partial", []); `final;/a /b` -> ("final", ["/a", "/b"])."""
    if value is None:
        return None
    value = value.strip()
    if value == "partial":
        return "partial", []
    if value.startswith("final;"):
        urls = [u for u in value[len("final;"):].split(" ") if u]
        if not urls:
            raise Problem("invalid-request", "Upload-Concat: final needs at least one partial upload URL.")
        return "final", urls
    raise Problem("invalid-request", "Upload-Concat must be 'partial' or 'final;<url> <url> ...'.")


def upload_id_from_url(url: str, base_path: str) -> str | None:
    """The upload id named by a URL (absolute or path) under `base_path`, or None."""
    path = urlparse(url).path
    if not path.startswith(base_path):
        return None
    rest = path[len(base_path):].strip("/")
    return rest if re.fullmatch(r"[0-9a-f]{32}", rest) else None


def http_date(ts: float) -> str:
    """RFC 9110 IMF-fixdate, as Upload-Expires wants."""
    return formatdate(ts, usegmt=True)


def format_checksum(algo: str, data: bytes) -> str:
    h = new_hasher(algo)
    h.update(data)
    return f"{algo} {base64.b64encode(h.digest()).decode()}"
