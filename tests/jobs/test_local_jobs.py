"""Local jobs for real (root needed): processes as the user's system account, the placement's GPU
environment, cancellation of the whole process tree, and the scheduler around them over a real
database: retries, max runtime, restarts (pid + start time), recurring definitions."""
import asyncio
import os
import pwd
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from support.fixtures import require
from astrago.hub.db.session import Database
from astrago.hub.jobs import states, store
from astrago.hub.jobs.config import JobsConfig
from astrago.hub.jobs.executors import procs
from astrago.hub.jobs.executors.base import JobRun
from astrago.hub.jobs.executors.local import LocalExecutor
from astrago.hub.jobs.model import Job, JobDefinition
from astrago.hub.jobs.scheduler import JobScheduler
from astrago.hub.jobs.spec import parse_job_spec
from astrago.hub.quota.desk import AdmissionDesk
from astrago.hub.quota.models import Allocation
from astrago.spawners.inventory.static import inventory_from_cluster_spec

USER = "jobtester"
ACCOUNT = f"astrago-{USER}"
HOME = f"/home/{ACCOUNT}"
CLUSTER = {"nodes": [{"name": "n", "gpus": [{"model": "H100-80GB", "mode": "mig", "geometry": {"1g.10gb": 7}},
                                             {"model": "H100-80GB", "mode": "full"}]}]}


@pytest.fixture(scope="module", autouse=True)
def account():
    require(os.geteuid() == 0, "root (jobs run as each user's own system account)")
    yield
    for entry in Path("/proc").iterdir():  # anything a failed test left running as the test account
        try:
            if entry.name.isdigit() and entry.stat().st_uid == pwd.getpwnam(ACCOUNT).pw_uid:
                os.kill(int(entry.name), 9)
        except (OSError, KeyError):
            pass
    subprocess.run(["userdel", "-r", ACCOUNT], capture_output=True)


def config(tmp_path, **kw):
    return JobsConfig(data_dir=str(tmp_path / "jobs"), user_env_prefix=sys.prefix, cancel_grace_seconds=2,
                      cycle_interval=0.2, poll_interval=0.1, **kw)


def run_of(**kw):
    base = dict(id="0a0b0c0d0e0f", owner=USER, attempt=1, kind="command", name="t", input="", code="", command="true",
                parameters={}, workdir=HOME, slice="cpu", cpu=1, memory_gib=1, image="", env={}, placement={},
                max_runtime_s=None, started_at=None)
    base.update(kw)
    return JobRun(**base)


async def wait_exit(executor, run, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ended = await executor.poll(run)
        if ended is not None:
            return ended
        await asyncio.sleep(0.1)
    raise AssertionError("the job did not end")


async def test_a_job_runs_as_the_users_account_with_the_placements_gpu_environment(tmp_path):
    executor = LocalExecutor(config(tmp_path))
    placement = {"visible_devices": ["MIG-sim-n-0-0-1g.10gb"], "gpu_uuids": ["GPU-sim-n-0"]}
    run = run_of(slice="1g.10gb", placement=placement, env={"MY_FLAG": "1"},
                 command='echo "uid=$(id -u) user=$USER home=$HOME cuda=$CUDA_VISIBLE_DEVICES slice=$ASTRAGO_SLICE '
                         'flag=$MY_FLAG marker=$ASTRAGO_JOB_MARKER"; exit 7')
    launch = await executor.start(run)
    run = replace(run, process=launch.process, log_path=launch.log_path)
    uid = pwd.getpwnam(ACCOUNT).pw_uid
    assert launch.process["uid"] == uid != 0 and launch.process["account"] == ACCOUNT
    assert launch.process["start_ticks"] == procs.start_ticks(launch.process["pid"]) or \
        not procs.is_alive(launch.process["pid"], None)
    ended = await wait_exit(executor, run)
    assert ended.exit_code == 7 and not ended.lost
    log = Path(launch.log_path).read_text()
    assert (f"uid={uid} user={ACCOUNT} home={HOME} cuda=MIG-sim-n-0-0-1g.10gb slice=1g.10gb flag=1 "
            f"marker=0a0b0c0d0e0f.1") in log
    assert oct(Path(launch.log_path).stat().st_mode & 0o777) == "0o600"  # only the service reads it
    assert Path(launch.log_path).stat().st_uid == 0


async def test_stop_ends_the_whole_tree_even_a_child_in_its_own_session(tmp_path):
    executor = LocalExecutor(config(tmp_path))
    run = run_of(command="setsid sleep 300 & sleep 300 & sleep 300; wait")
    launch = await executor.start(run)
    run = replace(run, process=launch.process, log_path=launch.log_path)
    deadline = time.monotonic() + 10
    while len(procs.with_marker(run.marker)) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    tree = procs.with_marker(run.marker)
    assert len(tree) >= 4
    assert await executor.stop(run) == []
    assert procs.with_marker(run.marker) == [] and not any(procs.is_alive(p, None) for p in tree)


async def test_a_restarted_service_finds_a_running_job_again_and_reads_an_ended_ones_exit_code(tmp_path):
    first = LocalExecutor(config(tmp_path))
    running = run_of(command="sleep 2; exit 4")
    launch = await first.start(running)
    running = replace(running, process=launch.process, log_path=launch.log_path)
    again = LocalExecutor(config(tmp_path))  # a new service process: not the parent any more
    assert await again.reattach(running) is None  # alive: watched again
    wrong = replace(running, process={**running.process, "start_ticks": running.process["start_ticks"] + 1})
    assert not procs.is_alive(wrong.process["pid"], wrong.process["start_ticks"])  # a reused pid is not ours
    await asyncio.sleep(3)
    first._children.clear()  # the old service is gone
    ended = await again.reattach(running)
    assert ended.exit_code == 4 and "while AstraGo was restarting" in ended.reason


async def test_cgroup_limits_are_written_where_a_delegated_hierarchy_exists(tmp_path):
    # FakeCgroupFS: a TEST DOUBLE of a delegated cgroup v2 directory (plain files); this host has no
    # cpu/memory controllers in cgroup v2, so the real one says limits are not enforced
    fake = tmp_path / "cgroupfs"
    fake.mkdir()
    (fake / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (fake / "cgroup.subtree_control").write_text("")
    executor = LocalExecutor(config(tmp_path, cgroup_root=str(fake)))
    assert executor.limits_note == ""
    (fake / "astrago-jobs").mkdir()
    (fake / "astrago-jobs" / "cgroup.subtree_control").write_text("")
    run = run_of(id="cgcgcgcgcgcg", cpu=1.5, memory_gib=2)
    launch = await executor.start(run)
    cg = fake / "astrago-jobs" / "cgcgcgcgcgcg.1"
    assert launch.process["cgroup"] == str(cg) and launch.process["limits_enforced"] is True
    assert (cg / "cpu.max").read_text() == "150000 100000"
    assert (cg / "memory.max").read_text() == str(2 * 1024 ** 3)
    assert (cg / "cgroup.procs").read_text() == "0"  # the child joined before dropping to the user
    assert (fake / "cgroup.subtree_control").read_text() == "+cpu +memory"
    await wait_exit(executor, replace(run, process=launch.process, log_path=launch.log_path))
    real = LocalExecutor(config(tmp_path))
    if real.cgroups is None:
        assert "not enforced" in real.limits_note


# -- the scheduler over a real database ----------------------------------------------------

class Service:
    """What the scheduler needs of the service: its database and admission desk."""

    def __init__(self, tmp_path):
        self.db = Database(f"sqlite:///{tmp_path}/svc.sqlite")
        self.db.migrate()
        self.desk = AdmissionDesk(inventory_from_cluster_spec(CLUSTER))


def scheduler_for(service, tmp_path, **kw):
    cfg = config(tmp_path, **kw)
    return JobScheduler(service.db, service.desk, cfg, LocalExecutor(cfg), lambda user: HOME)


def submit(service, **body):
    spec = parse_job_spec(body, home=HOME)
    return service.db.run_sync(lambda s: store.submit(s, service.desk, spec, USER, [], "local").id)


def job(service, job_id):
    return service.db.run_sync(lambda s: store.job_dict(s.get(Job, job_id)))


async def until(service, job_id, statuses, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = job(service, job_id)
        if current["status"] in statuses:
            return current
        await asyncio.sleep(0.1)
    raise AssertionError(f"job not {statuses}: {job(service, job_id)}")


def alloc_status(service, alloc_id):
    return service.db.run_sync(lambda s: s.get(Allocation, alloc_id).status)


async def test_lifecycle_retries_and_max_runtime(tmp_path):
    service = Service(tmp_path)
    sched = scheduler_for(service, tmp_path)
    loop = asyncio.create_task(sched.run())
    try:
        ok = submit(service, command="echo fine", slice="1g.10gb")
        flaky = submit(service, command="exit 5", retries=1)
        slow = submit(service, command="sleep 60", max_runtime=1)
        done = await until(service, ok, states.TERMINAL)
        assert done["status"] == "COMPLETED" and done["exit_code"] == 0
        assert alloc_status(service, done["allocation_id"]) == "released"
        failed = await until(service, flaky, states.TERMINAL)
        assert failed["status"] == "FAILED" and failed["attempt"] == 2 and failed["exit_code"] == 5
        history = [(e["status"], e["attempt"]) for e in service.db.run_sync(store.events_of, flaky)]
        assert history == [("CREATED", 0), ("QUEUED", 0), ("RUNNING", 1), ("QUEUED", 1), ("RUNNING", 2),
                           ("FAILED", 2)]
        timed = await until(service, slow, states.TERMINAL)
        assert timed["status"] == "TIMED_OUT" and "max_runtime of 1 s" in timed["reason"]
        assert procs.with_marker(f"{slow}.1") == []
    finally:
        loop.cancel()
        service.db.close()


async def test_restart_adopts_a_job_started_but_not_recorded_and_never_runs_it_twice(tmp_path):
    service = Service(tmp_path)
    marker = Path(HOME) / "adopted.txt"
    marker.unlink(missing_ok=True)
    job_id = submit(service, command=f"echo run >> {marker}; sleep 2")
    # a service that dies right after starting the process, before recording its pid
    claimed = service.db.run_sync(store.schedule_and_claim, service.desk)
    assert [r.id for r in claimed] == [job_id]
    crashed = LocalExecutor(config(tmp_path))
    await crashed.start(claimed[0])
    assert job(service, job_id)["process"] == {}
    # the next service
    sched = scheduler_for(service, tmp_path)
    loop = asyncio.create_task(sched.run())
    try:
        done = await until(service, job_id, states.TERMINAL)
        assert done["status"] == "COMPLETED" and done["attempt"] == 1
        assert marker.read_text() == "run\n"
    finally:
        loop.cancel()
        service.db.close()


async def test_a_lost_job_is_retried_only_with_a_retry_budget(tmp_path):
    service = Service(tmp_path)
    sched = scheduler_for(service, tmp_path)
    loop = asyncio.create_task(sched.run())
    budget = submit(service, command="sleep 300", retries=1, name="budget")
    none = submit(service, command="sleep 300", name="none")
    for job_id in (budget, none):
        await until(service, job_id, {"RUNNING"})
    while not all(job(service, j)["process"].get("pid") for j in (budget, none)):
        await asyncio.sleep(0.1)
    loop.cancel()  # the service stops...
    for job_id in (budget, none):  # ...and the jobs' processes vanish meanwhile
        for pid in procs.with_marker(f"{job_id}.1"):
            os.kill(pid, 9)
    await asyncio.sleep(0.5)
    sched = scheduler_for(service, tmp_path)
    loop = asyncio.create_task(sched.run())
    try:
        lost = await until(service, none, states.TERMINAL)
        assert lost["status"] == "FAILED" and "while AstraGo was down" in lost["reason"] and lost["attempt"] == 1
        retried = await until(service, budget, {"RUNNING"})
        while job(service, budget)["attempt"] < 2:
            await asyncio.sleep(0.1)
        assert job(service, budget)["attempt"] == 2
        result = await sched.cancel(budget, "tester")
        assert result["status"] == "CANCELLED"
        assert retried["id"] == budget
    finally:
        loop.cancel()
        service.db.close()


async def test_a_due_definition_submits_a_job_and_an_admin_release_stops_a_running_job(tmp_path):
    service = Service(tmp_path)
    past = datetime.utcnow() - timedelta(minutes=1)
    service.db.run_sync(lambda s: s.add(JobDefinition(
        id="d0d0d0d0d0d0", owner=USER, groups=[], name="nightly", schedule="0 3 * * *", timezone="Europe/Berlin",
        active=True, spec={"command": "echo nightly"}, next_run_at=past, created_at=past, updated_at=past)))
    sched = scheduler_for(service, tmp_path)
    loop = asyncio.create_task(sched.run())
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            d = service.db.run_sync(lambda s: (lambda x: (x.last_job_id, x.next_run_at))(s.get(JobDefinition,
                                                                                                 "d0d0d0d0d0d0")))
            if d[0]:
                break
            await asyncio.sleep(0.1)
        assert d[0] and d[1] > datetime.utcnow()
        fired = await until(service, d[0], states.TERMINAL)
        assert fired["status"] == "COMPLETED" and fired["definition_id"] == "d0d0d0d0d0d0"

        long = submit(service, command="sleep 300")
        running = await until(service, long, {"RUNNING"})
        service.db.run_sync(service.desk.release, running["allocation_id"], "released by an administrator")
        stopped = await until(service, long, states.TERMINAL)
        assert stopped["status"] == "FAILED" and "admission was released" in stopped["reason"]
        assert procs.with_marker(f"{long}.1") == []
    finally:
        loop.cancel()
        service.db.close()
