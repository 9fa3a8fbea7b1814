"""Bearer access to the AstraGo service with a Keycloak access token.

Tools may call the service with `Authorization: Bearer <Keycloak access token>` instead of
a JupyterHub API token. The token is verified like every other (astrago.hub.auth.tokens:
signature against the realm's JWKS, issuer, audience/azp, expiry); its user must be a hub
user (they logged in to AstraGo once).

Their permissions are the ones JupyterHub computes for that user: AstraGo has no RBAC of
its own. The service asks the hub for a short-lived API token of the user
(`POST /hub/api/users/<name>/tokens` with the scope `inherit`, the note "astrago bearer
bridge") and reads the user's model with it through `HubAuth.user_for_token` - the same
`GET /hub/api/user` that identifies a hub token, so the model (name, kind, admin, groups,
scopes, ...) has the same shape and its scopes are JupyterHub's own expansion of every role
the user holds: AstraGo's, any role of `load_roles`, those the authenticator manages. A user's
model is kept `scopes_ttl` seconds, then read again with the same bridge token; the token
is replaced (and the old one revoked) shortly before it expires, or when the hub refuses it
(revoked on the user's token page). At most `cache_users` users are kept: the least
recently seen one is dropped and its bridge token revoked. This needs the `tokens` scope in
the service's hub role (astrago.hub.scopes.SERVICE_HUB_SCOPES; docs/keycloak.md says why).
A Keycloak token stays valid until it expires, even after a logout in Keycloak (as with any
JWT); keep access token lifetimes short.

Configured as the service's other settings are (`c.KeycloakBearerConfig.<trait>` in the service's
config file; the ASTRAGO_OIDC_* variables of astrago.hub.service.environment, which
`astrago.hub.embedded` and `astrago.hub.cluster` set). No issuer: off.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Integer, List, Unicode
from traitlets.config import Application, Configurable

from .claims import claim_at
from .tokens import KeySet, TokenError, TokenVerifier, looks_like_jwt

log = logging.getLogger("astrago.auth.bearer")

#: the note of the hub API tokens the service makes for bearer callers (seen on their token page)
BRIDGE_TOKEN_NOTE = "astrago bearer bridge"
#: a bridge token with less than this many seconds left is replaced before it is used again
RENEW_MARGIN = 5.0


def bearer_jwt(authorization: str | None) -> str | None:
    """The JWT of an `Authorization: Bearer <jwt>` header, else None."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and looks_like_jwt(value):
        return value
    return None


@dataclass
class _Seen:
    """One user as last read from the hub."""
    model: dict | None  # None: the hub refused (no such user)
    fresh_until: float  # clock time after which the model is read again
    token: str | None = None  # the bridge token, None when there is none
    token_id: str | None = None
    token_until: float = 0.0  # clock time the bridge token expires


class HubUsers:
    """Users as JupyterHub reports them to their own API token, read through bridge tokens.

    `hub_auth` is the service's HubAuth (its `api_url`, `api_token`, `user_for_token`).
    """

    def __init__(self, hub_auth, *, scopes_ttl: float = 30, token_ttl: int = 600, max_users: int = 1000,
                 clock=time.monotonic):
        if token_ttl < 2 * RENEW_MARGIN:
            raise ValueError(f"A bridge token must live at least {2 * RENEW_MARGIN:.0f} s (got {token_ttl}).")
        if max_users < 1:
            raise ValueError("The bearer cache must hold at least one user.")
        self.hub_auth = hub_auth
        self.scopes_ttl = float(scopes_ttl)
        self.token_ttl = int(token_ttl)
        self.max_users = int(max_users)
        self.clock = clock
        self._seen: OrderedDict[str, _Seen] = OrderedDict()  # least recently used first
        self._pending: dict[str, asyncio.Future] = {}  # one hub round per user at a time
        self._background: set[asyncio.Future] = set()

    def __len__(self) -> int:
        return len(self._seen)

    async def user_model(self, name: str) -> dict | None:
        """The hub's model of `name` (None: no such hub user), at most `scopes_ttl` old."""
        seen = self._seen.get(name)
        if seen is not None and self.clock() < seen.fresh_until:
            self._seen.move_to_end(name)
            return seen.model
        pending = self._pending.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._read_again(name, seen))
            self._pending[name] = pending
            pending.add_done_callback(lambda _done: self._pending.pop(name, None))
        return await asyncio.shield(pending)

    async def _read_again(self, name: str, seen: _Seen | None) -> dict | None:
        replaced = None
        if seen is not None and seen.token:
            if seen.token_until - self.clock() > RENEW_MARGIN:
                model = await self._read(seen.token)
                if model is not None:
                    return self._keep(name, _Seen(model, 0, seen.token, seen.token_id, seen.token_until))
                log.info("The hub refused the bridge token of %s (revoked or expired): making a new one", name)
            else:
                replaced = seen.token_id
        issued = await self._issue(name)
        if replaced:
            self._revoke_later(name, replaced)
        if issued is None:
            return self._keep(name, _Seen(None, 0))
        token, token_id, until = issued
        model = await self._read(token)
        if model is None:  # the user went away between the two calls
            self._revoke_later(name, token_id)
            return self._keep(name, _Seen(None, 0))
        return self._keep(name, _Seen(model, 0, token, token_id, until))

    def _keep(self, name: str, seen: _Seen) -> dict | None:
        seen.fresh_until = self.clock() + self.scopes_ttl
        self._seen[name] = seen
        self._seen.move_to_end(name)
        while len(self._seen) > self.max_users:
            gone, dropped = self._seen.popitem(last=False)
            if dropped.token_id:
                self._revoke_later(gone, dropped.token_id)
        return seen.model

    # -- the hub's API -------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None = None) -> HTTPRequest:
        return HTTPRequest(
            f"{self.hub_auth.api_url.rstrip('/')}/{path}", method=method,
            body=None if body is None else json.dumps(body),
            headers={"Authorization": f"token {self.hub_auth.api_token}", "Content-Type": "application/json"},
            request_timeout=10, connect_timeout=5,
        )

    async def _read(self, token: str) -> dict | None:
        """GET /hub/api/user with the bridge token, as HubAuth identifies any hub token."""
        return await self.hub_auth.user_for_token(token, use_cache=False, sync=False)

    async def _issue(self, name: str) -> tuple[str, str, float] | None:
        """A new bridge token of `name`: (token, id, clock time it expires); None: no such hub user."""
        path = f"users/{quote(name, safe='')}/tokens"
        ttl = self.token_ttl
        for _ in range(2):
            started = self.clock()
            try:
                resp = await AsyncHTTPClient().fetch(self._request("POST", path, {
                    "note": BRIDGE_TOKEN_NOTE, "expires_in": ttl, "scopes": ["inherit"]}))
            except HTTPClientError as exc:
                if exc.code == 403:
                    await self._explain_refusal(name)
                    return None
                limit = re.search(r"must not exceed (\d+)", _body_text(exc))
                if exc.code == 400 and limit and int(limit.group(1)) > 2 * RENEW_MARGIN:
                    ttl = int(limit.group(1))  # the hub's token_expires_in_max_seconds is shorter
                    log.warning("The hub allows tokens of at most %d s: bridge tokens live that long "
                                "(KeycloakBearerConfig.hub_token_ttl)", ttl)
                    self.token_ttl = ttl
                    continue
                raise
            made = json.loads(resp.body)
            return made["token"], made["id"], started + ttl
        raise RuntimeError(f"The hub would not make a bridge token for {name}")

    async def _explain_refusal(self, name: str) -> None:
        try:
            await AsyncHTTPClient().fetch(self._request("GET", f"users/{quote(name, safe='')}"))
        except HTTPClientError as exc:
            if exc.code == 404:
                log.info("Refused a Keycloak bearer token of %s: no such hub user (log in once)", name)
                return
            raise
        log.error("The hub refused to make a token for %s: the AstraGo service's hub role needs the "
                  "`tokens` scope (astrago.hub.scopes.SERVICE_HUB_SCOPES) to serve Keycloak bearer tokens", name)

    def _revoke_later(self, name: str, token_id: str) -> None:
        task = asyncio.ensure_future(self._revoke(name, token_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _revoke(self, name: str, token_id: str) -> None:
        try:
            await AsyncHTTPClient().fetch(self._request(
                "DELETE", f"users/{quote(name, safe='')}/tokens/{quote(token_id, safe='')}"))
        except HTTPClientError as exc:
            if exc.code != 404:  # already gone: expired, or revoked by its user
                log.warning("Could not revoke the bridge token %s of %s: %s", token_id, name, exc)
        except Exception as exc:  # noqa: BLE001 - it expires by itself; the hub being away is no error here
            log.warning("Could not revoke the bridge token %s of %s: %s", token_id, name, exc)


def _body_text(exc: HTTPClientError) -> str:
    body = getattr(exc.response, "body", None) or b""
    return body.decode("utf8", "replace")


class KeycloakBearerConfig(Configurable):
    """Bearer access to the service with Keycloak access tokens."""

    issuer = Unicode("", config=True, help="The realm URL tokens carry as `iss`, e.g. "
                     "https://kc.example.org/realms/ml. Empty: Keycloak bearer tokens are not taken. "
                     "($ASTRAGO_OIDC_ISSUER)")
    jwks_url = Unicode("", config=True, help="Where the realm's keys are fetched. Default: "
                       "<issuer>/protocol/openid-connect/certs. ($ASTRAGO_OIDC_JWKS_URL)")
    client_id = Unicode("astrago", config=True, help="The hub's client in the realm. ($ASTRAGO_OIDC_CLIENT_ID)")
    audiences = List(Unicode(), config=True, help="Audiences accepted in `aud` or `azp`. Default: the client. "
                     "($ASTRAGO_OIDC_AUDIENCES, comma-separated)")
    username_claim = Unicode("preferred_username", config=True, help="The claim naming the hub user "
                             "(lowercased, as the authenticator does). ($ASTRAGO_OIDC_USERNAME_CLAIM)")
    leeway = Float(30, config=True, help="Seconds of clock skew accepted in exp, nbf and iat. "
                   "($ASTRAGO_OIDC_LEEWAY)")
    scopes_ttl = Float(30, config=True, help="Seconds a user's model and scopes, as the hub computes them, are "
                       "kept before the hub is asked again: scopes taken away in the hub leave bearer calls "
                       "within this bound.")
    hub_token_ttl = Integer(600, config=True, help="Lifetime in seconds of the short-lived hub API token made "
                            "for a bearer caller, through which the hub reports their scopes (at most the hub's "
                            "JupyterHub.token_expires_in_max_seconds). It is replaced shortly before it ends.")
    cache_users = Integer(1000, config=True, help="Most users whose hub model (and bridge token) are kept at "
                          "once; the least recently seen one is dropped and its token revoked.")


def _service_config():
    """The running service's traitlets config (its file, command line and environment), if any."""
    if Application.initialized():
        return Application.instance().config
    return None


class KeycloakBearer:
    def __init__(self, verifier: TokenVerifier, users: HubUsers, *, username_claim: str = "preferred_username"):
        self.verifier = verifier
        self.users = users
        self.username_claim = username_claim

    @classmethod
    def from_config(cls, settings: KeycloakBearerConfig, hub_auth) -> "KeycloakBearer | None":
        issuer = settings.issuer.rstrip("/")
        if not issuer:
            return None
        keys = KeySet(settings.jwks_url or f"{issuer}/protocol/openid-connect/certs")
        verifier = TokenVerifier(issuer=issuer, client_id=settings.client_id, keys=keys,
                                 audiences=list(settings.audiences), leeway=settings.leeway)
        users = HubUsers(hub_auth, scopes_ttl=settings.scopes_ttl, token_ttl=settings.hub_token_ttl,
                         max_users=settings.cache_users)
        return cls(verifier, users, username_claim=settings.username_claim)

    async def user_model(self, token: str) -> dict | None:
        """The caller as HubAuth models a hub token's user, or None when the token is refused."""
        try:
            claims = await self.verifier.verify_access_token(token)
        except TokenError as exc:
            log.info("Refused a Keycloak bearer token: %s", exc)
            return None
        except Exception as exc:  # noqa: BLE001 - the realm's keys out of reach: nobody gets in
            log.warning("Cannot check a Keycloak bearer token (the realm's keys: %s)", exc)
            return None
        name = str(claim_at(claims, self.username_claim) or "").lower()
        if not name:
            log.info("Refused a Keycloak bearer token without %s", self.username_claim)
            return None
        model = await self.users.user_model(name)
        if model is None:
            return None
        return {**model, "auth": "keycloak"}


_bearer: KeycloakBearer | None = None
_configured = False


async def keycloak_bearer_user(authorization: str | None, hub_auth) -> dict | None:
    """For the service's handlers: the caller of a `Bearer <Keycloak access token>` request."""
    global _bearer, _configured
    token = bearer_jwt(authorization)
    if token is None:
        return None
    if not _configured:
        config = _service_config()
        settings = KeycloakBearerConfig(config=config) if config is not None else KeycloakBearerConfig()
        _bearer = KeycloakBearer.from_config(settings, hub_auth)
        _configured = True
    if _bearer is None:
        return None
    return await _bearer.user_model(token)
