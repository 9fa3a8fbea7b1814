"""AstraGo in JupyterLab: a prebuilt labextension (the status-bar slice, the jobs and quota panel,
"Run this notebook as a job") and the server extension it talks through (`/astrago/api/...` on the
single-user server, forwarded to the AstraGo service with the server's token; see proxy.py)."""

__version__ = "0.1.0"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "@astrago/jupyterlab"}]


def _jupyter_server_extension_points():
    return [{"module": "astrago_jupyterlab"}]


def _load_jupyter_server_extension(server_app):
    from .proxy import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("AstraGo: /astrago/api/ forwards to the AstraGo service with this server's token")
