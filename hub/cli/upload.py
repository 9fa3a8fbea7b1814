"""`astrago upload FILE [--dir D] [--overwrite]`: a resumable upload into your AstraGo storage."""
from __future__ import annotations

import sys


def add_parser(sub):
    p = sub.add_parser("upload", help="upload a file into your AstraGo storage (resumable)",
                       description="Upload FILE into your storage over tus. If the connection drops or you stop "
                       "it, run the same command again: it continues where it stopped.")
    p.add_argument("file", metavar="FILE", help="the file to upload")
    p.add_argument("--dir", default="", help="folder in your storage, relative to its root (default: the root)")
    p.add_argument("--overwrite", action="store_true", help="replace a file of the same name")
    p.add_argument("--chunk-mib", type=int, default=64, help="MiB per request (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..client import AstraGoError, ServiceClient
    from ..client.uploads import ProgressBar
    from .errors import CLIError

    try:
        client = ServiceClient()
        bar = None if args.quiet else ProgressBar(_short(args.file), sys.stderr)
        record = client.uploads.upload(args.file, args.dir, overwrite=args.overwrite,
                                       chunk_size=max(1, args.chunk_mib) * 1024 * 1024, progress=bar)
    except AstraGoError as exc:
        raise CLIError(exc.detail) from None
    print(f"{args.file} -> {record['storage_root'].rstrip('/')}/{record['path']}")
    return 0


def _short(name: str, width: int = 24) -> str:
    import os

    base = os.path.basename(name)
    return base if len(base) <= width else base[: width - 1] + "…"
