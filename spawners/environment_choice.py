"""The environment a spawn chose, re-checked with the AstraGo service (both spawners).

The spawn page offers what the service says the user's teams allow; a REST spawn may send any
`{"environment": ...}`, so before a server starts the spawner asks the service again
(`GET users/<name>/environments/<env>`) and refuses in the service's words.
"""
from __future__ import annotations

from typing import Any, Mapping

from .admission_client import AdmissionClient, AdmissionRefused, ServiceUnavailable
from .admission_queue import refuse

#: the environment every user has (the service's `base`): the shared user environment or the deployment's image
BASE_ENVIRONMENT = "base"
OPTION = "environment"


def chosen_name(user_options: Mapping[str, Any] | None) -> str:
    name = (user_options or {}).get(OPTION) or BASE_ENVIRONMENT
    if not isinstance(name, str):
        raise refuse("The environment must be a name, like torch.", reason="invalid-request")
    return name


async def chosen_environment(client: AdmissionClient, user: str, user_options: Mapping[str, Any] | None) -> dict | None:
    """The service's description of the chosen environment (`prefix`, `image`, `pull_policy`, ...), None
    for the base; raises the spawn refusal when the user may not run in it now."""
    name = chosen_name(user_options)
    if name == BASE_ENVIRONMENT:
        return None
    try:
        return await client.environment_for(user, name)
    except AdmissionRefused as exc:
        raise refuse(exc.detail, reason=exc.kind) from None
    except ServiceUnavailable as exc:
        raise refuse(f"AstraGo cannot check the environment {name} right now: {exc}",
                     reason="service-unavailable") from None
