"""The pure parts of jobs: specs, statuses, the runner's parameter forms, log chunks, cron."""
from datetime import datetime

import pytest

from astrago.hub.jobs import states
from astrago.hub.jobs.cron import check_schedule, next_run
from astrago.hub.jobs.executors.cgroups import cpu_max, memory_max
from astrago.hub.jobs.executors.local import launch_spec, notebook_output_path
from astrago.hub.jobs.logs import parse_event_id, split_utf8, sse
from astrago.hub.jobs.runner import parameter_env, parameter_lines, script_args
from astrago.hub.client.jobs import parse_cli_value
from astrago.hub.jobs.spec import JobSpec, SpecError, parse_duration_s, parse_job_spec, parse_memory_gib

HOME = "/home/astrago-ann"


def spec(**body):
    return parse_job_spec(body, home=HOME, max_runtime_limit_s=7 * 86400)


def test_a_notebook_spec_is_normalised():
    s = spec(input="runs/train.ipynb", parameters={"lr": 0.1, "tags": ["a"]}, slice="1g.10gb", memory="16G", cpu=4,
             max_runtime="2h", retries=1, priority=5)
    assert s == JobSpec(kind="notebook", name="train.ipynb", slice="1g.10gb", input=f"{HOME}/runs/train.ipynb",
                        parameters={"lr": 0.1, "tags": ["a"]}, cpu=4.0, memory_gib=16.0, priority=5,
                        max_runtime_s=7200.0, retries=1, workdir=HOME)


def test_defaults_relative_paths_and_workdir():
    s = spec(kind="script", input="../shared/x.py", workdir="/home/astrago-ann/proj")
    assert s.input == "/home/astrago-ann/shared/x.py" and s.workdir == "/home/astrago-ann/proj"
    assert (s.slice, s.cpu, s.memory_gib, s.max_runtime_s, s.retries) == ("cpu", 1.0, 4.0, 7 * 86400.0, 0)
    assert spec(kind="script", code="print(1)").name == "cell"
    assert spec(command="python -m train --fast").kind == "command"
    assert spec(command="python -m train").name == "python"
    assert spec(kind="script", input="~/a.py").input == f"{HOME}/a.py"
    assert spec(kind="script", input="a.py", workdir="~/proj").input == f"{HOME}/proj/a.py"


@pytest.mark.parametrize("body, field, words", [
    ({"kind": "notebook"}, "input", "needs input"),
    ({"kind": "notebook", "input": "x.py"}, "input", ".ipynb"),
    ({"kind": "script"}, "input", "or code"),
    ({"kind": "script", "code": "x", "input": "a.py"}, "code", "not both"),
    ({"kind": "script", "code": "   "}, "code", "empty"),
    ({"kind": "command"}, "command", "needs command"),
    ({"kind": "command", "command": "x", "code": "y"}, "code", "belongs to script"),
    ({"kind": "bogus"}, "kind", "kind must be"),
    ({"command": "x", "foo": 1}, "foo", "Unknown field"),
    ({"command": "x", "name": "a/b"}, "name", "name must be"),
    ({"command": "x", "cpu": 0}, "cpu", "cpu must be"),
    ({"command": "x", "cpu": True}, "cpu", "cpu must be"),
    ({"command": "x", "memory": "12 parsecs"}, "memory", "memory"),
    ({"command": "x", "memory": 0}, "memory", "more than 0"),
    ({"command": "x", "memory": "1G", "memory_gib": 1}, "memory", "not both"),
    ({"command": "x", "priority": 1000}, "priority", "from -100 to 100"),
    ({"command": "x", "priority": 1.5}, "priority", "whole number"),
    ({"command": "x", "retries": 11}, "retries", "from 0 to 10"),
    ({"command": "x", "max_runtime": "soon"}, "max_runtime", "duration"),
    ({"command": "x", "max_runtime": "30d"}, "max_runtime", "longer than"),
    ({"command": "x", "env": {"HOME": "/root"}}, "env", "set by AstraGo"),
    ({"command": "x", "env": {"A": 1}}, "env", "must be text"),
    ({"command": "x", "env": {"1A": "x"}}, "env", "not an environment"),
    ({"command": "x", "parameters": {"a-b": 1}}, "parameters", "valid Python name"),
    ({"command": "x", "parameters": {"a": float("nan")}}, "parameters", "must be a number"),
    ({"command": "x", "parameters": [1]}, "parameters", "object"),
    ({"command": "x", "image": "img:1"}, "image", "cluster mode"),
    ({"command": "x", "workdir": "relative"}, "workdir", "absolute"),
    ({"command": "x", "slice": 5}, "slice", "slice must be"),
])
def test_mistakes_are_refused_with_one_sentence(body, field, words):
    with pytest.raises(SpecError) as err:
        spec(**body)
    assert err.value.field == field and words in err.value.message
    assert err.value.message.endswith(".") and "\n" not in err.value.message


def test_image_is_taken_in_cluster_mode():
    s = parse_job_spec({"command": "x", "image": "reg/img:1"}, home="/home/jovyan", cluster=True)
    assert s.image == "reg/img:1"


def test_sizes_durations_and_typed_values():
    assert [parse_memory_gib(v) for v in ("16G", "512M", "2Gi", "1.5GB", "1T", 3)] == [16, 0.5, 2, 1.5, 1024, 3]
    assert [parse_duration_s(v) for v in (90, "90", "30m", "2h", "1d", "1.5h")] == [90, 90, 1800, 7200, 86400, 5400]
    assert [parse_cli_value(v) for v in ("0.1", "3", "true", "True", "None", "[1, 2]", "adam", '"x"')] == \
        [0.1, 3, True, True, None, [1, 2], "adam", "x"]


def test_statuses_move_only_forward():
    states.check_transition(states.CREATED, states.QUEUED)
    states.check_transition(states.RUNNING, states.QUEUED)  # a retry
    for terminal in states.TERMINAL:
        with pytest.raises(states.IllegalTransition):
            states.check_transition(terminal, states.RUNNING)
    with pytest.raises(states.IllegalTransition):
        states.check_transition(states.QUEUED, states.COMPLETED)
    assert states.outcome_of_exit(0) == states.COMPLETED
    assert states.outcome_of_exit(3) == states.FAILED and states.outcome_of_exit(None) == states.FAILED


def test_parameters_reach_scripts_commands_and_cells():
    params = {"lr": 0.1, "name": "adam", "layers": [1, 2], "flag": True, "none": None}
    assert parameter_lines(params) == ("# Parameters (injected by AstraGo)\nlr = 0.1\nname = 'adam'\n"
                                       "layers = [1, 2]\nflag = True\nnone = None\n")
    assert script_args(params) == ["--lr", "0.1", "--name", "adam", "--layers", "[1, 2]", "--flag", "true",
                                   "--none", "null"]
    env = parameter_env({"lr": 0.1, "name": "adam"})
    assert env == {"ASTRAGO_PARAMS": '{"lr": 0.1, "name": "adam"}', "ASTRAGO_PARAM_LR": "0.1",
                   "ASTRAGO_PARAM_NAME": "adam"}


def test_executed_notebook_lands_beside_the_input_with_a_timestamp():
    when = datetime(2026, 3, 1, 12, 0, 5)
    assert notebook_output_path("/home/u/exp/train.ipynb", when) == "/home/u/exp/train-20260301T120005Z.ipynb"


def test_cgroup_values():
    assert cpu_max(4) == "400000 100000" and cpu_max(0.5) == "50000 100000" and cpu_max(0.001) == "1000 100000"
    assert memory_max(16) == str(16 * 1024 ** 3) and memory_max(0.5) == str(512 * 1024 ** 2)


def test_log_chunks_never_split_a_character():
    data = "héllo ✓".encode()
    assert split_utf8(data) == ("héllo ✓", len(data))
    cut = data[:-1]  # the check mark cut in two
    assert split_utf8(cut) == ("héllo ", len(cut) - 2)
    assert split_utf8(b"bad \xff byte") == ("bad \ufffd byte", 10)
    assert sse("log", {"text": "a\nb"}, "1:9") == 'id: 1:9\nevent: log\ndata: {"text":"a\\nb"}\n\n'
    assert parse_event_id("2:100") == (2, 100) and parse_event_id("55") == (None, 55)
    assert parse_event_id(None) == (None, 0) and parse_event_id("x:y") == (None, 0)


def test_cron_in_a_time_zone():
    check_schedule("0 3 * * *", "Europe/Berlin")
    # 03:00 Berlin is 01:00 UTC in summer (CEST) and 02:00 UTC in winter (CET)
    assert next_run("0 3 * * *", "Europe/Berlin", datetime(2026, 7, 1, 12, 0)) == datetime(2026, 7, 2, 1, 0)
    assert next_run("0 3 * * *", "Europe/Berlin", datetime(2026, 1, 1, 12, 0)) == datetime(2026, 1, 2, 2, 0)
    assert next_run("*/15 * * * *", "UTC", datetime(2026, 1, 1, 12, 7)) == datetime(2026, 1, 1, 12, 15)
    with pytest.raises(SpecError, match="cron expression"):
        check_schedule("every day", "UTC")
    with pytest.raises(SpecError, match="time zone"):
        check_schedule("0 3 * * *", "Mars/Olympus")


def test_launch_spec_carries_what_the_runner_needs():
    from astrago.hub.jobs.executors.base import JobRun

    run = JobRun(id="a" * 12, owner="ann", attempt=2, kind="notebook", name="t", input="/h/t.ipynb", code="",
                 command="", parameters={"lr": 1}, workdir="/h", slice="cpu", cpu=1, memory_gib=1, image="",
                 env={}, placement={}, max_runtime_s=None, started_at=None)
    assert launch_spec(run, "/h/t-x.ipynb") == {"id": "a" * 12, "attempt": 2, "kind": "notebook",
                                                "input": "/h/t.ipynb", "code": "", "command": "",
                                                "parameters": {"lr": 1}, "workdir": "/h", "output": "/h/t-x.ipynb"}
    assert run.marker == "aaaaaaaaaaaa.2"


# -- distributed training: replicas, each on its own slice -------------------------

def test_a_distributed_spec_in_cluster_mode():
    s = parse_job_spec({"command": "torchrun train.py", "slice": "gpu-1", "distributed": {"workers": 3}},
                       home="/home/jovyan", cluster=True)
    assert s.distributed == {"framework": "pytorch", "workers": 3} and s.replicas == 4
    assert s.to_dict()["distributed"] == {"framework": "pytorch", "workers": 3}
    assert parse_job_spec({"command": "true"}, home="/home/jovyan", cluster=True).distributed == {}
    again = parse_job_spec(s.to_dict(), home="/home/jovyan", cluster=True)  # a job definition's stored spec
    assert again == s


@pytest.mark.parametrize("body, cluster, distributed", [
    ({"command": "x", "replicas": 2}, True, {"framework": "pytorch", "workers": 1}),
    ({"command": "x", "replicas": 3, "distributed": {"framework": "mpi"}}, True, {"framework": "mpi", "workers": 2}),
    ({"command": "x", "replicas": 2, "distributed": {"workers": 1}}, True, {"framework": "pytorch", "workers": 1}),
    # each replica holds one slice of its own, so MIG and MPS slices are fine (a gang admission)
    ({"command": "x", "slice": "1g.10gb", "replicas": 4}, True, {"framework": "pytorch", "workers": 3}),
    ({"command": "x", "slice": "mps-25", "replicas": 2, "distributed": {"framework": "mpi"}}, True,
     {"framework": "mpi", "workers": 1}),
    # on one machine: N processes, torchrun --nproc-per-node style
    ({"code": "print(1)", "slice": "1g.10gb", "replicas": 2}, False, {"framework": "pytorch", "workers": 1}),
    ({"command": "x", "replicas": 1}, False, {}),
])
def test_replicas_of_a_spec(body, cluster, distributed):
    s = parse_job_spec(body, home="/home/jovyan", cluster=cluster)
    assert s.distributed == distributed and s.replicas == 1 + distributed.get("workers", 0)
    assert parse_job_spec(s.to_dict(), home="/home/jovyan", cluster=cluster) == s


@pytest.mark.parametrize("body, cluster, words", [
    ({"command": "x", "distributed": {"framework": "mpi", "workers": 2}}, False,
     "MPI jobs run only in cluster mode"),
    ({"command": "x", "distributed": {"framework": "horovod", "workers": 2}}, True, "framework must be pytorch or mpi"),
    ({"command": "x", "distributed": {"workers": 0}}, True, "from 1 to 64"),
    ({"command": "x", "distributed": {"workers": 65}}, True, "from 1 to 64"),
    ({"command": "x", "distributed": {"workers": 2.0}}, True, "whole number"),
    ({"command": "x", "distributed": {"workers": True}}, True, "whole number"),
    ({"command": "x", "distributed": {"workers": 2, "gpus": 1}}, True, "Unknown field(s) gpus"),
    ({"command": "x", "distributed": 4}, True, "must be an object"),
    ({"input": "a.ipynb", "distributed": {"workers": 2}}, True, "not notebooks"),
    ({"input": "a.ipynb", "replicas": 2}, False, "not notebooks"),
    ({"command": "x", "replicas": 0}, True, "from 1 to 65"),
    ({"command": "x", "replicas": "2"}, True, "whole number"),
    ({"command": "x", "replicas": 9}, True, "at most 8 replicas here, not 9"),
    ({"command": "x", "replicas": 3, "distributed": {"workers": 1}}, True, "disagree"),
    ({"command": "x", "distributed": {"framework": "mpi"}}, True, "2 or more replicas"),
])
def test_distributed_specs_that_are_refused(body, cluster, words):
    with pytest.raises(SpecError) as info:
        parse_job_spec(body, home="/home/jovyan", cluster=cluster)
    assert info.value.field in ("distributed", "slice", "replicas") and words in info.value.message
    assert info.value.message.endswith(".") and "\n" not in info.value.message  # one plain sentence


def test_max_replicas_is_the_installations_and_each_users():
    from astrago.hub.jobs.config import JobsConfig

    config = JobsConfig(max_replicas=4, max_replicas_by_user={"ann": 16})
    assert (config.max_replicas_for("bob"), config.max_replicas_for("ann")) == (4, 16)
    with pytest.raises(SpecError, match="at most 4 replicas"):
        parse_job_spec({"command": "x", "replicas": 5}, home="/h", cluster=True,
                       max_replicas=config.max_replicas_for("bob"))
    assert parse_job_spec({"command": "x", "replicas": 16}, home="/h", cluster=True,
                          max_replicas=config.max_replicas_for("ann")).replicas == 16


def test_replica_logs_sit_beside_the_attempts_log():
    from astrago.hub.jobs.logs import replica_log_path

    assert replica_log_path("/d/j/attempt-2.log", 0) == "/d/j/attempt-2.log"
    assert replica_log_path("/d/j/attempt-2.log", 3) == "/d/j/attempt-2.replica-3.log"
    assert replica_log_path("", 1) == ""


def test_the_cli_and_the_magics_ask_for_replicas_and_their_kind(monkeypatch, capsys):
    from astrago.hub.cli import main as cli_main
    from astrago.hub.client.jobs import JobsClient, describe, distributed_fields

    sent = {}

    def submit(self, **spec):
        sent.update(spec)
        return {"id": "0a1b2c3d4e5f", "name": "x", "slice": "1g.10gb", "status": "QUEUED", "reason": "", "replicas": 2}

    monkeypatch.setenv("ASTRAGO_SERVICE_URL", "http://127.0.0.1:9/services/astrago/")  # never reached
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x")
    monkeypatch.setattr(JobsClient, "submit", submit)
    assert cli_main(["job", "submit", "--command", "python train.py", "--slice", "1g.10gb", "--replicas", "2",
                     "--kind", "mpi"]) == 0
    assert (sent["replicas"], sent["distributed"], sent["slice"]) == (2, {"framework": "mpi"}, "1g.10gb")
    assert "on 2 x 1g.10gb: QUEUED" in capsys.readouterr().out
    assert distributed_fields(None, None) == {} and distributed_fields(3, None) == {"replicas": 3}
    assert describe({"id": "a", "name": "n", "slice": "cpu", "status": "RUNNING"}) == "Job a (n) on cpu: RUNNING"
    from extensions.magics import _cell_parser

    args = _cell_parser().parse_args(["--replicas", "2", "--slice", "mps-25"])
    assert (args.replicas, args.framework, args.slice) == (2, None, "mps-25")
