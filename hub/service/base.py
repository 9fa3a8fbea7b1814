"""The base of every AstraGo API handler: who is asking, may they, and errors.

Identity comes from JupyterHub (HubOAuth: an API token in the Authorization
header, or the service's OAuth cookie for browser pages). Permissions are
JupyterHub scopes carried by that token. Every denial is written to the audit log.
"""
from __future__ import annotations

import json
import traceback

from jupyterhub.services.auth import HubOAuthenticated, check_scopes
from tornado import web
from tornado.log import app_log

from .. import scopes as astrago_scopes
from ..db import audit
from .problems import PROBLEM_CONTENT_TYPE, Problem, problem_for_status

ACCESS_SCOPE = f"access:services!service={astrago_scopes.SERVICE_NAME}"


class APIHandler(HubOAuthenticated, web.RequestHandler):
    """JSON API handler. Operations declare their scope with `@needs_scope` (service.declare)
    and call `self.require(scope, user=owner)` where the thing acted on is one user's."""

    def initialize(self, area=None):
        #: the Area instance whose route this is (contract.Route kwargs)
        self.area = area

    # we do our own checks (401 vs 403, audit) instead of HubAuthenticated's
    hub_scopes = None

    @property
    def allow_all(self):
        return True

    @property
    def service(self):
        return self.settings["astrago"]

    @property
    def db(self):
        return self.service.db

    def check_xsrf_cookie(self):
        # token-authenticated API calls are not subject to xsrf; cookie ones are
        if getattr(self, "_token_authenticated", False):
            return
        return super().check_xsrf_cookie()

    async def prepare(self):
        # `Authorization: Bearer <JWT>` is a Keycloak access token (JupyterHub's API tokens are
        # never JWTs): verified against the realm, mapped to the hub user (astrago.hub.auth.bearer).
        # Anything else - a JupyterHub token or the service's OAuth cookie - goes to the hub.
        from ..auth.bearer import bearer_jwt, keycloak_bearer_user

        authorization = self.request.headers.get("Authorization", "")
        if bearer_jwt(authorization):
            self.hub_user = await keycloak_bearer_user(authorization, self.hub_auth)
            self._token_authenticated = self.hub_user is not None
        else:
            self.hub_user = await self.hub_auth.get_user(self, sync=False)

    # -- identity and permission ---------------------------------------

    @property
    def caller_name(self) -> str:
        return self.hub_user["name"] if self.hub_user else "anonymous"

    @property
    def caller_kind(self) -> str:
        return self.hub_user.get("kind", "user") if self.hub_user else "anonymous"

    def caller_scopes(self) -> set[str]:
        return set(self.hub_user.get("scopes", [])) if self.hub_user else set()

    def has_scope(self, scope: str, *, user: str | None = None) -> bool:
        wanted = f"{scope}!user={user}" if user else scope
        return bool(check_scopes({wanted}, self.caller_scopes()))

    async def require(self, scope: str | None = None, *, user: str | None = None, action: str | None = None) -> dict:
        """Demand an authenticated caller allowed to use the service (and `scope`).

        Raises 401 with no credentials, 403 without the scope; both are audited.
        """
        action = action or f"{self.request.method} {self.request.path}"
        target = user or ""
        if not self.hub_user:
            await self.audit(action, "denied", target=target, reason="no credentials")
            raise Problem("unauthenticated", "Log in to AstraGo, or send a JupyterHub API token "
                          "('Authorization: token <token>') or a Keycloak access token ('Authorization: Bearer <jwt>').")
        if not check_scopes({ACCESS_SCOPE}, self.caller_scopes()):
            await self.audit(action, "denied", target=target, reason=f"missing scope {ACCESS_SCOPE}")
            raise Problem("forbidden", f"Your token may not use the AstraGo service (it lacks {ACCESS_SCOPE}).")
        if scope and not self.has_scope(scope, user=user):
            needed = f"{scope}!user={user}" if user else scope
            await self.audit(action, "denied", target=target, reason=f"missing scope {needed}")
            raise Problem("forbidden", f"You are not allowed to do this: it needs the scope {needed}. "
                          "Ask an AstraGo administrator if you should have it.")
        return self.hub_user

    def holds_in_some_form(self, scope: str) -> bool:
        """The caller holds `scope` unfiltered or filtered (`scope!user=...`, `scope!group=...`)."""
        return any(s == scope or s.startswith(scope + "!") for s in self.caller_scopes())

    async def require_any(self, scope: str | None = None, *, action: str | None = None) -> dict:
        """The check of `@needs_scope`: an authenticated caller allowed to use the service who
        holds `scope` in some form. Whose thing it is comes after (`require(scope, user=...)`)."""
        if scope is None or not self.hub_user or self.holds_in_some_form(scope):
            return await self.require(None, action=action)
        return await self.require(scope, action=action)

    async def audit(self, action: str, outcome: str, *, target: str = "", reason: str = "", detail: dict | None = None):
        await self.db.run(
            lambda s: audit.record(
                s, actor=self.caller_name, actor_kind=self.caller_kind, action=action, outcome=outcome,
                target=target, reason=reason, remote_ip=self.request.remote_ip or "", detail=detail,
            )
        )

    # -- responses -----------------------------------------------------

    def write_json(self, data, status: int = 200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise Problem("invalid-request", f"The request body is not valid JSON ({exc}).") from None
        if not isinstance(body, dict):
            raise Problem("invalid-request", "The request body must be a JSON object.")
        return body

    def _handle_request_exception(self, e):
        if isinstance(e, Problem):
            if not self._finished:
                self._write_problem(e)
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, Problem):
            problem = exc
        elif isinstance(exc, web.HTTPError):
            problem = problem_for_status(status_code, exc.log_message or exc.reason)
        else:
            if exc is not None:
                app_log.error("unhandled error: %s", "".join(traceback.format_exception(exc)))
            problem = problem_for_status(status_code, "AstraGo hit an internal error; the service log has details.")
        self._write_problem(problem)

    def allowed_methods(self) -> str:
        """The methods this resource answers (the `Allow` header of a 405, as RFC 9110 wants)."""
        mine = [m for m in self.SUPPORTED_METHODS
                if getattr(type(self), m.lower(), None) is not getattr(web.RequestHandler, m.lower(), None)]
        return ", ".join(mine)

    def _write_problem(self, problem: Problem):
        self.clear()
        self.set_status(problem.status)
        if problem.status == 405:
            self.set_header("Allow", self.allowed_methods())
        self.set_header("Content-Type", PROBLEM_CONTENT_TYPE)
        self.finish(json.dumps(problem.to_dict(instance=self.request.path)))


class NotFoundHandler(APIHandler):
    """Unknown API paths answer problem+json, not tornado's HTML page."""

    async def prepare(self):
        raise Problem("not-found", f"There is no AstraGo API at {self.request.path}. See api/openapi.json.")
