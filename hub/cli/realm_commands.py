"""`astrago realm ...`: manage the users, groups and roles of the platform's Keycloak realm
(through Keycloak's admin REST API, astrago.hub.realm.admin)."""
from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from ..embedded import default_data_dir


def add_parser(sub):
    p = sub.add_parser("realm", help="manage users of the embedded login realm")
    p.add_argument("--data-dir", default=os.environ.get("ASTRAGO_DATA_DIR", default_data_dir()),
                   help="AstraGo's data directory (default: %(default)s)")
    rsub = p.add_subparsers(dest="realm_command", metavar="ACTION", required=True)

    a = rsub.add_parser("add-user", help="add a user; prints a generated password unless --password-stdin")
    a.add_argument("username")
    a.add_argument("--email")
    a.add_argument("--first-name", default="")
    a.add_argument("--last-name", default="")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    a.set_defaults(func=_add_user)

    pw = rsub.add_parser("passwd", help="set a user's password (generated unless --password-stdin)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=_passwd)

    g = rsub.add_parser("add-to-group", help="put a user in a group (full path like /team-a/vision)")
    g.add_argument("username")
    g.add_argument("group")
    g.set_defaults(func=_add_to_group)

    r = rsub.add_parser("add-role", help="give a user a realm role (admin makes an administrator)")
    r.add_argument("username")
    r.add_argument("role")
    r.add_argument("--client", help="a client role of this client instead of a realm role")
    r.set_defaults(func=_add_role)

    d = rsub.add_parser("disable", help="disable a user (they can no longer log in)")
    d.add_argument("username")
    d.set_defaults(func=lambda args: _call(args, "set_enabled", args.username, False,
                                           done=f"{args.username} is disabled."))

    e = rsub.add_parser("enable", help="enable a disabled user")
    e.add_argument("username")
    e.set_defaults(func=lambda args: _call(args, "set_enabled", args.username, True,
                                           done=f"{args.username} is enabled."))

    ls = rsub.add_parser("list", help="list users with their groups and roles")
    ls.set_defaults(func=_list)

    rk = rsub.add_parser("rotate-keys", help="sign tokens with a new key from now on (the previous key keeps "
                         "verifying older tokens)")
    rk.add_argument("--keep", type=int, default=1,
                    help="how many previous keys stay listed for verification (default: %(default)s)")
    rk.set_defaults(func=_rotate_keys)


def _admin(args):
    """The running platform's realm, from what `astrago up` recorded in the data directory."""
    from .errors import CLIError
    from ..realm.admin import RealmAdmin, RealmError

    endpoint = Path(args.data_dir) / "keycloak" / "endpoint.json"
    if not endpoint.exists():
        raise CLIError(f"No realm recorded at {endpoint}. Start AstraGo once with 'astrago up' (or pass --data-dir).")
    where = json.loads(endpoint.read_text())
    try:
        return RealmAdmin.from_file(where["base_url"], where["credentials_file"], where["realm"])
    except RealmError as exc:
        raise CLIError(str(exc)) from None


def _call(args, fn_name: str, *fn_args, done: str = "", **kwargs):
    from .errors import CLIError
    from ..realm.admin import RealmError

    try:
        result = getattr(_admin(args), fn_name)(*fn_args, **kwargs)
    except RealmError as exc:
        raise CLIError(str(exc)) from None
    if done:
        print(done)
    return result


def _read_password(args) -> str | None:
    if not args.password_stdin:
        return None
    import sys

    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\n")


def _add_user(args):
    given = _read_password(args)
    password = _call(args, "add_user", args.username, email=args.email, password=given,
                     first_name=args.first_name, last_name=args.last_name)
    print(f"Added {args.username}.")
    if given is None:
        print(f"Password (shown once): {password}")


def _passwd(args):
    given = _read_password(args)
    password = _call(args, "set_password", args.username, password=given)
    print(f"Password of {args.username} changed.")
    if given is None:
        print(f"New password (shown once): {password}")


def _add_to_group(args):
    _call(args, "add_to_group", args.username, args.group, done=f"{args.username} is in {args.group}.")


def _add_role(args):
    _call(args, "add_role", args.username, args.role, client_id=args.client,
          done=f"{args.username} has role {args.role}{' of ' + args.client if args.client else ''}.")


def _list(args):
    for user in _call(args, "list_users"):
        state = "" if user["enabled"] else " (disabled)"
        groups = ",".join(user["groups"]) or "-"
        roles = ",".join(user["realm_roles"]) or "-"
        print(f"{user['username']}{state}\tgroups={groups}\troles={roles}")


def _rotate_keys(args):
    kid = _call(args, "rotate_keys", keep=args.keep)
    print(f"New signing key {kid}; {args.keep} previous key(s) kept for verification.")
