"""`astrago.upload(path, dir=...)`: a resumable upload from a notebook into your AstraGo storage.

Inside a user's server the service URL and token come from the environment
(ASTRAGO_SERVICE_URL, JUPYTERHUB_API_TOKEN). Run it again after an interruption and it
continues where it stopped.
"""
from __future__ import annotations

import sys


def upload(path, dir: str = "", *, overwrite: bool = False, progress: bool = True, chunk_mib: int = 64) -> str:
    """Upload the file at `path` into your storage under `dir`; returns where it landed.

    >>> import astrago
    >>> astrago.upload("data.tar", dir="datasets/")      # doctest: +SKIP
    '/home/astrago-alice/datasets/data.tar'
    """
    from astrago.hub.client import ServiceClient
    from astrago.hub.client.uploads import ProgressBar

    client = ServiceClient()
    bar = ProgressBar(str(path).rsplit("/", 1)[-1], sys.stdout) if progress else None
    record = client.uploads.upload(path, dir, overwrite=overwrite, chunk_size=max(1, chunk_mib) * 1024 * 1024,
                                   progress=bar)
    return f"{record['storage_root'].rstrip('/')}/{record['path']}"
