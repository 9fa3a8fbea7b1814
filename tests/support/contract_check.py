"""Every response the suite gets from an AstraGo service is checked against its OpenAPI document.

A pytest plugin (loaded by tests/conftest.py): each `requests` session of the suite gets a
response hook. For a response under `<...>/services/astrago/api/` it finds the operation in
the document that service publishes (`api/openapi.json`, read once per service), and checks:

- a success status is one the operation documents, with a documented content type;
- a JSON body (application/json, application/problem+json) matches the schema of that
  status (an error status the operation does not list must still be a Problem);
- unknown paths (the service's 404 for them) must be Problems too.

A mismatch fails the test at the request that got it. The session's summary says how many
responses were checked.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SERVICE_API = re.compile(r"^(?P<base>.*/services/astrago/)(?P<path>api(?:/.*)?)$")
JSON_TYPES = ("application/json", "application/problem+json")


class ContractMismatch(AssertionError):
    """A response of the service does not match its OpenAPI document."""


@dataclass
class Document:
    doc: dict
    operations: list[tuple[re.Pattern, str]] = field(default_factory=list)
    validators: dict = field(default_factory=dict)

    def __post_init__(self):
        for template in self.doc.get("paths", {}):
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            self.operations.append((re.compile("^" + pattern + "$"), template))
        # longest literal templates first, so /api/jobs/{id}/log wins over a looser one
        self.operations.sort(key=lambda item: -len(item[1].replace("{", "").replace("}", "")))
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:astrago:openapi", resource)

    def find(self, path: str) -> str | None:
        for pattern, template in self.operations:
            if pattern.match(path):
                return template
        return None

    def validator(self, schema: dict) -> Draft202012Validator:
        key = id(schema)
        found = self.validators.get(key)
        if found is None:
            rebased = _rebase_refs(schema)
            found = self.validators[key] = (Draft202012Validator(rebased, registry=self.registry), schema)
        return found[0]

    def problem_schema(self) -> dict:
        return {"$ref": "#/components/schemas/Problem"}


def _rebase_refs(node):
    """Local refs (#/components/...) point into the registered document."""
    if isinstance(node, dict):
        return {k: ("urn:astrago:openapi" + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else
                    _rebase_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase_refs(v) for v in node]
    return node


class ContractChecker:
    def __init__(self):
        self.documents: dict[str, Document] = {}
        self.checked = 0
        self.lock = threading.Lock()
        self.fetching = threading.local()

    def document(self, base: str, session_headers) -> Document | None:
        with self.lock:
            found = self.documents.get(base)
        if found is not None:
            return found
        self.fetching.active = True
        try:
            resp = requests.get(base + "api/openapi.json", timeout=30, verify=False)
        except requests.RequestException:
            return None
        finally:
            self.fetching.active = False
        if resp.status_code != 200:
            return None
        doc = Document(resp.json())
        with self.lock:
            self.documents[base] = doc
        return doc

    def check(self, response: requests.Response) -> None:
        if getattr(self.fetching, "active", False):
            return
        request = response.request
        url = request.url.split("?", 1)[0].split("#", 1)[0]
        m = SERVICE_API.match(url)
        if not m or response.status_code in (301, 302, 303, 307, 308):
            return
        document = self.document(m.group("base"), request.headers)
        if document is None:
            return
        path = "/" + m.group("path")
        method = request.method.lower()
        content_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        template = document.find(path)
        where = f"{request.method} {path} -> {response.status_code}"
        operation = (document.doc["paths"].get(template) or {}).get(method) if template else None
        status = str(response.status_code)
        if operation is None:
            if status.startswith("2"):
                raise ContractMismatch(f"{where}: the service answered an operation its OpenAPI document lacks")
            schema = document.problem_schema() if content_type == "application/problem+json" or \
                response.status_code >= 400 else None
        else:
            declared = operation.get("responses", {}).get(status)
            if isinstance(declared, dict) and "$ref" in declared:
                declared = _resolve(document.doc, declared["$ref"])
            if declared is None:
                if status.startswith("2") or response.status_code < 400:
                    raise ContractMismatch(f"{where}: status {status} is not documented for "
                                           f"{operation.get('operationId')} (documented: "
                                           f"{sorted(operation.get('responses', {}))})")
                schema = document.problem_schema()
            else:
                media = (declared.get("content") or {})
                if media and content_type and content_type not in media and response.content:
                    raise ContractMismatch(f"{where}: content type {content_type!r} is not one of "
                                           f"{sorted(media)} documented for {operation.get('operationId')}")
                schema = (media.get(content_type) or {}).get("schema") if media else None
        if request.method == "HEAD" or content_type not in JSON_TYPES or schema is None:
            with self.lock:
                self.checked += 1
            return
        try:
            body = response.json()
        except ValueError:
            raise ContractMismatch(f"{where}: {content_type} body is not JSON: {response.text[:200]!r}") from None
        errors = sorted(document.validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            at = "/".join(str(p) for p in first.absolute_path) or "(the body)"
            raise ContractMismatch(f"{where}: the body does not match the documented schema at {at}: "
                                   f"{first.message} ({len(errors)} error(s)); body: {str(body)[:300]}")
        with self.lock:
            self.checked += 1


def _resolve(doc: dict, ref: str):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part, {})
    return node


CHECKER = ContractChecker()
_original_init = requests.Session.__init__


def _init_with_hook(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.hooks["response"].append(lambda response, *a, **kw: CHECKER.check(response))


def pytest_configure(config):
    requests.Session.__init__ = _init_with_hook


def pytest_unconfigure(config):
    requests.Session.__init__ = _original_init


def pytest_terminal_summary(terminalreporter):
    if CHECKER.checked:
        terminalreporter.write_line(f"contract: {CHECKER.checked} responses of the AstraGo service checked against "
                                    f"its OpenAPI document")


@pytest.fixture
def contract_checker() -> ContractChecker:
    return CHECKER
