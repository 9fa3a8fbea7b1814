"""Authentication: Keycloak (or the embedded Keycloak-compatible realm) over OIDC."""
from .keycloak import KeycloakAuthenticator

__all__ = ["KeycloakAuthenticator"]
