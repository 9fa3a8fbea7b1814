"""Pure rules, compared exactly: Keycloak claims -> JupyterHub groups, roles, admin, refusal;
which Authorization headers are taken for Keycloak bearer tokens. (A bearer caller's scopes are
JupyterHub's own: tests/auth/test_bearer_hub_scopes.py checks them against a running hub.)"""
from astrago.hub import scopes
from astrago.hub.auth.bearer import bearer_jwt
from astrago.hub.auth.mapping import Identity, MappingRules, describe_change, map_claims, refusal

CLAIMS = {
    "sub": "0f1e", "preferred_username": "Alice",
    "groups": ["/ml/vision", "/team-x", "/", 7],
    "realm_access": {"roles": ["offline_access", "gpu-user"]},
    "resource_access": {"astrago": {"roles": ["quota-admin"]}, "grafana": {"roles": ["fleet-admin"]}},
}


def test_groups_with_parents_roles_of_realm_and_own_client():
    assert map_claims(CLAIMS, MappingRules()) == Identity(
        username="alice",
        groups=("ml", "ml/vision", "team-x"),
        keycloak_roles=("gpu-user", "offline_access", "quota-admin"),  # not grafana's client roles
        hub_roles=("gpu-user", "quota-admin"),
        admin=False,
    )


def test_group_name_styles():
    rules = MappingRules.build(parent_groups=False)
    assert map_claims(CLAIMS, rules).groups == ("ml/vision", "team-x")
    rules = MappingRules.build(parent_groups=False, full_group_paths=False)
    assert map_claims(CLAIMS, rules).groups == ("team-x", "vision")
    rules = MappingRules.build(full_group_paths=False)
    assert map_claims(CLAIMS, rules).groups == ("ml", "team-x", "vision")
    # Keycloak leaves `groups` out for a user in no group
    assert map_claims({"preferred_username": "bob"}, MappingRules()).groups == ()


def test_admin_by_role_or_by_group_gets_the_admin_group_and_role():
    by_role = map_claims({"preferred_username": "a", "realm_access": {"roles": ["admin"]}}, MappingRules())
    by_group = map_claims({"preferred_username": "b", "groups": ["/astrago-admins"]}, MappingRules())
    by_client_role = map_claims({"preferred_username": "c", "resource_access": {"astrago": {"roles": ["admin"]}}},
                                MappingRules())
    for identity in (by_role, by_group, by_client_role):
        assert identity.admin is True
        assert scopes.ADMIN_GROUP in identity.groups
        assert identity.hub_roles == (scopes.ADMIN_ROLE,)
    custom = MappingRules.build(admin_roles={"platform-owner"}, admin_groups={"ops"})
    assert map_claims({"preferred_username": "d", "groups": ["/ops/oncall"]}, custom).admin is True
    assert map_claims({"preferred_username": "e", "realm_access": {"roles": ["admin"]}}, custom).admin is False


def test_role_map_and_group_roles_never_hand_out_jupyterhubs_own_roles():
    rules = MappingRules.build(role_map={"ml-lead": ["quota-admin", "admin", "user"]},
                               group_roles={"ml/vision": "gpu-user"})
    identity = map_claims(CLAIMS | {"realm_access": {"roles": ["ml-lead"]}}, rules)
    assert identity.hub_roles == ("gpu-user", "quota-admin")
    assert identity.admin is False


def test_who_may_log_in_and_why_not():
    rules = MappingRules.build(allowed_groups={"ml"}, allowed_roles={"gpu-user"}, allowed_users={"carol"})
    member = map_claims({"preferred_username": "m", "groups": ["/ml/nlp"]}, rules)  # by the parent group
    holder = map_claims({"preferred_username": "h", "realm_access": {"roles": ["gpu-user"]}}, rules)
    carol = map_claims({"preferred_username": "carol"}, rules)
    admin = map_claims({"preferred_username": "x", "realm_access": {"roles": ["admin"]}}, rules)
    for identity in (member, holder, carol, admin):
        assert refusal(identity, rules) is None
    outsider = map_claims({"preferred_username": "olga", "groups": ["/finance"]}, rules)
    assert refusal(outsider, rules) == (
        "The account olga is not allowed to use AstraGo: it needs one of the groups ml or one of the roles "
        "gpu-user in Keycloak. Ask an AstraGo administrator to add you.")
    assert refusal(outsider, MappingRules.build(allow_all=True)) is None
    assert refusal(admin, MappingRules.build(allow_all=True, blocked_users={"x"})) == (
        "The account x is blocked from AstraGo.")


def test_roles_loaded_into_jupyterhub_assign_nobody():
    # with manage_roles, JupyterHub refuses load_roles entries that assign users or groups
    for role in scopes.roles():
        assert "users" not in role and "groups" not in role
    assert set(scopes.MAPPABLE_ROLES) <= {r["name"] for r in scopes.roles()}


def test_only_jwt_bearers_are_taken_for_keycloak_tokens():
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
    assert bearer_jwt(f"Bearer {jwt_like}") == jwt_like
    assert bearer_jwt(f"bearer  {jwt_like} ") == jwt_like
    assert bearer_jwt("Bearer 0123456789abcdef0123456789abcdef") is None  # a JupyterHub API token
    assert bearer_jwt(f"token {jwt_like}") is None
    assert bearer_jwt("") is None and bearer_jwt(None) is None


def test_keycloak_realm_export_gives_the_hub_what_it_expects():
    import json
    from pathlib import Path

    export = json.loads((Path(__file__).resolve().parents[2] / "config/keycloak/astrago-realm.json").read_text())
    clients = {c["clientId"]: c for c in export["clients"]}
    hub = clients["astrago"]
    assert hub["publicClient"] is False and hub["standardFlowEnabled"] is True
    assert [u.rsplit("/", 2)[-2:] for u in hub["redirectUris"]] == [["hub", "oauth_callback"]]
    assert hub["attributes"]["backchannel.logout.url"].endswith("/hub/backchannel-logout")
    assert hub["attributes"]["backchannel.logout.session.required"] == "true"
    assert any(u.endswith("/hub/logged-out") for u in hub["attributes"]["post.logout.redirect.uris"].split("##"))
    (groups_mapper,) = [m for m in hub["protocolMappers"] if m["protocolMapper"] == "oidc-group-membership-mapper"]
    assert groups_mapper["config"]["claim.name"] == MappingRules().groups_claim
    assert all(groups_mapper["config"][k] == "true" for k in
               ("full.path", "id.token.claim", "access.token.claim", "userinfo.token.claim"))
    for client in clients.values():  # tokens of both clients are for the hub's audience
        (audience,) = [m for m in client["protocolMappers"] if m["protocolMapper"] == "oidc-audience-mapper"]
        assert audience["config"]["included.client.audience"] == "astrago"
    realm_roles = {r["name"] for r in export["roles"]["realm"]}
    assert realm_roles - {"admin"} <= set(scopes.MAPPABLE_ROLES) and "admin" in MappingRules().admin_roles
    assert {r["name"] for r in export["roles"]["client"]["astrago"]} <= set(scopes.MAPPABLE_ROLES)
    assert {g["path"] for g in export["groups"]} >= {"/ml", f"/{scopes.ADMIN_GROUP}"}


def test_changes_of_rights_are_described_in_words():
    rules = MappingRules.build(client_id="astrago")
    before = map_claims({"preferred_username": "a", "groups": ["/ml", "/astrago-admins"],
                         "realm_access": {"roles": ["gpu-user"]}}, rules)
    after = map_claims({"preferred_username": "a", "groups": ["/ml", "/team-y"], "realm_access": {"roles": []}},
                       rules)
    assert describe_change(before, after) == (
        "groups removed: astrago-admins; groups added: team-y; roles removed: astrago-admin, gpu-user; "
        "no longer an admin")
    assert describe_change(after, after) == ""
