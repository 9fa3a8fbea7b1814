"""Job pages: `jobs` (your own jobs and job definitions), `jobs/<id>` (one job: spec, history, live
log, cancel, resubmit, outputs) and the admin panel's `admin/jobs` (everyone's; filter by user,
status and slice; pages of 50). Data changes go through the JSON API from the page's script."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select

from .. import scopes
from ..service import display
from ..service.pages import PageHandler
from . import states, store
from .executors.base import ExecutorError
from .model import Job, JobDefinition

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(loader=ChoiceLoader([FileSystemLoader(str(HERE / "templates")),
                                             FileSystemLoader(str(HERE.parent / "templates" / "astrago"))]),
                        autoescape=select_autoescape(["html"]))
display.install(TEMPLATES)

PAGE_SIZE = 50


def resubmit_spec(job: Job) -> dict:
    """The body of `POST api/jobs` that runs `job` again (pure): what it was asked to run, not its state."""
    spec = {"name": job.name, "kind": job.kind, "slice": job.slice, "cpu": job.cpu, "memory_gib": job.memory_gib,
            "workdir": job.workdir, "parameters": dict(job.parameters or {}), "priority": job.priority,
            "retries": job.retries}
    if job.kind == "notebook" or (job.kind == "script" and not job.code):
        spec["input"] = job.input
    if job.kind == "script" and job.code:
        spec["code"] = job.code
    if job.kind == "command":
        spec["command"] = job.command
    for key, value in (("image", job.image), ("env", dict(job.env or {})), ("max_runtime", job.max_runtime_s),
                       ("distributed", dict(job.distributed or {}))):
        if value:
            spec[key] = value
    return spec


def replica_names(job: dict) -> list[str]:
    """What each replica of a job is called on its page, by rank (pure): the PyTorchJob's master and
    workers, the MPIJob's launcher and workers, the processes of a job on one machine."""
    count = job.get("replicas") or 1
    if count == 1:
        return ["the job"]
    if job.get("executor") != "kubernetes":
        return [f"process {rank} (RANK={rank})" for rank in range(count)]
    first = "launcher (rank 0, runs mpirun)" if (job.get("distributed") or {}).get("framework") == "mpi" \
        else "master (rank 0)"
    return [first] + [f"worker {index} (rank {index + 1})" for index in range(count - 1)]


def lab_link(user: str, path: str, home: str) -> str | None:
    """Where an output file opens in its owner's JupyterLab (pure): a path under the home, else None."""
    home = home.rstrip("/")
    if not path or not home or not path.startswith(home + "/"):
        return None
    from urllib.parse import quote

    return f"/user/{quote(user)}/lab/tree/{quote(path[len(home) + 1:])}"


def page_query(**params) -> str:
    """'?status=RUNNING&page=2' from the non-empty params (pure)."""
    kept = {k: v for k, v in params.items() if v not in (None, "") and not (k == "page" and v == 1)}
    return "?" + urlencode(kept) if kept else "?"


class JobsPageBase(PageHandler):
    def render_jobs(self, template: str, **context):
        prefix = self.service.prefix
        html = TEMPLATES.get_template(template).render(
            prefix=prefix, api=prefix + "api/", user=self.hub_user, xsrf=self.xsrf_value,
            admin_sections=self.admin_sections(), statuses=states.STATUSES, terminal=states.TERMINAL,
            **{**getattr(self, "_shared_context", {}), **context})
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)


class JobsPage(JobsPageBase):
    admin = False

    async def get(self):
        if getattr(self, "_finished_early", False):
            return
        me = self.hub_user["name"]
        if self.admin:
            if not await self.page_requires(scopes.READ):
                return
            user = self.get_argument("user", "").strip() or None
        else:
            user = me
            if not await self.page_requires(scopes.READ, user=me, also=scopes.JOBS):  # as GET api/jobs
                return
        status = self.get_argument("status", "").upper() or None
        if status not in (None, *states.STATUSES):
            status = None
        slice_name = self.get_argument("slice", "").strip() or None
        try:
            page = max(1, int(self.get_argument("page", "1")))
        except ValueError:
            page = 1

        def fetch(session):
            where = []
            if user:
                where.append(Job.owner == user)
            if status:
                where.append(Job.status == status)
            if slice_name:
                where.append(Job.slice == slice_name)
            total = session.scalar(select(func.count()).select_from(Job).where(*where))
            q = (select(Job).where(*where).order_by(Job.created_at.desc(), Job.id)
                 .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))
            jobs = store.describe_jobs(session, self.area.ledger, session.scalars(q).all())
            slices_q = select(Job.slice).distinct().order_by(Job.slice)
            if user:
                slices_q = slices_q.where(Job.owner == user)
            slices = list(session.scalars(slices_q))
            dq = select(JobDefinition).order_by(JobDefinition.next_run_at.is_(None), JobDefinition.next_run_at)
            if user:
                dq = dq.where(JobDefinition.owner == user)
            definitions = [{"id": d.id, "owner": d.owner, "name": d.name, "schedule": d.schedule,
                            "timezone": d.timezone, "active": d.active, "next_run_at": store.iso(d.next_run_at),
                            "last_run_at": store.iso(d.last_run_at), "last_job_id": d.last_job_id}
                           for d in session.scalars(dq.limit(200))]
            return total, jobs, slices, definitions

        total, jobs, slices, definitions = await self.db.run(fetch)
        pages = max(1, -(-total // PAGE_SIZE))
        filters = {"user": user if self.admin else None, "status": status, "slice": slice_name}
        self.render_jobs("jobs.html", active="jobs" if self.admin else "me-jobs", jobs=jobs, admin=self.admin,
                         filter_user=(user or "") if self.admin else "", filter_status=status or "",
                         filter_slice=slice_name or "", slices=slices, definitions=definitions, page=page,
                         pages=pages, total=total, page_size=PAGE_SIZE,
                         prev_query=page_query(**filters, page=page - 1) if page > 1 else None,
                         next_query=page_query(**filters, page=page + 1) if page < pages else None)


class AdminJobsPage(JobsPage):
    admin = True


class JobDetailPage(JobsPageBase):
    async def get(self, job_id):
        if getattr(self, "_finished_early", False):
            return

        def fetch(session):
            job = session.get(Job, job_id)
            if job is None:
                return None
            return (store.describe_jobs(session, self.area.ledger, [job])[0], store.events_of(session, job_id),
                    resubmit_spec(job))

        found = await self.db.run(fetch)
        if found is None:
            if not await self.page_requires(scopes.READ, user=self.hub_user["name"], also=scopes.JOBS):
                return
            self.set_status(404)
            self.render_jobs("job_missing.html", active="me-jobs", job_id=job_id)
            return
        job, events, spec = found
        owner = job["owner"]
        if not await self.page_requires(scopes.READ, user=owner, also=scopes.JOBS,  # as GET api/jobs/<id>
                                        why="This job belongs to another user: only they and administrators "
                                            "can see it."):
            return
        me = self.hub_user["name"]
        try:
            home = self.area.executor.home_of(owner)
        except ExecutorError:  # an owner without an account here: outputs are shown without links
            home = ""
        outputs = [{"path": o, "lab": lab_link(owner, o, home) if owner == me else None} for o in job["outputs"]]
        self.render_jobs("job.html", active="me-jobs", job=job, events=events, outputs=outputs,
                         replica_names=replica_names(job),
                         can_cancel=self.has_scope(scopes.JOBS, user=owner),
                         can_resubmit=owner == me and self.has_scope(scopes.JOBS, user=me),
                         resubmit=spec, admin_view=self.has_scope(scopes.READ))
