"""Teams and their spaces on disk: which hub groups are teams, and reconciling their members.

Membership comes from JupyterHub's groups (which follow Keycloak at every login); `TeamSpaces`
reconciles it onto POSIX groups and `~/teams` links periodically, when a member's server
starts, and on demand. Blocking file and account work runs on one I/O thread of its own, so
two reconciliations never interleave.
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

from sqlalchemy import select

from astrago.spawners.local.accounts import AccountError, system_username

from . import names, posix
from .config import TeamsConfig
from .models import Team

log = logging.getLogger("astrago.teams")


class TeamsRefused(Exception):
    """A refusal with a problem type (`kind`) and words for people."""

    def __init__(self, kind: str, detail: str, **extra):
        super().__init__(detail)
        self.kind, self.detail, self.extra = kind, detail, extra


def now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


class TeamSpaces:
    """Teams (rows of `Team`), their members (hub groups) and their folders and links."""

    def __init__(self, config: TeamsConfig, db, hub_api, hub_user, storage_limits=lambda: None):
        self.config = config
        self.db = db
        self.hub_api = hub_api
        self.hub_user = hub_user
        #: () -> interfaces.teams.TeamStorageLimits or None (looked up late: wants are not ordered)
        self.storage_limits = storage_limits
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astrago-teams-io")

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
        code, data = await self.hub_api("GET", f"/groups/{quote(team, safe='')}")
        return sorted(data.get("users", [])) if code == 200 and data else None

    async def hub_groups_of(self, user: str) -> list[str]:
        model = await self.hub_user(user)
        return sorted((model or {}).get("groups", []))

    async def teams(self) -> list[Team]:
        return await self.db.run(lambda s: list(s.scalars(select(Team).order_by(Team.name))))

    async def team(self, name: str) -> Team | None:
        return await self.db.run(lambda s: s.get(Team, name))

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
                team = Team(name=name, admins=sorted(set(admins)), created_by=actor, created_at=now())
                s.add(team)
            else:
                team.admins = sorted(set(admins))
            return team, created

        team, created = await self.db.run(upsert)
        await self.sync_team(name)
        return team, created

    async def unmark(self, name: str) -> bool:
        """Stop treating the group as a team: links and POSIX membership go; the folder stays."""
        team = await self.team(name)
        if team is None:
            return False
        await self.db.run(lambda s: s.delete(s.get(Team, name)))
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
        await self.db.run(lambda s: setattr(s.get(Team, name), "synced_at", now()) if s.get(Team, name)
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
        limit, limits = None, self.storage_limits()
        if limits is not None:
            try:
                limit = await asyncio.get_running_loop().run_in_executor(None, limits.team_storage_limit_bytes, team)
            except Exception:
                log.exception("team storage limit lookup failed for %s", team)
        return {"used_bytes": used, "limit_bytes": limit}
