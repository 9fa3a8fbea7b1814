"""The teams area inside the running service: teams, their spaces on disk, and datasets.

One `TeamsArea` per service (`TeamsArea.of(service)`). Membership comes from JupyterHub's
groups (which follow Keycloak at every login); the area reconciles it onto POSIX groups and
`~/teams` links periodically, when a member's server starts, and on demand. Blocking file and
account work runs on one I/O thread of its own, so two reconciliations never interleave.

Interfaces with other areas (DESIGN.md: declared, passed through the service, never imported):
- offered: `service.dataset_catalog` (`DatasetCatalog`): jobs resolve `name:version` refs to paths;
- used, optional: `service.active_jobs_using(paths) -> awaitable list of {"id", "owner", "status"}`
  (the jobs area) to refuse deleting a dataset a job uses, and `service.team_storage_limit(team)
  -> bytes | None` (a quota area) to keep a team's space within its storage quota.
"""
from __future__ import annotations

import asyncio
import logging
import os
import pwd
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import partial
from urllib.parse import quote

from sqlalchemy import func, select

from astrago.spawners.local.accounts import AccountError, system_username

from . import names, posix, snapshot
from .config import TeamsConfig
from .models import Dataset, Team

log = logging.getLogger("astrago.teams")


class TeamsRefused(Exception):
    """A refusal with a problem type (`kind`) and words for people."""

    def __init__(self, kind: str, detail: str, **extra):
        super().__init__(detail)
        self.kind, self.detail, self.extra = kind, detail, extra


def _now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(dt):
    return None if dt is None else dt.isoformat(timespec="seconds") + "Z"


def dataset_dict(d: Dataset) -> dict:
    return {"name": d.name, "version": d.version, "team": d.team, "owner": d.owner, "state": d.state,
            "path": d.path, "source_path": d.source_path, "size_bytes": d.size_bytes, "file_count": d.file_count,
            "manifest_sha256": d.manifest_sha256, "env": names.env_name(d.name), "created_by": d.owner,
            "created_at": iso(d.created_at), "ref": str(names.DatasetRef(d.name, d.version, d.team))}


class TeamsArea:
    def __init__(self, service, config: TeamsConfig):
        self.service = service
        self.config = config
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astrago-teams-io")

    @classmethod
    def of(cls, service) -> "TeamsArea":
        area = getattr(service, "teams_area", None)
        if area is None:
            area = service.teams_area = cls(service, TeamsConfig(parent=service))
        return area

    async def io(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))

    # -- who is who ----------------------------------------------------------

    def account_name(self, user: str) -> str | None:
        try:
            return system_username(user, self.config.system_user_prefix)
        except AccountError:
            return None

    def home_of(self, user: str) -> str:
        account = self.account_name(user) or ""
        return self.config.home_template.format(system_user=account, username=user)

    def folder(self, team: str) -> str:
        return names.team_folder(self.config.root, team)

    async def hub_members(self, team: str) -> list[str] | None:
        code, data = await self.service.hub_api("GET", f"/groups/{quote(team, safe='')}")
        return sorted(data.get("users", [])) if code == 200 and data else None

    async def hub_groups_of(self, user: str) -> list[str]:
        model = await self.service.hub_user(user)
        return sorted((model or {}).get("groups", []))

    async def teams(self) -> list[Team]:
        return await self.service.db.run(lambda s: list(s.scalars(select(Team).order_by(Team.name))))

    async def team(self, name: str) -> Team | None:
        return await self.service.db.run(lambda s: s.get(Team, name))

    async def teams_of(self, user: str) -> list[Team]:
        groups = set(await self.hub_groups_of(user))
        return [t for t in await self.teams() if t.name in groups]

    # -- marking teams -------------------------------------------------------

    async def mark(self, name: str, admins: list[str], actor: str) -> tuple[Team, bool]:
        try:
            names.check_team_name(name)
        except names.NameError_ as exc:
            raise TeamsRefused("invalid-request", str(exc)) from None
        if await self.hub_members(name) is None:
            raise TeamsRefused("not-found", f"There is no JupyterHub group {name!r}. Keycloak groups become hub "
                               "groups when a member logs in; a group can also be made in the hub's admin page.")

        def upsert(s):
            team = s.get(Team, name)
            created = team is None
            if created:
                team = Team(name=name, admins=sorted(set(admins)), created_by=actor, created_at=_now())
                s.add(team)
            else:
                team.admins = sorted(set(admins))
            return team, created

        team, created = await self.service.db.run(upsert)
        await self.sync_team(name)
        return team, created

    async def unmark(self, name: str) -> bool:
        """Stop treating the group as a team: links and POSIX membership go; the folder stays."""
        team = await self.team(name)
        if team is None:
            return False
        await self.service.db.run(lambda s: s.delete(s.get(Team, name)))
        await self.io(self._unlink_everyone, name)
        return True

    def _unlink_everyone(self, team: str) -> None:
        group = names.posix_group(team)
        for account in posix.group_members(group):
            entry = posix.account(account)
            if entry:
                posix.unlink_team(entry, team, self.folder(team))
        posix.set_members(group, set())

    # -- reconciling ---------------------------------------------------------

    async def sync_team(self, name: str) -> dict:
        members = await self.hub_members(name)
        if members is None:  # the group is gone from the hub: nobody is a member
            members = []
        report = await self.io(self._sync_team_files, name, members)
        await self.service.db.run(lambda s: setattr(s.get(Team, name), "synced_at", _now()) if s.get(Team, name)
                                  else None)
        return report

    def _sync_team_files(self, team: str, members: list[str]) -> dict:
        """Blocking: group, folder, members' group membership and links for one team."""
        root = self.config.root
        posix.ensure_root(root)
        gid = posix.ensure_group(names.posix_group(team))
        folder = self.folder(team)
        posix.ensure_folder(folder, gid)
        posix.share_within_group(folder)
        store = os.path.join(root, names.DATASETS_DIR)
        posix.ensure_folder(store, 0, 0o711)
        scope_dir = os.path.join(store, names.dataset_scope(team, ""))
        posix.ensure_folder(scope_dir, gid, 0o750)
        self._link(os.path.join(folder, names.DATASETS_DIR), scope_dir, gid)
        wanted: dict[str, pwd.struct_passwd] = {}
        for user in members:
            account = self.account_name(user)
            entry = posix.account(account) if account else None
            if entry is not None:
                wanted[account] = entry
        group = names.posix_group(team)
        before = posix.group_members(group)
        added, removed = posix.set_members(group, set(wanted))
        linked = [e.pw_name for e in wanted.values() if posix.link_team(e, team, folder)]
        for account in removed:
            entry = posix.account(account)
            if entry:
                posix.unlink_team(entry, team, folder)
        if added or removed:
            log.info("team %s: added %s, removed %s", team, added, removed)
        return {"team": team, "folder": folder, "posix_group": group, "members": sorted(wanted),
                "added": added, "removed": removed, "linked": linked, "was": sorted(before)}

    @staticmethod
    def _link(path: str, target: str, gid: int) -> None:
        try:
            if os.readlink(path) == target:
                return
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            return  # something a member made there: left alone
        os.symlink(target, path)
        os.lchown(path, 0, gid)

    async def sync_all(self) -> list[dict]:
        reports = []
        for team in await self.teams():
            try:
                reports.append(await self.sync_team(team.name))
            except Exception as exc:  # one broken team must not stop the others
                log.exception("team %s could not be reconciled", team.name)
                reports.append({"team": team.name, "error": str(exc)})
        return reports

    async def sync_user(self, user: str) -> list[dict]:
        """Before a user's server starts: their teams' groups and links (and no link to a team they left)."""
        mine = {t.name for t in await self.teams_of(user)}
        reports = [await self.sync_team(name) for name in sorted(mine)]
        others = [t.name for t in await self.teams() if t.name not in mine]
        if others:
            await self.io(self._drop_user, user, others)
        return reports

    def _drop_user(self, user: str, teams: list[str]) -> None:
        account = self.account_name(user)
        entry = posix.account(account) if account else None
        if entry is None:
            return
        for team in teams:
            group = names.posix_group(team)
            if account in posix.group_members(group):
                posix.set_members(group, posix.group_members(group) - {account})
            posix.unlink_team(entry, team, self.folder(team))

    async def run_sync_loop(self) -> None:
        while True:
            try:
                await self.sync_all()
            except Exception:
                log.exception("team reconciliation failed")
            await asyncio.sleep(self.config.sync_interval)

    # -- storage -------------------------------------------------------------

    def _space_bytes(self, team: str) -> int:
        used = 0
        for path in (self.folder(team), os.path.join(self.config.root, names.DATASETS_DIR,
                                                        names.dataset_scope(team, ""))):
            if os.path.isdir(path):
                used += posix.tree_bytes(path)[0]
        return used

    async def storage(self, team: str) -> dict:
        used = await self.io(self._space_bytes, team)
        lookup = getattr(self.service, "team_storage_limit", None)
        limit = None
        if lookup is not None:
            try:
                limit = await asyncio.get_running_loop().run_in_executor(None, lookup, team)
            except Exception:
                log.exception("team storage limit lookup failed for %s", team)
        return {"used_bytes": used, "limit_bytes": limit}

    # -- datasets ------------------------------------------------------------

    async def create_dataset(self, *, user: str, team: str | None, name: str, source_path: str) -> dict:
        try:
            names.check_dataset_name(name)
        except names.NameError_ as exc:
            raise TeamsRefused("invalid-request", str(exc)) from None
        if not isinstance(source_path, str) or not source_path.strip():
            raise TeamsRefused("invalid-request", "source_path must be the path of a folder.")
        account = self.account_name(user)
        entry = posix.account(account) if account else None
        if entry is None:
            raise TeamsRefused("conflict", f"{user} has no system account yet: start a server once first.")
        if team:
            base = self.folder(team)
            gid = posix.ensure_group(names.posix_group(team))
        else:
            base = entry.pw_dir
            gid = entry.pw_gid
        raw = source_path.strip()
        if raw.startswith("~/") or raw == "~":
            raw = os.path.join(entry.pw_dir, raw[2:])
        elif not raw.startswith("/"):
            raw = os.path.join(base, raw)
        source = os.path.realpath(raw)
        # a folder under ~/teams/<team> is the team's folder seen through the member's link
        if not names.within(source, os.path.realpath(base)):
            where = f"the team {team}'s space ({base})" if team else f"your home ({base})"
            raise TeamsRefused("invalid-request", f"{source_path} is not in {where}.")
        if not os.path.isdir(source):
            raise TeamsRefused("not-found", f"There is no folder {source_path}.")
        gids = set(os.getgrouplist(entry.pw_name, entry.pw_gid))
        _, _, _, needed = await self.io(snapshot.plan, source, entry.pw_uid, gids)
        if team:
            room = await self.storage(team)
            if room["limit_bytes"] is not None and room["used_bytes"] + needed > room["limit_bytes"]:
                raise TeamsRefused("quota-exceeded", f"The dataset needs {needed} bytes; the team {team} uses "
                                   f"{room['used_bytes']} of its {room['limit_bytes']} bytes of storage.")
        scope = names.dataset_scope(team, user)

        def reserve(s):
            latest = s.scalar(select(func.max(Dataset.version)).where(Dataset.scope == scope, Dataset.name == name))
            version = (latest or 0) + 1
            path = names.dataset_path(self.config.root, team, user, name, version)
            row = Dataset(scope=scope, team=team, owner=user, name=name, version=version, state="creating",
                          path=path, source_path=source, created_at=_now())
            s.add(row)
            s.flush()
            return row.id, version, path

        row_id, version, path = await self.service.db.run(reserve)
        try:
            snap = await self.io(self._make, scope, gid, name, source, path, entry.pw_uid, gids)
        except Exception as exc:
            await self.service.db.run(lambda s: setattr(s.get(Dataset, row_id), "state", "failed"))
            raise TeamsRefused("internal-error", f"The dataset could not be made: {exc}") from None

        def ready(s):
            row = s.get(Dataset, row_id)
            row.state, row.size_bytes, row.file_count = "ready", snap.size_bytes, snap.file_count
            row.manifest_sha256 = snap.manifest_sha256
            return {**dataset_dict(row), "skipped": snap.skipped}

        return await self.service.db.run(ready)

    def _make(self, scope: str, gid: int, name: str, source: str, path: str, uid: int, gids: set[int]):
        root = self.config.root
        posix.ensure_root(root)
        store = os.path.join(root, names.DATASETS_DIR)
        posix.ensure_folder(store, 0, 0o711)
        posix.ensure_folder(os.path.join(store, scope), gid, 0o750)
        posix.ensure_folder(os.path.dirname(path), gid, 0o550)
        return snapshot.make(source, path, gid, uid, gids)

    async def datasets_visible_to(self, user: str, teams: list[str], *, everything: bool = False) -> list[dict]:
        scopes = [names.dataset_scope(None, user)] + [names.dataset_scope(t, "") for t in teams]

        def load(s):
            q = select(Dataset).where(Dataset.state == "ready").order_by(Dataset.name, Dataset.version)
            if not everything:
                q = q.where(Dataset.scope.in_(scopes))
            return [dataset_dict(d) for d in s.scalars(q)]

        return await self.service.db.run(load)

    async def find(self, name: str, version: int, team: str | None, user: str, teams: list[str],
                   everything: bool = False) -> Dataset | None:
        """The ready dataset `name:version` the caller may see: in `team`, or (no team) theirs, else a team's
        of theirs (ambiguous -> refused)."""
        if team:
            if team not in teams and not everything:
                return None
            scopes = [names.dataset_scope(team, "")]
        else:
            scopes = [names.dataset_scope(None, user)] + [names.dataset_scope(t, "") for t in teams]

        def load(s):
            q = select(Dataset).where(Dataset.state == "ready", Dataset.name == name, Dataset.version == version)
            if not (everything and team is None):
                q = q.where(Dataset.scope.in_(scopes))
            return list(s.scalars(q))

        found = await self.service.db.run(load)
        if len(found) > 1:
            mine = [d for d in found if d.scope == names.dataset_scope(None, user)]
            if len(mine) == 1:
                return mine[0]
            raise TeamsRefused("conflict", f"{name}:{version} exists in several teams: say which, as "
                               f"team/{name}:{version} ({', '.join(sorted(d.team or d.owner for d in found))}).")
        return found[0] if found else None

    async def delete_dataset(self, d: Dataset, actor: str) -> None:
        using = getattr(self.service, "active_jobs_using", None)
        if using is not None:
            jobs = await using([d.path])
            if jobs:
                raise TeamsRefused("conflict", f"{d.name}:{d.version} is attached to job(s) that have not ended "
                                   f"({', '.join(j['id'] for j in jobs)}): it can be deleted once they end.",
                                   jobs=jobs)
        await self.io(snapshot.remove, d.path)

        def mark(s):
            row = s.get(Dataset, d.id)
            row.state, row.deleted_at, row.deleted_by = "deleted", _now(), actor

        await self.service.db.run(mark)


class DatasetCatalog:
    """The interface the jobs area uses (`service.dataset_catalog`): dataset refs -> job environment."""

    def __init__(self, area: TeamsArea):
        self.area = area

    async def resolve(self, user: str, groups: list[str], refs) -> dict[str, str]:
        """`["imagenet-mini:2", "ml/tokens:1"]` -> {"ASTRAGO_DATASET_IMAGENET_MINI": "/…/2", ...}.

        Raises LookupError (unknown or not visible to the user) or ValueError (a bad ref) with words for people."""
        teams = [t.name for t in await self.area.teams() if t.name in set(groups)]
        env: dict[str, str] = {}
        for text in refs:
            try:
                ref = names.parse_dataset_ref(text)
            except names.NameError_ as exc:
                raise ValueError(str(exc)) from None
            try:
                found = await self.area.find(ref.name, ref.version, ref.team, user, teams)
            except TeamsRefused as exc:
                raise ValueError(exc.detail) from None
            if found is None:
                raise LookupError(f"There is no dataset {ref} you can read (api/datasets lists yours and your "
                                  "teams').")
            key = names.env_name(found.name)
            if key in env and env[key] != found.path:
                raise ValueError(f"Two datasets named {found.name} cannot be attached to one job.")
            env[key] = found.path
        return env
