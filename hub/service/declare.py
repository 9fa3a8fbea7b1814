"""Declarations on API handler methods: the scope an operation needs and its OpenAPI operation.

    class JobsHandler(APIHandler):
        @operation("submitJob", "Submit a job", ok=201, errors=(400, 409, 422),
                   body="JobSubmission", response="Job")
        @needs_scope(scopes.JOBS, action="job.submit")
        async def post(self): ...

`needs_scope` checks before the method runs, as JupyterHub's `@needs_scope` does: the
caller is authenticated (401), may use the service (403) and holds `scope` in some form
(unfiltered or filtered, e.g. `custom:astrago:jobs!user=alice`; 403). Where the operation
acts on one user's thing, the method then calls `self.require(scope, user=owner)` for that
owner. Denials are audited. The OpenAPI document (astrago.hub.service.openapi) is generated
from these declarations and the areas' routes, so it says what every operation needs.
"""
from __future__ import annotations

import functools
from typing import Any, Iterable

#: marks an operation anyone may call (no credentials needed), e.g. the OpenAPI document
PUBLIC = "public"
#: marks an operation any authenticated caller allowed to use the service may call
LOGGED_IN = None

SCOPE_ATTR = "__astrago_scope__"
OPERATION_ATTR = "__astrago_operation__"


def needs_scope(scope: str | None = LOGGED_IN, *, action: str | None = None):
    """Declare and check the scope of one operation (see the module docstring).

    `scope=None`: any authenticated caller with access to the service; `PUBLIC`: anyone.
    `action` names the operation in the audit log (default "<METHOD> <path>")."""

    def wrap(method):
        @functools.wraps(method)
        async def checked(self, *args, **kwargs):
            if scope != PUBLIC:
                await self.require_any(scope, action=action)
            return await method(self, *args, **kwargs)

        setattr(checked, SCOPE_ATTR, scope)
        return checked

    return wrap


def operation(operation_id: str, summary: str, *, ok: int = 200, response: str | dict | None = None,
              content: str = "application/json", errors: Iterable[int] = (401, 403), body: str | dict | None = None,
              body_content: str = "application/json", body_required: bool = True,
              query: Iterable[tuple[str, str | dict]] = (), headers: Iterable[tuple[str, str]] = (),
              request_headers: Iterable[tuple[str, bool, str]] = (), other: dict[int, dict] | None = None,
              description: str = "", alternatives: dict[str, str | dict] | None = None):
    """Declare an operation's OpenAPI description.

    `response` / `body`: a schema name under components/schemas, or an inline schema; `ok`
    the success status (204: no body). `query`: (name, type or schema) pairs; `headers`: response
    headers (name, description); `request_headers`: (name, required, description). `other`:
    further success responses, status -> {"description", "schema", "content"}. `alternatives`: other
    media types of the success response (e.g. ?format=csv), media type -> schema."""

    spec: dict[str, Any] = {
        "operationId": operation_id, "summary": summary, "ok": ok, "response": response, "content": content,
        "errors": tuple(errors), "body": body, "body_content": body_content, "body_required": body_required,
        "query": tuple(query), "headers": tuple(headers), "request_headers": tuple(request_headers),
        "other": dict(other or {}), "description": description, "alternatives": dict(alternatives or {}),
    }

    def mark(method):
        setattr(method, OPERATION_ATTR, spec)
        return method

    return mark


def scope_of(method) -> str | None | bool:
    """The declared scope of a handler method; False when it declares none."""
    return getattr(method, SCOPE_ATTR, False)


def operation_of(method) -> dict | None:
    return getattr(method, OPERATION_ATTR, None)
