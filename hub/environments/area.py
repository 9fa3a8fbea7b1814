"""The environments area: an admin-managed catalogue of environments (frameworks) servers and jobs run in.

Embedded mode: a Python environment built in the background (plan.py, builder.py), a venv
layered on the shared user environment (layering.py). Cluster mode: a container image.
It provides `EnvironmentCatalog` (service/interfaces/environments.py) to the jobs area; the
spawners learn the same over HTTP (api/users/{name}/environments).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from traitlets import Enum, Float, Int, List, Unicode, default

from .. import scopes
from ..service.contract import AdminSection, Area, AreaContext, Route
from ..service.interfaces.environments import BASE, EnvironmentCatalog, EnvironmentRecord
from . import api, builder, names, plan, schemas
from .catalog import BUILDING, Catalog
from .page import EnvironmentsPage

#: what the build's commands must not inherit from the service's own environment
_CHILD_ENV_DROPPED = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV", "PIP_USER", "PIP_PREFIX",
                      "PIP_TARGET")


class EnvironmentsArea(Area):
    name = "environments"
    provides = (EnvironmentCatalog,)

    root = Unicode(config=True, help="Where Python environments are built, one folder per environment. Users' "
                   "accounts must be able to traverse every parent of it. $ASTRAGO_ENVIRONMENTS_ROOT sets it. "
                   "Default: <data dir>/environments.")

    @default("root")
    def _default_root(self):
        return str(Path(self.parent.data_dir if self.parent is not None else "astrago-data") / "environments")

    base_prefix = Unicode(config=True, help="The shared user environment (JupyterLab, ipykernel, AstraGo's "
                          "extensions) new environments are layered on, and the `base` environment itself. Default: "
                          "c.JobsConfig.user_env_prefix ($ASTRAGO_USER_ENV; `astrago up` sets it), else the "
                          "service's own environment.")

    @default("base_prefix")
    def _default_base_prefix(self):
        jobs = self.config.get("JobsConfig", {})
        return str(jobs["user_env_prefix"]) if "user_env_prefix" in jobs else sys.prefix

    wheel_dirs = List(Unicode(), ["/opt/astrago/wheels", "/opt/wheels"], config=True,
                      help="Folders of wheels on this machine's disk (e.g. PyTorch's), given to pip as --find-links; "
                      "an unpinned requirement a wheel there satisfies is pinned to it, so pip takes the file on "
                      "disk. Missing folders are skipped.")
    max_concurrent_builds = Int(1, config=True, help="Builds that run at once; more wait in a queue.")
    max_environments = Int(50, config=True, help="How many environments the catalogue holds (base not counted).")
    build_timeout = Float(1800.0, config=True, help="Seconds a build may take before it fails.")
    image_pull_policy = Enum(list(names.PULL_POLICIES), default_value="IfNotPresent", config=True,
                             help="Cluster mode: the pull policy of an environment's image unless it names one.")
    image_registry_prefix = Unicode("", config=True, help="Cluster mode: an offline registry put before every "
                                    "environment's image, e.g. 'registry.local:5000/' (jupyter/x:1 -> "
                                    "registry.local:5000/jupyter/x:1). Empty: images are pulled as registered.")

    def setup(self, context: AreaContext) -> None:
        self.context = context
        self.mode = context.mode
        self.log_dir = Path(context.data_dir) / "environment-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(context.db, self.base_record(), self.pulled_image)
        self.catalog.load()
        self.builder = builder.Builder(self.catalog, max_concurrent=self.max_concurrent_builds,
                                       timeout=self.build_timeout, log_path=self.log_path,
                                       environ=self.child_environment(), log=self.log)
        context.provide(EnvironmentCatalog, self.catalog)

    def base_record(self) -> EnvironmentRecord:
        if self.mode == "cluster":
            return EnvironmentRecord(BASE, "image", "ready", description="The deployment's own image (z2jh "
                                     "singleuser.image): JupyterLab, ipykernel and AstraGo's extensions.")
        return EnvironmentRecord(BASE, "python", "ready", prefix=self.base_prefix,
                                 description="The shared user environment: JupyterLab, ipykernel and AstraGo's "
                                 "extensions.")

    def pulled_image(self, image: str) -> str:
        return names.pulled_image(image, self.image_registry_prefix)

    @staticmethod
    def child_environment() -> dict[str, str]:
        # the service's environment passed on to pip (proxy, certificates), not read as settings
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROPPED}
        env.update(PYTHONNOUSERSITE="1", PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUNBUFFERED="1")
        return env

    # -- what the API does --------------------------------------------------

    def spec_of(self, body: dict) -> dict:
        """The kind-specific fields of a creation, checked against the mode (names.Invalid)."""
        if self.mode == "cluster":
            if body.get("packages"):
                raise names.Invalid("In cluster mode an environment is a container image: give image "
                                    "(astrago env create NAME --image repo/x:tag), not packages.")
            if not body.get("image"):
                raise names.Invalid("In cluster mode an environment is a container image: give image.")
            policy = names.check_pull_policy(body.get("pull_policy") or self.image_pull_policy)
            return {"kind": "image", "image": names.check_image(body["image"]), "pull_policy": policy,
                    "packages": []}
        if body.get("image") or body.get("pull_policy"):
            raise names.Invalid("This AstraGo runs on one machine (embedded mode): an environment is a Python "
                                "environment built here; give packages, not an image.")
        packages = names.parse_packages(body.get("packages"))
        for wheel in (p for p in packages if p.startswith("/")):
            if not os.path.isfile(wheel):
                raise names.Invalid(f"{wheel} does not exist on the service's machine.")
        return {"kind": "python", "packages": packages}

    def plan_for(self, name: str, packages: list[str]) -> list[plan.Step]:
        from packaging.tags import sys_tags

        folders = [d for d in self.wheel_dirs if os.path.isdir(d)]
        wheels = [os.path.join(d, f) for d in folders for f in sorted(os.listdir(d)) if f.endswith(".whl")]
        return plan.build_plan(prefix=self.prefix_of(name), base_prefix=self.base_prefix,
                               service_python=sys.executable, requirements=packages, wheel_dirs=folders,
                               local_wheels=plan.local_wheel_versions(wheels, sys_tags()))

    def prefix_of(self, name: str) -> str:
        return os.path.join(self.root, names.check_name(name))

    def log_path(self, name: str) -> str:
        return str(self.log_dir / f"{names.check_name(name)}.log")

    async def register(self, name: str, *, kind: str, packages: list[str], teams: list[str], description: str,
                       created_by: str, image: str | None = None, pull_policy: str | None = None) -> None:
        if kind == "image":
            await self.catalog.add(name=name, kind=kind, status="ready", teams=teams, description=description,
                                   image=image, pull_policy=pull_policy, created_by=created_by, step_title="Ready")
            return
        await self.builder.io_call(_truncate, self.log_path(name))
        await self.catalog.add(name=name, kind=kind, status="queued", packages=packages, teams=teams,
                               description=description, prefix=self.prefix_of(name), created_by=created_by,
                               step_title="Waiting for a build slot")
        self.start_build(name)

    def start_build(self, name: str) -> None:
        row = self.catalog.rows[name]
        steps = self.plan_for(name, list(row["packages"]))
        os.makedirs(self.root, mode=0o755, exist_ok=True)
        self.builder.start(name, row["prefix"], steps)

    async def delete(self, name: str) -> None:
        await self.builder.cancel(name)
        row = self.catalog.rows.get(name) or {}
        if row.get("prefix"):
            await self.builder.io_call(builder._remove, row["prefix"])
        await self.builder.io_call(_unlink, self.log_path(name))
        await self.catalog.remove(name)

    async def log_tail(self, name: str, limit: int = 16384) -> str:
        return await self.builder.io_call(builder.tail, self.log_path(name), limit)

    async def read_log(self, name: str, offset: int, limit: int):
        return await self.builder.io_call(builder.read_log, self.log_path(name), offset, limit)

    # -- the contract ---------------------------------------------------------

    def routes(self) -> list[Route]:
        env = {"name": api.ENVIRONMENT}
        return [
            Route("api/environments", api.EnvironmentListHandler),
            Route("api/environments/{name}", api.EnvironmentHandler, patterns=env),
            Route("api/environments/{name}/log", api.EnvironmentLogHandler, patterns=env),
            Route("api/users/{name}/environments", api.UserEnvironmentsHandler),
            Route("api/users/{name}/environments/{environment}", api.UserEnvironmentHandler,
                  patterns={"environment": api.ENVIRONMENT}),
            Route("admin/environments", EnvironmentsPage),
        ]

    def schemas(self) -> dict[str, dict]:
        return schemas.SCHEMAS

    def admin_sections(self) -> list[AdminSection]:
        return [AdminSection("environments", "Environments", scopes.ENVIRONMENTS_ADMIN, order=85)]

    def background(self, context: AreaContext) -> list:
        return [self.resume_builds()]

    async def resume_builds(self) -> None:
        """Builds the service stopped in the middle of start again from the beginning."""
        for name in self.catalog.names():
            if self.catalog.rows[name]["status"] in BUILDING:
                self.log.info("environment %s: its build was interrupted; building it again", name)
                await self.catalog.change(name, status="queued", step=0, step_title="Waiting for a build slot")
                self.start_build(name)

    async def stop(self) -> None:
        await self.builder.stop()


def _truncate(path: str) -> None:
    open(path, "wb").close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
