"""Keycloak, AstraGo's identity provider: the pinned distribution (`distribution`), one local
process of it (`server`), and the AstraGo realm in it through Keycloak's admin API (`admin`).
See docs/keycloak.md."""
