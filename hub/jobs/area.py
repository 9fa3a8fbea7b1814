"""The jobs area: batch jobs on GPU slices (API, pages, the scheduling loop, the executor).

It meets other areas only through interfaces (service/interfaces/):
- needs `AdmissionLedger` (the quota area): every attempt of a job is one admission, asked,
  scheduled and released in the same transaction as the job's status change;
- wants `DatasetCatalog` (the teams area): a spec's `datasets` refs become paths;
- wants `EnvironmentCatalog` (the environments area): a spec's `environment` becomes its Python
  (one machine) or its image (a cluster), when the owner's teams allow it;
- provides `JobsReader` (job counts and durations, for the monitor area) and `DatasetUsage`
  (the jobs that attach a dataset, so the teams area keeps it while they run).

Where jobs run is `executor_class`, a traitlets `Type` like JupyterHub's `spawner_class`.
"""
from __future__ import annotations

from traitlets import Type, default

from .. import scopes
from ..service.contract import AdminSection, Area, AreaContext, Route
from ..service.interfaces.admission import AdmissionLedger
from ..service.interfaces.environments import EnvironmentCatalog
from ..service.interfaces.jobs import JobsReader
from ..service.interfaces.teams import DatasetCatalog, DatasetUsage
from . import api, definitions, page, store
from .config import JobsConfig
from .executors.base import Executor, ExecutorError
from .metrics_view import JobMetricsView
from .scheduler import JobScheduler
from .schemas import SCHEMAS
from .spec import SpecError


class JobsArea(Area):
    name = "jobs"
    needs = (AdmissionLedger,)
    wants = (DatasetCatalog, EnvironmentCatalog)
    provides = (JobsReader, DatasetUsage)

    executor_class = Type(klass=Executor, config=True,
                          help="The class that runs jobs, an astrago.hub.jobs.executors.base.Executor: "
                          "astrago.hub.jobs.executors.local.LocalExecutor (processes as each user's account on "
                          "this machine) or astrago.hub.jobs.executors.kubernetes.KubernetesExecutor (batch/v1 "
                          "Jobs in the service's namespace), or your own (an import string). Default: by the "
                          "service's mode, local when embedded, kubernetes in a cluster.")

    @default("executor_class")
    def _default_executor_class(self):
        if getattr(self.parent, "mode", "embedded") == "cluster":
            return "astrago.hub.jobs.executors.kubernetes.KubernetesExecutor"
        return "astrago.hub.jobs.executors.local.LocalExecutor"

    def setup(self, context: AreaContext) -> None:
        self.context = context
        self.settings = JobsConfig(parent=self)
        self.ledger = context.need(AdmissionLedger)
        self.executor = self.executor_class(self.settings, parent=self)
        self.scheduler = JobScheduler(context.db, self.ledger, self.settings, self.executor, self.home_of)
        capacity = self.executor.job_capacity()
        if capacity is not None:  # this executor runs every job on this machine: bound what runs at once
            self.ledger.set_job_capacity(*capacity)
        context.provide(JobsReader, JobMetricsView())
        context.provide(DatasetUsage, self)
        note = self.executor.limits_note
        self.log.info("jobs: %s executor%s", self.executor.name, f" ({note})" if note else "")

    def home_of(self, user: str) -> str:
        """The user's storage root for their jobs (SpecError, for the spec's owner, when they can have none)."""
        try:
            return self.executor.home_of(user)
        except ExecutorError as exc:
            raise SpecError("owner", str(exc)) from None

    def dataset_catalog(self) -> DatasetCatalog | None:
        # a want: its provider may be set up after this area, so it is looked up when used
        return self.context.want(DatasetCatalog)

    def environment_catalog(self) -> EnvironmentCatalog | None:
        return self.context.want(EnvironmentCatalog)

    async def active_jobs_using(self, paths) -> list[dict]:
        """DatasetUsage: the jobs that have not ended and attach one of these dataset paths."""
        return await self.context.db.run(lambda session: store.active_jobs_using(session, paths))

    def routes(self) -> list[Route]:
        job, definition = {"job_id": api.JOB_ID}, {"definition_id": definitions.DEF_ID}
        return [
            Route("api/jobs", api.JobCollectionHandler),
            Route("api/jobs/{job_id}", api.JobHandler, patterns=job),
            Route("api/jobs/{job_id}/cancel", api.JobCancelHandler, patterns=job),
            Route("api/jobs/{job_id}/log", api.JobLogHandler, patterns=job),
            Route("api/jobs/{job_id}/events", api.JobEventsHandler, patterns=job),
            Route("api/job-definitions", definitions.DefinitionCollectionHandler),
            Route("api/job-definitions/{definition_id}", definitions.DefinitionHandler, patterns=definition),
            Route("jobs", page.JobsPage),
            Route("jobs/{job_id}", page.JobDetailPage, patterns=job),
            Route("admin/jobs", page.AdminJobsPage),
        ]

    def schemas(self) -> dict[str, dict]:
        return SCHEMAS

    def admin_sections(self) -> list[AdminSection]:
        return [AdminSection("jobs", "Jobs", scopes.READ, order=90)]

    def background(self, context: AreaContext) -> list:
        """The scheduling loop: reconcile running jobs once, then schedule and watch."""
        return [self.scheduler.run()]
