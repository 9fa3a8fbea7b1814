"""Fixtures for the local realm: a real Node server (hub/realm/server.mjs) on a free port."""

from __future__ import annotations

import secrets

import pytest
import requests

from astrago.hub.realm import store
from realmkit import CLIENT_ID, NODE, start_realm, stop_realm


@pytest.fixture(scope="session")
def realm(tmp_path_factory):
    """One realm server shared by the tests (each test makes its own users)."""
    assert NODE, "node is required for the realm tests"
    r = start_realm(tmp_path_factory.mktemp("realm"))
    yield r
    stop_realm(r)


@pytest.fixture
def browser():
    with requests.Session() as s:
        yield s


@pytest.fixture
def alice(realm):
    """A user with names, an email, nested groups, a realm role and a client role."""
    username, password = realm.add_user(
        email=f"{secrets.token_hex(3)}@example.org", first_name="Alice", last_name="Liddell"
    )
    store.add_to_group(realm.realm_file, username, "/team-a")
    store.add_to_group(realm.realm_file, username, "/team-a/vision")
    store.add_role(realm.realm_file, username, "gpu-user")
    store.add_role(realm.realm_file, username, "operator", client_id=CLIENT_ID)
    return username, password
