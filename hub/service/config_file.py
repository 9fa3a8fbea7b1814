"""The service's generated config file, written by the hub's configuration for the service it starts."""
from __future__ import annotations

import json
import os
from pathlib import Path

#: in the service's data directory: written by `astrago up` / the cluster config, and an operator's own
GENERATED_CONFIG = "astrago_service_config.json"
LOCAL_CONFIG = "astrago_service_config.py"


def write_service_config(data_dir, sections: dict) -> Path | None:
    """<data dir>/astrago_service_config.json with `sections` (traitlets: class -> trait -> value),
    replaced atomically, readable by its owner only (a database URL may hold a password).
    Nothing to write: nothing written, None."""
    if not sections:
        return None
    path = Path(data_dir) / GENERATED_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(sections, indent=2, sort_keys=True, default=str) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
