"""Install the IPython config that loads AstraGo's magics in every kernel of an environment.

    python -m astrago.extensions.ipython_config [PREFIX]

writes PREFIX/etc/ipython/ipython_kernel_config.py (PREFIX: this interpreter's sys.prefix),
which IPython reads for every kernel started from that environment. An existing file keeps
its content; AstraGo's block is added once.

It also writes PREFIX/share/jupyter/lab/settings/overrides.json (JupyterLab's defaults for that
environment) with the news prompt turned off: a new server does not ask to fetch Jupyter news.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

MARKER = "# astrago: load the AstraGo magics"
BLOCK = f"""{MARKER} (%job, %%job, %jobs) in every kernel
c.InteractiveShellApp.extensions.append("astrago")
"""


def install(prefix: str) -> Path:
    path = Path(prefix) / "etc" / "ipython" / "ipython_kernel_config.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "c = get_config()  # noqa: F821\n"
    if MARKER not in text:
        path.write_text(text.rstrip("\n") + "\n\n" + BLOCK)
    path.chmod(0o644)
    return path


#: JupyterLab settings AstraGo sets for every user (plugin id -> settings)
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def install_lab_settings(prefix: str) -> Path:
    """Merge LAB_OVERRIDES into the environment's overrides.json (other settings there stay)."""
    path = Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        current = {}
    for plugin, values in LAB_OVERRIDES.items():
        current.setdefault(plugin, {}).update(values)
    path.write_text(json.dumps(current, indent=2) + "\n")
    path.chmod(0o644)
    for folder in (path.parent, path.parent.parent):
        folder.chmod(0o755)
    return path


if __name__ == "__main__":
    where = sys.argv[1] if len(sys.argv) > 1 else sys.prefix
    print(install(where))
    print(install_lab_settings(where))
