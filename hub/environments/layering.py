"""Layering a venv on the shared user environment, and opening it to every account.

    python -m astrago.hub.environments.layering layer PREFIX BASE_PREFIX
    python -m astrago.hub.environments.layering open PREFIX

`layer` makes the venv at PREFIX see BASE_PREFIX (the user environment) underneath itself:
- a .pth in its site-packages adds the base's site-packages AFTER its own (processed last, so
  the venv's own .pth paths come first too): pip in the venv sees the base packages as
  installed and adds only what is new, and a package installed in the venv shadows the base's;
- the base's Jupyter data and config (`share/jupyter`: JupyterLab's app, lab extensions,
  kernel specs; `etc/jupyter`: server extensions) as a farm of symlinks to files in real
  folders, so the server finds them under its own sys.prefix while a package installed in the
  venv replaces a link (pip unlinks before it writes) and never writes into the base;
- the base's commands (`jupyterhub-singleuser`, `jupyter`, `pip`, ...) with the venv's python in
  their first line.

`open` makes the environment readable by every account (users' servers run as their own
accounts) and prints its size as `size_bytes=<n>`.
"""
from __future__ import annotations

import glob
import os
import stat
import sys

#: the .pth adding the base; "zz" so it is processed after the venv's own .pth files
PTH_NAME = "zz-astrago-base-environment.pth"
#: files the build writes for the environment itself (AstraGo's extensions step), never linked
OWN_FILES = {os.path.join("share", "jupyter", "lab", "settings", "overrides.json")}
FARMED = (os.path.join("share", "jupyter"), os.path.join("etc", "jupyter"))


def site_packages(prefix: str) -> str:
    """The site-packages folder of the environment at `prefix` (lib/pythonX.Y/site-packages)."""
    found = sorted(glob.glob(os.path.join(prefix, "lib", "python3*", "site-packages")))
    if len(found) != 1:
        raise SystemExit(f"{prefix} is not a Python environment: lib/python3*/site-packages is missing or ambiguous "
                         f"({found}).")
    return found[0]


def pth_text(base_site: str) -> str:
    """The .pth's content: `site.addsitedir` appends the base after the venv's own paths and also
    reads the base's own .pth files (editable installs there keep working)."""
    return ("# AstraGo: layered on the shared user environment; this environment's own packages come first\n"
            f"import site; site.addsitedir({base_site!r})\n")


def link_farm(source: str, target: str, skip_relative: set[str] = frozenset(), *, root: str = "") -> int:
    """Mirror the tree `source` under `target`: folders real, files symlinks; what exists stays."""
    linked = 0
    if not os.path.isdir(source):
        return 0
    os.makedirs(target, exist_ok=True)
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        relative = os.path.join(root, entry.name)
        there = os.path.join(target, entry.name)
        if relative in skip_relative or os.path.lexists(there) and not os.path.isdir(there):
            continue
        if entry.is_dir(follow_symlinks=True):
            linked += link_farm(entry.path, there, skip_relative, root=relative)
        else:
            os.symlink(os.path.realpath(entry.path), there)
            linked += 1
    return linked


def script_for(text: bytes, base_prefix: str, prefix: str) -> bytes | None:
    """A base command rewritten for the venv (its python in the first line); None when not a
    Python script of the base."""
    first, sep, rest = text.partition(b"\n")
    base_bin = os.path.join(base_prefix, "bin", "").encode()
    if not first.startswith(b"#!" + base_bin + b"python"):
        return None
    return b"#!" + os.path.join(prefix, "bin", "python").encode() + sep + rest


def rewrite_scripts(base_prefix: str, prefix: str) -> list[str]:
    written = []
    base_bin, venv_bin = os.path.join(base_prefix, "bin"), os.path.join(prefix, "bin")
    for entry in sorted(os.scandir(base_bin), key=lambda e: e.name):
        there = os.path.join(venv_bin, entry.name)
        if os.path.lexists(there) or not entry.is_file():
            continue
        with open(entry.path, "rb") as fh:
            script = script_for(fh.read(), base_prefix, prefix)
        if script is None:
            continue
        with open(there, "wb") as fh:
            fh.write(script)
        os.chmod(there, 0o755)
        written.append(entry.name)
    return written


def layer(prefix: str, base_prefix: str) -> None:
    base_site, own_site = site_packages(base_prefix), site_packages(prefix)
    with open(os.path.join(own_site, PTH_NAME), "w") as fh:
        fh.write(pth_text(base_site))
    print(f"{os.path.join(own_site, PTH_NAME)}: adds {base_site} after {own_site}")
    for folder in FARMED:
        skip = {os.path.relpath(f, folder) for f in OWN_FILES if f.startswith(folder + os.sep)}
        count = link_farm(os.path.join(base_prefix, folder), os.path.join(prefix, folder), skip)
        print(f"{folder}: {count} files linked from the base")
    print("commands:", " ".join(rewrite_scripts(base_prefix, prefix)))


def open_to_everyone(prefix: str) -> int:
    """chmod a+rX over the environment (links untouched); returns its size in bytes (links not followed)."""
    size = 0
    for folder, dirs, files in os.walk(prefix):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
            wanted = st.st_mode | 0o444 | (0o111 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o100 else 0)
            if wanted != st.st_mode:
                os.chmod(path, stat.S_IMODE(wanted))
    os.chmod(prefix, 0o755)
    return size


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "layer":
        layer(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "open":
        print(f"size_bytes={open_to_everyone(argv[1])}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
