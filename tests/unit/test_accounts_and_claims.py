"""Pure rules: system account names, Keycloak claims to hub groups, problem documents."""
import pytest

from astrago.hub.auth import claims
from astrago.hub.service.problems import Problem, problem_for_status
from astrago.spawners.local.accounts import AccountError, system_username


def test_system_username_prefixes_and_refuses_what_it_would_have_to_mangle():
    assert system_username("alice", "astrago-") == "astrago-alice"
    assert system_username("a.b_c-d", "astrago-") == "astrago-a.b_c-d"
    for bad in ("Alice", "al ice", "x" * 30, "../etc", "bob$"):
        with pytest.raises(AccountError):
            system_username(bad, "astrago-")


def test_groups_claim_to_hub_groups():
    token = {"groups": ["/team-a", "/team-a/vision", "/", 7]}
    assert claims.group_names(token) == ["team-a", "team-a/vision"]
    assert claims.group_names(token, full_paths=False) == ["team-a", "vision"]
    assert claims.group_names({}) == []  # Keycloak leaves the claim out for users without groups


def test_roles_claims():
    token = {"realm_access": {"roles": ["admin", "gpu-user"]},
             "resource_access": {"astrago": {"roles": ["quota-admin"]}}}
    assert claims.realm_roles(token) == ["admin", "gpu-user"]
    assert claims.client_roles(token, "astrago") == ["quota-admin"]
    assert claims.client_roles(token, "other") == []
    assert claims.realm_roles({"realm_access": {"roles": "admin"}}) == []


def test_problem_documents():
    p = Problem("quota-exceeded", "GPU units: 0.43 left.", extra={"dimension": "gpu_units"})
    assert p.to_dict("/services/astrago/api/admissions") == {
        "type": "https://astrago.dev/problems/quota-exceeded", "title": "Forbidden", "status": 403,
        "detail": "GPU units: 0.43 left.", "instance": "/services/astrago/api/admissions",
        "dimension": "gpu_units",
    }
    assert problem_for_status(404).type == "not-found"
    assert problem_for_status(418).type == "invalid-request"
    with pytest.raises(ValueError):
        Problem("made-up", "x")
