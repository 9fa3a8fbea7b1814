# System-wide IPython configuration of AstraGo's single-user image: every kernel loads the
# `astrago` extension (its magics), as `%load_ext astrago` would.
c = get_config()  # noqa: F821 (provided by IPython)
c.InteractiveShellApp.extensions = ["astrago"]
