"""Runs one job attempt, inside the job, as the user (`python -m astrago.hub.jobs.runner`).

Standard library only (papermill for notebooks), because it runs in the users'
environment and in job containers. It reads the attempt's launch spec (JSON) from
standard input, or from ASTRAGO_JOB_SPEC in a Kubernetes pod, runs it with stdout and
stderr going to the job's log, and writes how it ended as JSON to the file descriptor
named by ASTRAGO_JOB_STATUS_FD, which the service opened on a file the user cannot
otherwise reach. So a service that restarts while a job runs still learns its exit code.

Spec: {"id", "attempt", "kind": notebook|script|command, "input", "code", "command",
"parameters", "workdir", "output"} (output: where papermill saves the executed notebook), and
for an MPIJob's launcher "launcher": the command the job's processes are started through
(mpirun ...), put before the script's or command's own.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

EXIT_BAD_INPUT = 2


def _say(text: str) -> None:
    print(f"[astrago] {text}", file=sys.stderr, flush=True)


def _literal(value) -> str:
    """A Python literal for a JSON value (true -> True, null -> None)."""
    return repr(value)


def parameter_lines(parameters: dict) -> str:
    """The assignments a parameterised cell or script starts with (pure)."""
    lines = ["# Parameters (injected by AstraGo)"]
    lines += [f"{key} = {_literal(value)}" for key, value in parameters.items()]
    return "\n".join(lines) + "\n"


def script_args(parameters: dict) -> list[str]:
    """`--name value` arguments for a script file (pure); lists and objects as JSON."""
    args = []
    for key, value in parameters.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += [f"--{key}", text]
    return args


def parameter_env(parameters: dict) -> dict[str, str]:
    """ASTRAGO_PARAM_<NAME> variables for a command (pure), plus all of them as JSON."""
    env = {"ASTRAGO_PARAMS": json.dumps(parameters)}
    for key, value in parameters.items():
        env[f"ASTRAGO_PARAM_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


class _Child:
    """The job's own process; SIGTERM to the runner is passed on to it."""

    proc: subprocess.Popen | None = None

    launcher: list = []  # an MPIJob launcher's mpirun ...: the job's processes start through it

    @classmethod
    def run(cls, argv, env=None) -> int:
        cls.proc = subprocess.Popen([*cls.launcher, *argv], env=env, stdin=subprocess.DEVNULL)
        return cls.proc.wait()


def _forward(signum, _frame):
    if _Child.proc is not None and _Child.proc.poll() is None:
        _Child.proc.send_signal(signum)
    else:
        raise SystemExit(128 + signum)


def run_notebook(spec: dict) -> int:
    src, out = spec["input"], spec["output"]
    if not os.path.isfile(src):
        _say(f"There is no notebook at {src}.")
        return EXIT_BAD_INPUT
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        import papermill
    except ImportError:
        _say("papermill is not installed in this environment: notebook jobs need it (make run installs it).")
        return EXIT_BAD_INPUT
    _say(f"executing {src} -> {out}")
    try:
        papermill.execute_notebook(src, out, parameters=spec.get("parameters") or {}, log_output=True,
                                   progress_bar=False, cwd=spec.get("workdir") or None,
                                   request_save_on_cell_execute=True)
    except papermill.PapermillExecutionError as exc:
        _say(f"the notebook stopped with an error in cell {exc.exec_count}: {exc.ename}: {exc.evalue}")
        _say(f"the executed notebook, with the error, is at {out}")
        return 1
    except Exception as exc:  # a broken notebook file, a missing kernel
        _say(f"the notebook could not run: {type(exc).__name__}: {exc}")
        return 1
    _say(f"executed notebook saved at {out}")
    return 0


def run_script(spec: dict) -> int:
    parameters = spec.get("parameters") or {}
    if spec.get("code"):
        fd, path = tempfile.mkstemp(prefix=f"astrago-job-{spec['id']}-", suffix=".py")
        with os.fdopen(fd, "w") as fh:
            fh.write(parameter_lines(parameters) if parameters else "")
            fh.write(spec["code"])
        try:
            return _Child.run([sys.executable, path])
        finally:
            os.unlink(path)
    if not os.path.isfile(spec["input"]):
        _say(f"There is no script at {spec['input']}.")
        return EXIT_BAD_INPUT
    return _Child.run([sys.executable, spec["input"], *script_args(parameters)])


def run_command(spec: dict) -> int:
    env = dict(os.environ)
    env.update(parameter_env(spec.get("parameters") or {}))
    return _Child.run(["/bin/sh", "-c", spec["command"]], env=env)


def run(spec: dict) -> int:
    try:
        os.chdir(spec.get("workdir") or os.path.expanduser("~"))
    except OSError as exc:
        _say(f"cannot enter the working directory {spec.get('workdir')}: {exc.strerror}")
        return EXIT_BAD_INPUT
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible if visible else "no GPU"
    rank = f" rank {os.environ['RANK']} of {os.environ.get('WORLD_SIZE', '?')}" if os.environ.get("RANK") else ""
    _say(f"job {spec['id']} attempt {spec.get('attempt', 1)}{rank}: {spec['kind']} on "
         f"{os.environ.get('ASTRAGO_SLICE', 'cpu')} ({gpus}) as {os.environ.get('USER') or os.getuid()} in "
         f"{os.getcwd()}")
    _Child.launcher = [str(part) for part in spec.get("launcher") or []]
    kind = spec["kind"]
    if kind == "notebook":
        return run_notebook(spec)
    if kind == "script":
        return run_script(spec)
    if kind == "command":
        return run_command(spec)
    _say(f"unknown job kind {kind!r}")
    return EXIT_BAD_INPUT


def _returncode_to_exit(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by a signal: 128 + signal, as shells say


def main() -> int:
    raw = os.environ.pop("ASTRAGO_JOB_SPEC", None)
    if raw is None:
        raw = sys.stdin.read()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    spec = json.loads(raw)
    status_fd = os.environ.pop("ASTRAGO_JOB_STATUS_FD", None)
    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    started = time.time()
    try:
        code = _returncode_to_exit(run(spec))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # report, never hide, what broke the runner itself
        _say(f"the job runner failed: {type(exc).__name__}: {exc}")
        code = 1
    _say(f"finished with exit code {code} after {time.time() - started:.1f} s")
    if status_fd:
        try:
            with os.fdopen(int(status_fd), "w") as fh:
                json.dump({"exit_code": code, "finished_at": time.time()}, fh)
        except OSError:
            pass
    return code


if __name__ == "__main__":
    sys.exit(main())
