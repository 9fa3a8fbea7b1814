"""The service's OpenAPI document covers every route; the database migrates from empty."""
import re

from sqlalchemy import inspect

from astrago.hub.db.session import Database
from astrago.hub.service.app import AstraGoService
from astrago.hub.service.openapi import openapi_document


def _route_to_openapi(pattern: str, prefix: str) -> str | None:
    if not pattern.startswith(prefix):
        return None
    path = "/" + pattern[len(prefix):]
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)
    path = path.rstrip("$").replace("/?", "/")
    return path


def test_every_api_route_is_in_the_openapi_document(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    svc = AstraGoService(data_dir=str(tmp_path), db_url=f"sqlite:///{tmp_path}/a.sqlite")
    svc.initialize([])
    app = svc.make_app()
    doc = openapi_document(svc.version, svc.prefix)
    routes = []
    for rule in app.default_router.rules[0].target.rules:
        path = _route_to_openapi(rule.matcher.regex.pattern, svc.prefix)
        if path and path.startswith("/api"):
            routes.append(path)
    assert "/api/whoami" in routes and "/api/audit" in routes
    missing = [r for r in routes if r not in doc["paths"]]
    assert missing == [], f"routes missing from openapi.json: {missing}"
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert op.get("operationId"), f"{path} has an operation without operationId"
    svc.db.close()


def test_migrations_create_the_schema_from_an_empty_database(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/empty.sqlite")
    db.migrate()
    tables = set(inspect(db.engine).get_table_names())
    assert {"audit_log", "alembic_version"} <= tables
    db.migrate()  # a second run is a no-op
    db.close()
