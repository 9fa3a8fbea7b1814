"""The service's OpenAPI 3.1 document: the contract clients are written against.

Each API area contributes its `paths` here; tests/test_service_openapi.py fails
when a route the service serves is missing from the document.
"""
from __future__ import annotations

PROBLEM_RESPONSE = {
    "description": "An error as RFC 9457 problem details",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def operation(op_id: str, summary: str, ok: str = "200", errors=(401, 403), params=(), body: str | None = None,
              content: str = "application/json") -> dict:
    """One OpenAPI operation: its success response, its problem responses, path/query
    parameters as (name, "path"|"query") pairs, and a JSON body schema reference."""
    op = {"operationId": op_id, "summary": summary,
          "responses": {ok: {"description": "OK", "content": {content: {}}},
                        **{str(e): {"$ref": "#/components/responses/Problem"} for e in errors}}}
    if params:
        op["parameters"] = [{"name": n, "in": where, "required": where == "path", "schema": {"type": "string"}}
                            for n, where in params]
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": body}}}}
    return op


def _errors(*codes: int) -> dict:
    return {str(code): PROBLEM_RESPONSE for code in codes}


ROOT_PATHS = {
    "/api/": {
        "get": {
            "summary": "Service version, mode and enabled areas",
            "operationId": "getServiceInfo",
            "responses": {
                "200": {"description": "Service information", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceInfo"}}}},
                **_errors(401, 403),
            },
        }
    },
    "/api/whoami": {
        "get": {
            "summary": "The caller, their groups and AstraGo scopes",
            "operationId": "whoAmI",
            "responses": {
                "200": {"description": "The caller", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WhoAmI"}}}},
                **_errors(401, 403),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "getOpenAPI",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document"}},
        }
    },
}

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

#: areas add their paths and schemas here at import time
AREA_PATHS: list[dict] = [ROOT_PATHS]
AREA_SCHEMAS: list[dict] = [SCHEMAS]


def register(paths: dict, schemas: dict | None = None) -> None:
    """Add an area's paths (and schemas) to the document."""
    if paths not in AREA_PATHS:
        AREA_PATHS.append(paths)
    if schemas and schemas not in AREA_SCHEMAS:
        AREA_SCHEMAS.append(schemas)



def openapi_document(version: str, prefix: str) -> dict:
    paths: dict = {}
    for area in AREA_PATHS:
        paths.update(area)
    schemas: dict = {}
    for area in AREA_SCHEMAS:
        schemas.update(area)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AstraGo service API",
            "version": version,
            "description": "Quotas, admissions, jobs, uploads and monitoring for AstraGo GPU workspaces. "
                           "Authenticate with a JupyterHub API token (`Authorization: token <token>`); "
                           "permissions are JupyterHub scopes `custom:astrago:*`.",
        },
        "servers": [{"url": prefix.rstrip("/")}],
        "components": {
            "schemas": schemas,
            "responses": {"Problem": PROBLEM_RESPONSE},
            "securitySchemes": {"jupyterhubToken": {"type": "apiKey", "in": "header", "name": "Authorization"}},
        },
        "security": [{"jupyterhubToken": []}],
        "paths": paths,
    }
