"""How an environment is built (pure): the steps, each one command whose output goes to the log.

A Python environment is a venv made by the shared user environment's own interpreter and
layered on it (layering.py: a .pth adds the user environment's site-packages after the venv's
own), so pip sees JupyterLab, ipykernel and AstraGo's extensions as installed and adds only
what is new; a package installed in the venv shadows the base one. Wheels on this machine's
disk (`wheel_dirs`, e.g. PyTorch's) are pip's `--find-links`, and an unpinned requirement that
a local wheel satisfies is pinned to it, so pip takes the file on disk rather than a download.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Iterable

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

#: what every environment must import (the server, the kernel, AstraGo's magics)
REQUIRED_MODULES = ("jupyterlab", "ipykernel", "jupyterhub", "astrago.extensions")

#: the check run in the new environment: the required modules import, the requested
#: distributions are installed; prints where each comes from
CHECK = """\
import importlib, importlib.metadata, sys
for module in {modules!r}:
    found = importlib.import_module(module)
    print("import", module, "from", getattr(found, "__file__", "?"))
for dist in sys.argv[1:]:
    print("installed", dist, importlib.metadata.version(dist))
print("sys.prefix", sys.prefix)
"""

LAYERING_MODULE = "astrago.hub.environments.layering"


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]


def python_of(prefix: str) -> str:
    return posixpath.join(prefix, "bin", "python")


def local_wheel_versions(wheel_files: Iterable[str], supported_tags: Iterable | None = None) -> dict[str, list]:
    """Distribution (canonical name) -> versions of the wheels found on disk that this
    interpreter can install (`supported_tags`: packaging Tags; None: any)."""
    supported = set(supported_tags) if supported_tags is not None else None
    found: dict[str, list] = {}
    for path in wheel_files:
        try:
            name, version, _build, tags = parse_wheel_filename(posixpath.basename(path))
        except InvalidWheelFilename:
            continue
        if supported is not None and not (set(tags) & supported):
            continue
        found.setdefault(canonicalize_name(name), []).append(version)
    return {name: sorted(set(versions)) for name, versions in found.items()}


def prefer_local_wheels(requirements: Iterable[str], local: dict[str, list]) -> list[str]:
    """Requirements with each one a local wheel satisfies pinned to that wheel's (highest) version:
    `torch` -> `torch==2.5.1` when torch-2.5.1-...whl is on disk. Paths and URLs stay as they are."""
    out = []
    for text in requirements:
        if text.startswith("/"):
            out.append(text)
            continue
        req = Requirement(text)
        versions = [v for v in local.get(canonicalize_name(req.name), [])
                    if req.specifier.contains(v, prereleases=True)]
        if req.url or not versions or any(s.operator in ("==", "===") for s in req.specifier):
            out.append(text)
            continue
        req.specifier = SpecifierSet(f"=={max(versions)}")
        out.append(str(req))
    return out


def distribution_names(requirements: Iterable[str]) -> list[str]:
    """The distributions the check step looks for (wheel paths by their file name)."""
    names = []
    for text in requirements:
        if text.startswith("/"):
            names.append(parse_wheel_filename(posixpath.basename(text))[0])
        else:
            names.append(canonicalize_name(Requirement(text).name))
    return names


def build_plan(*, prefix: str, base_prefix: str, service_python: str, requirements: list[str],
               wheel_dirs: Iterable[str] = (), local_wheels: dict[str, list] | None = None) -> list[Step]:
    """The steps that make the environment at `prefix` on the user environment `base_prefix`."""
    python = python_of(prefix)
    wanted = prefer_local_wheels(requirements, local_wheels or {})
    steps = [
        Step("Creating the virtual environment", (python_of(base_prefix), "-m", "venv", "--without-pip", prefix)),
        Step("Layering it on the shared user environment",
             (service_python, "-m", LAYERING_MODULE, "layer", prefix, base_prefix)),
    ]
    if wanted:
        find_links = [arg for folder in wheel_dirs for arg in ("--find-links", folder)]
        steps.append(Step(f"Installing {' '.join(requirements)}",
                          (python, "-m", "pip", "install", "--no-input", "--progress-bar", "off",
                           "--disable-pip-version-check", "--root-user-action", "ignore", *find_links, *wanted)))
    steps += [
        Step("Adding AstraGo's extensions (magics, JupyterLab settings)",
             (python, "-m", "astrago.extensions.ipython_config", prefix)),
        Step("Checking that JupyterLab, ipykernel and the packages import",
             (python, "-c", CHECK.format(modules=REQUIRED_MODULES), *distribution_names(requirements))),
        Step("Opening it to every account", (service_python, "-m", LAYERING_MODULE, "open", prefix)),
    ]
    return steps
