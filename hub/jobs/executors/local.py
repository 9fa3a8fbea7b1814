"""The local executor: each job attempt is a process running as the user's own system account.

Like JupyterHub's LocalProcessSpawner: fork, (join the job's cgroup while still root,)
drop to the account's uid/gid and groups, exec the runner from the users' environment.
Never as root. The process gets the placement's GPU environment (CUDA_VISIBLE_DEVICES
with the admitted GPU or MIG UUIDs, the MPS variables), writes its log through a file
descriptor onto `<jobs data dir>/<id>/attempt-<n>.log`, and its exit status onto
`attempt-<n>.status` (files only the service can open). It runs in a session of its own,
so it outlives a restart of the service, which finds it again by pid + start time.
Datasets attached to the job (`datasets: ["name:version"]`) arrive in the job's environment as
`ASTRAGO_DATASET_<NAME>` = the version's read-only folder (resolved by the teams area at submission).

A job of several replicas is `torchrun --nproc-per-node N` style: N runner processes, each with
its own slice of the gang admission (its own CUDA_VISIBLE_DEVICES) and RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT, each with its own log and exit status. It ends when all
have ended; one that fails stops the others (as torchrun does). They share the job's marker, so
cancelling stops every one of them and what they started.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
from datetime import datetime, timezone
from pathlib import Path

from astrago.spawners.local.accounts import AccountError, ensure_account, system_username
from astrago.spawners.local.devices import env_for_placement

from . import procs
from ..spec import ENVIRONMENT_PREFIX_VAR, ENVIRONMENT_VAR
from .base import Executor, ExecutorError, Exit, JobRun, Launch, notebook_output_path
from ...service.interfaces.admission import replica_placements
from .cgroups import JobCgroups, find_root

log = logging.getLogger("astrago.jobs")

__all__ = ["LocalExecutor", "launch_spec", "notebook_output_path", "process_env", "replica_env"]


def launch_spec(run: JobRun, output: str) -> dict:
    """What the runner is told (pure)."""
    return {"id": run.id, "attempt": run.attempt, "kind": run.kind, "input": run.input, "code": run.code,
            "command": run.command, "parameters": dict(run.parameters), "workdir": run.workdir, "output": output}


def replica_env(rank: int, world_size: int, master_port: int) -> dict[str, str]:
    """What one process of a job of `world_size` replicas on this machine is told (pure): the
    variables torchrun gives each process it starts with --nproc-per-node (one node)."""
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(world_size), "GROUP_RANK": "0", "ROLE_RANK": str(rank),
            "ROLE_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(master_port),
            "ASTRAGO_JOB_REPLICA": str(rank), "ASTRAGO_JOB_REPLICAS": str(world_size)}


def process_env(run: JobRun, account: pwd.struct_passwd, user_env_prefix: str, *, extra: dict | None = None,
                mps_pipe_dir: str = "", mps_log_dir: str = "", placement: dict | None = None) -> dict[str, str]:
    """The job process's environment (pure): the account's, the user's own variables, then the
    GPU placement's (`placement`: one replica's, default the run's) and AstraGo's, which the
    user's may not override."""
    env = {
        "PATH": f"{Path(user_env_prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name,
        "SHELL": account.pw_shell or "/bin/sh", "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    env.update(run.env)
    env.update(env_for_placement(run.slice, run.placement if placement is None else placement,
                                 mps_pipe_dir=mps_pipe_dir, mps_log_dir=mps_log_dir))
    env.update({"ASTRAGO_JOB_ID": run.id, "ASTRAGO_JOB_ATTEMPT": str(run.attempt),
                procs.MARKER_VAR: run.marker, "ASTRAGO_JOB_NAME": run.name})
    return env


class LocalExecutor(Executor):
    """Jobs as processes on this machine (the embedded mode's executor)."""

    name = "local"

    def __init__(self, settings, **kwargs):
        super().__init__(settings, **kwargs)
        self._children: dict[str, object] = {}  # marker -> Popen of processes this service started
        root, why = (None, "limits are switched off (JobsConfig.enforce_limits)")
        if settings.enforce_limits:
            root, why = find_root(settings.cgroup_root)
        self.cgroups = JobCgroups(root) if root else None
        self.limits_note = "" if root else f"cpu and memory limits are not enforced here: {why}."

    def job_capacity(self) -> tuple[float, float]:
        """This machine runs every job: what running jobs may hold together (JobsConfig)."""
        return self.settings.local_capacity()

    # -- paths --------------------------------------------------------------

    def _attempt_dir(self, run: JobRun) -> Path:
        return self.data_dir / run.id

    def status_path(self, run: JobRun, replica: int = 0) -> Path:
        suffix = f".replica-{replica}" if replica else ""
        return self._attempt_dir(run) / f"attempt-{run.attempt}{suffix}.status"

    def home_of(self, user: str) -> str:
        try:
            account = system_username(user, self.settings.system_user_prefix)
        except AccountError as exc:
            raise ExecutorError(str(exc)) from None
        return self.settings.home_template.format(system_user=account, username=user)

    # -- start ----------------------------------------------------------------

    async def start(self, run: JobRun) -> Launch:
        return await asyncio.to_thread(self._start, run)

    def _start(self, run: JobRun) -> Launch:
        try:
            account_name = system_username(run.owner, self.settings.system_user_prefix)
            create = {"yes": True, "no": False}.get(self.settings.create_accounts, os.geteuid() == 0)
            account = ensure_account(account_name, self.home_of(run.owner), create=create)
        except AccountError as exc:
            raise ExecutorError(str(exc)) from None
        if account.pw_uid == 0:
            raise ExecutorError("Refusing to run a job as root.")
        if os.geteuid() != 0 and account.pw_uid != os.geteuid():
            raise ExecutorError(f"AstraGo does not run as root here, so it cannot run jobs as {account.pw_name}.")
        prefix = run.env.get(ENVIRONMENT_PREFIX_VAR) or self.settings.user_env_prefix  # the job's environment
        python = Path(prefix) / "bin" / "python"
        if not python.exists():
            if prefix != self.settings.user_env_prefix:
                raise ExecutorError(f"The environment {run.env.get(ENVIRONMENT_VAR)} is gone ({python} is missing).")
            raise ExecutorError(f"{python} is missing: the users' environment is not set up (run 'make run').")
        now = datetime.now(timezone.utc)
        output = notebook_output_path(run.input, now) if run.kind == "notebook" else ""
        folder = self._attempt_dir(run)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec_file = folder / f"attempt-{run.attempt}.spec.json"
        spec_file.write_text(json.dumps(launch_spec(run, output)))
        cgroup = None
        note = self.limits_note
        if self.cgroups is not None:
            try:  # one cgroup for every replica: cgroup.kill ends them all
                cgroup = self.cgroups.create(run.marker, run.cpu * run.replicas, run.memory_gib * run.replicas)
            except OSError as exc:
                note = f"cpu and memory limits are not enforced for this job: {exc}."
        preexec = _preexec(account, cgroup)
        placements = replica_placements(run.placement, run.replicas)
        port = _free_port() if run.replicas > 1 else 0
        started = []
        try:
            for rank in range(run.replicas):
                env = process_env(run, account, prefix, extra=dict(self.settings.extra_env),
                                  mps_pipe_dir=self.settings.mps_pipe_dir, mps_log_dir=self.settings.mps_log_dir,
                                  placement=placements[rank])
                if run.replicas > 1:
                    env.update(replica_env(rank, run.replicas, port))
                started.append(self._spawn(run, rank, python, spec_file, env, preexec))
        except ExecutorError:
            for proc in started:  # all replicas or none
                procs.terminate_tree(run.marker, proc.pid, 1.0)
            if cgroup:
                JobCgroups.remove(cgroup)
            raise
        leader = started[0]
        for rank, proc in enumerate(started):
            self._children[_child_key(run, rank)] = proc
        ticks = [procs.start_ticks(proc.pid) for proc in started]
        process = {"pid": leader.pid, "start_ticks": ticks[0], "host": os.uname().nodename, "uid": account.pw_uid,
                   "account": account.pw_name, "cgroup": str(cgroup) if cgroup else "",
                   "limits_enforced": cgroup is not None}
        if run.replicas > 1:
            process.update(pids=[proc.pid for proc in started], ticks=ticks)
        log.info("job %s attempt %d started as %s, pid %s", run.id, run.attempt, account.pw_name,
                 ", ".join(str(proc.pid) for proc in started))
        return Launch(process=process, log_path=str(self.log_path(run)), outputs=[output] if output else [],
                      note=note)

    def _spawn(self, run: JobRun, rank: int, python: Path, spec_file: Path, env: dict, preexec):
        """One runner process (replica `rank`), its log and exit status on files only the service opens."""
        import subprocess

        log_fd = os.open(self.log_path(run, rank), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        status_fd = os.open(self.status_path(run, rank), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                            0o600)
        spec_fd = os.open(spec_file, os.O_RDONLY | os.O_NOFOLLOW)
        env["ASTRAGO_JOB_STATUS_FD"] = str(status_fd)
        try:
            return subprocess.Popen(
                [str(python), "-m", "astrago.hub.jobs.runner"], stdin=spec_fd, stdout=log_fd, stderr=log_fd,
                pass_fds=(status_fd,), cwd="/", env=env, start_new_session=True, preexec_fn=preexec,
                close_fds=True)
        except OSError as exc:
            raise ExecutorError(f"The job's process could not start: {exc}") from None
        finally:
            for fd in (log_fd, status_fd, spec_fd):
                os.close(fd)

    # -- watching ---------------------------------------------------------------

    async def poll(self, run: JobRun) -> Exit | None:
        """None while the attempt runs; its Exit once it has ended (every replica has, or one failed:
        then the others are stopped, as torchrun does)."""
        ended = [self._ended(run, rank) for rank in range(run.replicas)]
        if any(e is None for e in ended):
            failed = [(rank, self._exit_status(run, rank), e) for rank, e in enumerate(ended)
                      if e is not None and self._exit_status(run, rank) != 0]
            if not failed:
                return None
            rank, code, proc = failed[0]
            await self.stop(run)
            why = f"exited with code {code}" if code is not None else _no_status(proc)
            return Exit(code, f"replica {rank} {why}; the other replicas were stopped")
        for rank in range(run.replicas):
            self._children.pop(_child_key(run, rank), None)
        codes = [self._exit_status(run, rank) for rank in range(run.replicas)]
        leftovers = await asyncio.to_thread(self._cleanup, run)
        note = f" ({leftovers} leftover process(es) of the job were stopped)" if leftovers else ""
        for rank, code in enumerate(codes):
            if code is None:
                who = "the job's process" if run.replicas == 1 else f"replica {rank} of the job"
                return Exit(None, f"{who} {_no_status(ended[rank])}", lost=True)
        rank, code = next(((rank, code) for rank, code in enumerate(codes) if code != 0), (0, 0))
        who = f"replica {rank} " if run.replicas > 1 and code else ""
        return Exit(code, f"{who}exited with code {code}{note}")

    def _pid_of(self, run: JobRun, rank: int) -> tuple:
        """(pid, start ticks) of replica `rank` as recorded."""
        if rank == 0:
            return run.process.get("pid"), run.process.get("start_ticks")
        pids, ticks = run.process.get("pids") or [], run.process.get("ticks") or []
        return (pids[rank], ticks[rank]) if rank < len(pids) and rank < len(ticks) else (None, None)

    def _ended(self, run: JobRun, rank: int):
        """None while replica `rank` runs; once it has ended, its Popen (when this service started
        it) or True."""
        proc = self._children.get(_child_key(run, rank))
        if proc is not None:
            return None if proc.poll() is None else proc
        return None if procs.is_alive(*self._pid_of(run, rank)) else True

    def _exit_status(self, run: JobRun, rank: int = 0) -> int | None:
        try:
            data = json.loads(self.status_path(run, rank).read_text() or "null")
        except (OSError, ValueError):
            return None
        return int(data["exit_code"]) if isinstance(data, dict) and "exit_code" in data else None

    def _cleanup(self, run: JobRun) -> int:
        """After the runner ended: stop what the job left running, remove its cgroup."""
        left = procs.with_marker(run.marker)
        cgroup = run.process.get("cgroup")
        if cgroup:
            left = sorted(set(left) | set(JobCgroups.pids(Path(cgroup))))
        if left:
            procs.terminate_tree(run.marker, None, 2.0,
                                 extra_check=(lambda: JobCgroups.pids(Path(cgroup))) if cgroup else None)
        if cgroup:
            JobCgroups.remove(Path(cgroup))
        return len(left)

    async def stop(self, run: JobRun) -> list[int]:
        """Stop the attempt, every replica: SIGTERM, then SIGKILL after the grace period. Returns
        pids still alive afterwards (empty: everything is gone)."""
        return await asyncio.to_thread(self._stop, run)

    def _stop(self, run: JobRun) -> list[int]:
        leaders = [pid for pid, ticks in (self._pid_of(run, rank) for rank in range(run.replicas))
                   if procs.is_alive(pid, ticks)]
        leader = leaders[0] if leaders and leaders[0] == run.process.get("pid") else None
        cgroup = run.process.get("cgroup")

        def also():  # the other replicas' sessions, and the cgroup
            found = {p for other in leaders[1:] for p in procs.process_group_members(other)}
            return found | set(JobCgroups.pids(Path(cgroup)) if cgroup else ())

        left = procs.terminate_tree(run.marker, leader, self.settings.cancel_grace_seconds, extra_check=also)
        if left and cgroup:
            JobCgroups.kill(Path(cgroup))
            left = procs.with_marker(run.marker)
        for rank in range(run.replicas):
            proc = self._children.pop(_child_key(run, rank), None)
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except Exception:
                    pass
        if cgroup:
            JobCgroups.remove(Path(cgroup))
        return left

    async def reattach(self, run: JobRun) -> Exit | None:
        """After a restart: None if the attempt still runs (it is watched again), else how it ended."""
        if not run.process.get("pid"):
            # the service stopped between recording RUNNING and recording the process: look for it
            found = await asyncio.to_thread(procs.with_marker, run.marker)
            if not found:
                code = self._exit_status(run)
                if code is not None:
                    return Exit(code, f"exited with code {code} while AstraGo was restarting")
                return Exit(None, "AstraGo stopped while starting the job and its process never ran", lost=True)
            return None
        exit_ = await self.poll(run)
        if exit_ is not None and not exit_.lost:
            return Exit(exit_.exit_code, f"{exit_.reason}, while AstraGo was restarting")
        if exit_ is not None:
            return Exit(None, "its process ended while AstraGo was down and left no exit status", lost=True)
        return None

    def adopt_pid(self, run: JobRun) -> dict | None:
        """For a RUNNING attempt recorded without a pid: the process found by its marker (each
        replica's: the session leader that says it is that replica)."""
        found = procs.with_marker(run.marker)
        leaders = [p for p in found if procs.state(p) is not None]
        if not leaders:
            return None
        if run.replicas == 1:
            pid = min(leaders)
            return {**run.process, "pid": pid, "start_ticks": procs.start_ticks(pid)}
        by_rank = {}
        for pid in sorted(leaders):
            rank = procs.environ_value(pid, "ASTRAGO_JOB_REPLICA")
            if rank is not None and rank.isdigit() and procs.is_session_leader(pid):
                by_rank.setdefault(int(rank), pid)
        pids = [by_rank.get(rank) for rank in range(run.replicas)]
        if pids[0] is None:
            return None
        ticks = [procs.start_ticks(pid) if pid else None for pid in pids]
        return {**run.process, "pid": pids[0], "start_ticks": ticks[0], "pids": pids, "ticks": ticks}


def _free_port() -> int:
    """A TCP port free on this machine now, for the replicas' rendezvous (MASTER_PORT)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _child_key(run: JobRun, rank: int) -> str:
    return run.marker if rank == 0 else f"{run.marker}#{rank}"


def _no_status(proc) -> str:
    """How a process that left no exit status ended, in words."""
    if proc is not None and proc is not True and proc.returncode is not None:
        return f"ended without an exit status (killed: {_signal_of(proc)})"
    return "ended without leaving an exit status"


def _signal_of(proc) -> str:
    import signal as _signal

    code = proc.returncode
    if code is not None and code < 0:
        try:
            return _signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _preexec(account: pwd.struct_passwd, cgroup: Path | None):
    """After fork, before exec: enter the job's cgroup (still root), then become the user."""
    uid, gid = account.pw_uid, account.pw_gid
    groups = os.getgrouplist(account.pw_name, gid)
    join = JobCgroups.join_fn(cgroup) if cgroup else None

    def preexec():
        if join is not None:
            join()
        if os.geteuid() == 0:
            os.setgid(gid)
            try:
                os.setgroups(groups)
            except OSError:
                os.setgroups([])
            os.setuid(uid)
        if os.getuid() == 0 or os.geteuid() == 0:  # never run a user's job as root
            os._exit(126)

    return preexec
