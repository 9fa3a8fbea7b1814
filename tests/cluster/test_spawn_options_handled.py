"""The spawn form's choice is GPUKubeSpawner's own: JupyterHub's `apply_user_options` hook (5.3+)
leaves `profile` / `slice` to `start` (re-checked and applied after admission) and does not log
them as unhandled on every spawn, as it did on the real control plane (tests/e2e_k8s)."""
import logging
from types import SimpleNamespace

import pytest

from astrago.spawners.kube import GPUKubeSpawner


@pytest.fixture(autouse=True)
def no_kube_client(monkeypatch):
    import kubespawner.spawner

    monkeypatch.setattr(kubespawner.spawner, "load_config", lambda **kw: None)
    monkeypatch.setattr(kubespawner.spawner, "shared_client", lambda *a, **k: object())


@pytest.mark.parametrize("options", [{"profile": "1g-10gb"}, {"slice": "1g.10gb"}, {}])
async def test_the_choice_is_not_unhandled(options, caplog):
    spawner = GPUKubeSpawner(_mock=True, user=SimpleNamespace(name="ann", id=1, url="/user/ann/", groups=[]))
    with caplog.at_level(logging.WARNING):
        await spawner._run_apply_user_options(options)
    assert not [r for r in caplog.records if "unhandled user_options" in r.getMessage()]
