"""Schema fuzzing of the whole service API (schemathesis) with a user's token: every operation of
api/openapi.json gets generated requests, valid and not; no answer may be a 5xx.

The fuzzing user's jobs never run (their quota allows 0 running jobs) and their storage is small,
so generated requests cannot load the machine. ASTRAGO_FUZZ_EXAMPLES sets the examples per
operation (default 115: about 5,000 cases over the document's operations).
"""
from __future__ import annotations

import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from faultkit import User, admin_api, start_platform, stop_platform

schemathesis.experimental.OPEN_API_3_1.enable()  # the document is OpenAPI 3.1



@schemathesis.serializer("application/offset+octet-stream")
class TusBody:
    """tus bodies are raw bytes."""

    def as_requests(self, context, value):
        return {"data": value if isinstance(value, bytes) else str(value).encode()}

    def as_werkzeug(self, context, value):
        return self.as_requests(context, value)


EXAMPLES = int(os.environ.get("ASTRAGO_FUZZ_EXAMPLES", "115"))
CASES = {"count": 0, "statuses": {}}


@pytest.fixture(scope="module")
def fuzz_platform(artifacts):
    p = start_platform("astrago-fuzz-")
    p.fuzzer = User(p, "fuzzer")
    r = admin_api(p, "PUT", f"quotas/user/{p.fuzzer.name}", json={"limits": {"running_jobs": 0, "storage_gib": 0.01}})
    assert r.status_code == 200, r.text
    yield p
    (artifacts / "faults-fuzz-platform.log").write_text(p.log())
    total, statuses = CASES["count"], CASES["statuses"]
    (artifacts / "schema-fuzz-summary.txt").write_text(f"cases: {total}\nstatuses: {sorted(statuses.items())}\n")
    stop_platform(p)


@pytest.fixture(scope="module")
def api_schema(fuzz_platform):
    doc = requests.get(fuzz_platform.service_url + "api/openapi.json", timeout=30).json()
    doc["servers"] = [{"url": fuzz_platform.service_url.rstrip("/")}]
    return schemathesis.from_dict(doc, base_url=fuzz_platform.service_url.rstrip("/"))


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_gets_a_5xx(case, fuzz_platform):
    token = fuzz_platform.fuzzer.token
    headers = {**(case.headers or {}), "Authorization": f"token {token}"}
    response = case.call(headers=headers, timeout=30)
    CASES["count"] += 1
    CASES["statuses"][response.status_code] = CASES["statuses"].get(response.status_code, 0) + 1
    assert response.status_code < 500, (f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                        f"{response.text[:500]}\n{case.as_curl_command()}")
