"""OpenAPI description of the jobs area."""

from ..service.openapi import operation as _op


JOB = [("job_id", "path")]
DEF = [("definition_id", "path")]

PATHS = {
    "/api/jobs": {
        "post": _op("submitJob", "Submit a notebook, script or command as a job on a slice: 201 with the job, "
                    "QUEUED (admitted at once or waiting, with the reason), or refused (invalid-request, "
                    "invalid-slice, capacity-unavailable, quota-exceeded: over quota, or as many jobs waiting as the "
                    "quota's queued_jobs). With a client_key (or an Idempotency-Key header) a retry returns the job "
                    "the first request made (200), never a second one", ok="201", errors=(400, 401, 403, 409, 422),
                    body="#/components/schemas/JobSubmission"),
        "get": _op("listJobs", "Jobs, newest first: one's own, or everyone's for AstraGo administrators",
                   errors=(400, 401, 403), params=[("user", "query"), ("status", "query"), ("limit", "query")]),
    },
    "/api/jobs/{job_id}": {"get": _op("getJob", "A job, its queue position or process, and its status history",
                                      errors=(401, 403, 404), params=JOB)},
    "/api/jobs/{job_id}/cancel": {"post": _op(
        "cancelJob", "Cancel a job: a queued one leaves the queue; a running one is stopped (SIGTERM, then SIGKILL) "
        "and its allocation released before the answer", errors=(401, 403, 404, 409), params=JOB)},
    "/api/jobs/{job_id}/log": {"get": _op(
        "getJobLog", "The log of the job's current attempt from a byte offset (text/plain; X-Log-Next-Offset "
        "says where to continue)", errors=(400, 401, 403, 404), params=JOB + [("offset", "query"), ("limit", "query")],
        content="text/plain")},
    "/api/jobs/{job_id}/events": {"get": _op(
        "followJob", "Server-sent events: `log` (text from an offset; the event id is <attempt>:<next offset>, so "
        "Last-Event-ID resumes), `status` (the job whenever it changes) and a final `end`",
        errors=(401, 403, 404), params=JOB + [("offset", "query")], content="text/event-stream")},
    "/api/job-definitions": {
        "post": _op("createJobDefinition", "A recurring job: a cron schedule in a time zone and a job spec",
                    ok="201", errors=(400, 401, 403), body="#/components/schemas/JobDefinition"),
        "get": _op("listJobDefinitions", "Job definitions: one's own, or everyone's for administrators",
                   params=[("user", "query")]),
    },
    "/api/job-definitions/{definition_id}": {
        "get": _op("getJobDefinition", "A job definition and its next run", errors=(401, 403, 404), params=DEF),
        "patch": _op("updateJobDefinition", "Pause or resume (active), or change the schedule, time zone or spec",
                     errors=(400, 401, 403, 404), params=DEF, body="#/components/schemas/JobDefinitionPatch"),
        "delete": _op("deleteJobDefinition", "Remove a job definition (its past jobs stay)", ok="204",
                      errors=(401, 403, 404), params=DEF),
    },
}

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
        "distributed": {"type": "object", "additionalProperties": False,
                        "description": "cluster mode only: run as a Kubeflow PyTorchJob of 1 master + workers",
                        "properties": {"framework": {"enum": ["pytorch"]},
                                       "workers": {"type": "integer", "minimum": 1, "maximum": 64}}},
    },
}

_SUBMISSION = {**_SPEC, "properties": {**_SPEC["properties"], "client_key": {
    "type": "string", "maxLength": 255,
    "description": "idempotency key: a retry with the same key returns the job already made (200)"}}}

SCHEMAS = {
    "JobSpec": _SPEC,
    "JobSubmission": _SUBMISSION,
    "JobDefinition": {"type": "object", "required": ["schedule", "spec"], "properties": {
        "name": {"type": "string"}, "schedule": {"type": "string", "examples": ["0 3 * * *"]},
        "timezone": {"type": "string", "examples": ["Europe/Berlin"]}, "active": {"type": "boolean"},
        "spec": {"$ref": "#/components/schemas/JobSpec"}}},
    "JobDefinitionPatch": {"type": "object", "properties": {
        "name": {"type": "string"}, "schedule": {"type": "string"}, "timezone": {"type": "string"},
        "active": {"type": "boolean"}, "spec": {"$ref": "#/components/schemas/JobSpec"}}},
}

# a retried submission (same client_key) answers 200 with the job the first one made
PATHS["/api/jobs"]["post"]["responses"]["200"] = {"description": "The job an earlier submission with this "
                                                  "client_key made", "content": {"application/json": {}}}
