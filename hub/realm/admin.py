"""AstraGo's realm in Keycloak, through Keycloak's admin REST API (python-keycloak).

`realm_representation` turns the realm export in config/keycloak/ into the realm of one
deployment (its URLs, client secret and token lifetimes): pure, tested against literals.
`RealmAdmin` creates that realm once and edits its users, groups, roles and keys; it is what
`astrago up` and `astrago realm ...` use, and what the tests use to make a realm per platform.
"""
from __future__ import annotations

import copy
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakError

REPO_ROOT = Path(__file__).resolve().parents[2]
REALM_EXPORT = REPO_ROOT / "config" / "keycloak" / "astrago-realm.json"
HUB_CLIENT = "astrago"
ADMIN_USER = "admin"
#: the astrago realm's administrator may use Keycloak's admin console for this realm only
CONSOLE_CLIENT, CONSOLE_ROLE = "realm-management", "realm-admin"

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_GROUP_PATH = re.compile(r"^(/[A-Za-z0-9][A-Za-z0-9 ._-]{0,63})+$")


class RealmError(ValueError):
    """A realm operation that cannot be done; the message is one plain sentence."""


@dataclass(frozen=True)
class RealmSpec:
    """What one deployment needs of its realm."""
    name: str
    frontend_url: str  # Keycloak's root as browsers see it, e.g. https://astrago.example.org/services/realm
    hub_url: str  # e.g. https://astrago.example.org
    backchannel_logout_url: str
    client_secret: str
    access_token_ttl: int = 300
    sso_idle_timeout: int = 1800
    post_logout_paths: tuple = ("/hub/logged-out", "/hub/login", "/hub/")
    display_name: str = "AstraGo"  # Keycloak's login page says "Sign in to <display name>"


def realm_representation(export: dict, spec: RealmSpec) -> dict:
    """The export with this deployment's names, URLs, secret and lifetimes filled in."""
    realm = copy.deepcopy(export)
    realm["realm"] = spec.name
    realm["enabled"] = True
    realm["displayName"] = spec.display_name
    realm.setdefault("attributes", {})["frontendUrl"] = spec.frontend_url
    realm["accessTokenLifespan"] = spec.access_token_ttl
    realm["ssoSessionIdleTimeout"] = spec.sso_idle_timeout
    for client in realm.get("clients", []):
        if client["clientId"] == HUB_CLIENT:
            client.update(hub_client_settings(client, spec))
    return realm


def hub_client_settings(client: dict, spec: RealmSpec) -> dict:
    """The hub client's fields that depend on where the hub is."""
    attributes = dict(client.get("attributes", {}))
    attributes["post.logout.redirect.uris"] = "##".join(spec.hub_url + p for p in spec.post_logout_paths)
    attributes["backchannel.logout.url"] = spec.backchannel_logout_url
    return {
        "rootUrl": spec.hub_url,
        "redirectUris": [f"{spec.hub_url}/hub/oauth_callback"],
        "secret": spec.client_secret,
        "attributes": attributes,
    }


def check_username(username: str) -> str:
    if not _USERNAME.match(username or ""):
        raise RealmError(f"'{username}' is not a valid user name: use 1-64 lower-case letters, digits and . _ @ -, "
                         "starting with a letter or digit.")
    return username


def check_group_path(path: str) -> str:
    if not _GROUP_PATH.match(path or ""):
        raise RealmError(f"'{path}' is not a group path: write it like /team-a or /team-a/vision.")
    return path


def random_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass
class RealmAdmin:
    """Keycloak's admin API for one realm, authenticated as the bootstrap admin client."""
    base_url: str  # Keycloak's root as the hub reaches it, e.g. http://127.0.0.1:10102/services/realm
    credentials: dict  # {"client_id", "client_secret"} of a master-realm admin client
    realm: str
    _api: KeycloakAdmin | None = field(default=None, repr=False)

    @classmethod
    def from_file(cls, base_url: str, credentials_file: str | Path, realm: str) -> "RealmAdmin":
        path = Path(credentials_file)
        if not path.exists():
            raise RealmError(f"No Keycloak admin credentials at {path}: start AstraGo once with 'astrago up' "
                             "(or pass --data-dir).")
        return cls(base_url, json.loads(path.read_text()), realm)

    @property
    def api(self) -> KeycloakAdmin:
        if self._api is None:
            connection = KeycloakOpenIDConnection(
                server_url=self.base_url.rstrip("/") + "/", realm_name=self.realm, user_realm_name="master",
                client_id=self.credentials["client_id"], client_secret_key=self.credentials["client_secret"],
                grant_type="client_credentials", timeout=30)
            self._api = KeycloakAdmin(connection=connection)
        return self._api

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeycloakError as exc:
            raise RealmError(f"Keycloak refused to {what}: {_reason(exc)}") from None
        except OSError as exc:  # requests' connection errors
            raise RealmError(f"Keycloak at {self.base_url} is not reachable ({exc}): is AstraGo running?") from None

    # -- the realm --------------------------------------------------------------------------

    def exists(self) -> bool:
        realms = self._call("list realms", self.api.get_realms)
        return any(r["realm"] == self.realm for r in realms)

    def ensure(self, spec: RealmSpec, export: dict | None = None) -> str | None:
        """Create the realm from the export on first use (returns the new admin's password, shown
        once); afterwards bring its URLs and lifetimes up to date (returns None)."""
        if self.exists():
            self._update(spec)
            return None
        export = export if export is not None else json.loads(REALM_EXPORT.read_text())
        self._call("import the AstraGo realm", self.api.create_realm, realm_representation(export, spec))
        self._relax_user_profile()
        password = random_password()
        self.add_user(ADMIN_USER, password=password, first_name="AstraGo", last_name="Administrator")
        self.add_role(ADMIN_USER, "admin")
        self.add_role(ADMIN_USER, CONSOLE_ROLE, client_id=CONSOLE_CLIENT)
        return password

    def _update(self, spec: RealmSpec) -> None:
        realm = self._call("read the realm", self.api.get_realm, self.realm)
        attributes = dict(realm.get("attributes") or {}, frontendUrl=spec.frontend_url)
        self._call("update the realm", self.api.update_realm, self.realm, {
            "attributes": attributes, "accessTokenLifespan": spec.access_token_ttl,
            "ssoSessionIdleTimeout": spec.sso_idle_timeout})
        uuid = self._client_uuid(HUB_CLIENT)
        client = self._call("read the hub client", self.api.get_client, uuid)
        self._call("update the hub client", self.api.update_client, uuid, hub_client_settings(client, spec))

    def _relax_user_profile(self) -> None:
        """Names and e-mail optional: a user made by `astrago realm add-user` logs in without
        Keycloak first asking them to fill in a profile."""
        profile = self._call("read the user profile", self.api.get_realm_users_profile)
        for attribute in profile.get("attributes", []):
            if attribute["name"] in ("email", "firstName", "lastName"):
                attribute.pop("required", None)
        self._call("update the user profile", self.api.update_realm_users_profile, profile)

    def client_secret(self, client_id: str = HUB_CLIENT) -> str:
        return self._call("read the client secret", self.api.get_client_secrets, self._client_uuid(client_id))["value"]

    def _client_uuid(self, client_id: str) -> str:
        uuid = self._call(f"find client {client_id}", self.api.get_client_id, client_id)
        if not uuid:
            raise RealmError(f"The realm {self.realm} has no client {client_id}.")
        return uuid

    # -- users ------------------------------------------------------------------------------

    def _user_id(self, username: str) -> str:
        uid = self._call(f"look up {username}", self.api.get_user_id, username)
        if not uid:
            raise RealmError(f"There is no user {username} in the realm {self.realm}; "
                             "see them with 'astrago realm list'.")
        return uid

    def add_user(self, username: str, *, password: str | None = None, email: str | None = None,
                 first_name: str = "", last_name: str = "") -> str:
        """Add an enabled user; returns their password (generated when none is given)."""
        check_username(username)
        if self._call(f"look up {username}", self.api.get_user_id, username):
            raise RealmError(f"{username} already exists; change their password with 'astrago realm passwd {username}'.")
        password = password or random_password()
        payload = {"username": username, "enabled": True, "emailVerified": bool(email),
                   "firstName": first_name, "lastName": last_name, "requiredActions": [],
                   "credentials": [{"type": "password", "value": password, "temporary": False}]}
        if email:
            payload["email"] = email
        self._call(f"add {username}", self.api.create_user, payload)
        return password

    def set_password(self, username: str, password: str | None = None) -> str:
        password = password or random_password()
        self._call(f"set the password of {username}", self.api.set_user_password, self._user_id(username),
                   password, temporary=False)
        return password

    def set_enabled(self, username: str, enabled: bool) -> None:
        self._call(f"{'enable' if enabled else 'disable'} {username}", self.api.update_user,
                   self._user_id(username), {"enabled": enabled})

    def delete_user(self, username: str) -> None:
        self._call(f"delete {username}", self.api.delete_user, self._user_id(username))

    def logout_user(self, username: str) -> None:
        """End all of the user's Keycloak sessions (Keycloak then sends back-channel logouts)."""
        self._call(f"log {username} out", self.api.user_logout, self._user_id(username))

    def list_users(self) -> list[dict]:
        """[{username, enabled, groups, realm_roles}], by user name."""
        users = []
        for user in self._call("list users", self.api.get_users, {}):
            groups = self._call("read groups", self.api.get_user_groups, user["id"])
            roles = self._call("read roles", self.api.get_realm_roles_of_user, user["id"])
            users.append({"username": user["username"], "enabled": user.get("enabled", True),
                          "groups": sorted(g["path"] for g in groups),
                          "realm_roles": sorted(r["name"] for r in roles if not r["name"].startswith("default-roles-"))})
        return sorted(users, key=lambda u: u["username"])

    # -- groups and roles ----------------------------------------------------------------------

    def _group_id(self, path: str, create: bool) -> str | None:
        check_group_path(path)
        try:
            return self.api.get_group_by_path(path)["id"]
        except KeycloakError:
            if not create:
                return None
        parent_id = None
        walked = ""
        for name in path.strip("/").split("/"):
            walked += "/" + name
            try:
                parent_id = self.api.get_group_by_path(walked)["id"]
            except KeycloakError:
                parent_id = self._call(f"create group {walked}", self.api.create_group, {"name": name},
                                       parent=parent_id, skip_exists=True) or self.api.get_group_by_path(walked)["id"]
        return parent_id

    def add_to_group(self, username: str, path: str) -> None:
        uid = self._user_id(username)
        self._call(f"put {username} in {path}", self.api.group_user_add, uid, self._group_id(path, create=True))

    def remove_from_group(self, username: str, path: str) -> None:
        uid = self._user_id(username)
        gid = self._group_id(path, create=False)
        if gid is None:
            raise RealmError(f"There is no group {path}.")
        self._call(f"take {username} out of {path}", self.api.group_user_remove, uid, gid)

    def _role(self, role: str, client_id: str | None) -> tuple[str | None, dict]:
        if client_id:
            uuid = self._client_uuid(client_id)
            return uuid, self._call(f"find role {role} of {client_id}", self.api.get_client_role, uuid, role)
        return None, self._call(f"find role {role}", self.api.get_realm_role, role)

    def add_role(self, username: str, role: str, *, client_id: str | None = None) -> None:
        uid = self._user_id(username)
        uuid, rep = self._role(role, client_id)
        if uuid:
            self._call(f"give {username} {role}", self.api.assign_client_role, uid, uuid, [rep])
        else:
            self._call(f"give {username} {role}", self.api.assign_realm_roles, uid, [rep])

    def remove_role(self, username: str, role: str, *, client_id: str | None = None) -> None:
        uid = self._user_id(username)
        uuid, rep = self._role(role, client_id)
        if uuid:
            self._call(f"take {role} from {username}", self.api.delete_client_roles_of_user, uid, uuid, [rep])
        else:
            self._call(f"take {role} from {username}", self.api.delete_realm_roles_of_user, uid, [rep])

    # -- signing keys --------------------------------------------------------------------------

    def _rsa_providers(self) -> list[dict]:
        found = self._call("list keys", self.api.get_components, {"type": "org.keycloak.keys.KeyProvider"})
        rsa = [c for c in found if c["providerId"] in ("rsa-generated", "rsa")]
        return sorted(rsa, key=lambda c: -int((c.get("config", {}).get("priority") or ["0"])[0]))

    def _add_key_provider(self, provider_id: str, name: str, config: dict) -> str:
        top = max([int((c.get("config", {}).get("priority") or ["0"])[0]) for c in self._rsa_providers()] or [100])
        realm_id = self._call("read the realm", self.api.get_realm, self.realm)["id"]
        payload = {"name": name, "providerId": provider_id, "providerType": "org.keycloak.keys.KeyProvider",
                   "parentId": realm_id,
                   "config": {"priority": [str(top + 10)], "enabled": ["true"], "active": ["true"],
                              "algorithm": ["RS256"], **config}}
        component_id = self._call("add a signing key", self.api.create_component, payload)
        return self._kid_of(component_id)

    def _kid_of(self, component_id: str) -> str:
        keys = self._call("list keys", self.api.get_keys)["keys"]
        for key in keys:
            if key.get("providerId") == component_id and key.get("algorithm") == "RS256":
                return key["kid"]
        raise RealmError("Keycloak did not list the new signing key.")

    def rotate_keys(self, keep: int = 1) -> str:
        """Sign with a new key from now on; the `keep` newest previous keys still verify older
        tokens, older ones are removed. Returns the new key's id."""
        kid = self._add_key_provider("rsa-generated", f"astrago-rsa-{secrets.token_hex(3)}", {"keySize": ["2048"]})
        for old in self._rsa_providers()[1 + keep:]:
            self._call("remove an old signing key", self.api.delete_component, old["id"])
        return kid

    def import_signing_key(self, private_key_pem: str) -> str:
        """Sign with this RSA key from now on (an organisation's own key); returns its key id."""
        return self._add_key_provider("rsa", f"astrago-imported-{secrets.token_hex(3)}",
                                      {"privateKey": [private_key_pem]})


def _reason(exc: KeycloakError) -> str:
    body = getattr(exc, "response_body", b"") or b""
    try:
        data = json.loads(body)
        return data.get("errorMessage") or data.get("error_description") or data.get("error") or str(data)
    except (ValueError, TypeError, AttributeError):
        return (body.decode(errors="replace") if isinstance(body, bytes) else str(body)) or str(exc)
