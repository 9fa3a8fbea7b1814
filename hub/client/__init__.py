"""The Python client of the AstraGo service API (used by the CLI, the notebook helpers and magics).

Where the service is and who calls it: `ASTRAGO_SERVICE_URL` + `JUPYTERHUB_API_TOKEN`
(both set inside users' servers), else `~/.config/astrago/client.json` with
`{"url": ..., "token": ...}`. Errors raise `AstraGoError` carrying the problem's `detail`.
"""
from __future__ import annotations

from .jobs import JobsClient
from .session import CONFIG_FILE, AstraGoError, ServiceSession, discover, problem_of
from .uploads import UploadsClient


class ServiceClient(ServiceSession):
    """A session with the AstraGo service: `client.get_json("api/whoami")`, `client.uploads.upload(...)`."""

    @property
    def uploads(self) -> UploadsClient:
        return UploadsClient(self)

    @property
    def jobs(self) -> JobsClient:
        return JobsClient(self)


__all__ = ["CONFIG_FILE", "AstraGoError", "JobsClient", "ServiceClient", "ServiceSession", "UploadsClient",
           "discover", "problem_of"]
