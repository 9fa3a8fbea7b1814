"""The control plane's processes: started with their output in a log file, stopped for sure.

Each runs in its own session (process group), so `stop()` ends it and anything it started,
and a component that dies during start-up says so with the tail of its log.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable


class ComponentFailed(RuntimeError):
    """A control-plane component exited or never became ready; the message has its log tail."""


class ManagedProcess:
    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, start_new_session=True)
        finally:
            log.close()
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Poll `ready()` until it is true; fail with the log tail if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise ComponentFailed(f"{self.name} exited ({self.proc.returncode if self.proc else '-'}) "
                                      f"before {what}:\n{self.log_tail()}")
            try:
                if ready():
                    return
            except Exception:  # not answering yet
                pass
            if time.monotonic() > deadline:
                raise ComponentFailed(f"{self.name}: {what} did not happen within {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, grace: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
