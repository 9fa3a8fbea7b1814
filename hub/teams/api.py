"""REST API of the teams area.

    GET    api/teams                        the caller's teams (admins: every team)
    PUT    api/teams/<team>                 mark a hub group as a team {"admins": [...]} (custom:astrago:admin)
    GET    api/teams/<team>                 members, admins, folder, storage (members, team admins, admins)
    DELETE api/teams/<team>                 no longer a team; the folder stays (custom:astrago:admin)
    POST   api/teams/sync                   reconcile now: every team (admins), or {"user": name} (the spawner)
    GET    api/datasets                     datasets the caller can read
    POST   api/datasets                     {name, team?, source_path} -> a new read-only version (201)
    GET    api/datasets/<name>/<version>    one version (?team=<team> when several teams have it)
    DELETE api/datasets/<name>/<version>    team admins, the creator of a personal one, admins; 409 while a job uses it

Refusals are problem+json and audited.
"""
from __future__ import annotations

from .. import scopes
from ..service.base import APIHandler
from ..service.openapi import operation as _op
from ..service.problems import Problem
from . import names
from .area import DatasetCatalog, TeamsArea, TeamsRefused, dataset_dict
from .page import TeamsPage

TEAM = r"(?P<team>[a-z][a-z0-9-]{0,17})"
DATASET = r"(?P<name>[a-z0-9][a-z0-9._-]{0,62})/(?P<version>[0-9]+)"

PATHS = {
    "/api/teams": {"get": _op("listTeams", "The caller's teams (admins: every team)")},
    "/api/teams/sync": {"post": _op("syncTeams", "Reconcile team membership onto POSIX groups and ~/teams links "
                                    "now: every team (admins) or one user's teams (the spawner, before a server "
                                    "starts)", errors=(400, 401, 403), body="#/components/schemas/TeamSync")},
    "/api/teams/{team}": {
        "get": _op("getTeam", "A team: members, admins, folder, storage used (members and admins)",
                   errors=(401, 403, 404), params=[("team", "path")]),
        "put": _op("markTeam", "Mark a JupyterHub group as a team, with its team admins (custom:astrago:admin)",
                   errors=(400, 401, 403, 404), params=[("team", "path")], body="#/components/schemas/TeamMark"),
        "delete": _op("unmarkTeam", "The group is no longer a team; its folder is kept (custom:astrago:admin)",
                      ok="204", errors=(401, 403, 404), params=[("team", "path")]),
    },
    "/api/datasets": {
        "get": _op("listDatasets", "Datasets the caller can read: their own and their teams'"),
        "post": _op("createDataset", "A new immutable, read-only version of a folder in a team space or the "
                    "caller's home", ok="201", errors=(400, 401, 403, 404, 409),
                    body="#/components/schemas/DatasetCreate"),
    },
    "/api/datasets/{name}/{version}": {
        "get": _op("getDataset", "One dataset version", errors=(401, 403, 404, 409),
                   params=[("name", "path"), ("version", "path"), ("team", "query")]),
        "delete": _op("deleteDataset", "Delete a dataset version (team admins, its creator for a personal one, "
                      "admins); 409 while a job that has not ended uses it", ok="204", errors=(401, 403, 404, 409),
                      params=[("name", "path"), ("version", "path"), ("team", "query")]),
    },
}

SCHEMAS = {
    "TeamMark": {"type": "object", "properties": {"admins": {"type": "array", "items": {"type": "string"}}}},
    "TeamSync": {"type": "object", "properties": {"user": {"type": "string"}}},
    "DatasetCreate": {
        "type": "object", "required": ["name", "source_path"],
        "properties": {"name": {"type": "string", "pattern": names.DATASET_NAME.pattern},
                       "team": {"type": "string"},
                       "source_path": {"type": "string", "description": "a folder in the team's space (absolute, "
                                       "relative to it, or under ~/teams/<team>) or in the caller's home"}},
    },
}


def setup(service) -> None:
    area = TeamsArea.of(service)
    service.dataset_catalog = DatasetCatalog(area)  # the jobs area resolves `datasets` of a job spec with it


async def background(service) -> None:
    await TeamsArea.of(service).run_sync_loop()


class TeamsHandler(APIHandler):
    @property
    def area(self) -> TeamsArea:
        return TeamsArea.of(self.service)

    @property
    def is_admin(self) -> bool:
        return self.has_scope(scopes.ADMIN)

    async def refuse(self, kind: str, detail: str, action: str, target: str = "", **extra):
        await self.audit(action, "denied", target=target, reason=detail)
        raise Problem(kind, detail, extra=extra)

    async def refused(self, exc: TeamsRefused, action: str, target: str = ""):
        outcome = "failed" if exc.kind == "internal-error" else "denied"
        await self.audit(action, outcome, target=target, reason=exc.detail)
        raise Problem(exc.kind, exc.detail, extra=exc.extra) from None

    async def my_teams(self) -> list[str]:
        return [t.name for t in await self.area.teams_of(self.caller_name)]

    async def visible_team(self, name: str, action: str):
        """The team, when the caller is a member, one of its admins or an admin; else 404/403 (audited)."""
        team = await self.area.team(name)
        if team is None:
            await self.refuse("not-found", f"There is no team {name}.", action, name)
        if not self.is_admin and name not in await self.my_teams() and self.caller_name not in team.admins:
            await self.refuse("forbidden", f"You are not a member of the team {name}.", action, name)
        return team

    def may_manage(self, team) -> bool:
        return self.is_admin or self.caller_name in (team.admins or [])


class TeamListHandler(TeamsHandler):
    async def get(self):
        await self.require(scopes.READ, user=self.caller_name, action="teams.list")
        teams = await self.area.teams()
        mine = set(await self.my_teams())
        shown = [t for t in teams if self.is_admin or t.name in mine or self.caller_name in t.admins]
        self.write_json({"teams": [{"name": t.name, "admins": t.admins, "member": t.name in mine,
                                    "folder": self.area.folder(t.name), "link": f"~/teams/{t.name}",
                                    "posix_group": names.posix_group(t.name)} for t in shown]})


class TeamHandler(TeamsHandler):
    async def get(self, team):
        await self.require(scopes.READ, user=self.caller_name, action="teams.read")
        row = await self.visible_team(team, "teams.read")
        members = await self.area.hub_members(team) or []
        self.write_json({"name": row.name, "admins": row.admins, "members": members,
                         "folder": self.area.folder(team), "link": f"~/teams/{team}",
                         "posix_group": names.posix_group(team), "storage": await self.area.storage(team),
                         "synced_at": row.synced_at.isoformat() + "Z" if row.synced_at else None,
                         "can_manage": self.may_manage(row)})

    async def put(self, team):
        await self.require(scopes.ADMIN, action="teams.mark")
        body = self.json_body()
        admins = body.get("admins", [])
        if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
            await self.refuse("invalid-request", "admins must be a list of user names.", "teams.mark", team)
        try:
            row, created = await self.area.mark(team, admins, self.caller_name)
        except TeamsRefused as exc:
            await self.refused(exc, "teams.mark", team)
        await self.audit("teams.mark", "allowed", target=team, detail={"admins": row.admins, "created": created})
        self.write_json({"name": row.name, "admins": row.admins, "folder": self.area.folder(team),
                         "posix_group": names.posix_group(team)}, status=201 if created else 200)

    async def delete(self, team):
        await self.require(scopes.ADMIN, action="teams.unmark")
        if not await self.area.unmark(team):
            await self.refuse("not-found", f"There is no team {team}.", "teams.unmark", team)
        await self.audit("teams.unmark", "allowed", target=team)
        self.set_status(204)
        self.finish()


class TeamSyncHandler(TeamsHandler):
    async def post(self):
        body = self.json_body()
        user = body.get("user")
        if user is not None:
            if not isinstance(user, str):
                await self.refuse("invalid-request", "user must be a user name.", "teams.sync")
            await self.require(None if self.is_admin else scopes.ADMISSIONS, action="teams.sync")
            reports = await self.area.sync_user(user)
        else:
            await self.require(scopes.ADMIN, action="teams.sync")
            reports = await self.area.sync_all()
        await self.audit("teams.sync", "allowed", target=user or "", detail={"teams": [r.get("team") for r in reports]})
        self.write_json({"teams": reports})


class DatasetListHandler(TeamsHandler):
    async def get(self):
        await self.require(scopes.READ, user=self.caller_name, action="datasets.list")
        everything = self.is_admin and self.get_argument("all", "") in ("1", "true")
        self.write_json({"datasets": await self.area.datasets_visible_to(self.caller_name, await self.my_teams(),
                                                                         everything=everything)})

    async def post(self):
        await self.require(scopes.UPLOADS, user=self.caller_name, action="datasets.create")
        body = self.json_body()
        unknown = set(body) - {"name", "team", "source_path"}
        if unknown:
            await self.refuse("invalid-request", f"Unknown field(s) {', '.join(sorted(unknown))}; a dataset takes "
                              "name, team and source_path.", "datasets.create")
        team = body.get("team") or None
        if team is not None:
            if not isinstance(team, str) or await self.area.team(team) is None:
                await self.refuse("not-found", f"There is no team {team}.", "datasets.create", str(team))
            if team not in await self.my_teams() and not self.is_admin:
                await self.refuse("forbidden", f"You are not a member of the team {team}.", "datasets.create", team)
        try:
            made = await self.area.create_dataset(user=self.caller_name, team=team, name=body.get("name"),
                                                  source_path=body.get("source_path"))
        except TeamsRefused as exc:
            await self.refused(exc, "datasets.create", team or self.caller_name)
        await self.audit("datasets.create", "allowed", target=made["ref"],
                         detail={k: made[k] for k in ("path", "size_bytes", "file_count", "manifest_sha256")})
        self.set_header("Location", f"{self.service.prefix}api/datasets/{made['name']}/{made['version']}"
                                    + (f"?team={team}" if team else ""))
        self.write_json(made, status=201)


class DatasetHandler(TeamsHandler):
    async def lookup(self, name: str, version: str, action: str):
        team = self.get_argument("team", None) or None
        try:
            found = await self.area.find(name, int(version), team, self.caller_name, await self.my_teams(),
                                         everything=self.is_admin)
        except TeamsRefused as exc:
            await self.refused(exc, action, f"{name}:{version}")
        if found is None:
            if team and not self.is_admin and team not in await self.my_teams() and await self.area.team(team):
                await self.refuse("forbidden", f"You are not a member of the team {team}.", action, team)
            await self.refuse("not-found", f"There is no dataset {name}:{version} you can read.", action,
                              f"{name}:{version}")
        return found

    async def get(self, name, version):
        await self.require(scopes.READ, user=self.caller_name, action="datasets.read")
        self.write_json(dataset_dict(await self.lookup(name, version, "datasets.read")))

    async def delete(self, name, version):
        await self.require(scopes.UPLOADS, user=self.caller_name, action="datasets.delete")
        found = await self.lookup(name, version, "datasets.delete")
        ref = str(names.DatasetRef(found.name, found.version, found.team))
        if found.team:
            team = await self.area.team(found.team)
            allowed = team is not None and self.may_manage(team)
        else:
            allowed = self.is_admin or found.owner == self.caller_name
        if not allowed:
            await self.refuse("forbidden", f"Only the team's admins (or AstraGo admins) delete {ref}.",
                              "datasets.delete", ref)
        try:
            await self.area.delete_dataset(found, self.caller_name)
        except TeamsRefused as exc:
            await self.refused(exc, "datasets.delete", ref)
        await self.audit("datasets.delete", "allowed", target=ref, detail={"path": found.path})
        self.set_status(204)
        self.finish()


def handlers(prefix: str) -> list:
    api = prefix + "api/"
    return [
        (api + "teams", TeamListHandler),
        (api + "teams/sync", TeamSyncHandler),
        (api + "teams/" + TEAM, TeamHandler),
        (api + "datasets", DatasetListHandler),
        (api + "datasets/" + DATASET, DatasetHandler),
        (prefix + "teams", TeamsPage),
    ]
