"""AstraGo: GPU workspaces on JupyterHub.

`import astrago` in a notebook gives the user-facing helpers; `%load_ext astrago`
loads the notebook magics (see astrago.extensions).
"""
__version__ = "0.1.0"

from astrago.extensions.upload import upload  # noqa: E402  (the notebook helper; imports its client lazily)


def load_ipython_extension(ipython):  # `%load_ext astrago`: the job magics (imported only then: IPython stays out of the hub)
    from astrago.extensions.magics import load_ipython_extension as load

    load(ipython)
