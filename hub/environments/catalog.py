"""The catalogue: the environments table, mirrored in memory, and the `EnvironmentCatalog` view of it.

The area is the table's only writer, so the mirror (loaded at setup, changed with every
write) answers lookups from the spawners, the jobs area and pages without a trip to the
database thread. `base` is not a row: it is made from the service's settings.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import select

from ..db.models import utcnow
from ..service.interfaces.environments import BASE, EnvironmentRecord, EnvironmentRefused
from .models import Environment

FIELDS = ("name", "kind", "status", "packages", "teams", "description", "prefix", "image", "pull_policy", "step",
          "steps", "step_title", "size_bytes", "error", "created_by", "created_at", "updated_at")
BUILDING = ("queued", "building")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


class Catalog:
    """What environments exist (rows as plain dicts, by name), and who may use them."""

    def __init__(self, db, base: EnvironmentRecord, pulled_image):
        self.db = db
        self.base = base
        self.pulled_image = pulled_image  # image as registered -> what a pod pulls (the registry prefix)
        self.rows: dict[str, dict] = {}

    # -- the table ---------------------------------------------------------

    def load(self) -> None:
        """Read the table (at setup, before the event loop runs)."""
        rows = self.db.run_sync(lambda s: [self._plain(r) for r in s.scalars(select(Environment))])
        self.rows = {r["name"]: r for r in rows}

    @staticmethod
    def _plain(row: Environment) -> dict:
        return {f: getattr(row, f) for f in FIELDS}

    async def add(self, **fields) -> dict:
        now = utcnow()
        fields = {"packages": [], "teams": [], "description": "", "prefix": None, "image": None,
                  "pull_policy": None, "step": 0, "steps": 0, "step_title": "", "size_bytes": None, "error": "",
                  "created_at": now, "updated_at": now, **fields}

        def insert(session):
            session.add(Environment(**fields))

        await self.db.run(insert)
        self.rows[fields["name"]] = dict(fields)
        return self.rows[fields["name"]]

    async def change(self, name: str, **changes) -> dict | None:
        """Update a row (None when it was deleted meanwhile)."""
        if name not in self.rows:
            return None
        changes["updated_at"] = utcnow()

        def update(session):
            row = session.get(Environment, name)
            if row is not None:
                for key, value in changes.items():
                    setattr(row, key, value)
            return row is not None

        if not await self.db.run(update):
            self.rows.pop(name, None)
            return None
        if name in self.rows:
            self.rows[name].update(changes)
        return self.rows.get(name)

    async def remove(self, name: str) -> None:
        def delete(session):
            row = session.get(Environment, name)
            if row is not None:
                session.delete(row)

        await self.db.run(delete)
        self.rows.pop(name, None)

    # -- views -------------------------------------------------------------

    def record(self, row: dict) -> EnvironmentRecord:
        return EnvironmentRecord(
            name=row["name"], kind=row["kind"], status=row["status"], teams=tuple(row["teams"] or ()),
            description=row["description"] or "", prefix=row["prefix"],
            image=self.pulled_image(row["image"]) if row["image"] else None, pull_policy=row["pull_policy"])

    def describe(self, name: str, queue_position: int | None = None) -> dict:
        """The API's view of one environment (`Environment` in the OpenAPI document)."""
        if name == BASE:
            b = self.base
            return {"name": BASE, "kind": b.kind, "status": "ready", "builtin": True, "teams": [],
                    "description": b.description, "packages": [], "prefix": b.prefix, "image": b.image,
                    "pull_policy": b.pull_policy, "size_bytes": None, "step": 0, "steps": 0, "step_title": "",
                    "error": "", "created_by": "", "created_at": None, "updated_at": None, "queue_position": None}
        row = self.rows[name]
        record = self.record(row)
        return {"name": name, "kind": row["kind"], "status": row["status"], "builtin": False,
                "teams": list(row["teams"] or []), "description": row["description"] or "",
                "packages": list(row["packages"] or []), "prefix": row["prefix"], "image": record.image,
                "pull_policy": row["pull_policy"], "size_bytes": row["size_bytes"], "step": row["step"],
                "steps": row["steps"], "step_title": row["step_title"], "error": row["error"] or "",
                "created_by": row["created_by"], "created_at": _iso(row["created_at"]),
                "updated_at": _iso(row["updated_at"]), "queue_position": queue_position}

    def names(self) -> list[str]:
        return sorted(self.rows)

    # -- EnvironmentCatalog -----------------------------------------------

    def environment(self, name: str) -> EnvironmentRecord | None:
        if name == BASE:
            return self.base
        row = self.rows.get(name)
        return self.record(row) if row else None

    def allowed_for(self, user: str, groups: Sequence[str]) -> list[EnvironmentRecord]:
        records = [self.record(self.rows[n]) for n in self.names()]
        return [self.base] + [r for r in records if r.ready and r.allows(groups)]

    def usable_by(self, name: str | None, user: str, groups: Sequence[str]) -> EnvironmentRecord:
        name = name or BASE
        record = self.environment(name) if isinstance(name, str) else None
        choices = ", ".join(r.name for r in self.allowed_for(user, groups))
        if record is None or (not record.allows(groups) and record.status != "ready"):  # not shown: not-found
            raise EnvironmentRefused("not-found", f"There is no environment {name!r} you may use; you may choose: "
                                     f"{choices}.")
        if not record.allows(groups):
            teams = ", ".join(record.teams)
            raise EnvironmentRefused("forbidden", f"The environment {name!r} is for the team(s) {teams}, and {user} "
                                     f"is in none of them. You may choose: {choices}.")
        if record.status in BUILDING:
            row = self.rows[name]
            where = f" (step {row['step']} of {row['steps']})" if row["steps"] else ""
            raise EnvironmentRefused("conflict", f"The environment {name!r} is still being built{where}; wait until "
                                     f"it is ready or choose another: {choices}.")
        if record.status != "ready":
            raise EnvironmentRefused("conflict", f"The environment {name!r} failed to build and cannot be used; an "
                                     f"administrator can delete and create it again. You may choose: {choices}.")
        return record
