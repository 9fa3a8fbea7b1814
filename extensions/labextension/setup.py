"""The prebuilt labextension as data files: share/jupyter/labextensions/@astrago/jupyterlab and the
server extension's switch in etc/jupyter/jupyter_server_config.d. Build it first (`npm run build`,
which the Makefile does); installing without it is refused rather than shipping a panel-less package."""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
BUILT = HERE / "astrago_jupyterlab" / "labextension"
DEST = "share/jupyter/labextensions/@astrago/jupyterlab"

if not (BUILT / "package.json").is_file():
    raise SystemExit(f"{BUILT} is not built: run `npm ci && npm run build` in {HERE} (or `make` at the "
                     "repository root) first.")

data_files = {}
for path in sorted(BUILT.rglob("*")):
    if path.is_file():
        rel = path.relative_to(BUILT).parent
        data_files.setdefault(str(Path(DEST) / rel) if rel.parts else DEST, []).append(str(path.relative_to(HERE)))
data_files.setdefault(DEST, []).append("install.json")
data_files["etc/jupyter/jupyter_server_config.d"] = ["jupyter-config/jupyter_server_config.d/astrago_jupyterlab.json"]

setup(data_files=sorted(data_files.items()))
