"""REST API of the environments area.

    GET    api/environments                       what the caller may use (environment admins: every one)
    POST   api/environments                       {name, packages | image, teams?, description?} (admins)
    GET    api/environments/<name>                one environment, with the end of its build log for admins
    GET    api/environments/<name>/log            its build log from ?offset= (admins)
    DELETE api/environments/<name>                409 while a server runs in it (admins)
    GET    api/users/<user>/environments          what the user's teams allow (the spawn page)
    GET    api/users/<user>/environments/<env>    may the user run in it now? (the spawner, before a start)

Admins: custom:astrago:environments:admin (in custom:astrago:admin). Refusals are problem+json
and audited; creations and deletions are audited.
"""
from __future__ import annotations

from urllib.parse import quote

from .. import scopes
from ..service.base import APIHandler
from ..service.declare import needs_scope, operation
from ..service.interfaces.environments import BASE, EnvironmentRefused
from ..service.problems import Problem
from . import names
from .usage import servers_using

ENVIRONMENT = r"[^/]+"
LOG_LIMIT = 256 * 1024
CREATE_FIELDS = {"name", "packages", "teams", "description", "image", "pull_policy"}


class EnvironmentsHandler(APIHandler):
    @property
    def catalog(self):
        return self.area.catalog

    @property
    def is_env_admin(self) -> bool:
        return self.has_scope(scopes.ENVIRONMENTS_ADMIN)

    async def refuse(self, kind: str, detail: str, action: str, target: str = "", **extra):
        await self.audit(action, "denied", target=target, reason=detail)
        raise Problem(kind, detail, extra=extra)

    async def groups_of(self, user: str, action: str) -> list[str]:
        """The user's hub groups (teams are hub groups), from the hub itself."""
        model = await self.area.context.hub_user(user)
        if model is None:
            await self.refuse("not-found", f"There is no user {user}.", action, user)
        return sorted(model.get("groups") or [])

    def describe(self, name: str) -> dict:
        return self.catalog.describe(name, self.area.builder.queue_position(name))

    async def visible(self, name: str, action: str) -> None:
        """404 unless the caller may see `name`: environment admins every one, others what they may use."""
        known = name == BASE or name in self.catalog.rows
        if known and not self.is_env_admin and name != BASE:
            record = self.catalog.environment(name)
            known = record.ready and record.allows(await self.groups_of(self.caller_name, action))
        if not known:
            await self.refuse("not-found", f"There is no environment {name!r} you may use.", action, name)


class EnvironmentListHandler(EnvironmentsHandler):
    @operation("listEnvironments", "The environments the caller may use (environment admins: every one, in any "
               "status)", response="EnvironmentList")
    @needs_scope(scopes.READ, action="environments.list")
    async def get(self):
        await self.require(scopes.READ, user=self.caller_name, action="environments.list")
        if self.is_env_admin:
            shown = [BASE] + self.catalog.names()
        else:
            groups = await self.groups_of(self.caller_name, "environments.list")
            shown = [r.name for r in self.catalog.allowed_for(self.caller_name, groups)]
        self.write_json({"environments": [self.describe(n) for n in shown], "default": BASE})

    @operation("createEnvironment", "Register an environment: embedded mode builds a Python environment with "
               "`packages` in the background (202; follow GET api/environments/{name}); cluster mode registers "
               "a container `image` (201)", ok=202, body="EnvironmentCreate", response="Environment",
               errors=(400, 401, 403, 409, 503), headers=[("Location", "the new environment")],
               other={201: {"description": "An image, ready at once", "schema": "Environment"}})
    @needs_scope(scopes.ENVIRONMENTS_ADMIN, action="environments.create")
    async def post(self):
        action = "environments.create"
        await self.require(scopes.ENVIRONMENTS_ADMIN, action=action)
        body = self.json_body()
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            await self.refuse("invalid-request", f"Unknown field(s) {', '.join(unknown)}; an environment takes "
                              f"{', '.join(sorted(CREATE_FIELDS))}.", action)
        target = str(body.get("name", ""))
        try:
            name = names.check_name(body.get("name"))
            teams = names.check_teams(body.get("teams"))
            spec = self.area.spec_of(body)
        except names.Invalid as exc:
            await self.refuse("invalid-request", str(exc), action, target)
        if name in self.catalog.rows:
            await self.refuse("conflict", f"There is already an environment {name} "
                              f"({self.catalog.rows[name]['status']}); delete it first or choose another name.",
                              action, name)
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > 500:
            await self.refuse("invalid-request", "description must be text of at most 500 characters.", action, name)
        for team in teams:
            code, _ = await self.area.context.hub_api("GET", f"/groups/{quote(team, safe='')}")
            if code == 404:
                await self.refuse("invalid-request", f"There is no team {team}: a team is a JupyterHub group "
                                  "(from Keycloak); check the name.", action, name)
            if code != 200:
                await self.refuse("unavailable", f"The hub did not say whether the team {team} exists (HTTP {code}); "
                                  "try again in a moment.", action, name)
        limit = self.area.max_environments
        if len(self.catalog.rows) >= limit:
            await self.refuse("conflict", f"The catalogue is full: it holds {len(self.catalog.rows)} environments, "
                              f"AstraGo's limit (c.EnvironmentsArea.max_environments = {limit}). Delete one first.",
                              action, name)
        if name in self.catalog.rows:  # created by a concurrent request while the teams were checked
            await self.refuse("conflict", f"There is already an environment {name}.", action, name)
        await self.area.register(name, teams=teams, description=description, created_by=self.caller_name, **spec)
        await self.audit(action, "allowed", target=name, detail={"teams": teams, **spec})
        self.set_header("Location", f"{self.service.prefix}api/environments/{name}")
        self.write_json(self.describe(name), status=202 if spec["kind"] == "python" else 201)


class EnvironmentHandler(EnvironmentsHandler):
    @operation("getEnvironment", "One environment: its status, build progress (step n of m) and, for "
               "administrators, the end of its build log", response="EnvironmentDetail", errors=(401, 403, 404))
    @needs_scope(scopes.READ, action="environments.read")
    async def get(self, name):
        await self.require(scopes.READ, user=self.caller_name, action="environments.read")
        await self.visible(name, "environments.read")
        doc = self.describe(name)
        doc["log_tail"] = await self.area.log_tail(name) if self.is_env_admin and name != BASE else ""
        self.write_json(doc)

    @operation("deleteEnvironment", "Delete an environment (a build in progress stops); 409 while a server runs "
               "in it", ok=204, errors=(401, 403, 404, 409, 503))
    @needs_scope(scopes.ENVIRONMENTS_ADMIN, action="environments.delete")
    async def delete(self, name):
        action = "environments.delete"
        await self.require(scopes.ENVIRONMENTS_ADMIN, action=action)
        if name == BASE:
            await self.refuse("conflict", f"{BASE} is the shared user environment every server falls back to; it "
                              "cannot be deleted.", action, name)
        if name not in self.catalog.rows:
            await self.refuse("not-found", f"There is no environment {name!r}.", action, name)
        try:
            servers = await servers_using(self.area.context.hub_api, name)
        except RuntimeError as exc:
            await self.refuse("unavailable", f"{exc} Nothing was deleted; try again in a moment.", action, name)
        if servers:
            who = ", ".join(f"{s['user']}/{s['server']}" if s["server"] else s["user"] for s in servers)
            await self.refuse("conflict", f"The environment {name} is in use by running server(s) of {who}; stop "
                              "them first.", action, name, servers=servers)
        row = dict(self.catalog.rows[name])
        await self.area.delete(name)
        await self.audit(action, "allowed", target=name,
                         detail={"kind": row["kind"], "status": row["status"], "prefix": row["prefix"],
                                 "image": row["image"]})
        self.set_status(204)
        self.finish()


class EnvironmentLogHandler(EnvironmentsHandler):
    @operation("getEnvironmentLog", "An environment's build log (each step's command and output) from ?offset=",
               response="EnvironmentLog", query=[("offset", "integer")], errors=(400, 401, 403, 404))
    @needs_scope(scopes.ENVIRONMENTS_ADMIN, action="environments.log")
    async def get(self, name):
        await self.require(scopes.ENVIRONMENTS_ADMIN, action="environments.log")
        if name not in self.catalog.rows:
            await self.refuse("not-found", f"There is no environment {name!r} with a build log.",
                              "environments.log", name)
        try:
            offset = int(self.get_argument("offset", "0"))
        except ValueError:
            await self.refuse("invalid-request", "offset must be a whole number of bytes.", "environments.log", name)
        data, next_offset, size = await self.area.read_log(name, offset, LOG_LIMIT)
        status = self.catalog.rows.get(name, {}).get("status")
        self.write_json({"name": name, "text": data.decode("utf-8", "replace"), "offset": next_offset - len(data),
                         "next_offset": next_offset, "size": size,
                         "complete": status in ("ready", "failed") and next_offset >= size})


class UserEnvironmentsHandler(EnvironmentsHandler):
    @operation("listUserEnvironments", "The ready environments a user's teams allow, base first (the spawn "
               "page's choices)", response="UserEnvironments", errors=(401, 403, 404))
    @needs_scope(scopes.READ, action="environments.offers")
    async def get(self, name):
        await self.require(scopes.READ, user=name, action="environments.offers")
        groups = await self.groups_of(name, "environments.offers")
        allowed = self.catalog.allowed_for(name, groups)
        self.write_json({"user": name, "groups": groups, "default": BASE,
                         "environments": [self.describe(r.name) for r in allowed]})


class UserEnvironmentHandler(EnvironmentsHandler):
    @operation("checkUserEnvironment", "Whether a user may run in an environment now (the spawner asks before a "
               "server starts): the environment, or a refusal in plain words", response="Environment",
               errors=(401, 403, 404, 409))
    @needs_scope(scopes.READ, action="environments.use")
    async def get(self, name, environment):
        await self.require(scopes.READ, user=name, action="environments.use")
        groups = await self.groups_of(name, "environments.use")
        try:
            record = self.catalog.usable_by(environment, name, groups)
        except EnvironmentRefused as exc:
            await self.refuse(exc.kind, exc.detail, "environments.use", f"{name}:{environment}")
        self.write_json(self.describe(record.name))
