"""Verifying Keycloak's tokens: ID tokens, access tokens and back-channel logout tokens.

One verifier serves the hub's authenticator (logins, refreshes, back-channel logout) and
the AstraGo service (bearer access with a Keycloak access token). Keys come from the
realm's JWKS (``protocol/openid-connect/certs``), cached; a token signed with a key the
cache does not know makes the verifier fetch the JWKS once more (key rotation) before it
refuses the token.

What is refused, whatever the token kind: anything but a compact JWS, an algorithm outside
``algorithms`` (so ``none`` and every HMAC algorithm: an HS256 token "signed" with the
realm's public key gets nowhere), a key the realm does not list, a bad signature, another
issuer, an expired token or one not valid yet (``exp``, ``nbf``, ``iat``; ``leeway`` seconds
of clock skew). Then per kind: the audience (ID token: ``aud`` has the client and ``azp``,
when present, is the client; access token: ``aud`` or ``azp`` names an accepted audience),
the token type (an ID token is no access token), and for logout tokens the OpenID
back-channel rules (the event claim, ``sid`` or ``sub``, no ``nonce``, a recent ``iat``).
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable

import jwt

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

#: asymmetric signature algorithms only; HS* would let anyone holding the public key sign
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")

_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")

FetchJSON = Callable[[str], Awaitable[dict]]


class TokenError(Exception):
    """A token that must not be trusted; the message says why, for logs and error pages."""


def looks_like_jwt(value: str | None) -> bool:
    """Three base64url segments: a compact JWS (JupyterHub API tokens never look like this)."""
    return bool(value) and len(value) < 16384 and bool(_JWS.match(value))


async def tornado_fetch_json(url: str) -> dict:
    """GET a JSON document with tornado's client (the hub's and the service's event loop)."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    resp = await AsyncHTTPClient().fetch(
        HTTPRequest(url, headers={"Accept": "application/json"}, request_timeout=10, connect_timeout=5)
    )
    return json.loads(resp.body)


class KeySet:
    """The realm's public keys by ``kid``, fetched from its JWKS URL and cached.

    The cache is refreshed when it is older than ``max_age`` and, once, when a token names
    a key it does not hold; such re-fetches are spaced at least ``min_refetch_interval``
    seconds apart so a stream of tokens with made-up key ids cannot hammer the realm.
    """

    def __init__(self, jwks_url: str, fetch_json: FetchJSON = tornado_fetch_json, *,
                 max_age: float = 3600, min_refetch_interval: float = 10):
        self.jwks_url = jwks_url
        self.fetch_json = fetch_json
        self.max_age = max_age
        self.min_refetch_interval = min_refetch_interval
        self.fetches = 0  # how many times the JWKS was fetched (tests and logs read it)
        self._keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        doc = await self.fetch_json(self.jwks_url)
        keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        for raw in (doc or {}).get("keys", []):
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(raw)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key type this verifier cannot use: skip it, as Keycloak clients do
            keys[raw.get("kid", "")] = (key, raw.get("alg"))
        self._keys = keys
        self._fetched_at = time.monotonic()
        self.fetches += 1

    async def key(self, kid: str | None) -> tuple[jwt.PyJWK, str | None]:
        """The key named ``kid`` (or the only key, for a token without ``kid``) and the
        algorithm the JWKS declares for it, if any."""
        async with self._lock:
            now = time.monotonic()
            if self._fetched_at is None or now - self._fetched_at > self.max_age:
                await self._fetch()
            found = self._lookup(kid)
            if found is None and time.monotonic() - self._fetched_at >= self.min_refetch_interval:
                await self._fetch()  # the realm may have rotated its keys
                found = self._lookup(kid)
        if found is None:
            raise TokenError(f"signed with a key the realm does not list (kid {kid!r})")
        return found

    def _lookup(self, kid: str | None) -> tuple[jwt.PyJWK, str | None] | None:
        if kid:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None


class TokenVerifier:
    """Verifies the tokens of one realm for one client (see the module docstring)."""

    def __init__(self, *, issuer: str, client_id: str, keys: KeySet,
                 audiences: Iterable[str] = (), leeway: float = 30,
                 algorithms: Iterable[str] = DEFAULT_ALGORITHMS, logout_token_max_age: float = 300):
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.audiences = set(audiences) or {client_id}
        self.keys = keys
        self.leeway = leeway
        self.algorithms = tuple(a for a in algorithms if not a.upper().startswith("HS") and a.lower() != "none")
        self.logout_token_max_age = logout_token_max_age

    # -- the common part -------------------------------------------------

    async def _decode(self, token: str, *, require: tuple[str, ...]) -> tuple[dict, dict]:
        if not isinstance(token, str) or not looks_like_jwt(token):
            raise TokenError("not a signed JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token header ({exc})") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenError(f"algorithm {alg!r} is not accepted (only {', '.join(self.algorithms)})")
        if "crit" in header:
            raise TokenError("token has critical header parameters this verifier does not understand")
        key, declared_alg = await self.keys.key(header.get("kid"))
        if declared_alg and declared_alg != alg:
            raise TokenError(f"the realm's key {header.get('kid')!r} is for {declared_alg}, not {alg}")
        try:
            claims = jwt.decode(
                token, key=key.key, algorithms=[alg], issuer=self.issuer, leeway=self.leeway,
                options={"verify_aud": False, "require": list(require), "verify_iat": True},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidIssuerError:
            raise TokenError(f"token was issued by someone else (expected issuer {self.issuer})") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token ({exc})") from None
        return header, claims

    @staticmethod
    def _aud(claims: dict) -> list[str]:
        aud = claims.get("aud")
        if isinstance(aud, str):
            return [aud]
        return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []

    # -- per kind -----------------------------------------------------------

    async def verify_id_token(self, token: str, *, nonce: str | None = None) -> dict:
        _, claims = await self._decode(token, require=("iss", "sub", "aud", "exp", "iat"))
        aud = self._aud(claims)
        if self.client_id not in aud:
            raise TokenError(f"ID token is for {aud}, not for client {self.client_id!r}")
        azp = claims.get("azp")
        if (azp is not None or len(aud) > 1) and azp != self.client_id:
            raise TokenError(f"ID token was issued to {azp!r}, not to client {self.client_id!r}")
        if claims.get("typ") not in (None, "ID"):
            raise TokenError(f"not an ID token (typ {claims.get('typ')!r})")
        if nonce is not None and claims.get("nonce") != nonce:
            raise TokenError("ID token nonce does not match the login")
        return claims

    async def verify_access_token(self, token: str) -> dict:
        header, claims = await self._decode(token, require=("iss", "sub", "exp", "iat"))
        aud = self._aud(claims)
        if not (set(aud) & self.audiences or claims.get("azp") in self.audiences):
            raise TokenError(f"access token is for {aud or claims.get('azp')!r}, "
                             f"not for {sorted(self.audiences)}")
        # Keycloak marks access tokens typ=Bearer (ID tokens typ=ID); RFC 9068 marks the header
        # at+jwt. One of the two must say "access token", so an ID token is never taken for one.
        payload_typ = claims.get("typ")
        header_typ = str(header.get("typ", "")).lower()
        if payload_typ not in (None, "Bearer") or (
                payload_typ != "Bearer" and header_typ not in ("at+jwt", "application/at+jwt")):
            raise TokenError("not an access token")
        return claims

    async def verify_logout_token(self, token: str) -> dict:
        header, claims = await self._decode(token, require=("iss", "aud", "iat", "jti"))
        aud = self._aud(claims)
        if self.client_id not in aud:
            raise TokenError(f"logout token is for {aud}, not for client {self.client_id!r}")
        if str(header.get("typ", "logout+jwt")).lower() not in ("logout+jwt", "jwt") or claims.get(
                "typ", "Logout") != "Logout":
            raise TokenError("not a logout token")
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
            raise TokenError("logout token lacks the back-channel logout event")
        if "nonce" in claims:
            raise TokenError("logout token must not carry a nonce")
        if not (isinstance(claims.get("sid"), str) and claims["sid"]) and not (
                isinstance(claims.get("sub"), str) and claims["sub"]):
            raise TokenError("logout token names neither a session (sid) nor a user (sub)")
        if claims["iat"] < time.time() - self.logout_token_max_age - self.leeway:
            raise TokenError("logout token is too old")
        return claims

