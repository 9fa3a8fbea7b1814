"""Settings of the teams area (traitlets, configured on the service)."""
from __future__ import annotations

import os
from pathlib import Path

from traitlets import Float, Unicode, default
from traitlets.config import Configurable


class TeamsConfig(Configurable):
    root = Unicode(config=True, help="Where the team spaces live: one folder per team (root-owned, group "
                   "astrago-team-<team>, mode 2770) and `.datasets/` with the dataset versions. Every parent of "
                   "it must be traversable by users' accounts. Default: $ASTRAGO_TEAMS_ROOT, else "
                   "<data dir>/teams.")

    @default("root")
    def _default_root(self):
        env = os.environ.get("ASTRAGO_TEAMS_ROOT")
        if env:
            return env
        data = getattr(self.parent, "data_dir", None) or os.environ.get("ASTRAGO_DATA_DIR", "astrago-data")
        return str(Path(data) / "teams")

    sync_interval = Float(config=True, help="Seconds between reconciliations of team membership (hub groups -> "
                          "POSIX groups and ~/teams links). Default: $ASTRAGO_TEAMS_SYNC_INTERVAL, else 60.")

    @default("sync_interval")
    def _default_sync_interval(self):
        return float(os.environ.get("ASTRAGO_TEAMS_SYNC_INTERVAL", 60))

    system_user_prefix = Unicode("astrago-", config=True,
                                 help="Prefix of users' system accounts (as the local spawner makes them).")
    home_template = Unicode("/home/{system_user}", config=True,
                            help="Users' home directories (as the local spawner makes them).")
