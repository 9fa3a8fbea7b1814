"""What a user may ask for: a job spec, checked and normalised (pure).

Every mistake raises `SpecError` with one sentence for people; the API turns it into
`invalid-request` problem+json, the CLI and magics print it as it is.
"""
from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass, field

KINDS = ("notebook", "script", "command")
MAX_CODE_BYTES = 1024 * 1024
MAX_COMMAND_CHARS = 64 * 1024
MAX_PARAMETERS = 200
MAX_ENV = 200
MAX_RETRIES = 10
MAX_PRIORITY = 100
MAX_DISTRIBUTED_WORKERS = 64
#: the most replicas a spec may name at all; JobsConfig.max_replicas bounds what a user may ask for
MAX_REPLICAS = MAX_DISTRIBUTED_WORKERS + 1
DEFAULT_MAX_REPLICAS = 8
DISTRIBUTED_FRAMEWORKS = ("pytorch", "mpi")
DEFAULT_CPU = 1.0
DEFAULT_MEMORY_GIB = 4.0

_NAME = re.compile(r"^[\w .,:+@()\[\]-]{1,100}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(i?)[bB]?\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: what a job's process learns of its environment (set by the API from the environments area's catalogue)
ENVIRONMENT_VAR = "ASTRAGO_ENVIRONMENT"
ENVIRONMENT_PREFIX_VAR = "ASTRAGO_ENVIRONMENT_PREFIX"
#: environment a job may not set: AstraGo and the GPU placement own these
RESERVED_ENV = re.compile(r"^(ASTRAGO_.*|CUDA_VISIBLE_DEVICES|CUDA_MPS_.*|NVIDIA_VISIBLE_DEVICES|HOME|USER|"
                          r"LOGNAME|SHELL|JUPYTERHUB_.*|LD_PRELOAD|LD_LIBRARY_PATH|PYTHONPATH)$")
FIELDS = {"name", "kind", "input", "code", "command", "parameters", "slice", "cpu", "memory", "memory_gib",
          "image", "env", "priority", "max_runtime", "retries", "workdir", "distributed", "replicas", "datasets",
          "environment"}
MAX_DATASETS = 20
_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_DATASET_REF = re.compile(r"^([a-z][a-z0-9-]{0,17}/)?[a-z0-9][a-z0-9._-]{0,62}:[1-9][0-9]*$")


class SpecError(ValueError):
    """A job spec a user must fix; `field` names the part that is wrong."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class JobSpec:
    kind: str
    name: str
    slice: str = "cpu"
    input: str = ""  # absolute path of the notebook or script ("" for inline code and commands)
    code: str = ""  # inline Python (a %%job cell)
    command: str = ""
    parameters: dict = field(default_factory=dict)
    cpu: float = DEFAULT_CPU
    memory_gib: float = DEFAULT_MEMORY_GIB
    image: str = ""
    env: dict = field(default_factory=dict)
    priority: int = 0
    max_runtime_s: float | None = None
    retries: int = 0
    workdir: str = ""
    distributed: dict = field(default_factory=dict)  # {} or {"framework": "pytorch"|"mpi", "workers": N}
    datasets: tuple = ()  # "name:version" or "team/name:version", attached read-only (the teams area resolves them)
    environment: str = ""  # the environments area's name ("": the shared one); the API resolves it

    @property
    def replicas(self) -> int:
        """Processes (pods) that run the job at once, each on its own `slice`: 1, or 1 + workers."""
        return replicas_of(self.distributed)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "slice": self.slice, "input": self.input, "code": self.code,
                "command": self.command, "parameters": dict(self.parameters), "cpu": self.cpu,
                "memory_gib": self.memory_gib, "image": self.image, "env": dict(self.env),
                "priority": self.priority, "max_runtime": self.max_runtime_s, "retries": self.retries,
                "workdir": self.workdir, "distributed": dict(self.distributed), "replicas": self.replicas,
                "datasets": list(self.datasets), "environment": self.environment}


def replicas_of(distributed: dict | None) -> int:
    """1 for a plain job; 1 + workers for a distributed one (pure)."""
    return 1 + int((distributed or {}).get("workers", 0))


def parse_distributed(value, replicas=None, *, cluster: bool, kind: str, max_replicas: int = MAX_REPLICAS) -> dict:
    """`replicas` and `distributed` of a spec -> {} or {"framework": "pytorch"|"mpi", "workers": N} (pure).

    `replicas` counts the processes of the job, each on its own slice of the job's `slice` (so MIG
    and MPS slices too: the admission desk admits them as a gang, all or none); `distributed`
    names the framework (`pytorch`, the default, or `mpi`) and may give `workers` instead
    (replicas = 1 + workers). In cluster mode a job of several replicas is a Kubeflow PyTorchJob
    (a master and workers) or an MPIJob (a launcher that is also a worker, and workers); on one
    machine it is `torchrun --nproc-per-node N` style: N processes, each with its own slice and
    RANK. Only script and command jobs (every replica runs the same code)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise SpecError("distributed", 'distributed must be an object like {"framework": "pytorch"}.')
    unknown = sorted(set(value) - {"framework", "workers"})
    if unknown:
        raise SpecError("distributed", f"Unknown field(s) {', '.join(unknown)} in distributed; it takes framework "
                        "and workers.")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)
                                 or not 1 <= replicas <= MAX_REPLICAS):
        raise SpecError("replicas", f"replicas must be a whole number from 1 to {MAX_REPLICAS}.")
    workers = value.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= MAX_DISTRIBUTED_WORKERS):
        raise SpecError("distributed", f"distributed.workers must be a whole number from 1 to "
                        f"{MAX_DISTRIBUTED_WORKERS}.")
    if workers is not None and replicas is not None and replicas != workers + 1:
        raise SpecError("replicas", f"replicas ({replicas}) and distributed.workers ({workers}) disagree: "
                        "give replicas alone (the workers are replicas - 1).")
    count = replicas if replicas is not None else (workers + 1 if workers is not None else 1)
    framework = value.get("framework", "pytorch")
    if framework not in DISTRIBUTED_FRAMEWORKS:
        raise SpecError("distributed", f"distributed.framework must be pytorch or mpi, not {framework!r}.")
    if count == 1:
        if value:
            raise SpecError("replicas", "A distributed job needs 2 or more replicas (replicas: 2, or "
                            "distributed.workers: 1).")
        return {}
    if count > max_replicas:
        raise SpecError("replicas", f"A job may have at most {max_replicas} replicas here, not {count}: ask an "
                        "administrator for more, or use fewer.")
    if kind == "notebook":
        raise SpecError("distributed", "Distributed training takes script or command jobs, not notebooks: every "
                        "replica runs the same code.")
    if framework == "mpi" and not cluster:
        raise SpecError("distributed", "MPI jobs run only in cluster mode (Kubeflow's MPI Operator); here a job of "
                        "several replicas runs as processes on this machine with framework pytorch.")
    return {"framework": framework, "workers": count - 1}


def parse_memory_gib(value) -> float:
    """'16G', '512M', '2Gi', '1.5GB' or a number of GiB -> GiB."""
    if isinstance(value, bool):
        raise SpecError("memory", "memory must be a size like 16G or 512M.")
    if isinstance(value, (int, float)):
        gib = float(value)
    elif isinstance(value, str):
        m = _MEMORY.match(value)
        if not m:
            raise SpecError("memory", f"memory must be a size like 16G or 512M, not {value!r}.")
        number, unit = float(m.group(1)), m.group(2).upper()
        gib = number * {"": 1.0, "K": 1 / 1024 ** 2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}[unit]
    else:
        raise SpecError("memory", "memory must be a size like 16G or 512M.")
    if not math.isfinite(gib) or gib <= 0 or gib > 64 * 1024:
        raise SpecError("memory", "memory must be more than 0 and at most 64T.")
    return round(gib, 6)


def parse_duration_s(value, field_name: str = "max_runtime") -> float:
    """3600, '90m', '2h', '1d' -> seconds."""
    if isinstance(value, bool):
        raise SpecError(field_name, f"{field_name} must be a duration like 30m, 2h or 1d.")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise SpecError(field_name, f"{field_name} must be a duration like 30m, 2h or 1d, not {value!r}.")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise SpecError(field_name, f"{field_name} must be a duration like 30m, 2h or 1d.")
    if not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(field_name, f"{field_name} must be longer than 0 seconds.")
    return seconds


def _number(body, key, default, *, low, high, integer=False):
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "a whole number" if integer else "a number"
        raise SpecError(key, f"{key} must be {kind} from {low} to {high}.")
    if not (low <= value <= high):
        raise SpecError(key, f"{key} must be from {low} to {high}, not {value}.")
    return value


def _path(value, workdir: str, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise SpecError(field_name, f"{field_name} must be a file path.")
    value = value.strip()
    if value.startswith("~/"):
        value = value[2:]
    joined = value if value.startswith("/") else posixpath.join(workdir, value)
    return posixpath.normpath(joined)


def parse_job_spec(body: dict, *, home: str, cluster: bool = False, max_runtime_limit_s: float | None = None,
                   default_cpu: float = DEFAULT_CPU, default_memory_gib: float = DEFAULT_MEMORY_GIB,
                   max_replicas: int = DEFAULT_MAX_REPLICAS) -> JobSpec:
    """Check a submitted spec; `home` is the owner's storage root (relative paths start there
    unless `workdir` says otherwise)."""
    if not isinstance(body, dict):
        raise SpecError("", "A job spec must be a JSON object.")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise SpecError(unknown[0], f"Unknown field(s) {', '.join(unknown)}; a job takes {', '.join(sorted(FIELDS))}.")
    kind = body.get("kind")
    if kind is None:
        kind = "command" if body.get("command") else "notebook" if str(body.get("input", "")).endswith(".ipynb") \
            else "script"
    if kind not in KINDS:
        raise SpecError("kind", f"kind must be one of {', '.join(KINDS)}, not {kind!r}.")

    workdir = body.get("workdir") or home
    if not isinstance(workdir, str) or not workdir.startswith(("/", "~")) or "\x00" in workdir:
        raise SpecError("workdir", "workdir must be an absolute directory path.")
    workdir = posixpath.normpath(home if workdir in ("~", "~/") else
                                 posixpath.join(home, workdir[2:]) if workdir.startswith("~/") else workdir)

    input_path, code, command = "", "", ""
    if kind == "notebook":
        if not body.get("input"):
            raise SpecError("input", "A notebook job needs input: the path of an .ipynb file.")
        input_path = _path(body["input"], workdir, "input")
        if not input_path.endswith(".ipynb"):
            raise SpecError("input", f"A notebook job's input must be an .ipynb file, not {input_path}.")
    elif kind == "script":
        if body.get("code") and body.get("input"):
            raise SpecError("code", "A script job takes either input (a .py file) or code, not both.")
        if body.get("code") is not None and body.get("code") != "":
            code = body["code"]
            if not isinstance(code, str):
                raise SpecError("code", "code must be text.")
            if len(code.encode()) > MAX_CODE_BYTES:
                raise SpecError("code", "code is larger than 1 MiB: save it as a file and submit the file.")
            if not code.strip():
                raise SpecError("code", "code is empty: there is nothing to run.")
        elif body.get("input"):
            input_path = _path(body["input"], workdir, "input")
        else:
            raise SpecError("input", "A script job needs input (the path of a .py file) or code.")
    else:
        command = body.get("command")
        if not isinstance(command, str) or not command.strip():
            raise SpecError("command", "A command job needs command: the shell command to run.")
        if len(command) > MAX_COMMAND_CHARS or "\x00" in command:
            raise SpecError("command", "command is too long (64 KiB at most) or holds a NUL character.")
    for other in ("code", "command"):
        if other == "code" and kind != "script" and body.get("code"):
            raise SpecError("code", f"code belongs to script jobs, not {kind} jobs.")
        if other == "command" and kind != "command" and body.get("command"):
            raise SpecError("command", f"command belongs to command jobs, not {kind} jobs.")

    name = body.get("name")
    if name is None or name == "":
        name = posixpath.basename(input_path) if input_path else ("cell" if code else command.split()[0][:100])
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError("name", "name must be 1 to 100 letters, digits, spaces or .,:+@()[]-_ characters.")

    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise SpecError("parameters", "parameters must be an object of name -> value.")
    if len(parameters) > MAX_PARAMETERS:
        raise SpecError("parameters", f"At most {MAX_PARAMETERS} parameters.")
    for key, value in parameters.items():
        if not isinstance(key, str) or not _IDENTIFIER.match(key):
            raise SpecError("parameters", f"Parameter name {key!r} is not a valid Python name.")
        if not _json_value(value):
            raise SpecError("parameters", f"Parameter {key} must be a number, text, true/false, null, a list or "
                            "an object.")

    slice_name = body.get("slice") or "cpu"
    if not isinstance(slice_name, str) or len(slice_name) > 64:
        raise SpecError("slice", "slice must be a slice name like cpu, 1g.10gb, mps-25 or gpu-1.")

    cpu = float(_number(body, "cpu", default_cpu, low=0.01, high=1024))
    if "memory" in body and "memory_gib" in body:
        raise SpecError("memory", "Give memory or memory_gib, not both.")
    memory_gib = default_memory_gib
    if body.get("memory") is not None:
        memory_gib = parse_memory_gib(body["memory"])
    elif body.get("memory_gib") is not None:
        memory_gib = parse_memory_gib(body["memory_gib"])

    image = body.get("image") or ""
    if image and not cluster:
        raise SpecError("image", "image applies only in cluster mode: here a job runs in your own environment.")
    if not isinstance(image, str) or len(image) > 512 or any(c.isspace() for c in image):
        raise SpecError("image", "image must be a container image name like registry/name:tag.")

    env = body.get("env") or {}
    if not isinstance(env, dict) or len(env) > MAX_ENV:
        raise SpecError("env", f"env must be an object of at most {MAX_ENV} NAME -> text.")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise SpecError("env", f"{key!r} is not an environment variable name.")
        if RESERVED_ENV.match(key):
            raise SpecError("env", f"{key} is set by AstraGo and cannot be overridden.")
        if not isinstance(value, str) or "\x00" in value:
            raise SpecError("env", f"The value of {key} must be text.")

    priority = _number(body, "priority", 0, low=-MAX_PRIORITY, high=MAX_PRIORITY, integer=True)
    retries = _number(body, "retries", 0, low=0, high=MAX_RETRIES, integer=True)
    max_runtime = None
    if body.get("max_runtime") is not None:
        max_runtime = parse_duration_s(body["max_runtime"])
        if max_runtime_limit_s and max_runtime > max_runtime_limit_s:
            raise SpecError("max_runtime", f"max_runtime is longer than the {max_runtime_limit_s / 3600:g} h "
                            "this installation allows.")
    elif max_runtime_limit_s:
        max_runtime = float(max_runtime_limit_s)

    distributed = parse_distributed(body.get("distributed"), body.get("replicas"), cluster=cluster, kind=kind,
                                    max_replicas=max_replicas)

    datasets = parse_dataset_refs(body.get("datasets"))
    environment = body.get("environment") or ""
    if not isinstance(environment, str) or not (environment == "" or _ENVIRONMENT.match(environment)):
        raise SpecError("environment", f"{environment!r} is not an environment's name (like torch).")

    return JobSpec(kind=kind, name=name, slice=slice_name, input=input_path, code=code, command=command,
                   parameters=dict(parameters), cpu=cpu, memory_gib=memory_gib, image=image, env=dict(env),
                   priority=priority, max_runtime_s=max_runtime, retries=retries, workdir=workdir,
                   distributed=distributed, datasets=datasets, environment=environment)


def parse_dataset_refs(value) -> tuple:
    """`datasets` of a spec: a list of "name:version" or "team/name:version" (pure; whether they exist
    is the teams area's to say)."""
    if value is None or value == []:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_DATASETS:
        raise SpecError("datasets", f"datasets must be a list of at most {MAX_DATASETS} name:version.")
    refs = []
    for ref in value:
        if not isinstance(ref, str) or not _DATASET_REF.match(ref.strip()):
            raise SpecError("datasets", f"A dataset is named as name:version or team/name:version, not {ref!r}.")
        if ref.strip() not in refs:
            refs.append(ref.strip())
    return tuple(refs)


def _json_value(value, depth: int = 0) -> bool:
    if depth > 10:
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v, depth + 1) for k, v in value.items())
    return False
