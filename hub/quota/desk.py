"""The admission desk: quota check, placement and the queue, in one transaction.

It is the single writer of the allocation ledger (DESIGN.md: the service owns the state) and
the quota area's `AdmissionLedger`. Beside the `allocations` table it keeps in memory what
decisions read: the placer (which device holds what), the waiting queue (`waiting`) and usage
(`usage_ledger`), rebuilt from the table at start and changed with it on the service's
database thread; a transaction that rolls back undoes its in-memory changes (`journal`). So
an admission reads no history and a scheduling cycle touches only what it admits: the cycle
itself is `cycle.plan_admissions`, pure. With several service processes on one MariaDB the row
lock on `admission_lock` still serialises quota checks (placement state is per process: run
one service process, as DESIGN.md says).
"""
from __future__ import annotations

import dataclasses
import time
from fractions import Fraction
from typing import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from astrago.spawners.inventory import ClusterInventory
from astrago.spawners.placement import Placer

from ..service.interfaces.admission import AdmissionError, AdmissionOutcome, AdmissionRequest, AllocationRecord
from . import fairshare, journal, store, usage_ledger
from .books import QuotaBook
from .cycle import ADMISSION_CHARGE_HOURS, Candidate, JobBounds, plan_admissions
from .fit import SliceFit
from .limits import QuotaLimits, Request, Usage, check, queued_jobs_limit, running_jobs_limit
from .models import Allocation
from .fit import GANG_LIMIT
from .placements import (MEMBER_SEPARATOR, allocation_of, place_gang, placed_to_dict, release_gang,
                         restore_gang)
from .positions import QueuePositions
from .waiting import WaitingQueue

ACTIVE = store.ACTIVE

#: how old the usage that queue positions are worked out from may be (seconds)
POSITIONS_USAGE_S = 10


class AdmissionDesk:
    """The AdmissionLedger of the quota area (service.interfaces.admission)."""

    inventory_note = ""  # where the inventory came from (the area sets it)

    def __init__(self, inventory: ClusterInventory, *, half_life_s: float = fairshare.DEFAULT_HALF_LIFE_S,
                 gpu_hours_period_days: int = 30):
        self.inventory = inventory
        self.half_life_s = half_life_s
        self.gpu_hours_period_days = gpu_hours_period_days
        self.placer = Placer(inventory)
        self.fit = SliceFit(inventory)
        self._quota_book = QuotaBook()
        #: (cores, GiB) that admitted jobs may hold together on this machine (the local executor
        #: sets it); None: no bound (Kubernetes places jobs by their requests)
        self.job_capacity: tuple[Fraction, Fraction] | None = None
        self._queue: WaitingQueue | None = None
        self._usage: usage_ledger.UsageLedger | None = None
        self._positions: tuple = (None, {})
        self._fair: tuple = (None, None, None)

    # -- memory ----------------------------------------------------------

    def _memory(self, session: Session) -> tuple[WaitingQueue, usage_ledger.UsageLedger]:
        """The waiting queue and usage, read from the ledger the first time they are needed."""
        if self._queue is None:
            self._usage = self._usage_from_history(session, time.time())
            self._queue = WaitingQueue()
            for c, reason in store.queued(session):
                self._queue.add(c, reason)
        return self._queue, self._usage

    def _usage_from_history(self, session: Session, now: float) -> usage_ledger.UsageLedger:
        horizon = now - max(8 * self.half_life_s, self.gpu_hours_period_days * 86400.0)  # older: below 0.4%
        return usage_ledger.rebuild(self.half_life_s, self.gpu_hours_period_days * 86400.0, store.held(session),
                                    store.released_since(session, horizon), now)

    def restore(self, session: Session) -> list[str]:
        """Re-hold the devices of admitted allocations after a restart and read the queue and
        usage; returns ids that could not be restored (their devices are gone): those are released."""
        lost = []
        for alloc in session.scalars(select(Allocation).where(Allocation.status == "admitted")
                                     .order_by(Allocation.admitted_at)):
            if not restore_gang(self.placer, alloc.id, alloc.slice, alloc.placement or {}, alloc.replicas or 1):
                alloc.status = "released"
                alloc.released_at = store.from_ts(time.time())
                alloc.reason = "its devices are no longer in the inventory"
                lost.append(alloc.id)
        session.flush()
        self._queue = None
        self._memory(session)
        return lost

    # -- quota -----------------------------------------------------------

    def limits_for(self, session: Session, user: str, groups: list[str]) -> QuotaLimits:
        return store.limits_for(session, user, groups)

    def usage_of(self, session: Session, user: str, now: float | None = None) -> Usage:
        """What `user` holds now and their GPU-hours in the quota period."""
        return self._memory(session)[1].usage(user, time.time() if now is None else now)

    def quotas_changed(self) -> None:
        """Call after changing the quotas table outside `admit`."""
        self._quota_book.invalidate()

    def units_and_fit(self, slice_name: str) -> Fraction:
        """GPU units of a slice here; raises AdmissionError when invalid or never placeable."""
        if self.fit.inventory is not self.inventory:  # the inventory was replaced
            self.fit = SliceFit(self.inventory)
        return self.fit.units(slice_name)

    # -- the operations ---------------------------------------------------

    def admit(self, session: Session, req: AdmissionRequest) -> AdmissionOutcome:
        store.lock(session)
        queue, usage = self._memory(session)
        if req.client_key:
            existing = store.by_client_key(session, req.client_key)
            if existing is not None:
                return AdmissionOutcome(self.describe(session, existing), created=False)
        replicas = req.replicas or 1
        if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= GANG_LIMIT:
            raise AdmissionError("invalid-request", f"replicas must be a whole number from 1 to {GANG_LIMIT}.")
        units = self.units_and_fit(req.slice)
        self.fit.check_gang(req.slice, replicas)
        self._quota_book.refresh(session)
        limits = self._quota_book.limits(req.user, req.groups)
        now = time.time()
        # a gang is charged per replica's slice: its units, cpu and memory summed, `replicas` slices
        request = Request(req.slice, units * replicas, store.amount(req.cpu) * replicas,
                          store.amount(req.memory_gib) * replicas, replicas)
        over = check(limits, usage.usage(req.user, now, with_hours=limits.gpu_hours is not None), request)
        if over and req.wait_over_quota and not check(limits, Usage(), request):
            over_now, over = over, []  # fits the quota once what the user holds is released: wait
        else:
            over_now = []
        if over:
            first = over[0]
            if first.dimension.startswith("slice:") and first.limit == 0:
                raise AdmissionError("quota-exceeded", f"Your groups do not allow {req.slice} slices.",
                                     {"dimension": first.dimension, "exceeded": [o.to_dict() for o in over]})
            raise AdmissionError("quota-exceeded", " ".join(o.sentence() for o in over)
                                 + " Stop something you run, or ask for more quota on your My AstraGo page.",
                                 {"dimension": first.dimension, "left": first.to_dict()["left"],
                                  "exceeded": [o.to_dict() for o in over]})
        weights = {g: self._quota_book.weights[g] for g in req.groups if g in self._quota_book.weights}
        alloc = store.new_allocation(
            session, owner_kind=req.owner_kind, owner_id=req.owner_id, user=req.user, groups=req.groups,
            accounting_group=fairshare.accounting_group(req.groups, weights), slice_name=req.slice,
            units=request.gpu_units, cpu=req.cpu * replicas, memory_gib=req.memory_gib * replicas,
            priority=req.priority, client_key=req.client_key, at=now, replicas=replicas)
        why = ""
        if over_now:
            why = "over quota: " + " ".join(o.sentence() for o in over_now)
        elif req.owner_kind == "job":
            bound = self._job_bounds(usage, {req.user: limits}).refusal(req.user, request.cpu, request.memory_gib)
            why = f"waiting: {bound}" if bound else ""
        placement = None if why else place_gang(self.placer, alloc.id, req.slice, replicas)
        if placement is not None:
            journal.record(session, lambda: release_gang(self.placer, alloc.id, replicas))
            alloc.status = "admitted"
            alloc.admitted_at = alloc.created_at
            alloc.placement = placed_to_dict(placement)
            session.flush()
            journal.record(session, usage.hold(store.held_of(alloc), now))
        else:
            alloc.reason = why or f"waiting: {self.placer.last_refusal or 'no capacity'}"
            session.flush()
            self._enqueue(session, queue, store.candidate_of(alloc), alloc.reason)
        return AdmissionOutcome(self.describe(session, alloc))

    def release(self, session: Session, allocation_id: str, reason: str = "released", *,
                schedule: bool = True) -> AdmissionOutcome:
        """Release an admitted allocation (its devices go to the queue: a cycle runs, unless
        `schedule=False`) or take a queued one out of the queue."""
        store.lock(session)
        queue, usage = self._memory(session)
        alloc = session.get(Allocation, allocation_id)
        if alloc is None:
            raise AdmissionError("not-found", f"No allocation {allocation_id}.")
        admitted = []
        if alloc.status in ACTIVE:
            was_admitted = alloc.status == "admitted"
            now = time.time()
            alloc.status = "released" if was_admitted else "cancelled"
            alloc.released_at = store.from_ts(now)
            alloc.reason = reason
            if was_admitted:
                held_where, replicas = dict(alloc.placement or {}), alloc.replicas or 1
                if release_gang(self.placer, alloc.id, replicas):
                    journal.record(session, lambda: restore_gang(self.placer, alloc.id, alloc.slice, held_where,
                                                                 replicas))
                journal.record(session, usage.release(alloc.id, now))
                if schedule:
                    admitted = self.schedule(session)
            else:
                self._dequeue(session, queue, alloc.id)
        return AdmissionOutcome(self.describe(session, alloc), created=False, admitted_now=admitted)

    def schedule(self, session: Session) -> list[str]:
        """One scheduling cycle: admit queued requests that fit now, in fair-share order
        (smaller ones backfilled past a head that does not fit). Returns the admitted ids.

        The cycle is `plan_admissions` over the queue and usage in memory (read lazily: only the
        users it reaches); the database sees one write of the rows it admits."""
        queue, usage = self._memory(session)
        if not len(queue):
            return []
        now = time.time()
        self._quota_book.refresh(session)
        limits = _LazyLimits(self._quota_book, queue)
        result = plan_admissions(queue, self.placer, **self._order_inputs(queue, usage, now), limits=limits,
                                 usage=_LazyUsage(usage, now), jobs=self._job_bounds(usage, limits))
        for alloc_id, placed in result.admitted:
            replicas = len(placed) if isinstance(placed, list) else 1
            journal.record(session, lambda a=alloc_id, n=replicas: release_gang(self.placer, a, n))
        admitted = [(alloc_id, placed_to_dict(placed)) for alloc_id, placed in result.admitted]
        store.mark_admitted(session, admitted, now)
        for alloc_id, _where in admitted:
            c = self._dequeue(session, queue, alloc_id)
            journal.record(session, usage.hold(_held(c, now), now))
            found = session.identity_map.get(identity_key(Allocation, alloc_id))
            if found is not None:  # the update went around the ORM: what it holds is stale
                session.expire(found, ["status", "admitted_at", "placement", "reason"])
        queue.note_cycle(result.reasons.own, result.full, result.stopped_early, result.capped)
        return [alloc_id for alloc_id, _ in admitted]

    # -- views -----------------------------------------------------------

    def positions(self, session: Session) -> dict[str, int]:
        """Queue position (1 = next) of every queued request: the fair order as it stands."""
        return self._queue_positions(session).all()

    def _queue_positions(self, session: Session) -> QueuePositions:
        """The fair order's positions, following the queue as it changes, for usage as it was at
        most `POSITIONS_USAGE_S` ago (a position is a forecast: the cycle itself always weighs
        usage as it is) and the weights as they are."""
        queue, usage = self._memory(session)
        self._quota_book.refresh(session)
        now = time.time()
        key = (id(usage), id(self._quota_book.weights), int(now // POSITIONS_USAGE_S))
        if self._positions[0] != key:
            self._positions = (key, QueuePositions(queue, **self._order_inputs(queue, usage, now)))
        return self._positions[1]

    def waiting(self, session: Session) -> list[tuple[Candidate, str]]:
        """The queue in the order the next cycle considers it, with each request's reason."""
        queue, _ = self._memory(session)
        positions = self.positions(session)
        return [(queue.get(cid), queue.reason(cid)) for cid in sorted(positions, key=positions.get)]

    def describe(self, session: Session, alloc: "Allocation | str",
                 positions: Mapping[str, int] | None = None) -> dict | None:
        """The allocation (a row, or its id) as the API shows it; None for an unknown id."""
        if isinstance(alloc, str):
            alloc = session.get(Allocation, alloc)
            if alloc is None:
                return None
        out = store.describe(alloc)
        if alloc.status == "queued":
            queue, _ = self._memory(session)
            if positions is None:
                out["position"] = self._queue_positions(session).position_of(alloc.id)
            else:
                out["position"] = positions.get(alloc.id)
            out["queue_length"] = len(queue)
            if alloc.id in queue:
                out["reason"] = queue.reason(alloc.id)
        return out

    def describe_queue(self, session: Session) -> list[dict]:
        """Every queued allocation as the API shows it, in queue order."""
        positions = self.positions(session)
        ids = sorted(positions, key=positions.get)
        rows = {}
        for i in range(0, len(ids), 500):
            rows.update((a.id, a) for a in session.scalars(select(Allocation).where(Allocation.id.in_(ids[i:i + 500]))))
        return [self.describe(session, rows[i], positions) for i in ids if i in rows]

    # -- the rest of the AdmissionLedger interface ---------------------------

    def allocations(self, session: Session, ids) -> dict[str, AllocationRecord]:
        ids = list(ids)
        if not ids:
            return {}
        return {a.id: _record(a) for a in session.scalars(select(Allocation).where(Allocation.id.in_(ids)))}

    def held(self, session: Session) -> list[AllocationRecord]:
        return [_record(a) for a in session.scalars(select(Allocation).where(Allocation.status == "admitted")
                                                    .order_by(Allocation.admitted_at))]

    def queued_jobs_limit(self, session: Session, user: str, groups) -> int | None:
        return queued_jobs_limit(self.limits_for(session, user, list(groups)))

    def set_job_capacity(self, cpu: float, memory_gib: float) -> None:
        self.job_capacity = (Fraction(cpu).limit_denominator(1000), Fraction(memory_gib).limit_denominator(1000))

    def device_layout(self) -> list:
        """The placer's snapshot, each holder named by its allocation (a gang's replicas are held
        on the placer as `<allocation id>#<rank>`)."""
        return [_holders_by_allocation(gpu) for gpu in self.placer.snapshot()]

    def replace_inventory(self, session: Session, inventory: ClusterInventory, *, drained=None, node_objects=None,
                          pods=None):
        from .inventory_change import replace_inventory

        return replace_inventory(session, self, inventory, drained=drained, node_objects=node_objects, pods=pods)

    def swap_placer(self, inventory: ClusterInventory, placer: Placer) -> None:
        """Place on `placer` over `inventory` from now on (what may ever be placed changes too)."""
        self.inventory = inventory
        self.placer = placer
        self.fit = SliceFit(inventory)

    def usage_ledger(self, session: Session, now: float | None = None) -> usage_ledger.UsageLedger:
        """Usage as kept in memory (the accounting reader's source of GPU-hours); for another
        moment than now, the same ledger built from the history up to `now`."""
        if now is None or abs(now - time.time()) < 60:
            return self._memory(session)[1]
        return self._usage_from_history(session, now)

    # -- internals ---------------------------------------------------------

    def _order_inputs(self, queue: WaitingQueue, usage, now: float) -> dict:
        """What the fair order weighs: each group's and user's usage, worked out for those it
        reaches and kept while usage is unchanged within a second (decay in a second is nothing)."""
        key = (id(usage), usage.version, int(now))
        if self._fair[0] != key:
            self._fair = (key, _FairUsage(usage, "group", now), _FairUsage(usage, "user", now))
        return {"group_usage": self._fair[1], "user_usage": self._fair[2], "weights": self._quota_book.weights}

    def _job_bounds(self, usage, limits: Mapping[str, QuotaLimits]) -> JobBounds:
        """What admitted jobs hold now: per user (against running_jobs) and together (against
        the machine's capacity)."""
        return JobBounds(_RunningJobs(usage), _LazyCaps(limits), self.job_capacity, usage.job_cpu,
                         usage.job_memory_gib)

    def _enqueue(self, session: Session, queue: WaitingQueue, c: Candidate, reason: str) -> None:
        queue.add(c, reason)
        journal.record(session, lambda: queue.remove(c.id))

    def _dequeue(self, session: Session, queue: WaitingQueue, alloc_id: str) -> Candidate | None:
        taken = queue.remove(alloc_id)
        if taken is None:
            return None
        journal.record(session, lambda: queue.add(*taken))
        return taken[0]


def _held(c: Candidate, now: float) -> usage_ledger.Held:
    return usage_ledger.Held(c.id, c.user, c.group, c.slice, c.units, c.cpu, c.memory_gib, c.kind, now, c.replicas)


def _holders_by_allocation(gpu):
    if not any(MEMBER_SEPARATOR in h for h in gpu.holders) and \
            not any(MEMBER_SEPARATOR in (i.holder or "") for i in gpu.instances):
        return gpu
    return dataclasses.replace(
        gpu, holders=tuple(allocation_of(h) for h in gpu.holders),
        instances=tuple(dataclasses.replace(i, holder=allocation_of(i.holder) if i.holder else None)
                        for i in gpu.instances))


def _record(a: Allocation) -> AllocationRecord:
    return AllocationRecord(a.id, a.user, a.owner_kind, a.owner_id, a.slice, a.status, dict(a.placement or {}),
                            a.admitted_at, a.released_at)


class _RunningJobs(dict):
    """user -> admitted jobs: the usage ledger's count until a cycle adds to it."""

    def __init__(self, usage):
        super().__init__()
        self._usage = usage

    def get(self, user, default=0):
        return dict.get(self, user) if user in self else self._usage.running_jobs(user)


class _Lazy(Mapping):
    """A mapping worked out key by key when asked (`get`), remembered for the cycle."""

    def __init__(self):
        self._memo: dict = {}

    def __getitem__(self, key):
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self):
        return iter(self._memo)

    def __len__(self):
        return len(self._memo)


class _LazyLimits(_Lazy):
    """user -> effective quota, for the users a cycle reaches (their groups: those of one of
    their queued requests)."""

    def __init__(self, book: QuotaBook, queue: WaitingQueue):
        super().__init__()
        self._book, self._queue = book, queue

    def get(self, user, default=None):
        found = self._memo.get(user)
        if found is None:
            if not self._queue.has_user(user):
                return default
            found = self._memo[user] = self._book.limits(user, self._queue.groups_of(user))
        return found


class _LazyCaps(_Lazy):
    """user -> running_jobs limit, from the lazy limits."""

    def __init__(self, limits: Mapping[str, QuotaLimits]):
        super().__init__()
        self._limits = limits

    def get(self, user, default=None):
        found = self._memo.get(user)
        if found is None:
            limits = self._limits.get(user)
            if limits is None:
                return default
            found = self._memo[user] = running_jobs_limit(limits)
        return found


class _FairUsage(_Lazy):
    """group or user -> usage as the fair order weighs it (usage_ledger.UsageLedger.fair_value)."""

    def __init__(self, usage, kind: str, now: float):
        super().__init__()
        self._usage, self._kind, self._now = usage, kind, now

    def get(self, name, default=0.0):
        found = self._memo.get(name)
        if found is None:
            found = self._memo[name] = self._usage.fair_value(self._kind, name, self._now, ADMISSION_CHARGE_HOURS)
        return found


class _LazyUsage(_Lazy):
    """user -> Usage now, for the users a cycle checks against a quota."""

    def __init__(self, usage, now: float):
        super().__init__()
        self._usage, self._now = usage, now

    def get(self, user, default=None):
        found = self._memo.get(user)
        if found is None:
            found = self._memo[user] = self._usage.usage(user, self._now)
        return found
