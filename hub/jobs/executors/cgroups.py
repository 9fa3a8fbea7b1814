"""cgroup v2 limits for local jobs, where a delegated hierarchy is writable.

A job's cgroup is `<root>/astrago-jobs/<job id>.<attempt>` with `cpu.max` (quota and
period: `cpu` cores) and `memory.max` (bytes). The child process joins it before it drops
to the user's account (writing to cgroup.procs needs root), so nothing the job starts
escapes it, and `cgroup.kill` ends all of it at once. On a host where the cpu and memory
controllers are not available in a writable cgroup v2 tree (a cgroup v1 or hybrid host,
an unprivileged container), limits are not enforced and the job's record says so.
"""
from __future__ import annotations

import os
from pathlib import Path

PERIOD_US = 100_000
PARENT = "astrago-jobs"


def cpu_max(cpu: float, period_us: int = PERIOD_US) -> str:
    """The cpu.max line for `cpu` cores (pure): '<quota> <period>'."""
    quota = max(1000, int(round(cpu * period_us)))
    return f"{quota} {period_us}"


def memory_max(memory_gib: float) -> str:
    """The memory.max value for `memory_gib` GiB (pure), in bytes."""
    return str(int(memory_gib * 1024 ** 3))


def _mounts() -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    return [line.split()[1] for line in lines if len(line.split()) > 2 and line.split()[2] == "cgroup2"]


def find_root(configured: str = "") -> tuple[Path | None, str]:
    """(a cgroup v2 directory jobs can be limited under, or None; a sentence saying why not)."""
    candidates = [configured] if configured else _mounts()
    if not candidates:
        return None, "there is no cgroup v2 hierarchy on this host"
    reasons = []
    for root in candidates:
        path = Path(root)
        try:
            controllers = set((path / "cgroup.controllers").read_text().split())
        except OSError:
            reasons.append(f"{root} is not a cgroup v2 directory")
            continue
        if not {"cpu", "memory"} <= controllers:
            reasons.append(f"the cpu and memory controllers are not delegated to {root}")
            continue
        if not os.access(path, os.W_OK):
            reasons.append(f"{root} is not writable by the service")
            continue
        return path, ""
    return None, "; ".join(reasons)


class JobCgroups:
    """Creates, fills and removes job cgroups under a root found by `find_root`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.parent = self.root / PARENT

    def prepare(self) -> None:
        """The parent cgroup, with the cpu and memory controllers enabled for its children."""
        self.parent.mkdir(exist_ok=True)
        for level in (self.root, self.parent):
            control = level / "cgroup.subtree_control"
            enabled = set(control.read_text().split())
            missing = [c for c in ("cpu", "memory") if c not in enabled]
            if missing:
                control.write_text(" ".join(f"+{c}" for c in missing))

    def create(self, name: str, cpu: float, memory_gib: float) -> Path:
        self.prepare()
        path = self.parent / name
        path.mkdir(exist_ok=True)
        (path / "cpu.max").write_text(cpu_max(cpu))
        (path / "memory.max").write_text(memory_max(memory_gib))
        return path

    @staticmethod
    def join_fn(path: Path):
        """A function for the child (after fork, before exec, still root) to enter `path`."""
        procs = str(Path(path) / "cgroup.procs")

        def join():
            with open(procs, "w") as fh:
                fh.write("0")

        return join

    @staticmethod
    def pids(path: Path) -> list[int]:
        try:
            pids = [int(x) for x in (Path(path) / "cgroup.procs").read_text().split() if x.isdigit()]
        except OSError:
            return []
        return [p for p in pids if p > 1]

    @staticmethod
    def kill(path: Path) -> None:
        kill = Path(path) / "cgroup.kill"
        if kill.exists():
            kill.write_text("1")

    @staticmethod
    def remove(path: Path) -> None:
        try:
            Path(path).rmdir()
        except OSError:
            pass
