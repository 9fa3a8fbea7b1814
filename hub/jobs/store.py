"""The jobs area's database work. Every function runs inside one transaction on the service's
database thread (`await service.db.run(fn, ...)`), next to the admission desk, so a status
change and the matching allocation change commit together or not at all."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..quota.desk import AdmissionDesk, AdmissionError, AdmissionRequest
from ..quota.models import Allocation
from . import states
from .executors.base import JobRun
from .model import Job, JobDefinition, JobEvent
from .spec import JobSpec, admission_totals


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


def check_queued_limit(session: Session, desk: AdmissionDesk, owner: str, groups: list[str]) -> None:
    """Refuse a new job when its owner already has as many waiting as their quota allows."""
    from sqlalchemy import func

    from ..quota.limits import queued_jobs_limit

    limit = queued_jobs_limit(desk.limits_for(session, owner, groups))
    waiting = session.scalar(select(func.count()).select_from(Job).where(
        Job.owner == owner, Job.status.in_((states.CREATED, states.QUEUED)))) or 0
    if waiting >= limit:
        raise AdmissionError(
            "quota-exceeded",
            f"You have {waiting} queued jobs, the limit is {limit}: wait for some to finish or cancel them "
            "(astrago job cancel ID).",
            {"dimension": "queued_jobs", "limit": limit, "used": waiting})


def submit(session: Session, desk: AdmissionDesk, spec: JobSpec, owner: str, groups: list[str], executor: str,
           definition_id: str | None = None, client_key: str | None = None) -> Job:
    """Record a job (CREATED) and ask for its admission (QUEUED). An AdmissionError (invalid
    slice, never placeable, over quota even with nothing held, too many jobs waiting) rolls both
    back. With `client_key`, a job the owner submitted with the same key is returned instead
    (the caller tells them apart by `Job.created_at`/`find_by_key` first)."""
    existing = find_by_key(session, owner, client_key)
    if existing is not None:
        return existing
    check_queued_limit(session, desk, owner, groups)
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
    enqueue(session, desk, job)
    return job


def enqueue(session: Session, desk: AdmissionDesk, job: Job, why: str = "") -> None:
    """Ask the desk to admit the job's next attempt; the job waits QUEUED (it may be admitted at once).
    A distributed job is one request for all its replicas together (`spec.admission_totals`)."""
    slice_name, cpu, memory_gib = admission_totals(job.slice, job.cpu, job.memory_gib, job.distributed)
    outcome = desk.admit(session, AdmissionRequest(
        owner_kind="job", owner_id=job.id, user=job.owner, groups=list(job.groups), slice=slice_name, cpu=cpu,
        memory_gib=memory_gib, client_key=f"job:{job.id}:{job.attempt + 1}", priority=job.priority,
        wait_over_quota=True))
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


def schedule_and_claim(session: Session, desk: AdmissionDesk) -> list[JobRun]:
    """One scheduling cycle of the desk, then every queued job whose admission came through is
    claimed for its next attempt: still QUEUED ("starting"), its attempt counted and marked
    `claimed` (committed before its process starts: a crash after this commit finds the claim
    and looks for the process by its marker; it never starts it a second time). It becomes
    RUNNING only once its process runs (`record_launch`)."""
    desk.schedule(session)
    rows = session.execute(select(Job, Allocation).join(Allocation, Allocation.id == Job.allocation_id)
                           .where(Job.status == states.QUEUED, Allocation.status == "admitted")
                           .order_by(Allocation.admitted_at)).all()
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
        claimed.append(run_of(job, alloc.placement))
    return claimed


def still_claimed(session: Session, job_id: str, attempt: int) -> bool:
    """True while the attempt may start (nobody cancelled the job or released its admission)."""
    job = session.get(Job, job_id)
    if job is None or not is_claimed(job) or job.attempt != attempt or job.cancel_requested:
        return False
    alloc = session.get(Allocation, job.allocation_id) if job.allocation_id else None
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


def claimed_runs(session: Session) -> list[tuple[JobRun, str]]:
    """(run, executor name) of every claimed attempt, for a restart to look for."""
    rows = session.execute(select(Job, Allocation).outerjoin(Allocation, Allocation.id == Job.allocation_id)
                           .where(Job.status == states.QUEUED)).all()
    return [(run_of(job, alloc.placement if alloc else {}), job.executor) for job, alloc in rows if is_claimed(job)]


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


def finish(session: Session, desk: AdmissionDesk, job_id: str, attempt: int, status: str, reason: str,
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
            desk.release(session, job.allocation_id, f"job {status.lower()}")
        except AdmissionError:
            pass
    if status == states.FAILED and retry and job.attempt <= job.retries and not job.cancel_requested:
        enqueue(session, desk, job, why=f"retry {job.attempt} of {job.retries} after: {reason}")
        return job_dict(job)
    transition(session, job, status, reason)
    return job_dict(job)


def cancel_waiting(session: Session, desk: AdmissionDesk, job_id: str, actor: str) -> dict | None:
    """Cancel a CREATED or QUEUED job (leaves the queue). None when it is not waiting any more."""
    job = session.get(Job, job_id)
    if job is None or job.status not in (states.CREATED, states.QUEUED):
        return None
    if job.allocation_id:
        try:
            desk.release(session, job.allocation_id, f"job cancelled by {actor}")
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


def running_runs(session: Session) -> list[tuple[JobRun, str]]:
    """(run, executor name) of every RUNNING job, for re-attaching after a restart."""
    rows = session.execute(select(Job, Allocation).outerjoin(Allocation, Allocation.id == Job.allocation_id)
                           .where(Job.status == states.RUNNING)).all()
    return [(run_of(job, alloc.placement if alloc else {}), job.executor) for job, alloc in rows]


def record_process(session: Session, job_id: str, attempt: int, process: dict) -> None:
    job = session.get(Job, job_id)
    if job is not None and job.attempt == attempt:
        job.process = process


def orphans(session: Session, desk: AdmissionDesk) -> list[tuple[str, int, str]]:
    """Fix jobs whose allocation was released behind their back (an administrator released the
    admission): a queued one is cancelled here; running ones are returned (id, attempt, reason)
    for the scheduler to stop. Also releases allocations still held by finished jobs."""
    to_stop = []
    rows = session.execute(select(Job, Allocation).join(Allocation, Allocation.id == Job.allocation_id)
                           .where(Job.status.in_((states.QUEUED, states.RUNNING)),
                                  Allocation.status.in_(("released", "cancelled")))).all()
    for job, alloc in rows:
        why = f"its admission was released ({alloc.reason or alloc.status})"
        if job.status == states.QUEUED:
            job.finished_at = utcnow()
            transition(session, job, states.CANCELLED, why)
        else:
            to_stop.append((job.id, job.attempt, why))
    stale = session.execute(select(Job.allocation_id).join(Allocation, Allocation.id == Job.allocation_id)
                            .where(Job.status.in_(tuple(states.TERMINAL)),
                                   Allocation.status.in_(("queued", "admitted")))).scalars().all()
    for alloc_id in stale:
        desk.release(session, alloc_id, "its job has ended")
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
        "process": {k: v for k, v in (job.process or {}).items() if k in ("pid", "host", "account", "namespace", "name",
                                                                          "limits_enforced")},
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


def describe_jobs(session: Session, desk: AdmissionDesk, jobs: list[Job]) -> list[dict]:
    """Jobs as JSON with their queue state (queue positions computed once)."""
    ids = [j.allocation_id for j in jobs if j.allocation_id and j.status in (states.QUEUED, states.RUNNING)]
    allocs = {a.id: a for a in session.scalars(select(Allocation).where(Allocation.id.in_(ids)))} if ids else {}
    positions = desk.positions(session) if any(a.status == "queued" for a in allocs.values()) else {}
    out = []
    for job in jobs:
        alloc = allocs.get(job.allocation_id)
        out.append(job_dict(job, desk.describe(session, alloc, positions) if alloc is not None else None))
    return out


def events_of(session: Session, job_id: str) -> list[dict]:
    rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
    return [{"at": iso(e.at), "status": e.status, "attempt": e.attempt, "reason": e.reason} for e in rows]
