"""Settings of the teams area (traitlets: `c.TeamsConfig...` in the service's config file)."""
from __future__ import annotations

from pathlib import Path

from traitlets import Float, Unicode, default
from traitlets.config import Configurable


class TeamsConfig(Configurable):
    """Its parent is the teams area, whose parent is the service (the data directory)."""

    root = Unicode(config=True, help="Where the team spaces live: one folder per team (root-owned, group "
                   "astrago-team-<team>, mode 2770) and `.datasets/` with the dataset versions. Every parent of "
                   "it must be traversable by users' accounts. $ASTRAGO_TEAMS_ROOT sets it. Default: "
                   "<data dir>/teams.")

    @default("root")
    def _default_root(self):
        return str(Path(self._service_data_dir()) / "teams")

    def _service_data_dir(self) -> str:
        node = self.parent
        while node is not None and not getattr(node, "data_dir", None):
            node = getattr(node, "parent", None)
        return node.data_dir if node is not None else "astrago-data"

    sync_interval = Float(60.0, config=True, help="Seconds between reconciliations of team membership (hub "
                          "groups -> POSIX groups and ~/teams links). $ASTRAGO_TEAMS_SYNC_INTERVAL sets it.")

    system_user_prefix = Unicode("astrago-", config=True,
                                 help="Prefix of users' system accounts (as the local spawner makes them).")
    home_template = Unicode("/home/{system_user}", config=True,
                            help="Users' home directories (as the local spawner makes them).")
