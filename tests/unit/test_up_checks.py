"""`astrago up` checks what it needs before it starts anything: each miss is one sentence and
nothing is left running (the README's demo command with a relative path crashed the service and
left configurable-http-proxy behind; a hand-run `astrago up` served notebooks without the magics)."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

from astrago.hub.cli import up

ASTRAGO = str(Path(sys.prefix) / "bin" / "astrago")
REPO = Path(__file__).resolve().parents[2]


def _args(**overrides):
    parser = argparse.ArgumentParser()
    up.add_parser(parser.add_subparsers())
    args = parser.parse_args(["up"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_relative_paths_are_made_absolute_at_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    settings = up.settings_from(_args(data_dir=str(tmp_path / "d"), inventory_file="config/examples/simulated-h100.yaml",
                                      user_env=sys.prefix))
    assert settings.inventory_file == str(REPO / "config" / "examples" / "simulated-h100.yaml")
    assert Path(settings.data_dir).is_absolute() and Path(settings.user_env).is_absolute()


def _up(tmp_path, *extra):
    before = _children_of_nothing()
    r = subprocess.run([ASTRAGO, "up", "--data-dir", str(tmp_path / "data"), *extra], capture_output=True, text=True,
                       timeout=120, cwd=REPO, env={**os.environ, "ASTRAGO_USER_ENV": sys.prefix})
    return r, before


def _children_of_nothing() -> set[str]:
    """Pids of Keycloak or configurable-http-proxy processes now running."""
    out = subprocess.run(["pgrep", "-f", "configurable-http-proxy|keycloak"], capture_output=True, text=True).stdout
    return set(out.split())


def test_a_missing_inventory_file_is_refused_before_anything_starts(tmp_path):
    r, before = _up(tmp_path, "--inventory-file", "config/examples/no-such-file.yaml")
    assert r.returncode == 1
    assert r.stderr.startswith("astrago: The inventory file ") and "does not exist" in r.stderr
    assert "simulated-h100.yaml" in r.stderr and "Traceback" not in r.stderr
    assert _children_of_nothing() <= before  # nothing was started, nothing left behind


def test_a_user_environment_without_the_extensions_is_refused(tmp_path):
    fake = tmp_path / "env"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "python").symlink_to("/usr/bin/python3")  # a Python without AstraGo
    (fake / "bin" / "jupyterhub-singleuser").write_text("#!/bin/sh\n")
    r, before = _up(tmp_path, "--user-env", str(fake))
    assert r.returncode == 1
    assert "lacks the AstraGo extensions" in r.stderr and "make run" in r.stderr
    assert _children_of_nothing() <= before


def test_the_default_user_environment_is_the_one_make_run_builds(monkeypatch):
    monkeypatch.delenv("ASTRAGO_USER_ENV", raising=False)
    expected = "/opt/astrago/user-env" if os.geteuid() == 0 else str(REPO / ".venv")
    assert up.default_user_env() == expected
