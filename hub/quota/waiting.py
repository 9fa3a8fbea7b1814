"""The waiting queue, kept in memory as requests come and go (pure).

Grouped as the fair order reads it (accounting group -> user -> that user's requests in
`within_user` order), with the count of each slice waiting, so a scheduling cycle starts from
the queue as it is instead of reading and sorting every queued row: adding or removing one
request touches one user's list. The desk rebuilds it from the database at start.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter

from .cycle import Candidate, within_user


class WaitingQueue:
    def __init__(self, candidates=(), reasons: dict[str, str] | None = None):
        self._by_id: dict[str, Candidate] = {}
        self._groups: dict[str, dict[str, list[Candidate]]] = {}
        self._users: dict[str, dict[str, list[Candidate]]] = {}  # user -> group -> the same lists
        self.slice_counts: Counter = Counter()
        self._other_than_jobs: Counter = Counter()  # (group, user) -> their queued requests that are not jobs
        self._slices: dict[tuple[str, str], Counter] = {}  # (group, user) -> slices of their queued requests
        #: why each request waits, as the last cycle that looked at it (or its admission) said
        self._reasons: dict[str, str] = {}
        #: the last cycle's: slice -> why it could not be placed, when that cycle stopped before the rest
        self._slice_reasons: dict[str, str] = {}
        self._looked_at: set[str] = set()  # requests the last cycle reached
        self._fresh: set[str] = set()  # requests queued since the last cycle (their own reason holds)
        self._capped: dict[str, str] = {}  # the last cycle's: user -> why their jobs wait
        #: bumped on every change: positions computed for one version hold until the next
        self.version = 0
        self._group_versions: Counter = Counter()  # group -> changes to its requests
        self._changes: list[str] = []  # the groups changed, in order (see `changes_since`)
        self._changes_base = 0
        for c in candidates:
            self.add(c, (reasons or {}).get(c.id, ""))

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(self._by_id.values())

    def __contains__(self, cid: str) -> bool:
        return cid in self._by_id

    def get(self, cid: str) -> Candidate | None:
        return self._by_id.get(cid)

    def grouped(self) -> dict[str, dict[str, list[Candidate]]]:
        """group -> user -> requests in `within_user` order (the queue's own lists: read, never change)."""
        return self._groups

    def _changed(self, group: str) -> None:
        self._changes.append(group)
        if len(self._changes) > 10_000:  # nobody followed them for long: start again
            self._changes_base += len(self._changes)
            self._changes = []

    def change_mark(self) -> int:
        return self._changes_base + len(self._changes)

    def changes_since(self, mark: int) -> list[str] | None:
        """The groups changed since `change_mark()` said `mark` (None: too long ago to say)."""
        if mark < self._changes_base:
            return None
        return self._changes[mark - self._changes_base:]

    def group_version(self, group: str) -> int:
        """Changes to a group's requests so far (what was worked out of the group holds until it moves)."""
        return self._group_versions[group]

    def slices_of(self, group: str, user: str) -> Counter:
        """How many of each slice the user has queued in this group."""
        return self._slices.get((group, user), Counter())

    def only_jobs(self, group: str, user: str) -> bool:
        """All the user's requests queued in this group are jobs."""
        return (group, user) not in self._other_than_jobs

    def has_user(self, user: str) -> bool:
        return user in self._users

    def groups_of(self, user: str) -> tuple:
        """The groups a user asked with (those of one of their queued requests)."""
        for items in self._users.get(user, {}).values():
            return items[0].groups
        return ()

    def add(self, c: Candidate, reason: str = "") -> None:
        if c.id in self._by_id:
            raise ValueError(f"{c.id} is queued already")
        self._by_id[c.id] = c
        items = self._groups.setdefault(c.group, {}).setdefault(c.user, [])
        self._users.setdefault(c.user, {})[c.group] = items
        insort(items, c, key=within_user)
        self.slice_counts[c.slice] += 1
        self._slices.setdefault((c.group, c.user), Counter())[c.slice] += 1
        if c.kind != "job":
            self._other_than_jobs[(c.group, c.user)] += 1
        self._reasons[c.id] = reason
        self._fresh.add(c.id)
        self.version += 1
        self._group_versions[c.group] += 1
        self._changed(c.group)

    def remove(self, cid: str) -> tuple[Candidate, str] | None:
        """Take a request out (admitted, cancelled); returns it with its reason, None if not queued."""
        c = self._by_id.pop(cid, None)
        if c is None:
            return None
        users = self._groups[c.group]
        items = users[c.user]
        del items[bisect_left(items, within_user(c), key=within_user)]
        if not items:
            del users[c.user]
            if not users:
                del self._groups[c.group]
            mine = self._users[c.user]
            del mine[c.group]
            if not mine:
                del self._users[c.user]
        self.slice_counts[c.slice] -= 1
        if not self.slice_counts[c.slice]:
            del self.slice_counts[c.slice]
        mine = self._slices[(c.group, c.user)]
        mine[c.slice] -= 1
        if not mine[c.slice]:
            del mine[c.slice]
            if not mine:
                del self._slices[(c.group, c.user)]
        if c.kind != "job":
            self._other_than_jobs[(c.group, c.user)] -= 1
            if not self._other_than_jobs[(c.group, c.user)]:
                del self._other_than_jobs[(c.group, c.user)]
        self._fresh.discard(cid)
        self.version += 1
        self._group_versions[c.group] += 1
        self._changed(c.group)
        return c, self._reasons.pop(cid, "")

    def reason(self, cid: str) -> str:
        """Why a queued request waits: what the last cycle said of it, of its user's jobs, or of its slice."""
        own = self._reasons.get(cid, "")
        if (self._slice_reasons or self._capped) and cid not in self._looked_at and cid not in self._fresh:
            c = self._by_id.get(cid)
            if c is not None:
                if c.kind == "job" and c.user in self._capped:
                    return self._capped[c.user]
                return self._slice_reasons.get(c.slice, own)
        return own

    def note_cycle(self, own: dict[str, str], slice_reasons: dict[str, str], stopped_early: bool,
                   capped: dict[str, str] | None = None) -> None:
        """Keep a cycle's reasons: its own for the requests it looked at; for the ones it passed
        with their user (`capped`) or, when it stopped early, did not reach, their user's or
        their slice's (worked out when asked)."""
        self._reasons.update((cid, why) for cid, why in own.items() if cid in self._by_id)
        self._looked_at = set(own) if (stopped_early or capped) else set()
        self._slice_reasons = dict(slice_reasons) if stopped_early else {}
        self._capped = dict(capped or {})
        self._fresh = set()
