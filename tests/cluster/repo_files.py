"""Small helpers shared by the cluster tests."""
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def load_all(path: Path) -> list[dict]:
    """The YAML documents of a file (empty ones left out)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
