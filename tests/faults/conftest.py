"""The fault tests' platform: one per module, its log kept in test-artifacts/ after each test."""
import pytest

from faultkit import start_platform, stop_platform


@pytest.fixture(scope="module")
def fp(request):
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    p = start_platform(f"astrago-{name}-")
    p.artifact_name = f"faults-{name}-platform.log"
    yield p
    stop_platform(p)


@pytest.fixture(autouse=True)
def _keep_log(request, artifacts):
    yield
    if "fp" in request.fixturenames:
        p = request.getfixturevalue("fp")
        (artifacts / p.artifact_name).write_text(p.log())
