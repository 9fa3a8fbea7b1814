"""The token verifier (astrago.hub.auth.tokens) against a real realm server over HTTP.

Real tokens come from the realm's code flow; forged ones are made with PyJWT, signed with the
realm's own private key (so that only the claim under test is wrong) or with another key.
"""
import json
import time

import jwt
import pytest
import requests

from astrago.hub.auth.tokens import KeySet, TokenError, TokenVerifier
from astrago.hub.cli import main as astrago
from astrago.hub.realm import store

from ssokit import (
    CLIENT_ID,
    access_claims,
    hs256_with_public_key,
    logout_claims,
    other_key,
    realm_signing_key,
    require,
    sign,
    unsigned,
)
from realmkit import NODE, start_realm, stop_realm  # (tests/realm, put on the path by ssokit)


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    """A bare realm server (hub/realm/server.mjs), no hub."""
    require(bool(NODE), "node")
    r = start_realm(tmp_path_factory.mktemp("sso-realm"))
    yield r
    stop_realm(r)


@pytest.fixture
def verifier(realm):
    keys = KeySet(realm.url("/protocol/openid-connect/certs"), min_refetch_interval=0)
    return TokenVerifier(issuer=realm.issuer, client_id=CLIENT_ID, keys=keys, leeway=30)


@pytest.fixture
def tokens(realm):
    username, password = realm.add_user()
    with requests.Session() as browser:
        tokens, _ = realm.login(browser, username, password)
    return tokens


async def refused(coro, reason: str):
    with pytest.raises(TokenError) as caught:
        await coro
    assert reason in str(caught.value)


async def test_real_tokens_verify_and_each_only_as_what_it_is(verifier, tokens, realm):
    id_claims = await verifier.verify_id_token(tokens["id_token"])
    at_claims = await verifier.verify_access_token(tokens["access_token"])
    assert id_claims["sub"] == at_claims["sub"] and id_claims["iss"] == realm.issuer
    assert id_claims["sid"] == at_claims["sid"]
    await refused(verifier.verify_access_token(tokens["id_token"]), "not an access token")
    await refused(verifier.verify_logout_token(tokens["access_token"]), "not a logout token")
    await refused(verifier.verify_id_token(tokens["refresh_token"]), "not a signed JWT")


async def test_forged_access_tokens_are_refused(verifier, realm):
    kid, key = realm_signing_key(realm.keys_file)
    iss = realm.issuer
    good = access_claims(iss, "mallory")
    assert (await verifier.verify_access_token(sign(good, key, kid)))["preferred_username"] == "mallory"
    now = int(time.time())
    await refused(verifier.verify_access_token(unsigned(good, kid)), "algorithm 'none'")
    await refused(verifier.verify_access_token(hs256_with_public_key(good, key.public_key(), kid)),
                  "algorithm 'HS256'")
    await refused(verifier.verify_access_token(sign(good, other_key(), kid)), "bad signature")
    await refused(verifier.verify_access_token(sign(access_claims("http://evil.example/realms/astrago", "m"), key,
                                                    kid)), "issued by someone else")
    await refused(verifier.verify_access_token(sign(access_claims(iss, "m", aud="grafana", azp="grafana"), key, kid)),
                  "access token is for")
    await refused(verifier.verify_access_token(sign(access_claims(iss, "m", iat=now - 400, exp=now - 60), key, kid)),
                  "expired")
    await refused(verifier.verify_access_token(sign(access_claims(iss, "m", nbf=now + 120), key, kid)),
                  "not valid yet")
    await refused(verifier.verify_access_token(sign(access_claims(iss, "m", iat=now + 120, exp=now + 300), key,
                                                    kid)), "not valid yet")
    await refused(verifier.verify_access_token(sign(access_claims(iss, "m", typ="ID"), key, kid)),
                  "not an access token")
    await refused(verifier.verify_access_token(sign(access_claims(iss, "m", exp=None), key, kid)), "'exp'")
    # within the leeway: a token that expired 10 s ago still passes (clock skew)
    assert await verifier.verify_access_token(sign(access_claims(iss, "m", exp=now - 10), key, kid))


async def test_unknown_key_is_refused_after_one_more_fetch_of_the_keys(verifier, realm):
    kid, key = realm_signing_key(realm.keys_file)
    await verifier.verify_access_token(sign(access_claims(realm.issuer, "m"), key, kid))
    fetches = verifier.keys.fetches
    await refused(verifier.verify_access_token(sign(access_claims(realm.issuer, "m"), other_key(), "made-up-kid")),
                  "does not list")
    assert verifier.keys.fetches == fetches + 1  # looked once more (a rotation?), then refused
    # re-fetches caused by unknown keys are spaced out
    verifier.keys.min_refetch_interval = 60
    await refused(verifier.verify_access_token(sign(access_claims(realm.issuer, "m"), other_key(), "made-up-2")),
                  "does not list")
    assert verifier.keys.fetches == fetches + 1


async def test_key_rotation_with_the_cli(verifier, realm, tokens):
    await verifier.verify_id_token(tokens["id_token"])  # the verifier caches the current keys
    fetches = verifier.keys.fetches
    data_dir = str(realm.realm_file.parent)
    assert astrago(["realm", "--data-dir", data_dir, "rotate-keys"]) == 0
    new_kid, _ = realm_signing_key(realm.keys_file)
    assert realm.keys_file.stat().st_mode & 0o777 == 0o600
    # the running realm signs with the new key at once, and publishes both
    username, password = realm.add_user()
    with requests.Session() as browser:
        fresh, _ = realm.login(browser, username, password)
    assert jwt.get_unverified_header(fresh["id_token"])["kid"] == new_kid
    assert {new_kid, jwt.get_unverified_header(tokens["id_token"])["kid"]} <= {
        k["kid"] for k in requests.get(realm.url("/protocol/openid-connect/certs"), timeout=10).json()["keys"]}
    # the verifier meets an unknown kid, fetches the keys once more, and accepts
    assert (await verifier.verify_id_token(fresh["id_token"]))["preferred_username"] == username
    assert verifier.keys.fetches == fetches + 1
    assert await verifier.verify_id_token(tokens["id_token"])  # the previous key still verifies
    # one more rotation with --keep 1 drops the first key: its tokens are refused
    assert astrago(["realm", "--data-dir", data_dir, "rotate-keys", "--keep", "1"]) == 0
    requests.get(realm.url("/.well-known/openid-configuration"), timeout=10)  # the realm reloads
    verifier.keys.max_age = 0  # as if the cache had aged
    await refused(verifier.verify_id_token(tokens["id_token"]), "does not list")
    assert await verifier.verify_id_token(fresh["id_token"])


async def test_logout_tokens(verifier, realm):
    kid, key = realm_signing_key(realm.keys_file)
    iss = realm.issuer

    def token(typ="logout+jwt", signing_key=key, **overrides):
        claims = {"sub": "sub-1", "sid": "sid-1", **overrides}
        return sign(logout_claims(iss, **claims), signing_key, kid, typ=typ)

    claims = await verifier.verify_logout_token(token())
    assert (claims["sid"], claims["sub"]) == ("sid-1", "sub-1")
    assert await verifier.verify_logout_token(token(sub=None))  # sid alone is enough
    assert await verifier.verify_logout_token(token(sid=None))  # and so is sub alone
    await refused(verifier.verify_logout_token(token(signing_key=other_key())), "bad signature")
    await refused(verifier.verify_logout_token(token(events=None)), "back-channel logout event")
    await refused(verifier.verify_logout_token(token(events={"http://example.org/other": {}})),
                  "back-channel logout event")
    await refused(verifier.verify_logout_token(token(nonce="n-1")), "nonce")
    await refused(verifier.verify_logout_token(token(sid=None, sub=None)), "neither")
    await refused(verifier.verify_logout_token(token(aud="grafana")), "not for client")
    await refused(verifier.verify_logout_token(token(iat=int(time.time()) - 3600)), "too old")
    await refused(verifier.verify_logout_token(token(jti=None)), "'jti'")
    await refused(verifier.verify_logout_token(token(typ="at+jwt")), "not a logout token")
    await refused(verifier.verify_logout_token(unsigned(logout_claims(iss, "s", "x"), kid)), "algorithm 'none'")


def test_rotate_keys_refuses_without_a_realm(tmp_path, capsys):
    assert astrago(["realm", "--data-dir", str(tmp_path), "rotate-keys"]) == 1
    assert "No realm" in capsys.readouterr().err
    store.ensure_realm(tmp_path / "realm.json")
    assert astrago(["realm", "--data-dir", str(tmp_path), "rotate-keys", "--keep", "0"]) == 0
    assert len(json.loads((tmp_path / "realm-keys.json").read_text())["jwks"]["keys"]) == 1
