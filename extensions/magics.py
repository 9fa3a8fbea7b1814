"""AstraGo's notebook magics: batch jobs from a cell.

    %%job [--slice 1g.10gb] [--env torch] [--name N] [--cpu 4] [--mem 16G] [--param k=v ...] [--replicas 2] [--follow]
    %job run train.ipynb -p lr 0.1 [--slice ...] [--follow]
    %job run --command "python train.py" [--slice ...]
    %job logs ID [--follow]
    %job status ID
    %job cancel ID
    %jobs [--status RUNNING] [--all]

Loaded in every AstraGo server (the user environment's IPython config); elsewhere
`%load_ext astrago`. They call the AstraGo service with the server's JupyterHub token
(ASTRAGO_SERVICE_URL, JUPYTERHUB_API_TOKEN). A mistake prints one sentence, never a traceback.
"""
from __future__ import annotations

import argparse
import html
import os
import shlex
import sys

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class


class UsageError(Exception):
    """A mistake in how a magic was called; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        usage = " ".join(self.format_usage().split()).removeprefix("usage: ")
        raise UsageError(f"{message} (usage: {usage})")

    def exit(self, status=0, message=None):
        if message:
            raise UsageError(message.strip())
        raise UsageError("")


def _resources(p):
    p.add_argument("--slice", default=None, help="cpu, 1g.10gb, mps-25, gpu-1, ... (default cpu)")
    p.add_argument("--name", default=None)
    p.add_argument("--cpu", type=float, default=None)
    p.add_argument("--mem", "--memory", dest="memory", default=None, help="like 16G")
    p.add_argument("--priority", type=int, default=None)
    p.add_argument("--max-runtime", dest="max_runtime", default=None, help="like 2h")
    p.add_argument("--retries", type=int, default=None)
    p.add_argument("--replicas", type=int, default=None,
                   help="processes, each on its own slice, admitted all or none (RANK, WORLD_SIZE, ... in each)")
    p.add_argument("--kind", "--framework", dest="framework", choices=("pytorch", "mpi"), default=None,
                   help="pytorch (default) or mpi (cluster mode)")
    p.add_argument("--follow", "-f", action="store_true", help="print the log until the job ends")
    p.add_argument("--env", dest="environment", default=None,
                   help="the environment to run in (default: this server's, $ASTRAGO_ENVIRONMENT)")


def _cell_parser():
    p = _Parser(prog="%%job", add_help=False)
    _resources(p)
    p.add_argument("--param", "-p", nargs="+", default=[], metavar="NAME=VALUE",
                   help="parameters, set as variables before the cell's code")
    return p


def _run_parser():
    p = _Parser(prog="%job run", add_help=False)
    p.add_argument("file", nargs="?", help="a notebook (.ipynb) or script (.py)")
    p.add_argument("--command", "-c", default=None, help="a shell command instead of a file")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    _resources(p)
    return p


def _id_parser(name, follow=False):
    p = _Parser(prog=f"%job {name}", add_help=False)
    p.add_argument("id")
    if follow:
        p.add_argument("--follow", "-f", action="store_true")
        p.add_argument("--offset", type=int, default=0)
    return p


def _jobs_parser():
    p = _Parser(prog="%jobs", add_help=False)
    p.add_argument("--status", default=None)
    p.add_argument("--user", default=None)
    p.add_argument("--all", action="store_true")
    return p


def _say_error(text: str) -> None:
    print(f"astrago: {text}", file=sys.stderr, flush=True)


@magics_class
class JobMagics(Magics):
    """%job, %%job and %jobs."""

    def _jobs(self):
        from astrago.hub.client.jobs import JobsClient

        return JobsClient()

    def _guard(self, fn, *args):
        from astrago.hub.client import AstraGoError

        try:
            return fn(*args)
        except UsageError as exc:
            if str(exc):
                _say_error(str(exc))
        except AstraGoError as exc:
            _say_error(exc.detail)
        except KeyboardInterrupt:
            _say_error("stopped following; the job goes on (%job cancel ID stops it).")
        return None

    def _spec(self, args) -> dict:
        from astrago.hub.client.jobs import distributed_fields

        return {"slice": args.slice, "name": args.name, "cpu": args.cpu, "memory": args.memory,
                "priority": args.priority, "max_runtime": args.max_runtime, "retries": args.retries,
                "workdir": os.getcwd(), **distributed_fields(args.replicas, args.framework),
                "environment": args.environment or os.environ.get("ASTRAGO_ENVIRONMENT")}

    def _submitted(self, client, job, follow: bool):
        from astrago.hub.client.jobs import describe

        print(describe(job))
        if follow:
            self._follow(client, job["id"], 0)
        else:
            print(f"Follow it with: %job logs {job['id']} --follow")

    def _follow(self, client, job_id, offset):
        from astrago.hub.client.jobs import ending, follow_log

        end = follow_log(client, job_id, offset, _write)
        if end is not None:
            print(ending(job_id, end))

    # -- %%job -------------------------------------------------------------------

    @cell_magic("job")
    def job_cell(self, line, cell):
        """Submit this cell as a batch job: %%job [--slice 1g.10gb] [--name N] [--param k=v ...]"""
        self._guard(self._job_cell, line, cell)

    def _job_cell(self, line, cell):
        from astrago.hub.client.jobs import parse_params

        args = _cell_parser().parse_args(shlex.split(line))
        if not cell.strip():
            raise UsageError("the cell is empty: there is nothing to run.")
        client = self._jobs()
        spec = self._spec(args)
        spec.update(kind="script", code=cell, parameters=parse_params(args.param) or None,
                    name=args.name or "cell")
        self._submitted(client, client.submit(**spec), args.follow)

    # -- %job ... ------------------------------------------------------------------

    @line_magic("job")
    def job_line(self, line):
        """%job run FILE [-p NAME VALUE ...] | logs ID [--follow] | status ID | cancel ID"""
        self._guard(self._job_line, line)

    def _job_line(self, line):
        words = shlex.split(line)
        if not words or words[0] not in ("run", "logs", "status", "cancel"):
            raise UsageError("use %job run FILE | %job logs ID [--follow] | %job status ID | %job cancel ID "
                             "(or %%job to submit a cell).")
        command, rest = words[0], words[1:]
        parser = {"run": _run_parser, "logs": lambda: _id_parser("logs", follow=True),
                  "status": lambda: _id_parser("status"), "cancel": lambda: _id_parser("cancel")}[command]()
        args = parser.parse_args(rest)
        if command == "run" and bool(args.file) == bool(args.command):
            raise UsageError("give a notebook or script to run, or --command \"...\" (one of them).")
        if command == "run" and args.file:
            path = os.path.abspath(os.path.expanduser(args.file))
            if not os.path.isfile(path):
                raise UsageError(f"there is no file {args.file} here ({path}).")
        client = self._jobs()
        if command == "run":
            self._run(client, args)
        elif command == "logs":
            if args.follow:
                self._follow(client, args.id, args.offset)
            else:
                text, _ = client.log(args.id, args.offset)
                sys.stdout.write(text)
        elif command == "status":
            from astrago.hub.client.jobs import describe

            job = client.get(args.id)
            print(describe(job) + "".join(f"\nOutput: {o}" for o in job.get("outputs") or []))
        else:
            from astrago.hub.client.jobs import describe

            print(describe(client.cancel(args.id)))

    def _run(self, client, args):
        from astrago.hub.client.jobs import parse_params

        spec = self._spec(args)
        spec["parameters"] = parse_params(args.param) or None
        if args.command:
            spec.update(kind="command", command=args.command)
        else:
            path = os.path.abspath(os.path.expanduser(args.file))
            if not os.path.isfile(path):
                raise UsageError(f"there is no file {args.file} here ({path}).")
            if path.endswith(".ipynb"):
                spec.update(kind="notebook", input=path)
            elif path.endswith(".py"):
                spec.update(kind="script", input=path)
            else:
                raise UsageError(f"{args.file} is neither a notebook (.ipynb) nor a script (.py); "
                                 "use --command for anything else.")
        self._submitted(client, client.submit(**spec), args.follow)

    # -- %jobs -----------------------------------------------------------------------

    @line_magic("jobs")
    def jobs_line(self, line):
        """Your jobs as a table: %jobs [--status RUNNING] [--all]"""
        self._guard(self._jobs_line, line)

    def _jobs_line(self, line):
        from IPython.display import display

        from astrago.hub.client.jobs import table

        args = _jobs_parser().parse_args(shlex.split(line))
        client = self._jobs()
        user = args.user
        if not user and not args.all:
            user = client.client.whoami()["name"]
        jobs = client.list(user=user, status=args.status)
        owner = args.all or bool(args.user)
        display({"text/plain": table(jobs, owner=owner), "text/html": html_table(jobs, owner=owner)}, raw=True)


def html_table(jobs: list[dict], *, owner: bool = False) -> str:
    if not jobs:
        return "<p>No jobs.</p>"
    head = ["ID", "Name", "Status", "Slice", "Created"] + (["Owner"] if owner else []) + ["Reason / outputs"]
    rows = []
    for j in jobs:
        cells = [f"<code>{html.escape(j['id'])}</code>", html.escape(j["name"]), html.escape(j["status"]),
                 html.escape(j["slice"]), html.escape((j.get("created_at") or "")[:19].replace("T", " "))]
        if owner:
            cells.append(html.escape(j["owner"]))
        extra = html.escape(j.get("reason") or "") + "".join(f"<br><code>{html.escape(o)}</code>"
                                                           for o in j.get("outputs") or [])
        cells.append(extra)
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def load_ipython_extension(ipython):
    """`%load_ext astrago` (or the AstraGo IPython config) registers the magics."""
    ipython.register_magics(JobMagics)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
