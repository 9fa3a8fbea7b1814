"""The token verifier (astrago.hub.auth.tokens) against Keycloak itself, over HTTP.

Real tokens come from the realm's code flow at Keycloak's login page; forged ones are made with
PyJWT, signed with the realm's own signing key (a key the test imported into Keycloak, so that
only the claim under test is wrong) or with another key.
"""
import time

import jwt
import pytest
import requests

from astrago.hub.auth.tokens import KeySet, TokenError, TokenVerifier
from astrago.hub.cli import main as astrago
from support.keycloak import BareRealm, keycloak_available
from support.platform import BrowserSession

from ssokit import (
    CLIENT_ID,
    access_claims,
    hs256_with_public_key,
    logout_claims,
    other_key,
    require,
    sign,
    unsigned,
)


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    """A realm of the session's Keycloak, no hub."""
    require(keycloak_available(), "Keycloak (make test builds it)")
    r = BareRealm(tmp_path_factory.mktemp("sso-realm"))
    yield r
    r.remove()


@pytest.fixture
def verifier(realm):
    keys = KeySet(realm.url("/protocol/openid-connect/certs"), min_refetch_interval=0)
    return TokenVerifier(issuer=realm.issuer, client_id=CLIENT_ID, keys=keys, leeway=30)


@pytest.fixture
def tokens(realm):
    username, password = realm.add_user()
    with BrowserSession() as browser:
        return realm.login(browser, username, password)


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
    # Keycloak's refresh tokens are JWTs too, HMAC-signed with a realm secret: never an ID token
    await refused(verifier.verify_id_token(tokens["refresh_token"]), "algorithm 'HS512' is not accepted")


async def test_forged_access_tokens_are_refused(verifier, realm):
    kid, key = realm.signing_key
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
    kid, key = realm.signing_key
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


async def test_logout_tokens(verifier, realm):
    kid, key = realm.signing_key
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
    err = capsys.readouterr().err
    assert "No realm recorded" in err and "astrago up" in err


async def test_keycloak_access_tokens_name_account_and_the_client_in_azp(realm, tokens):
    """What Keycloak really issues, and what the verifier must accept: `aud` carries `account`
    (and `astrago` from the audience mapper), the client is in `azp`, realm roles only in the
    access token."""
    at = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    idt = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert "account" in at["aud"] and CLIENT_ID in at["aud"]
    assert at["azp"] == CLIENT_ID and at["typ"] == "Bearer"
    assert "realm_access" in at and "realm_access" not in idt
    assert idt["aud"] == CLIENT_ID and idt["typ"] == "ID"


async def test_key_rotation_with_the_cli(verifier, realm, tokens):
    """Kept last: it removes the realm's earlier keys."""
    await verifier.verify_id_token(tokens["id_token"])  # the verifier caches the current keys
    fetches = verifier.keys.fetches
    data_dir = str(realm.data_dir)
    assert astrago(["realm", "--data-dir", data_dir, "rotate-keys", "--keep", "2"]) == 0
    # Keycloak signs with the new key at once, and publishes both
    username, password = realm.add_user()
    with BrowserSession() as browser:
        fresh = realm.login(browser, username, password)
    new_kid = jwt.get_unverified_header(fresh["id_token"])["kid"]
    old_kid = jwt.get_unverified_header(tokens["id_token"])["kid"]
    assert new_kid != old_kid
    assert {new_kid, old_kid} <= {
        k["kid"] for k in requests.get(realm.url("/protocol/openid-connect/certs"), timeout=10).json()["keys"]}
    # the verifier meets an unknown kid, fetches the keys once more, and accepts
    assert (await verifier.verify_id_token(fresh["id_token"]))["preferred_username"] == username
    assert verifier.keys.fetches == fetches + 1
    assert await verifier.verify_id_token(tokens["id_token"])  # the previous key still verifies
    # rotations with --keep 0 drop the previous keys: their tokens are refused
    assert astrago(["realm", "--data-dir", data_dir, "rotate-keys", "--keep", "0"]) == 0
    verifier.keys.max_age = 0  # as if the cache had aged
    await refused(verifier.verify_id_token(tokens["id_token"]), "does not list")
    await refused(verifier.verify_id_token(fresh["id_token"]), "does not list")
