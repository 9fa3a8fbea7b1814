"""Names and paths of the teams area (pure): what a team, a dataset and a reference may be called,
and where each lives on disk."""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

#: a team is a hub group whose name is also a valid part of a POSIX group name
TEAM_NAME = re.compile(r"^[a-z][a-z0-9-]{0,17}$")
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
POSIX_GROUP_PREFIX = "astrago-team-"
ENV_PREFIX = "ASTRAGO_DATASET_"
DATASETS_DIR = ".datasets"


class NameError_(ValueError):
    """A name that cannot be used; the message says why, for people."""


def check_team_name(name: str) -> str:
    if not isinstance(name, str) or not TEAM_NAME.match(name):
        raise NameError_(f"{name!r} cannot be a team: a team's name must be 1 to 18 lowercase letters, digits or "
                         "'-', starting with a letter (it becomes the POSIX group astrago-team-<name>).")
    return name


def check_dataset_name(name: str) -> str:
    if not isinstance(name, str) or not DATASET_NAME.match(name):
        raise NameError_(f"{name!r} cannot be a dataset name: use 1 to 63 lowercase letters, digits, '.', '_' or "
                         "'-', starting with a letter or digit.")
    return name


def posix_group(team: str) -> str:
    """The POSIX group of a team's members' system accounts: `ml` -> `astrago-team-ml`."""
    return POSIX_GROUP_PREFIX + check_team_name(team)


def team_folder(root: str, team: str) -> str:
    return posixpath.join(root, check_team_name(team))


def dataset_scope(team: str | None, user: str) -> str:
    """The folder under `<root>/.datasets` holding a team's (`team-ml`) or a user's (`user-ada`) datasets."""
    return f"team-{check_team_name(team)}" if team else f"user-{user}"


def dataset_path(root: str, team: str | None, user: str, name: str, version: int) -> str:
    """Where version `version` of dataset `name` lives: `<root>/.datasets/<scope>/<name>/<version>`."""
    return posixpath.join(root, DATASETS_DIR, dataset_scope(team, user), check_dataset_name(name), str(int(version)))


def env_name(name: str) -> str:
    """The variable a job reads a dataset's path from: `imagenet-mini` -> `ASTRAGO_DATASET_IMAGENET_MINI`."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", check_dataset_name(name).upper())


@dataclass(frozen=True)
class DatasetRef:
    """`name:version` or `team/name:version` as a job names a dataset."""

    name: str
    version: int
    team: str | None = None

    def __str__(self) -> str:
        return f"{self.team + '/' if self.team else ''}{self.name}:{self.version}"


def parse_dataset_ref(text: str) -> DatasetRef:
    if not isinstance(text, str) or ":" not in text:
        raise NameError_(f"A dataset is named as name:version or team/name:version, not {text!r}.")
    left, _, version = text.strip().rpartition(":")
    team, _, name = left.rpartition("/")
    if not version.isdigit() or int(version) < 1:
        raise NameError_(f"The version in {text!r} must be a whole number from 1.")
    check_dataset_name(name)
    if team:
        check_team_name(team)
    return DatasetRef(name=name, version=int(version), team=team or None)


def within(path: str, base: str) -> bool:
    """True when the (already resolved) `path` is `base` or below it."""
    path, base = posixpath.normpath(path), posixpath.normpath(base)
    return path == base or path.startswith(base.rstrip("/") + "/")
