"""`astrago env create | list | show | delete`: the catalogue of environments (administrators create and delete).

    astrago env create torch --packages "torch numpy" --teams ml,vision --description "PyTorch"
    astrago env create torch --image registry.local/ml/torch:2.5      # cluster mode
    astrago env list
"""
from __future__ import annotations

import json
import sys
import time

from .errors import service_refusals_as_cli_errors


def add_parser(sub):
    p = sub.add_parser("env", help="the environments servers and jobs run in",
                       description="Environments (frameworks) users choose on the spawn page and for jobs.")
    env = p.add_subparsers(dest="env_command", metavar="SUBCOMMAND")

    c = env.add_parser("create", help="create an environment (administrators)",
                       description="Embedded mode: build a Python environment with --packages (it has JupyterLab, "
                       "ipykernel and AstraGo's extensions; what you list is added). Cluster mode: register --image. "
                       "Shows the build's progress until it is ready, unless --no-wait.")
    c.add_argument("name", help="lowercase letters, digits, '-' or '_', starting with a letter")
    c.add_argument("--packages", default=None, help='requirements, space-separated: "numpy pandas>=2"')
    c.add_argument("--image", default=None, help="cluster mode: the container image, like repo/x:tag")
    c.add_argument("--pull-policy", default=None, choices=["Always", "IfNotPresent", "Never"],
                   help="cluster mode: when the image is pulled")
    c.add_argument("--teams", default=None, help="teams that may use it, comma-separated (default: everyone)")
    c.add_argument("--description", default=None)
    c.add_argument("--no-wait", action="store_true", help="return once the build is queued")
    c.add_argument("--quiet", action="store_true", help="no build output, only the steps")
    c.set_defaults(func=create)

    ls = env.add_parser("list", help="the environments you may use (administrators: all)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_environments)

    sh = env.add_parser("show", help="one environment: status, build progress, the end of its log")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=show)

    d = env.add_parser("delete", help="delete an environment (administrators; not while a server runs in it)")
    d.add_argument("name")
    d.set_defaults(func=delete)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _client():
    from ..client import ServiceClient

    return ServiceClient()


def _size(value) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"


def _status(env: dict) -> str:
    if env["status"] == "building":
        return f"building (step {env['step']} of {env['steps']}: {env['step_title']})"
    if env["status"] == "queued":
        return f"queued (number {env['queue_position']})" if env.get("queue_position") else "queued"
    return env["status"]


@service_refusals_as_cli_errors
def create(args) -> int:
    from .errors import CLIError

    client = _client()
    body = {"name": args.name}
    for key in ("packages", "image", "teams", "description"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.pull_policy:
        body["pull_policy"] = args.pull_policy
    env = client.request("POST", "api/environments", json=body, ok=(201, 202)).json()
    print(f"{env['name']}: {_status(env)}")
    if args.no_wait or env["status"] == "ready":
        return 0
    env = follow(client, args.name, quiet=args.quiet)
    if env["status"] != "ready":
        raise CLIError(f"{args.name} failed to build: {env['error']} (astrago env show {args.name} for the log)")
    print(f"{args.name} is ready ({_size(env['size_bytes'])}): choose it on the spawn page.")
    return 0


def follow(client, name: str, *, quiet: bool = False, interval: float = 1.0, out=sys.stdout) -> dict:
    """Print the build's steps (and pip's output) until it is ready or failed; the last state."""
    offset, shown_step = 0, None
    while True:
        env = client.get_json(f"api/environments/{name}")
        if not quiet:
            log = client.get_json(f"api/environments/{name}/log", params={"offset": offset})
            if log["text"]:
                out.write(log["text"])
                out.flush()
            offset = log["next_offset"]
        elif (env["step"], env["status"]) != shown_step:
            shown_step = (env["step"], env["status"])
            print(f"{name}: {_status(env)}", file=out, flush=True)
        if env["status"] in ("ready", "failed"):
            return env
        time.sleep(interval)


@service_refusals_as_cli_errors
def list_environments(args) -> int:
    data = _client().get_json("api/environments")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [("NAME", "STATUS", "TEAMS", "SIZE", "WHAT")]
    for env in data["environments"]:
        what = env["image"] or ("shared user environment" if env["builtin"] else " ".join(env["packages"]) or "-")
        rows.append((env["name"], _status(env), ",".join(env["teams"]) or "everyone", _size(env["size_bytes"]), what))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    return 0


@service_refusals_as_cli_errors
def show(args) -> int:
    env = _client().get_json(f"api/environments/{args.name}")
    if args.json:
        print(json.dumps(env, indent=2))
        return 0
    print(f"{env['name']}: {_status(env)}")
    for label, key in (("teams", "teams"), ("packages", "packages")):
        if env[key]:
            print(f"  {label}: {' '.join(env[key])}")
    for label, key in (("prefix", "prefix"), ("image", "image"), ("pull policy", "pull_policy"),
                       ("description", "description"), ("created by", "created_by"), ("error", "error")):
        if env.get(key):
            print(f"  {label}: {env[key]}")
    if env["size_bytes"] is not None:
        print(f"  size: {_size(env['size_bytes'])}")
    if env.get("log_tail"):
        print("  log (end):")
        print("\n".join("    " + line for line in env["log_tail"].splitlines()[-40:]))
    return 0


@service_refusals_as_cli_errors
def delete(args) -> int:
    _client().request("DELETE", f"api/environments/{args.name}", ok=(204,))
    print(f"{args.name} deleted.")
    return 0
