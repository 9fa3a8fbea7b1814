"""Bearer access to the AstraGo service with a Keycloak access token.

Tools may call the service with `Authorization: Bearer <Keycloak access token>` instead of
a JupyterHub API token. The token is verified like every other (astrago.hub.auth.tokens:
signature against the realm's JWKS, issuer, audience/azp, expiry); its user must be a hub
user (they logged in to AstraGo once). Their permissions are what the hub gives them: their
JupyterHub roles, read from the hub API with the service's own token, turned into scopes by
AstraGo's role definitions (astrago.hub.scopes.scopes_for_user) - the `user` role's own-things
scopes bound to them, the scopes of their other AstraGo roles, and the admin scopes for a
member of `astrago-admins`. A token stays valid until it expires, even after a logout in
Keycloak (as with any JWT); keep access token lifetimes short.

Configured from the environment of the service process (`astrago.hub.embedded` sets these
in embedded mode; set them on the service in a cluster). Unset ASTRAGO_OIDC_ISSUER: off.

| variable | meaning |
|---|---|
| ASTRAGO_OIDC_ISSUER | the realm URL tokens carry as `iss`, e.g. https://kc.example.org/realms/ml |
| ASTRAGO_OIDC_JWKS_URL | where the service fetches the keys (default <issuer>/protocol/openid-connect/certs) |
| ASTRAGO_OIDC_CLIENT_ID | the hub's client (default astrago) |
| ASTRAGO_OIDC_AUDIENCES | comma-separated audiences accepted in `aud` or `azp` (default: the client) |
| ASTRAGO_OIDC_USERNAME_CLAIM | default preferred_username (lowercased, as the authenticator does) |
| ASTRAGO_OIDC_LEEWAY | seconds of clock skew (default 30) |
"""
from __future__ import annotations

import json
import logging
import os
import time
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .. import scopes
from .claims import claim_at
from .tokens import KeySet, TokenError, TokenVerifier, looks_like_jwt

log = logging.getLogger("astrago.auth.bearer")


def bearer_jwt(authorization: str | None) -> str | None:
    """The JWT of an `Authorization: Bearer <jwt>` header, else None."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and looks_like_jwt(value):
        return value
    return None


class KeycloakBearer:
    def __init__(self, verifier: TokenVerifier, *, hub_api_url: str, hub_api_token: str,
                 username_claim: str = "preferred_username", cache_seconds: float = 30):
        self.verifier = verifier
        self.hub_api_url = hub_api_url.rstrip("/")
        self.hub_api_token = hub_api_token
        self.username_claim = username_claim
        self.cache_seconds = cache_seconds
        self._users: dict[str, tuple[float, dict | None]] = {}

    @classmethod
    def from_env(cls, hub_api_url: str, hub_api_token: str, env=os.environ) -> "KeycloakBearer | None":
        issuer = env.get("ASTRAGO_OIDC_ISSUER", "").rstrip("/")
        if not issuer:
            return None
        client_id = env.get("ASTRAGO_OIDC_CLIENT_ID", "astrago")
        audiences = [a.strip() for a in env.get("ASTRAGO_OIDC_AUDIENCES", "").split(",") if a.strip()]
        keys = KeySet(env.get("ASTRAGO_OIDC_JWKS_URL") or f"{issuer}/protocol/openid-connect/certs")
        verifier = TokenVerifier(issuer=issuer, client_id=client_id, keys=keys, audiences=audiences,
                                 leeway=float(env.get("ASTRAGO_OIDC_LEEWAY", "30")))
        return cls(verifier, hub_api_url=hub_api_url, hub_api_token=hub_api_token,
                   username_claim=env.get("ASTRAGO_OIDC_USERNAME_CLAIM", "preferred_username"))

    async def _hub_user(self, name: str) -> dict | None:
        cached = self._users.get(name)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            resp = await AsyncHTTPClient().fetch(HTTPRequest(
                f"{self.hub_api_url}/users/{quote(name, safe='')}",
                headers={"Authorization": f"token {self.hub_api_token}"}, request_timeout=10,
            ))
            model = json.loads(resp.body)
        except HTTPClientError as exc:
            if exc.code != 404:
                raise
            model = None
        self._users[name] = (time.monotonic() + self.cache_seconds, model)
        return model

    async def user_model(self, token: str) -> dict | None:
        """The caller as a HubAuth-style user model, or None when the token is refused."""
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
        hub_user = await self._hub_user(name)
        if hub_user is None:
            log.info("Refused a Keycloak bearer token of %s: no such hub user (log in once)", name)
            return None
        groups = hub_user.get("groups") or []
        roles = hub_user.get("roles") or ["user"]
        return {
            "kind": "user",
            "name": hub_user["name"],
            "admin": bool(hub_user.get("admin")),
            "groups": groups,
            "roles": roles,
            "scopes": sorted(scopes.scopes_for_user(hub_user["name"], roles, groups)),
            "auth": "keycloak",
        }


_bearer: KeycloakBearer | None = None
_configured = False


async def keycloak_bearer_user(authorization: str | None, hub_auth) -> dict | None:
    """For the service's handlers: the caller of a `Bearer <Keycloak access token>` request."""
    global _bearer, _configured
    token = bearer_jwt(authorization)
    if token is None:
        return None
    if not _configured:
        _bearer = KeycloakBearer.from_env(hub_auth.api_url, hub_auth.api_token)
        _configured = True
    if _bearer is None:
        return None
    return await _bearer.user_model(token)
