"""Package discovery for the fixed top-level layout (see pyproject.toml).

setuptools cannot `find` packages under a package-dir mapping from pyproject.toml
alone, so the subpackages of hub/, spawners/ and extensions/ are listed here.
"""
from pathlib import Path

from setuptools import setup

ROOTS = {"astrago.hub": "hub", "astrago.spawners": "spawners", "astrago.extensions": "extensions"}


def discover():
    packages = ["astrago"]
    for name, folder in ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder)
            if rel.parts and rel.parts[0].startswith("_"):
                continue  # extensions/_root is the `astrago` package itself
            if folder == "extensions" and rel.parts and rel.parts[0] == "labextension":
                continue  # the JupyterLab extension is a distribution of its own (astrago-jupyterlab)
            packages.append(".".join((name, *rel.parts)) if rel.parts else name)
    return packages


setup(
    packages=discover(),
    package_data={
        "astrago.hub": ["templates/**/*", "static/**/*", "uploads/templates/*", "uploads/web/*", "fleet/templates/*", "realm/*.mjs", "realm/views/*", "db/migrations/script.py.mako", "db/alembic.ini", "db/migrations/*.py", "db/migrations/versions/*.py"],
    },
)
