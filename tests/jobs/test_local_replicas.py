"""Embedded mode, a job of several replicas (root needed): `torchrun --nproc-per-node N` style, N
real processes as the user's account, each on its own slice of a gang admission (its own
CUDA_VISIBLE_DEVICES: the simulated MIG instances of a static inventory, no GPU here) with
RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; each with its own log; one that
fails stops the others; cancelling stops every process (no orphan). Then the same through the
scheduler and the admission desk over a real database: a 2-replica job with one free slot waits
(queued, with the reason) and runs once a second slot frees."""
import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from astrago.hub.db.session import Database
from astrago.hub.jobs import states, store
from astrago.hub.jobs.executors import procs
from astrago.hub.jobs.executors.base import JobRun
from astrago.hub.jobs.executors.local import LocalExecutor, replica_env
from astrago.hub.jobs.model import Job
from astrago.hub.jobs.scheduler import JobScheduler
from astrago.hub.jobs.spec import parse_job_spec
from test_local_jobs import HOME, USER, account, config, wait_exit  # noqa: F401 (the test account's fixture)

#: two free 1g.10gb instances on one simulated H100 (and one whole GPU), so a 2-replica gang fits
#: exactly when nothing else holds a 1g.10gb
CLUSTER = {"nodes": [{"name": "n", "gpus": [{"model": "H100-80GB", "mode": "mig", "geometry": {"1g.10gb": 2}},
                                             {"model": "H100-80GB", "mode": "full"}]}]}
MIG = ["MIG-sim-n-0-6-1g.10gb", "MIG-sim-n-0-5-1g.10gb"]  # the two instances, in the order they are handed out
SAYS = ('echo "rank=$RANK local=$LOCAL_RANK world=$WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT '
        'cuda=$CUDA_VISIBLE_DEVICES"')


def gang_run(command, **kw):
    placements = [{"node": "n", "model": "H100-80GB", "visible_devices": [uuid], "gpu_uuids": ["GPU-sim-n-0"],
                   "mig_instance_uuids": [uuid]} for uuid in MIG]
    base = dict(id="9a9b9c9d9e9f", owner=USER, attempt=1, kind="command", name="ddp", input="", code="",
                command=command, parameters={}, workdir=HOME, slice="1g.10gb", cpu=1, memory_gib=1, image="", env={},
                placement={**placements[0], "replicas": placements}, max_runtime_s=None, started_at=None,
                distributed={"framework": "pytorch", "workers": 1})
    base.update(kw)
    return JobRun(**base)


def test_what_each_process_is_told():
    assert replica_env(1, 2, 29500) == {
        "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0",
        "ROLE_RANK": "1", "ROLE_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500",
        "ASTRAGO_JOB_REPLICA": "1", "ASTRAGO_JOB_REPLICAS": "2"}


async def test_each_process_sees_its_own_slice_and_rank_and_logs_apart(tmp_path):
    executor = LocalExecutor(config(tmp_path))
    run = gang_run(SAYS)
    launch = await executor.start(run)
    run = replace(run, process=launch.process, log_path=launch.log_path)
    assert len(launch.process["pids"]) == 2 and launch.process["pid"] == launch.process["pids"][0]
    ended = await wait_exit(executor, run)
    assert (ended.exit_code, ended.lost) == (0, False)
    port = None
    for rank in (0, 1):
        log = executor.log_path(run, rank).read_text()
        line = next(x for x in log.splitlines() if x.startswith("rank="))
        fields = dict(part.split("=", 1) for part in line.split())
        assert (fields["rank"], fields["local"], fields["world"], fields["cuda"]) == (str(rank), str(rank), "2",
                                                                                     MIG[rank]), log
        assert fields["master"].startswith("127.0.0.1:") and fields["master"] == (port or fields["master"])
        port = fields["master"]
        assert f"rank {rank} of 2: command on 1g.10gb ({MIG[rank]})" in log  # the runner's own line
    assert launch.log_path == str(executor.log_path(run, 0))


async def test_one_failing_process_stops_the_others(tmp_path):
    executor = LocalExecutor(config(tmp_path))
    run = gang_run('if [ "$RANK" = 1 ]; then exit 3; fi; exec sleep 300')
    launch = await executor.start(run)
    run = replace(run, process=launch.process, log_path=launch.log_path)
    ended = await wait_exit(executor, run)
    assert (ended.exit_code, ended.reason) == (3, "replica 1 exited with code 3; the other replicas were stopped")
    assert procs.with_marker(run.marker) == []


async def test_cancelling_stops_every_process_of_every_replica(tmp_path):
    executor = LocalExecutor(config(tmp_path))
    run = gang_run("setsid sleep 300 & sleep 300 & wait")
    launch = await executor.start(run)
    run = replace(run, process=launch.process, log_path=launch.log_path)
    deadline = time.monotonic() + 10
    while len(procs.with_marker(run.marker)) < 8 and time.monotonic() < deadline:  # 2 x (runner, sh, 2 sleeps)
        await asyncio.sleep(0.1)
    tree = procs.with_marker(run.marker)
    assert len(tree) >= 8
    assert await executor.stop(run) == []
    assert procs.with_marker(run.marker) == [] and not any(procs.is_alive(p, None) for p in tree)


async def test_a_restart_finds_every_replica_again(tmp_path):
    executor = LocalExecutor(config(tmp_path))
    run = gang_run("sleep 300")
    launch = await executor.start(run)
    recorded = replace(run, process=launch.process, log_path=launch.log_path)
    again = LocalExecutor(config(tmp_path))  # a new service: none of the children are its own
    unrecorded = replace(run, process={"claimed": 1})
    adopted = again.adopt_pid(unrecorded)
    assert adopted["pids"] == launch.process["pids"] and adopted["ticks"] == launch.process["ticks"]
    assert await again.reattach(recorded) is None
    assert await again.stop(recorded) == []
    assert procs.with_marker(run.marker) == []


# -- through the scheduler and the admission desk -------------------------------------------

class Service:
    def __init__(self, tmp_path):
        from astrago.hub.quota.desk import AdmissionDesk
        from astrago.spawners.inventory.static import inventory_from_cluster_spec

        self.db = Database(f"sqlite:///{tmp_path}/svc.sqlite")
        self.db.migrate()
        self.desk = AdmissionDesk(inventory_from_cluster_spec(CLUSTER))


def submit(service, **body):
    spec = parse_job_spec(body, home=HOME)
    return service.db.run_sync(lambda s: store.submit(s, service.desk, spec, USER, [], "local").id)


def job(service, job_id):
    def read(session):
        found = session.get(Job, job_id)
        return store.describe_jobs(session, service.desk, [found])[0]

    return service.db.run_sync(read)


async def until(service, job_id, statuses, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = job(service, job_id)
        if current["status"] in statuses and (current["status"] != states.RUNNING or current["process"].get("pid")):
            return current
        await asyncio.sleep(0.1)
    raise AssertionError(f"job not {statuses}: {job(service, job_id)}")


async def test_a_two_replica_job_with_one_free_slot_waits_then_runs_each_process_on_its_slice(tmp_path):
    service = Service(tmp_path)
    cfg = config(tmp_path)
    executor = LocalExecutor(cfg)
    sched = JobScheduler(service.db, service.desk, cfg, executor, lambda user: HOME)
    loop = asyncio.create_task(sched.run())
    try:
        holder = submit(service, command="sleep 300", slice="1g.10gb", name="holder")
        await until(service, holder, {states.RUNNING})
        gang = submit(service, command=SAYS + "; exec sleep 300", slice="1g.10gb", replicas=2, name="ddp")
        await asyncio.sleep(1.0)  # several scheduling cycles
        waiting = job(service, gang)
        assert waiting["status"] == states.QUEUED and waiting["queue"]["status"] == "queued", waiting
        assert "1g.10gb" in waiting["reason"] and waiting["replicas"] == 2, waiting["reason"]
        assert waiting["queue"]["gpu_units"] == pytest.approx(2 / 7)  # charged as two slices
        # the second slot frees: the gang is admitted whole and both processes start
        await sched.cancel(holder, "test")
        running = await until(service, gang, {states.RUNNING})
        placement = running["queue"]["placement"]
        assert sorted(p["visible_devices"][0] for p in placement["replicas"]) == sorted(MIG)
        run = next(r for r in sched.running.values() if r.id == gang)
        deadline = time.monotonic() + 10
        seen = {}
        while len(seen) < 2 and time.monotonic() < deadline:
            for rank in (0, 1):
                text = Path(executor.log_path(run, rank)).read_text() if executor.log_path(run, rank).exists() else ""
                for line in text.splitlines():
                    if line.startswith("rank="):
                        seen[rank] = dict(part.split("=", 1) for part in line.split())
            await asyncio.sleep(0.1)
        assert {rank: (f["rank"], f["cuda"]) for rank, f in seen.items()} == {
            rank: (str(rank), placement["replicas"][rank]["visible_devices"][0]) for rank in (0, 1)}
        pids = running["process"]["pids"]
        cancelled = await sched.cancel(gang, "test")
        assert cancelled["status"] == states.CANCELLED
        assert procs.with_marker(run.marker) == [] and not any(procs.is_alive(p, None) for p in pids)
        assert service.db.run_sync(lambda s: service.desk.allocations(s, [running["allocation_id"]]))[
            running["allocation_id"]].status == "released"
    finally:
        loop.cancel()
