"""The jobs area's database work. Every function runs inside one transaction on the service's
database thread (`await db.run(fn, ...)`), next to the admission ledger (the quota area's, through
the AdmissionLedger interface: never its tables), so a status change and the matching allocation
change commit together or not at all."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..service.interfaces.admission import AdmissionError, AdmissionLedger, AdmissionRequest, AllocationRecord
from . import states
from .executors.base import JobRun
from .model import Job, JobDefinition, JobEvent
from .spec import JobSpec, replicas_of


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat() + "Z" if dt else None


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def transition(session: Session, job: Job, new: str, reason: str = "") -> None:
    states.check_transition(job.status, new)
    job.status = new
    job.reason = reason
    job.updated_at = utcnow()
    session.add(JobEvent(job_id=job.id, at=job.updated_at, status=new, attempt=job.attempt, reason=reason))


# -- submitting -----------------------------------------------------------------

def find_by_key(session: Session, owner: str, client_key: str | None) -> Job | None:
    """The job `owner` already submitted with this idempotency key, if any."""
    if not client_key:
        return None
    return session.scalars(select(Job).where(Job.owner == owner, Job.client_key == client_key)).first()


def check_queued_limit(session: Session, ledger: AdmissionLedger, owner: str, groups: list[str]) -> None:
    """Refuse a new job when its owner already has as many waiting as their quota allows."""
    from sqlalchemy import func

    limit = ledger.queued_jobs_limit(session, owner, groups)
    if limit is None:
        return
    waiting = session.scalar(select(func.count()).select_from(Job).where(
        Job.owner == owner, Job.status.in_((states.CREATED, states.QUEUED)))) or 0
    if waiting >= limit:
        raise AdmissionError(
            "quota-exceeded",
            f"You have {waiting} queued jobs, the limit is {limit}: wait for some to finish or cancel them "
            "(astrago job cancel ID).",
            {"dimension": "queued_jobs", "limit": limit, "used": waiting})


def submit(session: Session, ledger: AdmissionLedger, spec: JobSpec, owner: str, groups: list[str], executor: str,
           definition_id: str | None = None, client_key: str | None = None) -> Job:
    """Record a job (CREATED) and ask for its admission (QUEUED). An AdmissionError (invalid
    slice, never placeable, over quota even with nothing held, too many jobs waiting) rolls both
    back. With `client_key`, a job the owner submitted with the same key is returned instead
    (the caller tells them apart by `Job.created_at`/`find_by_key` first)."""
    existing = find_by_key(session, owner, client_key)
    if existing is not None:
        return existing
    check_queued_limit(session, ledger, owner, groups)
    now = utcnow()
    job = Job(id=new_id(), owner=owner, groups=sorted(groups), name=spec.name, kind=spec.kind, input=spec.input,
              code=spec.code, command=spec.command, parameters=dict(spec.parameters), workdir=spec.workdir,
              slice=spec.slice, cpu=spec.cpu, memory_gib=spec.memory_gib, image=spec.image, env=dict(spec.env),
              priority=spec.priority, max_runtime_s=spec.max_runtime_s, retries=spec.retries, attempt=0,
              distributed=dict(spec.distributed),
              status=states.CREATED, reason="", executor=executor, process={}, log_path="", outputs=[],
              cancel_requested=False, definition_id=definition_id, client_key=client_key or None,
              created_at=now, updated_at=now)
    session.add(job)
    session.add(JobEvent(job_id=job.id, at=now, status=states.CREATED, attempt=0, reason="submitted"))
    session.flush()
    enqueue(session, ledger, job)
    return job


def enqueue(session: Session, ledger: AdmissionLedger, job: Job, why: str = "") -> None:
    """Ask the ledger to admit the job's next attempt; the job waits QUEUED (it may be admitted at once).
    A distributed job is one gang request: each replica on its own slice, all admitted or none."""
    outcome = ledger.admit(session, AdmissionRequest(
        owner_kind="job", owner_id=job.id, user=job.owner, groups=list(job.groups), slice=job.slice, cpu=job.cpu,
        memory_gib=job.memory_gib, client_key=f"job:{job.id}:{job.attempt + 1}", priority=job.priority,
        wait_over_quota=True, replicas=replicas_of(job.distributed)))
    job.allocation_id = outcome.allocation["id"]
    job.queued_at = utcnow()
    reason = why or outcome.allocation.get("reason") or ("admitted" if outcome.allocation["status"] == "admitted"
                                                          else "waiting for capacity")
    transition(session, job, states.QUEUED, reason)


# -- the scheduler's steps ------------------------------------------------------

def active_jobs_using(session: Session, paths) -> list[dict]:
    """Jobs that have not ended whose environment points at one of `paths` (attached datasets)."""
    wanted = set(paths)
    found = []
    for job in session.scalars(select(Job).where(Job.status.in_(sorted(states.ACTIVE)))):
        if any(k.startswith("ASTRAGO_DATASET_") and v in wanted for k, v in (job.env or {}).items()):
            found.append({"id": job.id, "owner": job.owner, "status": job.status})
    return found


def run_of(job: Job, placement: dict) -> JobRun:
    return JobRun(id=job.id, owner=job.owner, attempt=job.attempt, kind=job.kind, name=job.name, input=job.input,
                  code=job.code, command=job.command, parameters=dict(job.parameters or {}), workdir=job.workdir,
                  slice=job.slice, cpu=job.cpu, memory_gib=job.memory_gib, image=job.image, env=dict(job.env or {}),
                  placement=dict(placement or {}), max_runtime_s=job.max_runtime_s, started_at=job.started_at,
                  process=dict(job.process or {}), log_path=job.log_path, outputs=tuple(job.outputs or ()),
                  distributed=dict(job.distributed or {}))


def is_claimed(job: Job) -> bool:
    """A QUEUED job whose attempt is being started (its process may exist already)."""
    return job.status == states.QUEUED and bool((job.process or {}).get("claimed"))


def _allocations_of(session: Session, ledger: AdmissionLedger, jobs) -> dict[str, AllocationRecord]:
    """The allocations of these jobs (by allocation id), in one call to the ledger."""
    ids = sorted({j.allocation_id for j in jobs if j.allocation_id})
    return ledger.allocations(session, ids) if ids else {}


def schedule_and_claim(session: Session, ledger: AdmissionLedger) -> list[JobRun]:
    """One scheduling cycle of the ledger, then every queued job whose admission came through is
    claimed for its next attempt: still QUEUED ("starting"), its attempt counted and marked
    `claimed` (committed before its process starts: a crash after this commit finds the claim
    and looks for the process by its marker; it never starts it a second time). It becomes
    RUNNING only once its process runs (`record_launch`)."""
    ledger.schedule(session)
    queued = session.scalars(select(Job).where(Job.status == states.QUEUED, Job.allocation_id.is_not(None))).all()
    allocs = _allocations_of(session, ledger, queued)
    rows = [(job, allocs[job.allocation_id]) for job in queued
            if job.allocation_id in allocs and allocs[job.allocation_id].status == "admitted"]
    rows.sort(key=lambda row: row[1].admitted_at or datetime.min)
    claimed = []
    now = utcnow()
    for job, alloc in rows:
        if is_claimed(job):
            continue  # being started
        job.attempt += 1
        job.started_at = now
        job.finished_at = None
        job.exit_code = None
        job.process = {"claimed": job.attempt}
        job.log_path = ""
        job.outputs = []
        job.reason = "starting"
        job.updated_at = now
        claimed.append(run_of(job, dict(alloc.placement)))
    return claimed


def still_claimed(session: Session, ledger: AdmissionLedger, job_id: str, attempt: int) -> bool:
    """True while the attempt may start (nobody cancelled the job or released its admission)."""
    job = session.get(Job, job_id)
    if job is None or not is_claimed(job) or job.attempt != attempt or job.cancel_requested:
        return False
    alloc = _allocations_of(session, ledger, [job]).get(job.allocation_id)
    return alloc is not None and alloc.status == "admitted"


def unclaim(session: Session, job_id: str, attempt: int) -> None:
    """The attempt's process never ran (AstraGo stopped while starting it): it waits to start again."""
    job = session.get(Job, job_id)
    if job is not None and is_claimed(job) and job.attempt == attempt:
        job.attempt -= 1
        job.process = {}
        job.started_at = None
        job.reason = "waiting to start again (AstraGo restarted before its process ran)"
        job.updated_at = utcnow()


def _runs_with_placement(session: Session, ledger: AdmissionLedger, jobs) -> list[tuple[JobRun, str]]:
    allocs = _allocations_of(session, ledger, jobs)
    return [(run_of(job, dict(allocs[job.allocation_id].placement) if job.allocation_id in allocs else {}),
             job.executor) for job in jobs]


def claimed_runs(session: Session, ledger: AdmissionLedger) -> list[tuple[JobRun, str]]:
    """(run, executor name) of every claimed attempt, for a restart to look for."""
    jobs = [job for job in session.scalars(select(Job).where(Job.status == states.QUEUED)) if is_claimed(job)]
    return _runs_with_placement(session, ledger, jobs)


def record_launch(session: Session, job_id: str, attempt: int, process: dict, log_path: str, outputs: list,
                  note: str) -> None:
    """The attempt's process runs: the job becomes RUNNING (from its claim)."""
    job = session.get(Job, job_id)
    if job is None or job.attempt != attempt:
        return
    job.process = process
    job.log_path = log_path
    job.outputs = list(outputs)
    reason = "running" + (f"; {note}" if note else "")
    if is_claimed(job) or job.status == states.QUEUED:
        transition(session, job, states.RUNNING, reason)
    else:
        job.reason = reason
        job.updated_at = utcnow()


def finish(session: Session, ledger: AdmissionLedger, job_id: str, attempt: int, status: str, reason: str,
           exit_code: int | None = None, retry: bool = True) -> dict | None:
    """End a RUNNING attempt and release its allocation, in one transaction. A FAILED attempt
    with retries left goes back to the queue instead. Returns the job (None when the attempt
    had already ended: a second report of the same end changes nothing)."""
    job = session.get(Job, job_id)
    if job is None or job.attempt != attempt or not (job.status == states.RUNNING or is_claimed(job)):
        return None
    if is_claimed(job):  # it never ran (could not start): no retry of a start that failed
        retry = False
    if job.cancel_requested and status in (states.FAILED, states.COMPLETED):
        status = states.CANCELLED
    job.exit_code = exit_code
    job.finished_at = utcnow()
    if job.allocation_id:
        try:
            ledger.release(session, job.allocation_id, f"job {status.lower()}")
        except AdmissionError:
            pass
    if status == states.FAILED and retry and job.attempt <= job.retries and not job.cancel_requested:
        enqueue(session, ledger, job, why=f"retry {job.attempt} of {job.retries} after: {reason}")
        return job_dict(job)
    transition(session, job, status, reason)
    return job_dict(job)


def cancel_waiting(session: Session, ledger: AdmissionLedger, job_id: str, actor: str) -> dict | None:
    """Cancel a CREATED or QUEUED job (leaves the queue). None when it is not waiting any more."""
    job = session.get(Job, job_id)
    if job is None or job.status not in (states.CREATED, states.QUEUED):
        return None
    if job.allocation_id:
        try:
            ledger.release(session, job.allocation_id, f"job cancelled by {actor}")
        except AdmissionError:
            pass
    job.cancel_requested = True
    job.finished_at = utcnow()
    transition(session, job, states.CANCELLED, f"cancelled by {actor} while queued")
    return job_dict(job)


def request_cancel(session: Session, job_id: str) -> str | None:
    job = session.get(Job, job_id)
    if job is None:
        return None
    if job.status == states.RUNNING:
        job.cancel_requested = True
    return job.status


def running_runs(session: Session, ledger: AdmissionLedger) -> list[tuple[JobRun, str]]:
    """(run, executor name) of every RUNNING job, for re-attaching after a restart."""
    return _runs_with_placement(session, ledger, session.scalars(select(Job).where(Job.status == states.RUNNING)).all())


def record_process(session: Session, job_id: str, attempt: int, process: dict) -> None:
    job = session.get(Job, job_id)
    if job is not None and job.attempt == attempt:
        job.process = process


def orphans(session: Session, ledger: AdmissionLedger) -> list[tuple[str, int, str]]:
    """Fix jobs whose allocation was released behind their back (an administrator released the
    admission): a queued one is cancelled here; running ones are returned (id, attempt, reason)
    for the scheduler to stop. Also releases admissions still held by finished jobs."""
    to_stop = []
    active = session.scalars(select(Job).where(Job.status.in_((states.QUEUED, states.RUNNING)),
                                               Job.allocation_id.is_not(None))).all()
    allocs = _allocations_of(session, ledger, active)
    for job in active:
        alloc = allocs.get(job.allocation_id)
        if alloc is None or alloc.status not in ("released", "cancelled"):
            continue
        described = ledger.describe(session, alloc.id) or {}
        why = f"its admission was released ({described.get('reason') or alloc.status})"
        if job.status == states.QUEUED:
            job.finished_at = utcnow()
            transition(session, job, states.CANCELLED, why)
        else:
            to_stop.append((job.id, job.attempt, why))
    held_by_jobs = {a.id for a in ledger.held(session) if a.owner_kind == "job"}
    if held_by_jobs:
        stale = session.scalars(select(Job.allocation_id).where(Job.allocation_id.in_(sorted(held_by_jobs)),
                                                                Job.status.in_(tuple(states.TERMINAL)))).all()
        for alloc_id in stale:
            ledger.release(session, alloc_id, "its job has ended")
    return to_stop


def due_definitions(session: Session, now: datetime) -> list[JobDefinition]:
    return session.scalars(select(JobDefinition).where(JobDefinition.active.is_(True),
                                                       JobDefinition.next_run_at.is_not(None),
                                                       JobDefinition.next_run_at <= now)).all()


# -- views ------------------------------------------------------------------------

def job_dict(job: Job, allocation: dict | None = None) -> dict:
    out = {
        "id": job.id, "name": job.name, "owner": job.owner, "kind": job.kind, "status": job.status,
        "reason": job.reason, "input": job.input, "command": job.command, "has_code": bool(job.code),
        "parameters": job.parameters, "workdir": job.workdir, "slice": job.slice, "cpu": job.cpu,
        "memory_gib": job.memory_gib, "image": job.image, "env": job.env, "priority": job.priority,
        "max_runtime": job.max_runtime_s, "retries": job.retries, "attempt": job.attempt,
        "exit_code": job.exit_code, "executor": job.executor, "outputs": job.outputs,
        "allocation_id": job.allocation_id, "definition_id": job.definition_id,
        "cancel_requested": job.cancel_requested, "distributed": dict(job.distributed or {}),
        "replicas": replicas_of(job.distributed),
        "process": {k: v for k, v in (job.process or {}).items() if k in ("pid", "host", "account", "namespace", "name",
                                                                          "limits_enforced", "kind", "pids")},
        "created_at": iso(job.created_at), "queued_at": iso(job.queued_at), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at), "updated_at": iso(job.updated_at),
    }
    if allocation is not None:
        out["queue"] = {k: allocation.get(k) for k in ("status", "position", "queue_length", "reason", "placement",
                                                        "gpu_units")}
        if job.status == states.QUEUED and allocation.get("status") == "queued":
            pos = allocation.get("position")
            out["reason"] = (f"{allocation.get('reason') or 'waiting'} (position {pos} of "
                             f"{allocation.get('queue_length')})") if pos else allocation.get("reason") or job.reason
    return out


def describe_jobs(session: Session, ledger: AdmissionLedger, jobs: list[Job]) -> list[dict]:
    """Jobs as JSON with their queue state (queue positions computed once)."""
    allocs = _allocations_of(session, ledger, [j for j in jobs if j.status in (states.QUEUED, states.RUNNING)])
    positions = ledger.positions(session) if any(a.status == "queued" for a in allocs.values()) else {}
    out = []
    for job in jobs:
        alloc = allocs.get(job.allocation_id) if job.status in (states.QUEUED, states.RUNNING) else None
        out.append(job_dict(job, ledger.describe(session, alloc.id, positions) if alloc is not None else None))
    return out


def events_of(session: Session, job_id: str) -> list[dict]:
    rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
    return [{"at": iso(e.at), "status": e.status, "attempt": e.attempt, "reason": e.reason} for e in rows]
