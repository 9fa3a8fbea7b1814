"""Datasets: immutable, read-only versions of folders of a team space or a home, by name and version.

Jobs attach them by reference (`name:version`, `team/name:version`); `TeamDatasetCatalog` is
what the jobs area resolves those with (interfaces.teams.DatasetCatalog).
"""
from __future__ import annotations

import os

from sqlalchemy import func, select

from . import names, posix, snapshot
from .models import Dataset
from .spaces import TeamSpaces, TeamsRefused, now


def iso(dt):
    return None if dt is None else dt.isoformat(timespec="seconds") + "Z"


def dataset_dict(d: Dataset) -> dict:
    return {"name": d.name, "version": d.version, "team": d.team, "owner": d.owner, "state": d.state,
            "path": d.path, "source_path": d.source_path, "size_bytes": d.size_bytes, "file_count": d.file_count,
            "manifest_sha256": d.manifest_sha256, "env": names.env_name(d.name), "created_by": d.owner,
            "created_at": iso(d.created_at), "ref": str(names.DatasetRef(d.name, d.version, d.team))}


class Datasets:
    """Making, finding and deleting dataset versions (rows of `Dataset`, copies under the teams root)."""

    def __init__(self, spaces: TeamSpaces, db, usage=lambda: None):
        self.spaces = spaces
        self.db = db
        #: () -> interfaces.teams.DatasetUsage or None (the jobs area): a dataset a job uses is kept
        self.usage = usage

    async def create(self, *, user: str, team: str | None, name: str, source_path: str) -> dict:
        try:
            names.check_dataset_name(name)
        except names.NameError_ as exc:
            raise TeamsRefused("invalid-request", str(exc)) from None
        if not isinstance(source_path, str) or not source_path.strip():
            raise TeamsRefused("invalid-request", "source_path must be the path of a folder.")
        account = self.spaces.account_name(user)
        entry = posix.account(account) if account else None
        if entry is None:
            raise TeamsRefused("conflict", f"{user} has no system account yet: start a server once first.")
        if team:
            base = self.spaces.folder(team)
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
        _, _, _, needed = await self.spaces.io(snapshot.plan, source, entry.pw_uid, gids)
        if team:
            room = await self.spaces.storage(team)
            if room["limit_bytes"] is not None and room["used_bytes"] + needed > room["limit_bytes"]:
                raise TeamsRefused("quota-exceeded", f"The dataset needs {needed} bytes; the team {team} uses "
                                   f"{room['used_bytes']} of its {room['limit_bytes']} bytes of storage.")
        scope = names.dataset_scope(team, user)

        def reserve(s):
            latest = s.scalar(select(func.max(Dataset.version)).where(Dataset.scope == scope, Dataset.name == name))
            version = (latest or 0) + 1
            path = names.dataset_path(self.spaces.config.root, team, user, name, version)
            row = Dataset(scope=scope, team=team, owner=user, name=name, version=version, state="creating",
                          path=path, source_path=source, created_at=now())
            s.add(row)
            s.flush()
            return row.id, version, path

        row_id, version, path = await self.db.run(reserve)
        try:
            snap = await self.spaces.io(self._make, scope, gid, name, source, path, entry.pw_uid, gids)
        except Exception as exc:
            await self.db.run(lambda s: setattr(s.get(Dataset, row_id), "state", "failed"))
            raise TeamsRefused("internal-error", f"The dataset could not be made: {exc}") from None

        def ready(s):
            row = s.get(Dataset, row_id)
            row.state, row.size_bytes, row.file_count = "ready", snap.size_bytes, snap.file_count
            row.manifest_sha256 = snap.manifest_sha256
            return {**dataset_dict(row), "skipped": snap.skipped}

        return await self.db.run(ready)

    def _make(self, scope: str, gid: int, name: str, source: str, path: str, uid: int, gids: set[int]):
        root = self.spaces.config.root
        posix.ensure_root(root)
        store = os.path.join(root, names.DATASETS_DIR)
        posix.ensure_folder(store, 0, 0o711)
        posix.ensure_folder(os.path.join(store, scope), gid, 0o750)
        posix.ensure_folder(os.path.dirname(path), gid, 0o550)
        return snapshot.make(source, path, gid, uid, gids)

    async def visible_to(self, user: str, teams: list[str], *, everything: bool = False) -> list[dict]:
        scopes = [names.dataset_scope(None, user)] + [names.dataset_scope(t, "") for t in teams]

        def load(s):
            q = select(Dataset).where(Dataset.state == "ready").order_by(Dataset.name, Dataset.version)
            if not everything:
                q = q.where(Dataset.scope.in_(scopes))
            return [dataset_dict(d) for d in s.scalars(q)]

        return await self.db.run(load)

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

        found = await self.db.run(load)
        if len(found) > 1:
            mine = [d for d in found if d.scope == names.dataset_scope(None, user)]
            if len(mine) == 1:
                return mine[0]
            raise TeamsRefused("conflict", f"{name}:{version} exists in several teams: say which, as "
                               f"team/{name}:{version} ({', '.join(sorted(d.team or d.owner for d in found))}).")
        return found[0] if found else None

    async def delete(self, d: Dataset, actor: str) -> None:
        usage = self.usage()
        if usage is not None:
            jobs = await usage.active_jobs_using([d.path])
            if jobs:
                raise TeamsRefused("conflict", f"{d.name}:{d.version} is attached to job(s) that have not ended "
                                   f"({', '.join(j['id'] for j in jobs)}): it can be deleted once they end.",
                                   jobs=jobs)
        await self.spaces.io(snapshot.remove, d.path)

        def mark(s):
            row = s.get(Dataset, d.id)
            row.state, row.deleted_at, row.deleted_by = "deleted", now(), actor

        await self.db.run(mark)


class TeamDatasetCatalog:
    """interfaces.teams.DatasetCatalog, for the jobs area: dataset refs -> a job's environment."""

    def __init__(self, spaces: TeamSpaces, datasets: Datasets):
        self.spaces = spaces
        self.datasets = datasets

    async def resolve(self, user: str, groups: list[str], refs) -> dict[str, str]:
        """`["imagenet-mini:2", "ml/tokens:1"]` -> {"ASTRAGO_DATASET_IMAGENET_MINI": "/…/2", ...}.

        Raises LookupError (unknown or not visible to the user) or ValueError (a bad ref) with words for people."""
        teams = [t.name for t in await self.spaces.teams() if t.name in set(groups)]
        env: dict[str, str] = {}
        for text in refs:
            try:
                ref = names.parse_dataset_ref(text)
            except names.NameError_ as exc:
                raise ValueError(str(exc)) from None
            try:
                found = await self.datasets.find(ref.name, ref.version, ref.team, user, teams)
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
