"""KeycloakAuthenticator: the one authenticator of AstraGo, in both modes.

Configured from one realm URL (`https://kc.example.org/realms/ml`); endpoints
come from the realm's discovery document, fetched on first use so the hub can
start before the identity provider does (the embedded realm is a service the
hub itself starts).
"""
from __future__ import annotations

import json
from urllib.parse import urlparse

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler
from tornado.httpclient import HTTPRequest
from traitlets import Bool, Unicode, default

from ..scopes import ADMIN_GROUP
from . import claims as claim_rules


def _rebase(url: str, old_base: str, new_base: str) -> str:
    old_base, new_base = old_base.rstrip("/"), new_base.rstrip("/")
    return new_base + url[len(old_base):] if url.startswith(old_base) else url


class KeycloakLoginHandler(OAuthLoginHandler):
    async def get(self):
        await self.authenticator.load_discovery()
        return super().get()


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
    admin_role = Unicode("admin", config=True, help="Realm role that makes a user a JupyterHub and AstraGo admin.")
    groups_claim = Unicode("groups", config=True, help="Dotted path of the groups claim.")
    full_group_paths = Bool(True, config=True, help="Keep full Keycloak group paths (team-a/vision) "
                            "as JupyterHub group names; otherwise only the last segment.")
    roles_claim = Unicode("realm_access.roles", config=True, help="Dotted path of the realm roles claim.")

    login_handler = KeycloakLoginHandler

    @default("username_claim")
    def _username_claim_default(self):
        return "preferred_username"

    @default("scope")
    def _scope_default(self):
        return ["openid", "profile", "email"]

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("enable_auth_state")
    def _auth_state_default(self):
        return True

    @default("admin_groups")
    def _admin_groups_default(self):
        # admins are recognised by the group get_user_groups derives from the admin role
        return {ADMIN_GROUP}

    _discovery: dict | None = None

    def _backchannel(self, url: str) -> str:
        """Server-side calls go to backchannel_url when one is set."""
        if not self.backchannel_url:
            return url
        return _rebase(url, self.realm_url, self.backchannel_url)

    def _frontchannel(self, url: str) -> str:
        """Browsers go to realm_url. Keycloak (and the embedded realm) build endpoint URLs
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
        self._discovery = doc
        return doc

    async def authenticate(self, handler, data=None):
        await self.load_discovery()
        return await super().authenticate(handler, data)

    async def refresh_user(self, user, handler=None, **kwargs):
        # after a hub restart the first request may be a refresh, before any login
        await self.load_discovery()
        return await super().refresh_user(user, handler, **kwargs)

    async def get_user_groups(self, auth_state: dict):
        user_info = auth_state.get(self.user_auth_state_key) or {}
        groups = set(claim_rules.group_names(user_info, self.groups_claim, self.full_group_paths))
        if self.admin_role in claim_rules.realm_roles(user_info, self.roles_claim):
            groups.add(ADMIN_GROUP)  # carries the astrago-admin role (see astrago.hub.scopes)
        return groups

