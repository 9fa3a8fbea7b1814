"""OpenAPI description of the monitoring area."""

P = {"$ref": "#/components/responses/Problem"}


def _op(op_id, summary, ok="200", errors=(401, 403), params=(), body=None, content="application/json"):
    op = {"operationId": op_id, "summary": summary,
          "responses": {ok: {"description": "OK", "content": {content: {}}}, **{str(e): P for e in errors}}}
    if params:
        op["parameters"] = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                            for n in params]
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": body}}}}
    return op


PATHS = {
    "/metrics": {"get": _op(
        "getMetrics", "Prometheus metrics (text format 0.0.4): GPUs, slices and who holds them, utilisation, "
        "quota use, the queue, jobs, uploads, idle-GPU reclaim. Needs custom:astrago:metrics:read",
        content="text/plain")},
    "/api/monitor/fleet": {"get": _op("getMonitorFleet", "Nodes, GPUs, MIG layouts with holders and utilisation, "
                                                   "collector status")},
    "/api/monitor/usage": {"get": _op("getMonitorUsage", "A user's slices, GPU-hours per day and utilisation history "
                                                   "(one's own; others' with custom:astrago:read)",
                                      params=["user"])},
    "/api/monitor/notices": {"get": _op("getReclaimNotices", "Idle-GPU warnings and stops of a user (one's own)",
                                        params=["user"])},
    "/api/monitor/reclaim": {"get": _op("getReclaim", "The idle-GPU reclaim policy and every watched workspace")},
    "/api/monitor/reclaim/policy": {"put": _op(
        "setReclaimPolicy", "Change the idle-GPU reclaim policy (custom:astrago:fleet:admin); audited",
        errors=(400, 401, 403), body="#/components/schemas/ReclaimPolicy")},
    "/api/monitor/rounds": {"post": _op("runMonitorRound", "Sample the collectors and run the idle-GPU rules now "
                                                           "(custom:astrago:fleet:admin)")},
}

SCHEMAS = {
    "ReclaimPolicy": {
        "type": "object",
        "description": "Only the settings given change.",
        "properties": {
            "enabled": {"type": "boolean"},
            "dry_run": {"type": "boolean", "description": "Only audit what would happen"},
            "idle_threshold_percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
            "idle_hours": {"type": "number", "exclusiveMinimum": 0},
            "grace_hours": {"type": "number", "minimum": 0},
            "exempt_groups": {"type": "array", "items": {"type": "string"}},
            "max_gap_seconds": {"type": "number", "exclusiveMinimum": 0},
            "webhook_url": {"type": "string", "description": "http(s) URL POSTed a JSON event; empty for none"},
        },
        "additionalProperties": False,
    },
}
