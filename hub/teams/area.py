"""The teams area: teams (JupyterHub groups marked as teams) with a shared space, and datasets.

It meets other areas only through interfaces (service/interfaces/teams.py):
- provides `DatasetCatalog`: the jobs area resolves a job spec's `datasets` refs to paths;
- wants `DatasetUsage` (the jobs area): a dataset a job that has not ended uses is not deleted;
- wants `TeamStorageLimits`: keeps a team's space within its storage quota, when an area sets one.
"""
from __future__ import annotations

from ..service.contract import Area, AreaContext, Route
from ..service.interfaces.teams import DatasetCatalog, DatasetUsage, TeamStorageLimits
from . import api, schemas
from .config import TeamsConfig
from .datasets import Datasets, TeamDatasetCatalog
from .page import TeamsPage
from .spaces import TeamSpaces


class TeamsArea(Area):
    name = "teams"
    provides = (DatasetCatalog,)
    wants = (DatasetUsage, TeamStorageLimits)

    def setup(self, context: AreaContext) -> None:
        self.settings = TeamsConfig(parent=self)
        # wants are not ordered (a provider may be set up after this area): looked up when used
        self.spaces = TeamSpaces(self.settings, context.db, context.hub_api, context.hub_user,
                                 storage_limits=lambda: context.want(TeamStorageLimits))
        self.datasets = Datasets(self.spaces, context.db, usage=lambda: context.want(DatasetUsage))
        context.provide(DatasetCatalog, TeamDatasetCatalog(self.spaces, self.datasets))

    def routes(self) -> list[Route]:
        return [
            Route("api/teams", api.TeamListHandler),
            Route("api/teams/sync", api.TeamSyncHandler),
            Route("api/teams/{team}", api.TeamHandler, patterns={"team": api.TEAM}),
            Route("api/datasets", api.DatasetListHandler),
            Route("api/datasets/{name}/{version}", api.DatasetHandler,
                  patterns={"name": api.DATASET_NAME, "version": api.DATASET_VERSION}),
            Route("teams", TeamsPage),
        ]

    def schemas(self) -> dict[str, dict]:
        return schemas.SCHEMAS

    def background(self, context: AreaContext) -> list:
        return [self.spaces.run_sync_loop()]

    async def stop(self) -> None:
        self.spaces.executor.shutdown(wait=False, cancel_futures=True)
