"""Queue positions, kept per group as requests come and go (pure).

The fair order (cycle.iter_fair_order, charging every request) puts each request at a key known
beforehand: within its group it goes by its user's usage plus what the user's earlier requests
charge, then user; across groups by the group's usage over its weight plus what the group's
earlier requests charge, then group (cycle.fair_positions sorts all of them at once). So a
request's position is the number of requests of its own group before it plus the number of
other groups' requests with a smaller key.

`QueuePositions` sorts every request's key once, then follows the queue's changes group by
group: the position of a request just queued is one binary search in that sorted list,
corrected for the few groups that changed since (their old and new keys), not a walk over the
queue. After many changed groups it sorts again.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Mapping

from .cycle import ADMISSION_CHARGE_HOURS, group_serving_order

#: changed groups followed before all keys are sorted again
RESORT_AFTER = 32


def _order_key(entry):
    return entry[0], entry[1], entry[2]


class _GroupOrder:
    """One group's requests in the order they are served, with the key each comes up at."""

    __slots__ = ("ids", "keys", "where")

    def __init__(self, group: str, users: Mapping[str, list], group_usage, user_usage, weights, charge: float):
        served = group_serving_order(group, users, group_usage, user_usage, weights, charge)
        self.ids = [c.id for _key, c in served]
        self.keys = [key for key, _c in served]
        self.where = {cid: j for j, cid in enumerate(self.ids)}


_NO_KEYS: list = []


class QueuePositions:
    """Positions (1 = next) in the fair order of a `WaitingQueue`, for fixed usage and weights."""

    def __init__(self, queue, group_usage: Mapping[str, float], user_usage: Mapping[str, float],
                 weights: Mapping[str, float], charge_hours: float = ADMISSION_CHARGE_HOURS):
        self.queue = queue
        self._inputs = (group_usage, user_usage, weights, charge_hours)
        self._groups: dict[str, _GroupOrder] = {}
        self._built: dict[str, int] = {}  # group -> the queue's version of it its order was built from
        self._sorted: list | None = None  # (key, group) of every request when last sorted
        self._sorted_keys: dict[str, list] = {}  # group -> its keys in that sort
        self._changed: set[str] = set()  # groups changed since
        self._mark = 0
        self._all: tuple = (None, {})

    def _group(self, group: str) -> _GroupOrder | None:
        version = self.queue.group_version(group)
        if self._built.get(group) != version:
            users = self.queue.grouped().get(group)
            if users:
                group_usage, user_usage, weights, charge = self._inputs
                self._groups[group] = _GroupOrder(group, users, group_usage, user_usage, weights, charge)
            else:
                self._groups.pop(group, None)
            self._built[group] = version
        return self._groups.get(group)

    def _follow(self) -> None:
        changes = None if self._sorted is None else self.queue.changes_since(self._mark)
        if changes is not None:
            self._changed.update(changes)
            self._mark = self.queue.change_mark()
            if len(self._changed) <= RESORT_AFTER:
                return
        entries, keys = [], {}
        for group in self.queue.grouped():
            g = self._group(group)
            keys[group] = g.keys
            entries.extend(zip(g.keys, [group] * len(g.keys)))
        entries.sort()
        self._sorted, self._sorted_keys, self._changed = entries, keys, set()
        self._mark = self.queue.change_mark()

    def position_of(self, cid: str) -> int | None:
        c = self.queue.get(cid)
        if c is None:
            return None
        self._follow()
        group = c.group
        mine = self._group(group)
        j = mine.where[cid]
        key = mine.keys[j]
        # others' requests before it as sorted, less this group's there, plus its own now before it
        before = bisect_left(self._sorted, (key, group)) - bisect_left(self._sorted_keys.get(group, _NO_KEYS), key) + j
        for other in self._changed:
            if other == group:
                continue
            now = self._group(other)
            count = bisect_right if other < group else bisect_left  # equal keys: by group name
            before += count(now.keys if now is not None else _NO_KEYS, key) - count(
                self._sorted_keys.get(other, _NO_KEYS), key)
        return before + 1

    def all(self) -> dict[str, int]:
        """Every request's position (worked out again when the queue changed)."""
        if self._all[0] != self.queue.version:
            order = []
            for group in self.queue.grouped():
                g = self._group(group)
                order.extend(zip(g.keys, [group] * len(g.ids), range(len(g.ids)), g.ids))
            order.sort(key=_order_key)
            self._all = (self.queue.version, {e[3]: n for n, e in enumerate(order, start=1)})
        return self._all[1]
