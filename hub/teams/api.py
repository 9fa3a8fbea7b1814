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
from ..service.declare import LOGGED_IN, needs_scope, operation
from ..service.problems import Problem
from . import names
from .datasets import Datasets, dataset_dict
from .spaces import TeamSpaces, TeamsRefused

TEAM = r"[a-z][a-z0-9-]{0,17}"
DATASET_NAME = r"[a-z0-9][a-z0-9._-]{0,62}"
DATASET_VERSION = r"[0-9]+"
_TEAM_QUERY = [("team", "string")]


class TeamsHandler(APIHandler):
    @property
    def spaces(self) -> TeamSpaces:
        return self.area.spaces

    @property
    def datasets(self) -> Datasets:
        return self.area.datasets

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
        return [t.name for t in await self.spaces.teams_of(self.caller_name)]

    async def visible_team(self, name: str, action: str):
        """The team, when the caller is a member, one of its admins or an admin; else 404/403 (audited)."""
        team = await self.spaces.team(name)
        if team is None:
            await self.refuse("not-found", f"There is no team {name}.", action, name)
        if not self.is_admin and name not in await self.my_teams() and self.caller_name not in team.admins:
            await self.refuse("forbidden", f"You are not a member of the team {name}.", action, name)
        return team

    def may_manage(self, team) -> bool:
        return self.is_admin or self.caller_name in (team.admins or [])


class TeamListHandler(TeamsHandler):
    @operation("listTeams", "The caller's teams (admins: every team)", response="TeamList")
    @needs_scope(scopes.READ, action="teams.list")
    async def get(self):
        await self.require(scopes.READ, user=self.caller_name, action="teams.list")
        teams = await self.spaces.teams()
        mine = set(await self.my_teams())
        shown = [t for t in teams if self.is_admin or t.name in mine or self.caller_name in t.admins]
        self.write_json({"teams": [{"name": t.name, "admins": t.admins, "member": t.name in mine,
                                    "folder": self.spaces.folder(t.name), "link": f"~/teams/{t.name}",
                                    "posix_group": names.posix_group(t.name)} for t in shown]})


class TeamHandler(TeamsHandler):
    @operation("getTeam", "A team: members, admins, folder, storage used (members and admins)", response="Team",
               errors=(401, 403, 404))
    @needs_scope(scopes.READ, action="teams.read")
    async def get(self, team):
        await self.require(scopes.READ, user=self.caller_name, action="teams.read")
        row = await self.visible_team(team, "teams.read")
        members = await self.spaces.hub_members(team) or []
        self.write_json({"name": row.name, "admins": row.admins, "members": members,
                         "folder": self.spaces.folder(team), "link": f"~/teams/{team}",
                         "posix_group": names.posix_group(team), "storage": await self.spaces.storage(team),
                         "synced_at": row.synced_at.isoformat() + "Z" if row.synced_at else None,
                         "can_manage": self.may_manage(row)})

    @operation("markTeam", "Mark a JupyterHub group as a team, with its team admins (custom:astrago:admin)",
               body="TeamMark", response="TeamMarked", errors=(400, 401, 403, 404),
               other={201: {"description": "The group became a team", "schema": "TeamMarked"}})
    @needs_scope(scopes.ADMIN, action="teams.mark")
    async def put(self, team):
        await self.require(scopes.ADMIN, action="teams.mark")
        body = self.json_body()
        admins = body.get("admins", [])
        if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
            await self.refuse("invalid-request", "admins must be a list of user names.", "teams.mark", team)
        try:
            row, created = await self.spaces.mark(team, admins, self.caller_name)
        except TeamsRefused as exc:
            await self.refused(exc, "teams.mark", team)
        await self.audit("teams.mark", "allowed", target=team, detail={"admins": row.admins, "created": created})
        self.write_json({"name": row.name, "admins": row.admins, "folder": self.spaces.folder(team),
                         "posix_group": names.posix_group(team)}, status=201 if created else 200)

    @operation("unmarkTeam", "The group is no longer a team; its folder is kept (custom:astrago:admin)", ok=204,
               errors=(401, 403, 404))
    @needs_scope(scopes.ADMIN, action="teams.unmark")
    async def delete(self, team):
        await self.require(scopes.ADMIN, action="teams.unmark")
        if not await self.spaces.unmark(team):
            await self.refuse("not-found", f"There is no team {team}.", "teams.unmark", team)
        await self.audit("teams.unmark", "allowed", target=team)
        self.set_status(204)
        self.finish()


class TeamSyncHandler(TeamsHandler):
    @operation("syncTeams", "Reconcile team membership onto POSIX groups and ~/teams links now: every team "
               "(admins) or one user's teams (the spawner, before a server starts)", body="TeamSync",
               body_required=False, response="TeamSyncResult", errors=(400, 401, 403),
               description="Every team needs custom:astrago:admin; one user's teams (`{\"user\": name}`) need "
                           "custom:astrago:admissions (the spawner's) or custom:astrago:admin.")
    @needs_scope(LOGGED_IN, action="teams.sync")
    async def post(self):
        body = self.json_body()
        user = body.get("user")
        if user is not None:
            if not isinstance(user, str):
                await self.refuse("invalid-request", "user must be a user name.", "teams.sync")
            await self.require(None if self.is_admin else scopes.ADMISSIONS, action="teams.sync")
            reports = await self.spaces.sync_user(user)
        else:
            await self.require(scopes.ADMIN, action="teams.sync")
            reports = await self.spaces.sync_all()
        await self.audit("teams.sync", "allowed", target=user or "", detail={"teams": [r.get("team") for r in reports]})
        self.write_json({"teams": reports})


class DatasetListHandler(TeamsHandler):
    @operation("listDatasets", "Datasets the caller can read: their own and their teams' (admins with ?all=1: "
               "every dataset)", response="DatasetList", query=[("all", "string")])
    @needs_scope(scopes.READ, action="datasets.list")
    async def get(self):
        await self.require(scopes.READ, user=self.caller_name, action="datasets.list")
        everything = self.is_admin and self.get_argument("all", "") in ("1", "true")
        self.write_json({"datasets": await self.datasets.visible_to(self.caller_name, await self.my_teams(),
                                                                         everything=everything)})

    @operation("createDataset", "A new immutable, read-only version of a folder in a team space or the "
               "caller's home", ok=201, body="DatasetCreate", response="DatasetCreated",
               errors=(400, 401, 403, 404, 409, 500), headers=[("Location", "the new version")])
    @needs_scope(scopes.UPLOADS, action="datasets.create")
    async def post(self):
        await self.require(scopes.UPLOADS, user=self.caller_name, action="datasets.create")
        body = self.json_body()
        unknown = set(body) - {"name", "team", "source_path"}
        if unknown:
            await self.refuse("invalid-request", f"Unknown field(s) {', '.join(sorted(unknown))}; a dataset takes "
                              "name, team and source_path.", "datasets.create")
        team = body.get("team") or None
        if team is not None:
            if not isinstance(team, str) or await self.spaces.team(team) is None:
                await self.refuse("not-found", f"There is no team {team}.", "datasets.create", str(team))
            if team not in await self.my_teams() and not self.is_admin:
                await self.refuse("forbidden", f"You are not a member of the team {team}.", "datasets.create", team)
        try:
            made = await self.datasets.create(user=self.caller_name, team=team, name=body.get("name"),
                                                  source_path=body.get("source_path"))
        except TeamsRefused as exc:
            await self.refused(exc, "datasets.create", team or self.caller_name)
        await self.audit("datasets.create", "allowed", target=made["ref"],
                         detail={k: made[k] for k in ("path", "size_bytes", "file_count", "manifest_sha256")})
        self.set_header("Location", f"{self.service.prefix}api/datasets/{made['name']}/{made['version']}"
                                    + (f"?team={team}" if team else ""))
        self.write_json(made, status=201)


#: the largest version number a dataset can have (a signed 32-bit column)
MAX_VERSION = 2 ** 31 - 1


class DatasetHandler(TeamsHandler):
    async def lookup(self, name: str, version: str, action: str):
        team = self.get_argument("team", None) or None
        found = None
        if int(version) <= MAX_VERSION:  # a larger number names no version (and fits no database integer)
            try:
                found = await self.datasets.find(name, int(version), team, self.caller_name, await self.my_teams(),
                                             everything=self.is_admin)
            except TeamsRefused as exc:
                await self.refused(exc, action, f"{name}:{version}")
        if found is None:
            if team and not self.is_admin and team not in await self.my_teams() and await self.spaces.team(team):
                await self.refuse("forbidden", f"You are not a member of the team {team}.", action, team)
            await self.refuse("not-found", f"There is no dataset {name}:{version} you can read.", action,
                              f"{name}:{version}")
        return found

    @operation("getDataset", "One dataset version", response="Dataset", query=_TEAM_QUERY,
               errors=(401, 403, 404, 409))
    @needs_scope(scopes.READ, action="datasets.read")
    async def get(self, name, version):
        await self.require(scopes.READ, user=self.caller_name, action="datasets.read")
        self.write_json(dataset_dict(await self.lookup(name, version, "datasets.read")))

    @operation("deleteDataset", "Delete a dataset version (team admins, its creator for a personal one, "
               "admins); 409 while a job that has not ended uses it", ok=204, query=_TEAM_QUERY,
               errors=(401, 403, 404, 409, 500))
    @needs_scope(scopes.UPLOADS, action="datasets.delete")
    async def delete(self, name, version):
        await self.require(scopes.UPLOADS, user=self.caller_name, action="datasets.delete")
        found = await self.lookup(name, version, "datasets.delete")
        ref = str(names.DatasetRef(found.name, found.version, found.team))
        if found.team:
            team = await self.spaces.team(found.team)
            allowed = team is not None and self.may_manage(team)
        else:
            allowed = self.is_admin or found.owner == self.caller_name
        if not allowed:
            await self.refuse("forbidden", f"Only the team's admins (or AstraGo admins) delete {ref}.",
                              "datasets.delete", ref)
        try:
            await self.datasets.delete(found, self.caller_name)
        except TeamsRefused as exc:
            await self.refused(exc, "datasets.delete", ref)
        await self.audit("datasets.delete", "allowed", target=ref, detail={"path": found.path})
        self.set_status(204)
        self.finish()
