"""The service's OpenAPI 3.1 document: the contract clients are written against.

Generated from the areas' routes (contract.Route) and the declarations on their handler
methods (declare.operation, declare.needs_scope): every operation says its scope, its
request and response schemas and a unique operationId. tests/unit/test_service_contract.py
fails when one does not; the suite validates real responses against the document.
"""
from __future__ import annotations

import re

PROBLEM_RESPONSE = {
    "description": "An error as RFC 9457 problem details",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


#: the service's own schemas (areas add theirs through Area.schemas)
SCHEMAS = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
    },
    "ServiceInfo": {
        "type": "object",
        "required": ["name", "version", "mode", "areas"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "mode": {"type": "string", "enum": ["embedded", "cluster"]},
            "areas": {"type": "array", "items": {"type": "string"}},
        },
    },
    "WhoAmI": {
        "type": "object",
        "required": ["name", "kind", "admin", "groups", "scopes"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["user", "service"]},
            "admin": {"type": "boolean"},
            "astrago_admin": {"type": "boolean"},
            "groups": {"type": "array", "items": {"type": "string"}},
            "scopes": {"type": "array", "items": {"type": "string"}},
        },
    },
}

_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def _schema(ref_or_schema):
    if ref_or_schema is None:
        return None
    if isinstance(ref_or_schema, str):
        return {"$ref": f"#/components/schemas/{ref_or_schema}"}
    return ref_or_schema


def _query_param(name: str, kind) -> dict:
    schema = kind if isinstance(kind, dict) else {"type": kind}
    return {"name": name, "in": "query", "required": False, "schema": schema}


def operation_from_declarations(route, method: str, fn) -> dict:
    """The OpenAPI operation of one handler method, from its @operation and @needs_scope."""
    from .base import ACCESS_SCOPE
    from .contract import ContractError
    from .declare import PUBLIC, operation_of, scope_of

    spec = operation_of(fn)
    if spec is None:
        raise ContractError(f"{route.handler.__name__}.{method} (api {route.template}) has no @operation")
    scope = scope_of(fn)
    if scope is False:
        raise ContractError(f"{route.handler.__name__}.{method} (api {route.template}) has no @needs_scope")
    op: dict = {"operationId": spec["operationId"], "summary": spec["summary"]}
    if spec["description"]:
        op["description"] = spec["description"]
    params = [{"name": n, "in": "path", "required": True,
               "schema": {"type": "string", **({"pattern": f"^{route.patterns[n]}$"} if n in route.patterns else {})}}
              for n in re.findall(r"\{(\w+)\}", route.template)]
    params += [_query_param(n, k) for n, k in spec["query"]]
    params += [{"name": n, "in": "header", "required": req, "description": d, "schema": {"type": "string"}}
               for n, req, d in spec["request_headers"]]
    if params:
        op["parameters"] = params
    if spec["body"] is not None:
        op["requestBody"] = {"required": spec["body_required"],
                             "content": {spec["body_content"]: {"schema": _schema(spec["body"])}}}
    responses: dict = {}
    ok = {"description": "OK" if spec["ok"] != 204 else "No content"}
    if spec["ok"] != 204:
        ok["content"] = {spec["content"]: {"schema": _schema(spec["response"])} if spec["response"] is not None
                         else {}}
        for media, schema in spec.get("alternatives", {}).items():
            ok["content"][media] = {"schema": _schema(schema)}
    if spec["headers"]:
        ok["headers"] = {n: {"description": d, "schema": {"type": "string"}} for n, d in spec["headers"]}
    responses[str(spec["ok"])] = ok
    for status, extra in spec["other"].items():
        entry = {"description": extra.get("description", "OK")}
        if "schema" in extra:
            entry["content"] = {extra.get("content", spec["content"]): {"schema": _schema(extra["schema"])}}
        responses[str(status)] = entry
    for status in spec["errors"]:
        responses[str(status)] = {"$ref": "#/components/responses/Problem"}
    op["responses"] = responses
    if scope == PUBLIC:
        op["security"] = []
        op["x-astrago-scope"] = None
    else:
        op["x-astrago-scope"] = scope or ACCESS_SCOPE
        op["description"] = (op.get("description", "") + f"\n\nNeeds the scope `{scope or ACCESS_SCOPE}`"
                             + (" (filtered to the owner where it acts on one user's things)." if scope else ".")
                             ).strip()
    return op


def paths_of_routes(routes) -> dict:
    """OpenAPI paths of the API routes (templates under api/) of Area classes, and of routes outside
    api/ whose handlers declare operations (the monitor's `metrics`)."""
    from tornado import web

    from .declare import operation_of

    paths: dict = {}
    for route in routes:
        declared = any(operation_of(getattr(route.handler, m, None)) for m in _METHODS)
        if route.template != "api" and not route.template.startswith("api/") and not declared:
            continue  # a page (or a route outside the API that declares no operation, e.g. static files)
        ops = {}
        for method in _METHODS:
            fn = getattr(route.handler, method, None)
            if fn is None or fn is getattr(web.RequestHandler, method, None):
                continue
            ops[method] = operation_from_declarations(route, method, fn)
        paths[route.openapi_path] = ops
    return paths


def openapi_document(version: str, prefix: str, routes=(), schemas: dict | None = None) -> dict:
    paths = paths_of_routes(routes)
    all_schemas = {**SCHEMAS, **(schemas or {})}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AstraGo service API",
            "version": version,
            "description": "Quotas, admissions, jobs, uploads and monitoring for AstraGo GPU workspaces. "
                           "Authenticate with a JupyterHub API token (`Authorization: token <token>`) or a "
                           "Keycloak access token (`Authorization: Bearer <jwt>`); permissions are JupyterHub "
                           "scopes `custom:astrago:*`, named on each operation (`x-astrago-scope`).",
        },
        "servers": [{"url": prefix.rstrip("/")}],
        "components": {
            "schemas": all_schemas,
            "responses": {"Problem": PROBLEM_RESPONSE},
            "securitySchemes": {
                "jupyterhubToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                                    "description": "token <JupyterHub API token>"},
                "keycloakBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
        "security": [{"jupyterhubToken": []}, {"keycloakBearer": []}],
        "paths": paths,
    }
