"""The `astrago` command. Each subcommand group lives in its own module."""
from __future__ import annotations

import argparse
import sys

from . import env, job, login, realm_commands, up, upload
from .errors import CLIError

__all__ = ["CLIError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="astrago", description="AstraGo: GPU workspaces on JupyterHub.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    up.add_parser(sub)
    realm_commands.add_parser(sub)
    upload.add_parser(sub)
    job.add_parser(sub)
    env.add_parser(sub)
    login.add_parser(sub)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda args: print(__import__("astrago").__version__) or 0)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CLIError as exc:
        print(f"astrago: {exc}", file=sys.stderr)
        return 1
