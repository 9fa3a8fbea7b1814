"""One Keycloak process on loopback: embedded mode's identity provider (and the test suite's).

Its state lives in `state_dir` (normally `<data dir>/keycloak`): the H2 database with users,
sessions and signing keys, so they survive restarts; Keycloak's own scratch files; its log; and
the credentials of the bootstrap admin client AstraGo manages the realm with (mode 0600). Each
state dir gets its own instance home, a hard-linked copy of the built distribution, so two
Keycloaks on one machine (a test session beside `make run`) never share transaction logs.
"""
from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .distribution import KEYCLOAK_VERSION, RELATIVE_PATH, install, java_env, require_java_home

BOOTSTRAP_CLIENT_ID = "astrago-bootstrap"
_PR_SET_PDEATHSIG = 1


class KeycloakStartError(RuntimeError):
    """Keycloak did not become ready; the message carries the end of its log."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def read_or_create_credentials(path: Path) -> dict:
    """The bootstrap admin client's id and secret, made once (mode 0600)."""
    if path.exists():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    creds = {"client_id": BOOTSTRAP_CLIENT_ID, "client_secret": secrets.token_urlsafe(32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh)
    return creds


@dataclass
class KeycloakServer:
    state_dir: Path
    port: int
    management_port: int
    host: str = "127.0.0.1"
    heap: str = "-Xms128m -Xmx768m"  # Keycloak's default takes half the machine's memory
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """Keycloak's root as the hub reaches it (realms under <base_url>/realms/<name>)."""
        return f"http://{self.host}:{self.port}{RELATIVE_PATH}"

    @property
    def ready_url(self) -> str:
        return f"http://{self.host}:{self.management_port}{RELATIVE_PATH}/health/ready"

    @property
    def credentials_file(self) -> Path:
        return self.state_dir / "admin-client.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "keycloak.log"

    def instance_home(self) -> Path:
        home = self.state_dir / "home"
        version_file = home / "version.txt"
        if home.exists() and KEYCLOAK_VERSION not in (version_file.read_text() if version_file.exists() else ""):
            shutil.rmtree(home)  # another Keycloak version: start from the new one (the database stays)
        if not home.exists():
            dist = install()
            partial = self.state_dir / f".home-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            try:
                subprocess.run(["cp", "-al", str(dist), str(partial)], check=True, capture_output=True)
            except subprocess.CalledProcessError:  # another filesystem: a real copy
                shutil.copytree(dist, partial, symlinks=True)
            shutil.rmtree(partial / "data", ignore_errors=True)
            os.replace(partial, home)
        return home

    def is_ready(self) -> bool:
        try:
            return requests.get(self.ready_url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start(self) -> None:
        """Start Keycloak in the background (`wait_ready` waits for it). It ends with its parent."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        creds = read_or_create_credentials(self.credentials_file)
        home = self.instance_home()
        env = java_env(require_java_home())
        env.update({
            # the first start creates the admin client AstraGo manages realms with; later starts ignore it
            "KC_BOOTSTRAP_ADMIN_CLIENT_ID": creds["client_id"],
            "KC_BOOTSTRAP_ADMIN_CLIENT_SECRET": creds["client_secret"],
            "JAVA_OPTS_KC_HEAP": self.heap,
        })
        db = self.state_dir / "db" / "keycloakdb"
        argv = [
            str(home / "bin" / "kc.sh"), "start", "--optimized",
            "--http-enabled=true", f"--http-host={self.host}", f"--http-port={self.port}",
            f"--http-management-port={self.management_port}",
            # no fixed hostname: each realm names its browser-facing URL (attribute frontendUrl),
            # so one Keycloak serves realms behind different hubs (the test suite's case)
            "--hostname-strict=false",
            # Keycloak closes the database itself at shutdown (after removing its cluster row)
            f"--db-url=jdbc:h2:file:{db};NON_KEYWORDS=VALUE;DB_CLOSE_ON_EXIT=FALSE",
        ]
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(argv, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        log.close()

    def wait_ready(self, timeout: float = 180, progress=print) -> float:
        """Block until Keycloak answers ready; returns the seconds it took. Says how long it has waited."""
        started = time.monotonic()
        said = 0.0
        while True:
            if self.is_ready():
                return time.monotonic() - started
            waited = time.monotonic() - started
            if self.proc is not None and self.proc.poll() is not None:
                raise KeycloakStartError(f"Keycloak exited with {self.proc.returncode} while starting. "
                                         f"End of {self.log_file}:\n{self.log_tail()}")
            if waited > timeout:
                self.stop()
                raise KeycloakStartError(f"Keycloak was not ready after {timeout:.0f} s. "
                                         f"End of {self.log_file}:\n{self.log_tail()}")
            if progress and waited - said >= 5:
                said = waited
                progress(f"  Keycloak is starting ({waited:.0f} s) ...")
            time.sleep(0.5)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        text = self.log_file.read_text(errors="replace").splitlines()
        return "\n".join([line for line in text if not line.startswith("WARNING: ")][-lines:])  # JVM noise

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # kc.sh passes it on to Java, which shuts down cleanly
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
