"""KeycloakAuthenticator: the one authenticator of AstraGo, in both modes.

Configured from one realm URL (`https://kc.example.org/realms/ml`); endpoints
come from the realm's discovery document, fetched on first use so the hub can
start before the identity provider answers.

On top of OAuthenticator's code flow it adds what OAuthenticator 17 leaves out:

- every token is verified against the realm's JWKS (`astrago.hub.auth.tokens`);
- claims map to JupyterHub groups, roles and the admin flag by the rules of
  `astrago.hub.auth.mapping`, with JupyterHub managing both (`manage_groups`,
  `manage_roles`), at login and at every refresh;
- refresh always asks Keycloak with the refresh token (`refresh_user_hook`, before
  each spawn and when `auth_refresh_age` has passed); a failed refresh, or a user
  the rules no longer allow, logs in again, and changed rights are logged;
- hub logout ends the Keycloak session too (end-session with `id_token_hint`);
- `/hub/backchannel-logout` takes Keycloak's back-channel logout and ends the
  user's hub sessions;
- a refused login gets a page that says why (`astrago-refused.html`).
"""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode, urljoin, urlparse

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest
from traitlets import Bool, Dict, Float, Set, Unicode, default

from ..scopes import ADMIN_GROUP
from . import mapping
from .handlers import (
    BackchannelLogoutHandler,
    KeycloakCallbackHandler,
    KeycloakLoginHandler,
    KeycloakLogoutHandler,
    LoggedOutHandler,
    LoginRefused,
)
from .tokens import KeySet, TokenError, TokenVerifier

#: claims about the token rather than the person: not kept in the user's claims
_TOKEN_CLAIMS = {"iss", "aud", "exp", "iat", "nbf", "jti", "azp", "typ", "nonce", "at_hash", "c_hash",
                 "auth_time", "session_state", "sid", "scope", "acr", "amr", "client_id", "allowed-origins"}

_INDEX_LIMIT = 100_000
#: facts about the tokens that token_to_user hands to build_auth_state_dict (not claims of the person)
_TOKEN_FACTS = "astrago_token_facts"


def _rebase(url: str, old_base: str, new_base: str) -> str:
    old_base, new_base = old_base.rstrip("/"), new_base.rstrip("/")
    return new_base + url[len(old_base):] if url.startswith(old_base) else url


class KeycloakAuthenticator(GenericOAuthenticator):
    login_service = Unicode("AstraGo", config=True, help="Name on the login button.")

    realm_url = Unicode(
        config=True,
        help="The Keycloak realm URL as browsers reach it, e.g. https://keycloak.example.org/realms/ml. "
        "Its discovery document is <realm_url>/.well-known/openid-configuration.",
    )
    backchannel_url = Unicode(
        "",
        config=True,
        help="Where the hub itself reaches the realm when that differs from realm_url "
        "(e.g. an in-cluster service URL). Token, userinfo and key endpoints are rewritten to it.",
    )
    issuer = Unicode(
        "",
        config=True,
        help="The `iss` every token must carry. Default: realm_url (Keycloak's issuer is the realm URL "
        "browsers use, its frontend URL).",
    )

    # -- mapping (astrago.hub.auth.mapping, docs/auth-mapping.md) ---------------------------
    admin_role = Unicode("admin", config=True, help="Keycloak role (realm or client) that makes a user a "
                         "JupyterHub and AstraGo admin. More of them: admin_roles.")
    admin_roles = Set(Unicode(), config=True, help="More Keycloak roles that make an admin (see admin_role).")
    groups_claim = Unicode("groups", config=True, help="Dotted path of the groups claim.")
    full_group_paths = Bool(True, config=True, help="Keep full Keycloak group paths (team-a/vision) "
                            "as JupyterHub group names; otherwise only the last segment.")
    parent_groups = Bool(True, config=True, help="A member of /team-a/vision is also put into the "
                         "JupyterHub group of /team-a (Keycloak's subgroup members inherit the parent's roles).")
    roles_claim = Unicode("realm_access.roles", config=True, help="Dotted path of the realm roles claim.")
    client_roles_client = Unicode("", config=True, help="Whose client roles count, from "
                                  "resource_access.<client>.roles. Default: client_id. Empty claim path: none.")
    role_map = Dict(config=True, help="Keycloak role (realm or client) -> list of JupyterHub role names. "
                    "Default: each AstraGo role (astrago-admin, quota-admin, fleet-admin, astrago-auditor, "
                    "gpu-user) is granted by the Keycloak role of the same name.")
    group_roles = Dict(config=True, help="JupyterHub group name -> list of JupyterHub role names its members get, "
                       "e.g. {'ml/gpu': ['gpu-user']}.")
    allowed_roles = Set(Unicode(), config=True, help="Keycloak roles (realm or client) whose holders may log in, "
                        "besides allowed_groups, allowed_users and admins.")

    # -- tokens ------------------------------------------------------------------------------
    token_leeway = Float(30, config=True, help="Seconds of clock skew accepted in exp, nbf and iat.")
    verify_access_token = Bool(True, config=True, help="Verify the access token as a JWT of the realm as "
                               "well (Keycloak's are). Off for a provider with opaque access tokens.")
    jwks_min_refetch_interval = Float(10, config=True, help="Least seconds between two fetches of the realm's "
                                      "keys caused by tokens naming an unknown key.")
    logout_token_max_age = Float(300, config=True, help="Back-channel logout tokens older than this (iat) "
                                 "are refused.")
    pass_access_token = Bool(False, config=True, help="Put the user's Keycloak access token, freshly refreshed, "
                             "into their server's environment (access_token_env) at spawn. Only the access "
                             "token: never the refresh or ID token. It expires; nothing renews it there.")
    access_token_env = Unicode("ASTRAGO_ACCESS_TOKEN", config=True,
                               help="Environment variable that carries the access token (pass_access_token).")

    # -- logout -----------------------------------------------------------------------------------
    end_keycloak_session = Bool(True, config=True, help="Hub logout also ends the Keycloak session "
                                "(end-session endpoint with id_token_hint and post_logout_redirect_uri).")
    post_logout_redirect_url = Unicode("", config=True, help="Where Keycloak sends the browser after logout; "
                                       "must be a valid post-logout redirect URI of the client. "
                                       "Default: <hub>/hub/logged-out, next to oauth_callback_url.")

    login_handler = KeycloakLoginHandler
    callback_handler = KeycloakCallbackHandler
    logout_handler = KeycloakLogoutHandler

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("scope")
    def _scope_default(self):
        return ["openid", "profile", "email"]

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("manage_roles")
    def _manage_roles_default(self):
        return True

    @default("enable_auth_state")
    def _auth_state_default(self):
        return True

    @default("admin_groups")
    def _admin_groups_default(self):
        # a Keycloak group /astrago-admins makes admins, as the admin role does
        return {ADMIN_GROUP}

    @default("role_map")
    def _role_map_default(self):
        return {k: list(v) for k, v in mapping.DEFAULT_ROLE_MAP.items()}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._discovery: dict | None = None
        self._verifier: TokenVerifier | None = None
        self._sid_index: dict[str, str] = {}  # realm session id -> hub user name
        self._sub_index: dict[str, str] = {}  # realm user id -> hub user name
        self._index_rebuilt_at = 0.0
        self._logout_jtis: dict[str, float] = {}  # logout token ids seen -> when to forget them
        self._verified: dict[str, dict] = {}  # access token -> claims, verified by the refresh hook

    # -- the realm ------------------------------------------------------------------------------

    def _backchannel(self, url: str) -> str:
        """Server-side calls go to backchannel_url when one is set."""
        if not self.backchannel_url:
            return url
        return _rebase(url, self.realm_url, self.backchannel_url)

    def _frontchannel(self, url: str) -> str:
        """Browsers go to realm_url. Keycloak builds endpoint URLs
        from the host a request came to, so a discovery document fetched over the
        backchannel names backchannel hosts; put the browser-facing ones back."""
        if not self.backchannel_url:
            return url
        return _rebase(url, self.backchannel_url, self.realm_url)

    async def load_discovery(self) -> dict:
        if self._discovery is not None:
            return self._discovery
        if not self.realm_url:
            raise ValueError("KeycloakAuthenticator.realm_url is not set")
        url = self._backchannel(self.realm_url.rstrip("/") + "/.well-known/openid-configuration")
        resp = await self.http_client.fetch(HTTPRequest(url, headers={"Accept": "application/json"}))
        doc = json.loads(resp.body)
        issuer = self._frontchannel(doc.get("issuer", "")).rstrip("/")
        if urlparse(issuer).path != urlparse(self.realm_url.rstrip("/")).path:
            raise ValueError(f"realm at {url} says its issuer is {issuer}, not {self.realm_url}")
        self.authorize_url = self._frontchannel(doc["authorization_endpoint"])
        self.token_url = self._backchannel(doc["token_endpoint"])
        self.userdata_url = self._backchannel(doc["userinfo_endpoint"])
        keys = KeySet(self._backchannel(doc["jwks_uri"]), self._fetch_json,
                      min_refetch_interval=self.jwks_min_refetch_interval)
        self._verifier = TokenVerifier(
            issuer=(self.issuer or self.realm_url).rstrip("/"), client_id=self.client_id, keys=keys,
            leeway=self.token_leeway, logout_token_max_age=self.logout_token_max_age,
        )
        self._discovery = doc
        return doc

    async def _fetch_json(self, url: str) -> dict:
        resp = await self.http_client.fetch(HTTPRequest(
            url, headers={"Accept": "application/json"}, validate_cert=self.validate_server_cert,
            request_timeout=10,
        ))
        return json.loads(resp.body)

    async def verifier(self) -> TokenVerifier:
        await self.load_discovery()
        return self._verifier

    def end_session_url(self, id_token: str | None, handler=None) -> str | None:
        """Keycloak's end-session URL for this login, or None when it cannot be built."""
        endpoint = (self._discovery or {}).get("end_session_endpoint")
        if not endpoint:
            return None
        params = {"post_logout_redirect_uri": self.post_logout_url(handler), "client_id": self.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        return f"{self._frontchannel(endpoint)}?{urlencode(params)}"

    def post_logout_url(self, handler=None) -> str:
        if self.post_logout_redirect_url:
            return self.post_logout_redirect_url
        return urljoin(self.get_callback_url(handler), "logged-out")

    def get_handlers(self, app):
        return super().get_handlers(app) + [
            (r"/logged-out", LoggedOutHandler),
            (r"/backchannel-logout", BackchannelLogoutHandler),
        ]

    # -- claims -> JupyterHub ------------------------------------------------------------------

    @property
    def mapping_rules(self) -> mapping.MappingRules:
        return mapping.MappingRules.build(
            username_claim=self.username_claim if isinstance(self.username_claim, str) else "preferred_username",
            groups_claim=self.groups_claim,
            full_group_paths=self.full_group_paths,
            parent_groups=self.parent_groups,
            realm_roles_claim=self.roles_claim,
            client_id=self.client_roles_client or self.client_id,
            admin_roles=set(self.admin_roles) | ({self.admin_role} if self.admin_role else set()),
            admin_groups=self.admin_groups,
            role_map=self.role_map,
            group_roles=self.group_roles,
            allow_all=self.allow_all,
            allowed_users=self.allowed_users,
            allowed_groups=self.allowed_groups,
            allowed_roles=self.allowed_roles,
            blocked_users=self.blocked_users,
        )

    def identity(self, username: str, auth_state: dict) -> mapping.Identity:
        claims = (auth_state or {}).get(self.user_auth_state_key) or {}
        return mapping.map_claims(claims, self.mapping_rules, username)

    async def get_user_groups(self, auth_state: dict):
        claims = auth_state.get(self.user_auth_state_key) or {}
        return set(mapping.map_claims(claims, self.mapping_rules).groups)

    # -- tokens -> user: OAuthenticator's public steps -------------------------------------------

    async def get_token_info(self, handler, params):
        await self.load_discovery()  # the token endpoint comes from the realm's discovery document
        return await super().get_token_info(handler, params)

    async def token_to_user(self, token_info):
        """Verify the ID and access tokens against the realm's keys, read userinfo, and return the
        person's claims (from all three). Tokens that do not verify refuse the login (403)."""
        remembered = self._verified.pop(token_info.get("access_token") or "", None)
        if remembered is not None:  # verified a moment ago by the refresh hook
            return dict(remembered)
        verifier = await self.verifier()
        try:
            id_token = token_info.get("id_token")
            if not id_token:
                raise TokenError("the realm returned no ID token (is 'openid' in the scope?)")
            id_claims = await verifier.verify_id_token(id_token)
            access_claims = {}
            if self.verify_access_token:
                access_claims = await verifier.verify_access_token(token_info.get("access_token", ""))
            subs = {c.get("sub") for c in (id_claims, access_claims) if c}
            if len(subs) > 1:
                raise TokenError("the tokens name different users")
            user_info = await super().token_to_user(token_info)
            if subs and user_info.get("sub") not in subs:
                raise TokenError("userinfo describes another user than the tokens")
        except TokenError as exc:
            self.log.warning("Refusing tokens from the realm: they do not verify: %s", exc)
            raise web.HTTPError(403, f"The sign-in could not be verified ({exc}). Try again.") from None
        claims = {}
        for source in (access_claims, id_claims, user_info):
            claims.update({k: v for k, v in source.items() if k not in _TOKEN_CLAIMS})
        claims[_TOKEN_FACTS] = {"sid": id_claims.get("sid") or access_claims.get("sid"),
                                "access_token_expires_at": access_claims.get("exp")}
        return claims

    def build_auth_state_dict(self, token_info, user_info):
        facts = user_info.pop(_TOKEN_FACTS, {})
        auth_state = super().build_auth_state_dict(token_info, user_info)
        auth_state["sub"] = user_info.get("sub")
        auth_state["sid"] = facts.get("sid")
        if facts.get("access_token_expires_at"):
            auth_state["access_token_expires_at"] = facts["access_token_expires_at"]
        return auth_state

    async def update_auth_model(self, auth_model):
        """Admin flag, groups and roles from the claims, by the mapping rules (at login and refresh)."""
        username, auth_state = auth_model["name"], auth_model["auth_state"]
        identity = self.identity(username, auth_state)
        admin = True if username in self.admin_users else identity.admin
        roles = ["user", *identity.hub_roles] + (["admin"] if admin else [])
        self._remember(username, auth_state)
        auth_model.update(admin=admin, groups=list(identity.groups),
                          roles=[spec for spec in map(self._role_spec, roles) if spec])
        return auth_model

    def _role_spec(self, name: str) -> dict | None:
        """A role for the auth model, as defined (`load_roles`, or JupyterHub's own): JupyterHub
        updates a managed role's scopes from what the authenticator hands out, so hand out the
        definition. A role defined nowhere is not handed out (it would be an empty role)."""
        from jupyterhub.roles import get_default_roles

        app = self.parent
        defined = {r["name"]: r for r in get_default_roles()}
        if name == "user":
            defined["user"] = {"name": "user", "scopes": ["self", *getattr(app, "extra_user_scopes", [])]}
        for role in getattr(app, "load_roles", None) or []:
            if "scopes" in role or role["name"] not in defined:
                defined[role["name"]] = role
        role = defined.get(name)
        if role is None:
            self.log.warning("Not granting the role %s: no such role is defined (load_roles)", name)
            return None
        return {"name": name, "scopes": list(role.get("scopes") or [])}

    async def check_allowed(self, username, auth_model):
        if auth_model is None:
            return True
        if await super().check_allowed(username, auth_model):
            return True
        identity = self.identity(username, auth_model.get("auth_state"))
        reason = mapping.refusal(identity, self.mapping_rules)
        if reason is None:
            return True
        self.log.warning("Refusing login of %s: %s", username, reason)
        raise LoginRefused(reason, username=username,
                           id_token=(auth_model.get("auth_state") or {}).get("id_token"))

    # -- refresh ------------------------------------------------------------------------------

    @default("refresh_user_hook")
    def _refresh_user_hook_default(self):
        return refresh_with_refresh_token

    async def pre_spawn_start(self, user, spawner):
        if not self.pass_access_token:
            return
        auth_state = await user.get_auth_state() or {}
        token = auth_state.get("access_token")
        environment = {k: v for k, v in spawner.environment.items() if k != self.access_token_env}
        if token and auth_state.get("access_token_expires_at", 0) > time.time():
            environment[self.access_token_env] = token  # refreshed just before (refresh_pre_spawn)
        else:
            self.log.info("No live access token of %s to pass to their server", user.name)
        spawner.environment = environment

    # -- sessions: which hub user a realm session belongs to (back-channel logout) -------------

    def _remember(self, username: str, auth_state: dict) -> None:
        for index, key in ((self._sid_index, auth_state.get("sid")), (self._sub_index, auth_state.get("sub"))):
            if key:
                index.pop(key, None)
                index[key] = username
                while len(index) > _INDEX_LIMIT:
                    index.pop(next(iter(index)))

    async def users_for_logout(self, claims: dict, db) -> list[str]:
        """Hub users whose login is the realm session (sid) or the realm user (sub) of a
        verified logout token. After a hub restart the index is rebuilt from auth_state."""
        found = self._lookup_logout(claims)
        if not found and time.monotonic() - self._index_rebuilt_at > 5:
            await self._rebuild_index(db)
            found = self._lookup_logout(claims)
        return found

    def _lookup_logout(self, claims: dict) -> list[str]:
        name = self._sid_index.get(claims.get("sid") or "") or self._sub_index.get(claims.get("sub") or "")
        return [name] if name else []

    async def _rebuild_index(self, db) -> None:
        from jupyterhub import orm
        from jupyterhub.crypto import decrypt

        self._index_rebuilt_at = time.monotonic()
        for orm_user in db.query(orm.User).filter(orm.User.encrypted_auth_state.isnot(None)):
            try:
                state = await decrypt(orm_user.encrypted_auth_state)
            except Exception:  # noqa: BLE001 - an undecryptable state belongs to nobody we can log out
                continue
            self._remember(orm_user.name, state or {})

    def seen_logout_token(self, jti: str, expires: float) -> bool:
        """True when this logout token id was used before (a replay)."""
        now = time.time()
        for old in [k for k, until in self._logout_jtis.items() if until < now]:
            del self._logout_jtis[old]
        if jti in self._logout_jtis:
            return True
        self._logout_jtis[jti] = expires
        return False


async def refresh_with_refresh_token(authenticator: KeycloakAuthenticator, user, auth_state: dict | None):
    """KeycloakAuthenticator's `refresh_user_hook`: always ask Keycloak, with the refresh token, so
    a group or role changed there reaches the hub at the next refresh rather than when the access
    token happens to expire. False (log in again, with the reason in the hub log) when the refresh
    fails, the new tokens do not verify or name another user, or the rules no longer allow them.
    Otherwise the fresh token response replaces the old one in `auth_state`, and OAuthenticator
    builds the user's model from it (returns None)."""
    log = authenticator.log
    if not auth_state or not auth_state.get("token_response"):
        log.info("No tokens kept for %s: they log in again", user.name)
        return False
    refresh_token = auth_state.get("refresh_token")
    if not refresh_token:
        return None  # OAuthenticator tries the access token it has
    try:
        token_info = await authenticator.get_token_info(
            None, authenticator.build_refresh_token_request_params(refresh_token))
    except Exception as exc:  # noqa: BLE001 - any failure means: log in again
        log.warning("Refresh of %s at Keycloak failed (%s): they are sent to log in again", user.name, exc)
        return False
    token_info.setdefault("refresh_token", refresh_token)
    try:
        claims = await authenticator.token_to_user(token_info)
    except (web.HTTPError, HTTPClientError) as exc:
        log.warning("Refreshed tokens of %s were refused (%s): they are sent to log in again", user.name, exc)
        return False
    previous = auth_state.get("sub") or (auth_state.get(authenticator.user_auth_state_key) or {}).get("sub")
    if previous and claims.get("sub") != previous:
        log.warning("Refreshed tokens of %s name another user: they are sent to log in again", user.name)
        return False
    rules = authenticator.mapping_rules
    before = mapping.map_claims(auth_state.get(authenticator.user_auth_state_key) or {}, rules, user.name)
    after = mapping.map_claims(claims, rules, user.name)
    reason = mapping.refusal(after, rules)
    if reason:
        log.warning("%s may no longer use AstraGo (%s): they are sent to log in again", user.name, reason)
        return False
    change = mapping.describe_change(before, after)
    if change:  # rights are never dropped in silence: the hub log says what Keycloak changed
        log.warning("Keycloak changed the rights of %s at refresh: %s", user.name, change)
    authenticator._verified[token_info.get("access_token", "")] = claims
    while len(authenticator._verified) > 1000:
        authenticator._verified.pop(next(iter(authenticator._verified)))
    auth_state["token_response"] = token_info  # OAuthenticator builds the model from these
    return None
