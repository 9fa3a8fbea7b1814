"""Pure rules: a Keycloak identity (verified claims) -> who the user is in JupyterHub.

Kept apart from the authenticator so every rule is tested by exact comparison;
docs/auth-mapping.md is the table of these rules.

- groups: Keycloak group paths (`/ml/vision`) -> JupyterHub group names (`ml/vision`, or
  `vision` with last-segment names). With ``parent_groups`` a member of `/ml/vision` is
  also in `ml`, as Keycloak subgroup members inherit their parent's role mappings.
- roles: realm roles and the roles of one client (``resource_access.<client>.roles``)
  together are the user's Keycloak roles. ``role_map`` turns them into JupyterHub roles
  (AstraGo's, carrying its custom scopes); ``group_roles`` gives JupyterHub roles to
  members of JupyterHub groups.
- admin: a role in ``admin_roles`` or a group in ``admin_groups`` makes a JupyterHub admin,
  a member of the `astrago-admins` group and a holder of the `astrago-admin` role.
- who may log in: everyone with ``allow_all``; otherwise admins, ``allowed_users``, members
  of ``allowed_groups`` and holders of ``allowed_roles``. Anyone else is refused, with a
  sentence that says why.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .. import scopes
from . import claims as claim_rules


def _frozen(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(v for v in (values or ()) if isinstance(v, str) and v)


def _frozen_map(values: Mapping[str, Iterable[str]] | None) -> dict[str, tuple[str, ...]]:
    result = {}
    for key, roles in (values or {}).items():
        if isinstance(roles, str):
            roles = [roles]
        result[key] = tuple(sorted(_frozen(roles)))
    return result


#: Keycloak role -> JupyterHub roles, when nothing else is configured: a Keycloak role
#: (realm or client) named like an AstraGo role grants that role.
DEFAULT_ROLE_MAP = {name: (name,) for name in scopes.MAPPABLE_ROLES}


@dataclass(frozen=True)
class MappingRules:
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    full_group_paths: bool = True
    parent_groups: bool = True
    realm_roles_claim: str = "realm_access.roles"
    client_id: str = "astrago"  # whose client roles count (resource_access.<client_id>.roles)
    admin_roles: frozenset[str] = frozenset({"admin"})
    admin_groups: frozenset[str] = frozenset({scopes.ADMIN_GROUP})
    role_map: dict = field(default_factory=lambda: dict(DEFAULT_ROLE_MAP))
    group_roles: dict = field(default_factory=dict)
    allow_all: bool = False
    allowed_users: frozenset[str] = frozenset()
    allowed_groups: frozenset[str] = frozenset()
    allowed_roles: frozenset[str] = frozenset()
    blocked_users: frozenset[str] = frozenset()

    @classmethod
    def build(cls, **values) -> "MappingRules":
        """Rules from loosely typed values (traitlets sets, lists, dicts)."""
        for name in ("admin_roles", "admin_groups", "allowed_users", "allowed_groups", "allowed_roles",
                     "blocked_users"):
            if name in values:
                values[name] = _frozen(values[name])
        for name in ("role_map", "group_roles"):
            if name in values:
                values[name] = _frozen_map(values[name])
        return cls(**values)


@dataclass(frozen=True)
class Identity:
    """What JupyterHub should know about a user, from their claims."""

    username: str
    groups: tuple[str, ...]  # JupyterHub group names, sorted
    keycloak_roles: tuple[str, ...]  # realm roles and the client's roles, sorted
    hub_roles: tuple[str, ...]  # JupyterHub roles, sorted (besides `user` and `admin`)
    admin: bool


def hub_group_names(claims: dict, rules: MappingRules) -> list[str]:
    """Keycloak groups -> JupyterHub group names (see the module docstring)."""
    raw = claim_rules.claim_at(claims, rules.groups_claim)
    if not isinstance(raw, list):
        return []  # Keycloak leaves the claim out for a user in no group
    names = set()
    for path in raw:
        if not isinstance(path, str) or not path.strip("/"):
            continue
        segments = [s for s in path.strip("/").split("/") if s]
        spans = range(1, len(segments) + 1) if rules.parent_groups else [len(segments)]
        for n in spans:
            names.add("/".join(segments[:n]) if rules.full_group_paths else segments[n - 1])
    return sorted(names)


def keycloak_roles(claims: dict, rules: MappingRules) -> list[str]:
    roles = set(claim_rules.realm_roles(claims, rules.realm_roles_claim))
    if rules.client_id:
        roles.update(claim_rules.client_roles(claims, rules.client_id))
    return sorted(roles)


def map_claims(claims: dict, rules: MappingRules, username: str | None = None) -> Identity:
    """The JupyterHub view of a user whose verified claims are ``claims``."""
    if username is None:
        username = str(claim_rules.claim_at(claims, rules.username_claim) or "").lower()
    groups = set(hub_group_names(claims, rules))
    roles = keycloak_roles(claims, rules)
    admin = bool(set(roles) & rules.admin_roles or groups & rules.admin_groups)
    if admin:
        groups.add(scopes.ADMIN_GROUP)
    hub_roles = set()
    for role in roles:
        hub_roles.update(rules.role_map.get(role, ()))
    for group in groups:
        hub_roles.update(rules.group_roles.get(group, ()))
    if admin:
        hub_roles.add(scopes.ADMIN_ROLE)
    hub_roles -= {"user", "admin"}  # JupyterHub's own roles follow the admin flag
    return Identity(username=username, groups=tuple(sorted(groups)), keycloak_roles=tuple(roles),
                    hub_roles=tuple(sorted(hub_roles)), admin=admin)


def refusal(identity: Identity, rules: MappingRules) -> str | None:
    """None when the user may log in; otherwise a sentence saying why not."""
    name = identity.username
    if name in rules.blocked_users:
        return f"The account {name} is blocked from AstraGo."
    if rules.allow_all or identity.admin or name in rules.allowed_users:
        return None
    if set(identity.groups) & rules.allowed_groups or set(identity.keycloak_roles) & rules.allowed_roles:
        return None
    what = []
    if rules.allowed_groups:
        what.append("one of the groups " + ", ".join(sorted(rules.allowed_groups)))
    if rules.allowed_roles:
        what.append("one of the roles " + ", ".join(sorted(rules.allowed_roles)))
    needed = " or ".join(what) if what else "an explicit invitation"
    return (f"The account {name} is not allowed to use AstraGo: it needs {needed} in Keycloak. "
            "Ask an AstraGo administrator to add you.")


def describe_change(before: Identity, after: Identity) -> str:
    """What changed between two mappings of one person, in words ('' when nothing did)."""
    parts = []
    for what, old, new in (("groups", before.groups, after.groups), ("roles", before.hub_roles, after.hub_roles)):
        removed, added = sorted(set(old) - set(new)), sorted(set(new) - set(old))
        if removed:
            parts.append(f"{what} removed: {', '.join(removed)}")
        if added:
            parts.append(f"{what} added: {', '.join(added)}")
    if before.admin != after.admin:
        parts.append("now an admin" if after.admin else "no longer an admin")
    return "; ".join(parts)
