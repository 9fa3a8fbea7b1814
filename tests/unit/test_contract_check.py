"""The suite's contract check fails on responses that break the document and passes true ones."""
import json

import pytest
import requests

from support.contract_check import ContractChecker, ContractMismatch, Document

DOC = {
    "openapi": "3.1.0",
    "paths": {
        "/api/things/{thing_id}": {"get": {"operationId": "getThing", "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
            "404": {"$ref": "#/components/responses/Problem"}}}},
    },
    "components": {
        "schemas": {
            "Thing": {"type": "object", "required": ["id", "size"],
                      "properties": {"id": {"type": "string"}, "size": {"type": "integer"}}},
            "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                        "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                       "status": {"type": "integer"}, "detail": {"type": "string"}}},
        },
        "responses": {"Problem": {"description": "problem", "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}},
    },
}
BASE = "http://127.0.0.1:1/services/astrago/"


def _response(method, path, status, body, content_type="application/json"):
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode()
    r.headers["Content-Type"] = content_type
    r.request = requests.Request(method, BASE + path).prepare()
    r.url = r.request.url
    return r


@pytest.fixture
def checker():
    c = ContractChecker()
    c.documents[BASE] = Document(DOC)
    return c


def test_a_true_response_passes_and_is_counted(checker):
    checker.check(_response("GET", "api/things/a1", 200, {"id": "a1", "size": 3}))
    assert checker.checked == 1


def test_a_missing_required_field_fails(checker):
    with pytest.raises(ContractMismatch, match="size"):
        checker.check(_response("GET", "api/things/a1", 200, {"id": "a1"}))


def test_a_wrong_type_fails(checker):
    with pytest.raises(ContractMismatch, match="not of type 'integer'"):
        checker.check(_response("GET", "api/things/a1", 200, {"id": "a1", "size": "3"}))


def test_an_undocumented_success_status_fails(checker):
    with pytest.raises(ContractMismatch, match="status 201 is not documented"):
        checker.check(_response("GET", "api/things/a1", 201, {"id": "a1", "size": 3}))


def test_an_error_that_is_no_problem_fails(checker):
    with pytest.raises(ContractMismatch, match="does not match"):
        checker.check(_response("GET", "api/things/a1", 404, {"error": "nope"}, "application/problem+json"))


def test_an_undocumented_operation_answering_success_fails(checker):
    with pytest.raises(ContractMismatch, match="lacks"):
        checker.check(_response("POST", "api/other", 200, {}))


def test_responses_of_other_servers_are_not_checked(checker):
    r = _response("GET", "api/things/a1", 200, {"id": 1})
    r.request.url = r.url = "http://127.0.0.1:1/hub/api/users"
    checker.check(r)
    assert checker.checked == 0
