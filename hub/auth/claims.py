"""Pure mapping from Keycloak claims to what JupyterHub needs.

Kept apart from the authenticator so the rules are tested by exact comparison.
"""
from __future__ import annotations


def claim_at(claims: dict, path: str):
    """The value at a dotted claim path (`realm_access.roles`), or None."""
    value = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def realm_roles(claims: dict, path: str = "realm_access.roles") -> list[str]:
    roles = claim_at(claims, path)
    return sorted(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else []


def client_roles(claims: dict, client_id: str) -> list[str]:
    roles = claim_at(claims, f"resource_access.{client_id}.roles") if "." not in client_id else None
    if roles is None:
        roles = ((claims.get("resource_access") or {}).get(client_id) or {}).get("roles")
    return sorted(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else []


def group_names(claims: dict, path: str = "groups", full_paths: bool = True) -> list[str]:
    """Keycloak groups as JupyterHub group names.

    Keycloak sends full paths (`/team-a/vision`); JupyterHub group names may not
    contain '/' at the start, so the leading slash is dropped and the rest kept
    (`team-a/vision`), or only the last segment when `full_paths` is False.
    The claim is absent for a user with no groups: that is an empty list.
    """
    raw = claim_at(claims, path)
    if not isinstance(raw, list):
        return []
    names = set()
    for group in raw:
        if not isinstance(group, str) or not group.strip("/"):
            continue
        stripped = group.strip("/")
        names.add(stripped if full_paths else stripped.rsplit("/", 1)[-1])
    return sorted(names)
