"""Install the IPython config that loads AstraGo's magics in every kernel of an environment.

    python -m astrago.extensions.ipython_config [PREFIX]

writes PREFIX/etc/ipython/ipython_kernel_config.py (PREFIX: this interpreter's sys.prefix),
which IPython reads for every kernel started from that environment. An existing file keeps
its content; AstraGo's block is added once.
"""
from __future__ import annotations

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


if __name__ == "__main__":
    print(install(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
