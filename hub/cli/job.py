"""`astrago job submit | list | status | logs | cancel`: batch jobs from a terminal.

The service URL and token come from the environment (ASTRAGO_SERVICE_URL and
JUPYTERHUB_API_TOKEN, set in AstraGo servers) or from `astrago login`'s config file.
"""
from __future__ import annotations

import json
import sys

from .errors import service_refusals_as_cli_errors


def add_parser(sub):
    p = sub.add_parser("job", help="submit, list, follow and cancel batch jobs",
                       description="Run notebooks, scripts and commands as batch jobs on a GPU slice.")
    jobs = p.add_subparsers(dest="job_command", metavar="SUBCOMMAND")

    s = jobs.add_parser("submit", help="submit a notebook, script or command",
                        description="Submit FILE (.ipynb: a notebook run with papermill; .py: a script) or "
                        "--command. Relative paths are relative to your storage root on the server.")
    s.add_argument("file", nargs="?", help="the notebook or script, on the server")
    s.add_argument("--command", "-c", help="a shell command instead of a file")
    s.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                   help="a parameter (repeatable): into the notebook's parameters cell, --NAME VALUE for a script")
    s.add_argument("--slice", default=None, help="cpu, 1g.10gb, mps-25, gpu-1, ... (default: cpu)")
    s.add_argument("--name", help="a name for the job")
    s.add_argument("--cpu", type=float, help="CPU cores")
    s.add_argument("--mem", "--memory", dest="memory", help="memory, like 16G")
    s.add_argument("--priority", type=int, help="order among your own queued jobs (-100..100)")
    s.add_argument("--max-runtime", help="stop it after this long, like 2h")
    s.add_argument("--retries", type=int, help="re-runs after a failure (0..10)")
    s.add_argument("--workdir", help="working directory on the server")
    s.add_argument("--env", action="append", default=[], metavar="ENVIRONMENT | NAME=VALUE",
                   help="the environment to run in, as on the spawn page (default: base); NAME=VALUE: an environment "
                   "variable (repeatable)")
    s.add_argument("--image", help="container image (cluster mode)")
    s.add_argument("--replicas", type=int, help="processes of a distributed job, each on its own slice, admitted "
                   "all or none (cluster mode: pods; here: torchrun-style processes with RANK, WORLD_SIZE, ...)")
    s.add_argument("--kind", "--framework", dest="framework", choices=("pytorch", "mpi"),
                   help="what runs the replicas: pytorch (a PyTorchJob; the default) or mpi (an MPIJob, cluster mode)")
    s.add_argument("--follow", "-f", action="store_true", help="print the log until the job ends")
    s.add_argument("--json", action="store_true", help="print the job as JSON")
    s.set_defaults(func=submit)

    ls = jobs.add_parser("list", help="your jobs (everyone's with --all, for administrators)")
    ls.add_argument("--status", help="only jobs in this status")
    ls.add_argument("--user", help="another user's jobs (administrators)")
    ls.add_argument("--all", action="store_true", help="everyone's jobs (administrators)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_jobs)

    st = jobs.add_parser("status", help="a job's status")
    st.add_argument("id")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=status)

    lg = jobs.add_parser("logs", help="a job's log")
    lg.add_argument("id")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    lg.add_argument("--offset", type=int, default=0, help="start at this byte")
    lg.add_argument("--replica", type=int, default=0, help="another replica's log (0: the first, the default)")
    lg.set_defaults(func=logs)

    c = jobs.add_parser("cancel", help="cancel a job")
    c.add_argument("id")
    c.set_defaults(func=cancel)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _client():
    from ..client.jobs import JobsClient

    return JobsClient()


@service_refusals_as_cli_errors
def submit(args) -> int:
    from ..client import AstraGoError
    from ..client.jobs import describe, distributed_fields, parse_params

    if bool(args.file) == bool(args.command):
        raise AstraGoError("Give a notebook or script file, or --command (one of them).")
    env, environment = {}, None
    for pair in args.env:
        key, sep, value = pair.partition("=")
        if not sep:  # a name: the environment (astrago env list shows yours)
            if environment not in (None, pair):
                raise AstraGoError(f"A job runs in one environment: --env {environment} or --env {pair}, not both.")
            environment = pair
            continue
        env[key] = value
    spec = {"name": args.name, "slice": args.slice, "cpu": args.cpu, "memory": args.memory,
            "priority": args.priority, "max_runtime": args.max_runtime, "retries": args.retries,
            "workdir": args.workdir, "image": args.image, "env": env or None, "environment": environment,
            "parameters": parse_params(args.param) or None, **distributed_fields(args.replicas, args.framework)}
    if args.command:
        spec.update(kind="command", command=args.command)
    else:
        import os

        base = os.path.expanduser(args.workdir) if args.workdir else os.getcwd()
        path = os.path.abspath(os.path.join(base, os.path.expanduser(args.file)))
        if not os.path.isfile(path):
            raise AstraGoError(f"There is no file {args.file} here ({path}): give the path of a notebook (.ipynb) "
                               "or a script (.py), or --command \"...\" to run a command.")
        if not path.endswith((".ipynb", ".py")):
            raise AstraGoError(f"{args.file} is neither a notebook (.ipynb) nor a script (.py); use --command for "
                               "anything else.")
        spec.update(kind="notebook" if path.endswith(".ipynb") else "script", input=path)
    client = _client()
    job = client.submit(**spec)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print(describe(job))
    if args.follow:
        return _follow(client, job["id"], 0)
    return 0


@service_refusals_as_cli_errors
def list_jobs(args) -> int:
    from ..client.jobs import table

    client = _client()
    user = args.user
    if not user and not args.all:
        user = client.client.whoami()["name"]
    jobs = client.list(user=user, status=args.status)
    print(json.dumps(jobs, indent=2) if args.json else table(jobs, owner=args.all or bool(args.user)))
    return 0


@service_refusals_as_cli_errors
def status(args) -> int:
    from ..client.jobs import describe

    job = _client().get(args.id)
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    print(describe(job))
    for out in job.get("outputs") or []:
        print(f"  output: {out}")
    return 0


@service_refusals_as_cli_errors
def logs(args) -> int:
    client = _client()
    if args.follow:
        return _follow(client, args.id, args.offset, args.replica)
    text, _ = client.log(args.id, args.offset, args.replica)
    sys.stdout.write(text)
    return 0


def _follow(client, job_id: str, offset: int, replica: int = 0) -> int:
    from ..client.jobs import ending, follow_log

    end = follow_log(client, job_id, offset, _write, replica)
    if end is None:
        return 1
    print(ending(job_id, end, output_line="\n  output: {}"))
    return 0 if end["status"] == "COMPLETED" else 1


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@service_refusals_as_cli_errors
def cancel(args) -> int:
    from ..client.jobs import describe

    print(describe(_client().cancel(args.id)))
    return 0
