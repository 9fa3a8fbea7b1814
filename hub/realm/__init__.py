"""The local realm: embedded mode's Keycloak-compatible OpenID provider.

``server.mjs`` (Node, panva's oidc-provider) serves the realm; ``store`` is the Python side
that creates and edits the realm file it reads. See README.md in this folder.
"""

from .store import (  # noqa: F401
    RealmError,
    add_role,
    add_to_group,
    add_user,
    client_secret,
    delete_user,
    ensure_realm,
    hash_password,
    read_realm,
    remove_from_group,
    remove_role,
    rotate_signing_key,
    set_enabled,
    set_password,
    verify_password,
)
