"""What an environment may be called and contain (pure): names, package lists, images."""
from __future__ import annotations

import posixpath
import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..service.interfaces.environments import BASE

#: a name is also a folder and a word on the spawn page: lowercase, no dots (no "..")
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
#: names that stand for something else
RESERVED = frozenset({BASE, "default", "none"})
#: what a container image reference may look like: [registry[:port]/]path[:tag][@digest]
IMAGE = re.compile(r"^[a-z0-9]([a-z0-9._:/-]{0,250}[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                   r"(@sha256:[0-9a-f]{64})?$")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
MAX_PACKAGES = 64


class Invalid(ValueError):
    """Input that cannot make an environment; the message says why, for people."""


def check_name(name) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise Invalid(f"{name!r} cannot name an environment: use 1 to 40 lowercase letters, digits, '-' or '_', "
                      "starting with a letter.")
    if name in RESERVED:
        raise Invalid(f"{name!r} is reserved: {BASE} is the shared environment every user has. Choose another name.")
    return name


def parse_packages(packages) -> list[str]:
    """The requirements to install: a list, or one string of space-separated requirements
    (`"numpy pandas>=2"`). Each is a PEP 508 requirement or an absolute path to a .whl file;
    pip options (`-r`, `--index-url`, ...) are refused, so a build only ever uses the
    index and the wheel folders the service is configured with."""
    if packages is None:
        return []
    if isinstance(packages, str):
        items = packages.split()
    elif isinstance(packages, list) and all(isinstance(p, str) for p in packages):
        items = [w for p in packages for w in p.split()]
    else:
        raise Invalid("packages must be a list of requirements, like [\"numpy\", \"pandas>=2\"].")
    if len(items) > MAX_PACKAGES:
        raise Invalid(f"At most {MAX_PACKAGES} packages per environment ({len(items)} given).")
    seen, out = set(), []
    for item in items:
        if item.startswith("-"):
            raise Invalid(f"{item!r} is a pip option; list package requirements only (the service chooses the index "
                          "and the wheel folders).")
        if item.startswith("/"):
            if not item.endswith(".whl") or posixpath.normpath(item) != item:
                raise Invalid(f"{item!r}: a path must be an absolute path to a .whl file.")
            key = item
        else:
            try:
                key = canonicalize_name(Requirement(item).name)
            except InvalidRequirement as exc:
                raise Invalid(f"{item!r} is not a package requirement ({exc}).") from None
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def check_teams(teams) -> list[str]:
    """Team names as given (a list, or "a,b"); their existence is checked by the caller."""
    if teams is None:
        return []
    if isinstance(teams, str):
        teams = [t for t in teams.split(",")]
    if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
        raise Invalid("teams must be a list of team names.")
    out = []
    for team in (t.strip() for t in teams):
        if not team:
            continue
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$", team):
            raise Invalid(f"{team!r} is not a team name.")
        if team not in out:
            out.append(team)
    return out


def check_image(image) -> str:
    if not isinstance(image, str) or not IMAGE.match(image.strip()):
        raise Invalid(f"{image!r} is not a container image reference (like registry.example/ml/torch:2.5).")
    return image.strip()


def check_pull_policy(policy) -> str:
    if policy not in PULL_POLICIES:
        raise Invalid(f"{policy!r} is not a pull policy; use one of {', '.join(PULL_POLICIES)}.")
    return policy


def pulled_image(image: str, registry_prefix: str) -> str:
    """The image a pod pulls: an offline registry's prefix put before the image's full name
    (`registry.local:5000/` + `jupyter/base:x` -> `registry.local:5000/jupyter/base:x`), once."""
    prefix = registry_prefix.strip()
    if not prefix:
        return image
    prefix = prefix.rstrip("/") + "/"
    return image if image.startswith(prefix) else prefix + image
