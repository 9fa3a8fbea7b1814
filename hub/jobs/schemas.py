"""JSON Schemas of the jobs API (components/schemas of the service's OpenAPI document).

Responses are described as `store.job_dict` and `definitions.definition_dict` build them:
every field they always write is required, fields that may be empty are nullable.
"""
from __future__ import annotations

from .states import STATUSES

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": "string", "description": "UTC, ISO 8601 with Z"}
_NULLABLE_TIME = {"type": ["string", "null"], "description": "UTC, ISO 8601 with Z"}
_STATUS = {"type": "string", "enum": list(STATUSES)}

_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 100},
        "kind": {"enum": ["notebook", "script", "command"]},
        "input": {"type": "string", "description": "notebook (.ipynb) or script (.py) path; relative paths start "
                  "at workdir (default: the user's storage root)"},
        "code": {"type": "string", "description": "inline Python for a script job (a %%job cell)"},
        "command": {"type": "string", "description": "shell command of a command job"},
        "parameters": {"type": "object", "description": "notebook: into the `parameters` cell (papermill); "
                       "inline code: assignments before it; script file: --name value; command: "
                       "ASTRAGO_PARAM_<NAME>"},
        "slice": {"type": "string", "examples": ["cpu", "1g.10gb", "mps-25", "gpu-1"]},
        "cpu": {"type": "number", "exclusiveMinimum": 0},
        "memory": {"type": ["string", "number"], "examples": ["16G", "512M"]},
        "memory_gib": {"type": "number"},
        "image": {"type": "string", "description": "container image (cluster mode only)"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "priority": {"type": "integer", "minimum": -100, "maximum": 100,
                     "description": "order among the same user's queued jobs"},
        "max_runtime": {"type": ["string", "number"], "examples": ["2h", "30m", 3600]},
        "retries": {"type": "integer", "minimum": 0, "maximum": 10},
        "workdir": {"type": "string"},
        "datasets": {"type": "array", "maxItems": 20, "items": {"type": "string"},
                     "description": "read-only datasets (the teams area's), as name:version or team/name:version; "
                     "each arrives as ASTRAGO_DATASET_<NAME> = its folder",
                     "examples": [["imagenet-mini:2"]]},
        "environment": {"type": "string", "examples": ["torch"],
                        "description": "the environment the job runs in (GET api/environments: those the "
                        "owner's teams allow; default base, the shared one): its Python on one machine, its "
                        "image in a cluster"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 65,
                     "description": "processes of the job, each on its own `slice` (MIG and MPS slices too), "
                     "admitted all or none and charged as that many slices; at most the installation's "
                     "max_replicas. Cluster mode: a PyTorchJob (master + workers) or an MPIJob (launcher + "
                     "workers); one machine: N processes with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and "
                     "MASTER_PORT (torchrun --nproc-per-node style)"},
        "distributed": {"type": "object", "additionalProperties": False,
                        "description": "the framework of a job of several replicas (default pytorch; mpi: "
                        "Kubeflow's MPI Operator, cluster mode only); workers: replicas - 1, instead of replicas",
                        "properties": {"framework": {"enum": ["pytorch", "mpi"]},
                                       "workers": {"type": "integer", "minimum": 1, "maximum": 64}}},
    },
}

_SUBMISSION = {**_SPEC, "properties": {**_SPEC["properties"], "client_key": {
    "type": "string", "maxLength": 255,
    "description": "idempotency key: a retry with the same key returns the job already made (200)"}}}

_JOB_FIELDS = {
    "id": _STRING, "name": _STRING, "owner": _STRING, "kind": {"type": "string"}, "status": _STATUS,
    "reason": _STRING, "input": _STRING, "command": _STRING,
    "has_code": {"type": "boolean", "description": "an inline-code job (its code is not echoed)"},
    "parameters": {"type": "object"}, "workdir": _STRING, "slice": _STRING, "cpu": {"type": "number"},
    "memory_gib": {"type": "number"}, "image": _STRING, "env": {"type": "object"}, "priority": {"type": "integer"},
    "max_runtime": {"type": ["number", "null"], "description": "seconds"}, "retries": {"type": "integer"},
    "attempt": {"type": "integer", "description": "runs started so far"},
    "exit_code": {"type": ["integer", "null"]}, "executor": _STRING,
    "outputs": {"type": "array", "items": {"type": "string"}},
    "allocation_id": _NULLABLE_STRING, "definition_id": _NULLABLE_STRING,
    "cancel_requested": {"type": "boolean"}, "distributed": {"type": "object"},
    "replicas": {"type": "integer", "minimum": 1, "description": "processes (pods) of the job, each on its own "
                 "slice; their logs: GET api/jobs/{id}/log?replica=0..replicas-1"},
    "process": {"type": "object", "description": "where the current attempt runs: pid, host and account, or the "
                "Kubernetes namespace and name",
                "properties": {"pid": {"type": "integer"}, "host": _STRING, "account": _STRING,
                               "namespace": _STRING, "name": _STRING, "limits_enforced": {"type": "boolean"},
                               "kind": {"type": "string", "description": "PyTorchJob or MPIJob (distributed jobs "
                                        "in a cluster)"},
                               "pids": {"type": "array", "items": {"type": "integer"},
                                        "description": "every replica's process on this machine, by rank"}}},
    "created_at": _TIME, "queued_at": _NULLABLE_TIME, "started_at": _NULLABLE_TIME,
    "finished_at": _NULLABLE_TIME, "updated_at": _TIME,
}

JOB = {
    "type": "object",
    "required": sorted(_JOB_FIELDS),
    "properties": {
        **_JOB_FIELDS,
        "queue": {
            "type": "object", "description": "its admission while QUEUED or RUNNING",
            "required": ["status", "position", "queue_length", "reason", "placement", "gpu_units"],
            "properties": {"status": _STRING, "position": {"type": ["integer", "null"]},
                           "queue_length": {"type": ["integer", "null"]}, "reason": _NULLABLE_STRING,
                           "placement": {"type": ["object", "null"]}, "gpu_units": {"type": ["number", "null"]}},
        },
    },
}

JOB_EVENT = {
    "type": "object",
    "required": ["at", "status", "attempt", "reason"],
    "properties": {"at": _TIME, "status": _STATUS, "attempt": {"type": "integer"}, "reason": _STRING},
}

_DEFINITION_FIELDS = {
    "id": _STRING, "owner": _STRING, "name": _STRING, "schedule": _STRING, "timezone": _STRING,
    "active": {"type": "boolean"}, "spec": {"type": "object", "description": "the job spec each run submits"},
    "next_run_at": _NULLABLE_TIME, "last_run_at": _NULLABLE_TIME, "last_job_id": _NULLABLE_STRING,
    "created_at": _TIME, "updated_at": _TIME,
}

SCHEMAS = {
    "JobSpec": _SPEC,
    "JobSubmission": _SUBMISSION,
    "Job": JOB,
    "JobEvent": JOB_EVENT,
    "JobWithEvents": {"allOf": [{"$ref": "#/components/schemas/Job"}, {
        "type": "object", "required": ["events"],
        "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/JobEvent"}}}}]},
    "JobList": {"type": "object", "required": ["jobs"],
                "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}},
    "JobDefinition": {"type": "object", "required": ["schedule", "spec"], "properties": {
        "name": {"type": "string"}, "schedule": {"type": "string", "examples": ["0 3 * * *"]},
        "timezone": {"type": "string", "examples": ["Europe/Berlin"]}, "active": {"type": "boolean"},
        "spec": {"$ref": "#/components/schemas/JobSpec"}}},
    "JobDefinitionPatch": {"type": "object", "properties": {
        "name": {"type": "string"}, "schedule": {"type": "string"}, "timezone": {"type": "string"},
        "active": {"type": "boolean"}, "spec": {"$ref": "#/components/schemas/JobSpec"}}},
    "StoredJobDefinition": {"type": "object", "required": sorted(_DEFINITION_FIELDS), "properties": _DEFINITION_FIELDS},
    "JobDefinitionList": {"type": "object", "required": ["definitions"], "properties": {
        "definitions": {"type": "array", "items": {"$ref": "#/components/schemas/StoredJobDefinition"}}}},
}

#: the log and the live stream are text, not JSON
JOB_LOG = {"type": "string", "description": "the attempt's log bytes from the offset (UTF-8)"}
JOB_EVENTS = {"type": "string", "description": "server-sent events: `log` ({attempt, offset, text}; id "
              "<attempt>:<next offset>), `status` (the job) and a final `end` ({status, exit_code, reason, "
              "outputs})"}
