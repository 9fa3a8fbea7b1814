"""The service's OpenAPI document is generated from the areas' routes and declarations:
every route is in it, every operation names its scope, request and response schemas and a
unique operationId; the database migrates from empty."""
import re
from collections import Counter

import pytest
from sqlalchemy import inspect

from astrago.hub.db.session import Database
from astrago.hub.service import areas
from astrago.hub.service.app import AstraGoService
from astrago.hub.service.contract import Area


def _legacy_route_to_openapi(pattern: str, prefix: str) -> str | None:
    if not pattern.startswith(prefix):
        return None
    path = "/" + pattern[len(prefix):]
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)
    return path.rstrip("$").replace("/?", "/")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTERHUB_API_TOKEN", "x")
    mp.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    tmp = tmp_path_factory.mktemp("contract")
    svc = AstraGoService(data_dir=str(tmp), db_url=f"sqlite:///{tmp}/a.sqlite")
    svc.initialize([])
    svc.app = svc.make_app()
    yield svc
    svc.db.close()
    mp.undo()


def test_every_api_route_is_in_the_openapi_document(service):
    doc = service.openapi()
    routes = [r.openapi_path for r in service.routes() if r.template == "api" or r.template.startswith("api/")]
    for area in service.areas:
        if not isinstance(area, Area):
            routes += [p for p in (_legacy_route_to_openapi(rule[0], service.prefix) for rule in
                                   area.handlers(service.prefix)) if p and p.startswith("/api")]
    assert "/api/whoami" in routes and "/api/audit" in routes and "/api/" in routes
    missing = [r for r in routes if r not in doc["paths"]]
    assert missing == [], f"routes missing from openapi.json: {missing}"


def test_operation_ids_are_unique(service):
    ids = Counter(op.get("operationId") for ops in service.openapi()["paths"].values() for op in ops.values())
    assert None not in ids
    assert [i for i, n in ids.items() if n > 1] == []


def _problems_of(op: dict) -> list[str]:
    problems = []
    if "x-astrago-scope" not in op:
        problems.append("no scope (x-astrago-scope)")
    ok = [(code, r) for code, r in op["responses"].items() if code.startswith("2")]
    if not ok:
        problems.append("no success response")
    for code, response in ok:
        if code == "204":
            continue
        content = response.get("content") or {}
        if not content or not all("schema" in media for media in content.values()):
            problems.append(f"response {code} has no schema")
    body = op.get("requestBody")
    if body is not None and not all("schema" in m for m in body.get("content", {}).values()):
        problems.append("request body without schema")
    return problems


@pytest.mark.parametrize("area_name", [n for n in areas.AREAS])
def test_every_operation_declares_scope_and_schemas(service, area_name):
    """Each area's operations (from its routes) name their scope and schemas."""
    area = next(a for a in service.areas
                if getattr(a, "name", None) == area_name or getattr(a, "__name__", None) == areas.AREAS[area_name])
    assert isinstance(area, Area), f"the {area_name} area is not an Area class yet (service/contract.py)"
    doc = service.openapi()
    bad = {}
    for route in area.routes():
        if not (route.template == "api" or route.template.startswith("api/")):
            continue
        for method, op in doc["paths"][route.openapi_path].items():
            if _problems_of(op):
                bad[f"{method.upper()} {route.openapi_path}"] = _problems_of(op)
    assert bad == {}


def test_migrations_create_the_schema_from_an_empty_database(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/empty.sqlite")
    db.migrate()
    tables = set(inspect(db.engine).get_table_names())
    assert {"audit_log", "alembic_version"} <= tables
    db.migrate()  # a second run is a no-op
    db.close()
