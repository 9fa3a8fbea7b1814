"""The local realm's store: users, groups, roles and clients in one JSON file.

Embedded mode's identity provider (``hub/realm/server.mjs``, a Keycloak-compatible OpenID
provider) reads the file and re-reads it when it changes; everything that writes it goes
through this module. Writes are atomic (a temporary file in the same directory, fsync,
``os.replace``), the file is mode 0600, and read-modify-write cycles are serialised with an
``fcntl`` lock on a sidecar ``<file>.lock`` so concurrent ``astrago realm`` calls lose no
update.

File shape::

    {"realm": "astrago",
     "users": {"alice": {"id": "<uuid4>", "email": "alice@example.org", "first_name": "",
                         "last_name": "", "enabled": true,
                         "password": "scrypt$16384$8$1$<salt b64>$<hash b64>",
                         "groups": ["/team-a", "/team-a/vision"],
                         "realm_roles": ["gpu-user"], "client_roles": {"astrago": []}}},
     "groups": ["/team-a", "/team-a/vision"],
     "roles": ["admin", "gpu-user"],
     "clients": {"astrago": {"secret": "<random>", "redirect_uris": [...],
                             "post_logout_redirect_uris": [...]}}}

A user's ``groups`` are direct memberships as full paths (Keycloak's ``groups`` claim);
joining ``/team-a/vision`` creates ``/team-a`` in the realm but does not make the user a
member of it.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = [
    "RealmError",
    "add_role",
    "add_to_group",
    "add_user",
    "client_secret",
    "delete_user",
    "ensure_realm",
    "hash_password",
    "read_realm",
    "remove_from_group",
    "remove_role",
    "rotate_signing_key",
    "set_enabled",
    "set_password",
    "verify_password",
]

# scrypt parameters shared with hub/realm/password.mjs
SCRYPT_N = 16384
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 64
_SCRYPT_MAXMEM = 64 * 1024 * 1024

MIN_PASSWORD_LENGTH = 8

_USERNAME_RE = re.compile(r"[a-z][a-z0-9._-]{0,31}")
_GROUP_SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ROLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_CLIENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_REALM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")


class RealmError(ValueError):
    """A realm operation that cannot be done; the message is a sentence for a person."""


# --------------------------------------------------------------------------- passwords


def hash_password(password: str) -> str:
    """Hash ``password`` as ``scrypt$N$r$p$<salt b64>$<key b64>`` (what the server verifies)."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=_SCRYPT_MAXMEM,
        dklen=KEY_BYTES,
    )
    return "$".join(
        [
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(key).decode("ascii"),
        ]
    )


def verify_password(password: str, encoded: str) -> bool:
    """Does ``password`` match ``encoded``? False for a malformed hash."""
    try:
        scheme, n, r, p, salt_b64, key_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        key = base64.b64decode(key_b64, validate=True)
        derived = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(key),
        )
    except (ValueError, TypeError, AttributeError):
        return False
    return hmac.compare_digest(derived, key)


def _random_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def _checked_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise RealmError(
            f"Passwords must be at least {MIN_PASSWORD_LENGTH} characters long."
        )
    if "\x00" in password:
        raise RealmError("Passwords must not contain NUL characters.")
    return password


# --------------------------------------------------------------------------- validation


def _check_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME_RE.fullmatch(username):
        raise RealmError(
            f"Invalid username {username!r}: use 1 to 32 lowercase letters, digits, '-', '_' "
            "or '.', starting with a letter (usernames become Unix account names)."
        )
    return username


def _check_group_path(group_path: str) -> str:
    if (
        not isinstance(group_path, str)
        or not group_path.startswith("/")
        or len(group_path) > 255
        or not all(_GROUP_SEGMENT_RE.fullmatch(s) for s in group_path[1:].split("/"))
    ):
        raise RealmError(
            f"Invalid group path {group_path!r}: write it as /name or /parent/child, each name "
            "made of letters, digits, '-', '_' or '.' and starting with a letter or digit."
        )
    return group_path


def _check_role(role: str) -> str:
    if not isinstance(role, str) or not _ROLE_RE.fullmatch(role):
        raise RealmError(
            f"Invalid role name {role!r}: use letters, digits, '-', '_', '.' or ':', "
            "starting with a letter or digit (at most 64 characters)."
        )
    return role


def _check_email(email: str | None) -> str:
    if email is None or email == "":
        return ""
    if not isinstance(email, str) or not _EMAIL_RE.fullmatch(email) or len(email) > 254:
        raise RealmError(f"Invalid email address {email!r}.")
    return email


def _check_name(value: str, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 100 or any(ord(c) < 32 for c in value):
        raise RealmError(f"Invalid {what} {value!r}: at most 100 printable characters.")
    return value


def _check_uris(uris: Iterable[str] | None, what: str) -> list[str]:
    result: list[str] = []
    for uri in uris or ():
        if not isinstance(uri, str) or not re.match(r"https?://[^\s/]+", uri) or "#" in uri:
            raise RealmError(f"Invalid {what} {uri!r}: it must be an absolute http(s) URL.")
        if uri not in result:
            result.append(uri)
    return result


def _parent_paths(group_path: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b', '/a/b/c']"""
    segments = group_path[1:].split("/")
    return ["/" + "/".join(segments[: i + 1]) for i in range(len(segments))]


# --------------------------------------------------------------------------- file access


def _lock_path(path: str | os.PathLike) -> str:
    return os.fspath(path) + ".lock"


@contextlib.contextmanager
def _locked(path: str | os.PathLike) -> Iterator[None]:
    fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(path: str | os.PathLike, data: dict[str, Any]) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".realm-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(data, f, indent=2, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_realm(path: str | os.PathLike) -> dict[str, Any]:
    """The realm file's content. Raises RealmError when it is missing or unreadable."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RealmError(
            f"No realm file at {path}: it is created when the hub first starts in embedded mode."
        ) from None
    except (OSError, ValueError) as e:
        raise RealmError(f"Cannot read the realm file {path}: {e}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        raise RealmError(f"The realm file {path} is not a realm (no 'users' object).")
    data.setdefault("realm", "astrago")
    data.setdefault("groups", [])
    data.setdefault("roles", [])
    data.setdefault("clients", {})
    return data


@contextlib.contextmanager
def _editing(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Lock, read, let the caller change the dict, write it back if it changed."""
    with _locked(path):
        data = read_realm(path)
        before = copy.deepcopy(data)
        yield data
        if data != before:
            _write_atomic(path, data)


def _user(data: dict[str, Any], username: str) -> dict[str, Any]:
    _check_username(username)
    user = data["users"].get(username)
    if user is None:
        raise RealmError(
            f"No user {username!r} in realm {data.get('realm', 'astrago')!r}. "
            f"Add one with: astrago realm add-user {username}"
        )
    user.setdefault("groups", [])
    user.setdefault("realm_roles", [])
    user.setdefault("client_roles", {})
    return user


def _new_client(redirect_uris: list[str], post_logout_redirect_uris: list[str]) -> dict[str, Any]:
    return {
        "secret": secrets.token_urlsafe(32),
        "redirect_uris": redirect_uris,
        "post_logout_redirect_uris": post_logout_redirect_uris,
    }


def _new_user(
    email: str, password: str, first_name: str, last_name: str, client_ids: Iterable[str]
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "enabled": True,
        "password": hash_password(password),
        "groups": [],
        "realm_roles": [],
        "client_roles": {cid: [] for cid in client_ids},
    }


# --------------------------------------------------------------------------- public API


def ensure_realm(
    path: str | os.PathLike,
    realm: str = "astrago",
    client_id: str = "astrago",
    redirect_uris: Iterable[str] = ("http://127.0.0.1:8000/hub/oauth_callback",),
    post_logout_redirect_uris: Iterable[str] = ("http://127.0.0.1:8000/hub/login",),
    backchannel_logout_uri: str | None = None,
) -> str | None:
    """Create the realm file if it is missing; keep the client's URIs up to date.

    A new realm gets the client ``client_id`` with a random secret and a user ``admin``
    holding the realm role ``admin``, with a random password that is returned (print it
    once: it is stored only as a hash). For an existing realm this returns None and only
    updates the client's redirect URIs (adding the client if it is missing).
    ``backchannel_logout_uri``, when given, is where the realm POSTs a signed logout token
    when a session of this client ends (OpenID back-channel logout).
    """
    if not _REALM_RE.fullmatch(realm or ""):
        raise RealmError(f"Invalid realm name {realm!r}.")
    if not _CLIENT_ID_RE.fullmatch(client_id or ""):
        raise RealmError(f"Invalid client id {client_id!r}.")
    redirects = _check_uris(redirect_uris, "redirect URI")
    post_logout = _check_uris(post_logout_redirect_uris, "post-logout redirect URI")
    backchannel = _check_uris([backchannel_logout_uri] if backchannel_logout_uri else [], "back-channel logout URI")

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)

    with _locked(path):
        if os.path.exists(path):
            data = read_realm(path)
            before = copy.deepcopy(data)
            client = data["clients"].get(client_id)
            if client is None:
                client = data["clients"][client_id] = _new_client(redirects, post_logout)
            client["redirect_uris"] = redirects
            client["post_logout_redirect_uris"] = post_logout
            if backchannel:
                client["backchannel_logout_uri"] = backchannel[0]
            else:
                client.pop("backchannel_logout_uri", None)
            if data != before:
                _write_atomic(path, data)
            return None

        password = _random_password()
        client = _new_client(redirects, post_logout)
        if backchannel:
            client["backchannel_logout_uri"] = backchannel[0]
        admin = _new_user("", password, "", "", [client_id])
        admin["realm_roles"] = ["admin"]
        data = {
            "realm": realm,
            "users": {"admin": admin},
            "groups": [],
            "roles": ["admin"],
            "clients": {client_id: client},
        }
        _write_atomic(path, data)
        return password


def client_secret(path: str | os.PathLike, client_id: str) -> str:
    """The secret of client ``client_id``."""
    data = read_realm(path)
    client = data["clients"].get(client_id)
    if client is None:
        raise RealmError(f"No client {client_id!r} in realm {data['realm']!r}.")
    return client["secret"]


def add_user(
    path: str | os.PathLike,
    username: str,
    email: str | None = None,
    password: str | None = None,
    first_name: str = "",
    last_name: str = "",
) -> str:
    """Add an enabled user; returns the password (a random one when none is given)."""
    _check_username(username)
    email = _check_email(email)
    first_name = _check_name(first_name, "first name")
    last_name = _check_name(last_name, "last name")
    password = _random_password() if password is None else _checked_password(password)
    with _editing(path) as data:
        if username in data["users"]:
            raise RealmError(f"User {username!r} already exists in realm {data['realm']!r}.")
        data["users"][username] = _new_user(
            email, password, first_name, last_name, data["clients"].keys()
        )
    return password


def set_password(path: str | os.PathLike, username: str, password: str | None = None) -> str:
    """Set a user's password; returns it (a random one when none is given)."""
    password = _random_password() if password is None else _checked_password(password)
    hashed = hash_password(password)
    with _editing(path) as data:
        _user(data, username)["password"] = hashed
    return password


def add_to_group(path: str | os.PathLike, username: str, group_path: str) -> None:
    """Make the user a member of ``group_path`` (creating the group and its parents)."""
    _check_group_path(group_path)
    with _editing(path) as data:
        user = _user(data, username)
        for g in _parent_paths(group_path):
            if g not in data["groups"]:
                data["groups"].append(g)
        if group_path not in user["groups"]:
            user["groups"].append(group_path)


def remove_from_group(path: str | os.PathLike, username: str, group_path: str) -> None:
    """End the user's membership of ``group_path`` (the group itself stays)."""
    _check_group_path(group_path)
    with _editing(path) as data:
        user = _user(data, username)
        if group_path not in user["groups"]:
            raise RealmError(f"User {username!r} is not a member of group {group_path!r}.")
        user["groups"].remove(group_path)


def add_role(
    path: str | os.PathLike, username: str, role: str, client_id: str | None = None
) -> None:
    """Give the user a realm role, or a role of client ``client_id`` when given."""
    _check_role(role)
    with _editing(path) as data:
        user = _user(data, username)
        if client_id is None:
            if role not in data["roles"]:
                data["roles"].append(role)
            if role not in user["realm_roles"]:
                user["realm_roles"].append(role)
            return
        if client_id not in data["clients"]:
            raise RealmError(f"No client {client_id!r} in realm {data['realm']!r}.")
        roles = user["client_roles"].setdefault(client_id, [])
        if role not in roles:
            roles.append(role)


def remove_role(
    path: str | os.PathLike, username: str, role: str, client_id: str | None = None
) -> None:
    """Take a realm role (or a client role when ``client_id`` is given) from the user."""
    _check_role(role)
    with _editing(path) as data:
        user = _user(data, username)
        roles = (
            user["realm_roles"]
            if client_id is None
            else user["client_roles"].get(client_id, [])
        )
        if role not in roles:
            where = "" if client_id is None else f" of client {client_id!r}"
            raise RealmError(f"User {username!r} does not have the role {role!r}{where}.")
        roles.remove(role)


def set_enabled(path: str | os.PathLike, username: str, enabled: bool) -> None:
    """Enable or disable a user (a disabled user cannot log in or refresh tokens)."""
    with _editing(path) as data:
        _user(data, username)["enabled"] = bool(enabled)


def delete_user(path: str | os.PathLike, username: str) -> None:
    """Remove a user from the realm."""
    with _editing(path) as data:
        _user(data, username)
        del data["users"][username]


# --------------------------------------------------------------------------- signing keys


def _new_signing_key() -> dict[str, Any]:
    """A new RS256 private key as a JWK, shaped like the ones server.mjs creates."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private, as_dict=True)
    jwk.update({"kid": secrets.token_urlsafe(16), "alg": "RS256", "use": "sig"})
    return jwk


def rotate_signing_key(keys_path: str | os.PathLike, keep: int = 1) -> str:
    """Put a new signing key first in the realm's keys file; returns its ``kid``.

    The new key signs from now on; the ``keep`` most recent older keys stay listed so tokens
    they signed still verify until they expire (and id_token_hint at logout keeps working);
    older ones are dropped. The running realm picks the change up without a restart, and
    clients (the hub, the service) fetch the JWKS again when they meet the new ``kid``.
    """
    if keep < 0:
        raise RealmError("--keep must be 0 or more.")
    keys_path = os.fspath(keys_path)
    os.makedirs(os.path.dirname(os.path.abspath(keys_path)), mode=0o700, exist_ok=True)
    with _locked(keys_path):
        try:
            with open(keys_path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            data = {"jwks": {"keys": []}, "cookie_keys": [secrets.token_urlsafe(32)]}
        except (OSError, ValueError) as e:
            raise RealmError(f"Cannot read the keys file {keys_path}: {e}.") from None
        keys = (data.get("jwks") or {}).get("keys")
        if not isinstance(keys, list):
            raise RealmError(f"The keys file {keys_path} has no 'jwks.keys' list.")
        key = _new_signing_key()
        data["jwks"] = {"keys": [key] + keys[:keep]}
        data.setdefault("cookie_keys", [secrets.token_urlsafe(32)])
        _write_atomic(keys_path, data)
    return key["kid"]
