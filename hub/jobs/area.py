"""The jobs area's parts inside one service: settings, executor, scheduler."""
from __future__ import annotations

from .config import JobsConfig
from .executors.base import ExecutorError
from .scheduler import JobScheduler
from .spec import SpecError


class JobsArea:
    """The area's parts inside one service: settings, executor, scheduler."""

    def __init__(self, service):
        self.service = service
        self.config = JobsConfig(parent=service)
        if service.mode == "cluster":
            from .executors.kubernetes import KubernetesExecutor as executor_class
        else:
            from .executors.local import LocalExecutor as executor_class
        self.executor = executor_class(self.config, parent=service)
        self.scheduler = JobScheduler(service, self.config, self.executor, self.home_of)

    def home_of(self, user: str) -> str:
        try:
            return self.executor.home_of(user)
        except ExecutorError as exc:
            raise SpecError("owner", str(exc)) from None

    @classmethod
    def of(cls, service) -> "JobsArea":
        area = getattr(service, "jobs_area", None)
        if area is None:
            area = service.jobs_area = cls(service)
        return area
