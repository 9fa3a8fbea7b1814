"""`astrago realm ...`: manage the embedded realm's users, groups and roles."""
from __future__ import annotations

import getpass
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

    rk = rsub.add_parser("rotate-keys", help="sign tokens with a new key from now on (the running realm "
                         "picks it up; the previous key keeps verifying older tokens)")
    rk.add_argument("--keep", type=int, default=1,
                    help="how many previous keys stay listed for verification (default: %(default)s)")
    rk.set_defaults(func=_rotate_keys)


def _realm_file(args) -> Path:
    from . import CLIError

    path = Path(args.data_dir) / "realm.json"
    if not path.exists():
        raise CLIError(f"No realm at {path}. Start AstraGo once with 'astrago up' (or pass --data-dir).")
    return path


def _call(args, fn_name: str, *fn_args, done: str = "", **kwargs):
    from . import CLIError
    from ..realm import store

    try:
        result = getattr(store, fn_name)(_realm_file(args), *fn_args, **kwargs)
    except store.RealmError as exc:
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
    realm = _call(args, "read_realm")
    for name, user in sorted(realm.get("users", {}).items()):
        state = "" if user.get("enabled", True) else " (disabled)"
        groups = ",".join(user.get("groups", [])) or "-"
        roles = ",".join(user.get("realm_roles", [])) or "-"
        print(f"{name}{state}\tgroups={groups}\troles={roles}")


def _rotate_keys(args):
    from . import CLIError
    from ..realm import store

    _realm_file(args)  # the realm must exist: its keys sit beside it
    try:
        kid = store.rotate_signing_key(Path(args.data_dir) / "realm-keys.json", keep=args.keep)
    except store.RealmError as exc:
        raise CLIError(str(exc)) from None
    print(f"New signing key {kid}; {args.keep} previous key(s) kept for verification.")
