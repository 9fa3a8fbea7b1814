"""What a stored file may be called: the `filename` and `dir` of an upload, checked (pure).

Names are refused, never mangled: a name that would need changing says why, so a
user never finds their file somewhere they did not ask for.
"""
from __future__ import annotations

import unicodedata

from ..service.problems import Problem

MAX_COMPONENT_BYTES = 255
MAX_DEPTH = 32
#: temporary files of placement start with this; users may not name files so
TEMP_PREFIX = ".astrago-upload-"


def check_component(name: str, what: str) -> str:
    """One path component: no separators, no `.`/`..`, no control characters, not too long."""
    if not name:
        raise Problem("invalid-request", f"The {what} is empty.")
    if name in (".", ".."):
        raise Problem("invalid-request", f"The {what} may not be '{name}' (no path traversal).")
    if "/" in name or "\\" in name:
        raise Problem("invalid-request", f"The {what} {name!r} may not contain '/' or '\\' (no path traversal).")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise Problem("invalid-request", f"The {what} {name!r} contains control characters.")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
        raise Problem("invalid-request", f"The {what} is longer than {MAX_COMPONENT_BYTES} bytes.")
    if name.startswith(TEMP_PREFIX):
        raise Problem("invalid-request", f"Names starting with {TEMP_PREFIX!r} are reserved for unfinished files.")
    return name


def check_filename(name: str | None) -> str:
    if name is None:
        raise Problem("invalid-request", "Upload-Metadata must carry 'filename' (base64): the name of the file "
                      "in your storage.")
    return check_component(name, "filename")


def split_dir(value: str | None) -> list[str]:
    """`dir` metadata -> its components, relative to the user's storage root.

    "" and "." are the root; "datasets/", "datasets/2024" are fine; absolute paths,
    "~", "..", empty components in the middle ("a//b") are refused.
    """
    if value is None:
        return []
    value = value.strip()
    if value in ("", ".", "./"):
        return []
    if value.startswith("/"):
        raise Problem("invalid-request", f"The directory {value!r} must be relative to your storage "
                      "(no leading '/').")
    if value.startswith("~"):
        raise Problem("invalid-request", f"The directory {value!r} must be relative to your storage (no '~').")
    if value.endswith("/"):
        value = value[:-1]
    parts = value.split("/")
    if len(parts) > MAX_DEPTH:
        raise Problem("invalid-request", f"The directory {value!r} is deeper than {MAX_DEPTH} levels.")
    for part in parts:
        if part == "":
            raise Problem("invalid-request", f"The directory {value!r} has an empty component ('//').")
        check_component(part, "directory component")
    return parts


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")
