"""The teams area: teams (JupyterHub groups marked as teams) with a shared space, and datasets.

Embedded mode: a folder per team owned by a POSIX group of the members' system accounts,
linked into each member's home as `~/teams/<team>`; datasets are immutable, read-only
copies of folders, attached to jobs by name and version. See docs/teams.md.
"""
