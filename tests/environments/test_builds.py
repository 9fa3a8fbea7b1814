"""Real builds, without the platform: venvs made by the shared user environment's python, pip from
PyPI and from a wheel made here, the service's database and the area's builder.

Checked: the catalogue's statuses and steps, the log, the .pth layering (base packages found, an
installed package shadows the base one), JupyterLab and ipykernel importing in the new
environment, a failed pip leaving `failed` with the log and nothing on disk, the bound on builds
at once (the second waits), and a build stopped in the middle leaving nothing behind.
"""
from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from astrago.hub.db.session import Database
from astrago.hub.environments import layering
from astrago.hub.environments.builder import Builder
from astrago.hub.environments.catalog import Catalog
from astrago.hub.environments.plan import build_plan
from astrago.hub.service.interfaces.environments import EnvironmentRecord, EnvironmentRefused
from env_wheels import make_wheel
from support.fixtures import require

BASE = os.environ.get("ASTRAGO_USER_ENV", "/opt/astrago/user-env")


def base_ready() -> bool:
    return all((Path(BASE) / "bin" / tool).exists() for tool in ("python", "jupyterhub-singleuser", "jupyter-lab"))


@pytest.fixture
def area_parts(tmp_path):
    require(base_ready(), f"the shared user environment {BASE} (make setup builds it)")
    db = Database(f"sqlite:///{tmp_path}/a.sqlite")
    db.migrate()
    catalog = Catalog(db, EnvironmentRecord("base", "python", "ready", prefix=BASE), lambda image: image)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PYTHONNOUSERSITE="1", PIP_NO_INPUT="1")
    logs = tmp_path / "logs"
    logs.mkdir()
    builder = Builder(catalog, max_concurrent=1, timeout=600, log_path=lambda n: str(logs / f"{n}.log"),
                      environ=env, log=logging.getLogger("test"))
    yield tmp_path, catalog, builder
    builder.io.shutdown(wait=True)
    db.close()


async def queue(catalog, builder, root: Path, name: str, requirements: list[str]):
    prefix = str(root / "envs" / name)
    await catalog.add(name=name, kind="python", status="queued", packages=requirements, prefix=prefix,
                      created_by="admin")
    builder.start(name, prefix, build_plan(prefix=prefix, base_prefix=BASE, service_python=sys.executable,
                                           requirements=requirements))
    return prefix


async def finished(catalog, name: str, timeout: float = 300) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while catalog.rows[name]["status"] in ("queued", "building"):
        assert asyncio.get_running_loop().time() < deadline, catalog.rows[name]
        await asyncio.sleep(0.2)
    return catalog.rows[name]


def run(python: str, code: str) -> str:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}).stdout.strip()


async def test_a_layered_environment_is_built_its_package_shadows_the_base_and_a_failed_one_leaves_nothing(
        area_parts):
    root, catalog, builder = area_parts
    wheel = make_wheel(root, "astrago_probe", "2.0", "from the environment")
    base_six = run(f"{BASE}/bin/python", "import six; print(six.__version__)")
    other_six = "1.16.0" if base_six != "1.16.0" else "1.15.0"

    good = await queue(catalog, builder, root, "good", [f"six=={other_six}", str(wheel)])
    bad = await queue(catalog, builder, root, "bad", ["astrago-no-such-distribution-4d1f"])
    # one build at once: the second waits its turn
    assert builder.queue_position("bad") == 1 and catalog.rows["bad"]["status"] == "queued"

    row = await finished(catalog, "good")
    log = Path(builder.log_path("good")).read_text()
    assert row["status"] == "ready", log
    assert (row["step"], row["steps"], row["error"]) == (6, 6, "") and row["size_bytes"] > 0
    assert f"Successfully installed astrago-probe-2.0 six-{other_six}" in log, log
    assert "== step 3 of 6: Installing" in log and "import jupyterlab from" in log

    python = f"{good}/bin/python"
    site = layering.site_packages(good)
    assert Path(site, layering.PTH_NAME).read_text() == layering.pth_text(layering.site_packages(BASE))
    # the environment's own six shadows the base's; the base's packages are there underneath
    assert run(python, "import six, sys; print(six.__version__, six.__file__.startswith(sys.prefix), sys.prefix)") \
        == f"{other_six} True {good}"
    assert run(f"{BASE}/bin/python", "import six; print(six.__version__)") == base_six
    assert run(python, "import jupyterlab, ipykernel, astrago_probe; print(astrago_probe.VALUE)") == \
        "from the environment"
    singleuser = Path(good, "bin", "jupyterhub-singleuser")
    assert singleuser.read_text().splitlines()[0] == f"#!{good}/bin/python"
    assert subprocess.run([str(singleuser), "--version"], capture_output=True).returncode == 0
    assert Path(good, "etc", "ipython", "ipython_kernel_config.py").read_text().count('extensions.append("astrago")') == 1
    assert os.path.islink(Path(good, "share", "jupyter", "lab", "static", "index.html"))
    mode = os.stat(Path(site, "six.py")).st_mode
    assert mode & stat.S_IROTH and os.stat(good).st_mode & stat.S_IXOTH  # every account reads it

    row = await finished(catalog, "bad")
    log = Path(builder.log_path("bad")).read_text()
    assert row["status"] == "failed" and row["step"] == 3, row
    assert row["error"].startswith("Step 3 of 6 (Installing astrago-no-such-distribution-4d1f) failed with exit "
                                   "code 1. The log ends with:"), row["error"]
    assert "No matching distribution found for astrago-no-such-distribution-4d1f" in log
    assert not os.path.exists(bad)
    with pytest.raises(EnvironmentRefused, match="failed to build"):
        catalog.usable_by("bad", "ana", [])


async def test_a_build_stopped_in_the_middle_leaves_nothing_behind(area_parts):
    root, catalog, builder = area_parts
    prefix = await queue(catalog, builder, root, "stopped", ["six"])
    while catalog.rows["stopped"]["step"] < 2:
        await asyncio.sleep(0.05)
    await builder.cancel("stopped")
    assert not os.path.exists(prefix)
    assert Path(builder.log_path("stopped")).read_text().endswith("== stopped\n")
    assert catalog.rows["stopped"]["status"] in ("queued", "building")  # the service would build it again
