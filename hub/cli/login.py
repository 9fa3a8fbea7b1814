"""`astrago login`: remember where the AstraGo service is and a token for it.

Writes ~/.config/astrago/client.json ({"url", "token"}, mode 0600), which the CLI and the
Python client read when ASTRAGO_SERVICE_URL / JUPYTERHUB_API_TOKEN are not set. The token is
a JupyterHub API token (make one on the hub's Token page, /hub/token); it is checked
against the service before it is saved.
"""
from __future__ import annotations

import getpass
import json
import os
import sys


def add_parser(sub):
    p = sub.add_parser("login", help="save the AstraGo URL and an API token for the CLI",
                       description="Save the AstraGo service URL and a JupyterHub API token (from /hub/token) in "
                       "~/.config/astrago/client.json, after checking them.")
    p.add_argument("url", help="the hub's URL, e.g. https://astrago.example.org (or the service's, ending in "
                   "/services/astrago/)")
    p.add_argument("--token", default=None, help="the API token (default: asked for, or $JUPYTERHUB_API_TOKEN)")
    p.set_defaults(func=run)


def service_url(url: str) -> str:
    """A hub URL or the service's own -> the service's URL (pure)."""
    url = url.strip().rstrip("/")
    if "/services/astrago" in url:
        return url.split("/services/astrago")[0] + "/services/astrago/"
    for suffix in ("/hub/home", "/hub/token", "/hub"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url + "/services/astrago/"


def run(args) -> int:
    from ..client import CONFIG_FILE, AstraGoError, ServiceClient
    from .errors import CLIError

    url = service_url(args.url)
    token = args.token or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not token:
        if not sys.stdin.isatty():
            raise CLIError("Give the token with --token (no terminal to ask on).")
        token = getpass.getpass("JupyterHub API token (from the hub's Token page): ").strip()
    if not token:
        raise CLIError("No token given.")
    try:
        me = ServiceClient(url, token).whoami()
    except AstraGoError as exc:
        raise CLIError(f"{url} did not accept the token: {exc.detail}") from None
    path = CONFIG_FILE.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "token": token}, fh)
    os.chmod(path, 0o600)
    print(f"Logged in to {url} as {me['name']} (saved in {path}).")
    return 0
