"""The service reads its settings from traits: environment, then its config files, then the command line."""
import json

import pytest

from astrago.hub.service.app import AstraGoService
from astrago.hub.service.environment import ENV_SETTINGS, InvalidSetting, config_from_environment


@pytest.fixture
def hub_env(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    for setting in ENV_SETTINGS:
        monkeypatch.delenv(setting.variable, raising=False)
    return monkeypatch


def _service(argv, **kw):
    svc = AstraGoService(**kw)
    svc.initialize(argv)
    return svc


def test_documented_variables_become_traits():
    config = config_from_environment({"ASTRAGO_DATA_DIR": "/srv/astrago", "ASTRAGO_RECONCILE_INTERVAL": "5",
                                      "ASTRAGO_OIDC_AUDIENCES": "a, b", "ASTRAGO_TEAMS_ROOT": "",
                                      "UNRELATED": "x"})
    assert config.AstraGoService.data_dir == "/srv/astrago"
    assert config.AstraGoService.reconcile_interval == 5.0
    assert config.KeycloakBearerConfig.audiences == ["a", "b"]
    assert "TeamsConfig" not in config  # empty means unset


def test_a_bad_number_names_the_variable():
    with pytest.raises(InvalidSetting, match="ASTRAGO_RECONCILE_GRACE='soon'"):
        config_from_environment({"ASTRAGO_RECONCILE_GRACE": "soon"})


def test_file_beats_environment_and_command_line_beats_file(hub_env, tmp_path):
    hub_env.setenv("ASTRAGO_DATA_DIR", str(tmp_path))
    hub_env.setenv("ASTRAGO_RECONCILE_INTERVAL", "7")
    hub_env.setenv("ASTRAGO_RECONCILE_GRACE", "8")
    (tmp_path / "astrago_service_config.json").write_text(json.dumps(
        {"AstraGoService": {"reconcile_interval": 11, "reconcile_grace": 12, "enabled_areas": ["core", "audit"]}}))
    (tmp_path / "astrago_service_config.py").write_text("c.AstraGoService.reconcile_grace = 13\n")
    svc = _service(["--AstraGoService.reconcile_interval=21"])
    try:
        assert svc.reconcile_interval == 21.0  # command line
        assert svc.reconcile_grace == 13.0  # the operator's .py after the generated .json
        assert svc.data_dir == str(tmp_path)  # environment
        assert [a.name for a in svc.areas] == ["core", "audit"]
    finally:
        svc.db.close()


def test_a_missing_extra_config_file_stops_with_a_sentence(hub_env, tmp_path):
    hub_env.setenv("ASTRAGO_DATA_DIR", str(tmp_path))
    hub_env.setenv("ASTRAGO_SERVICE_CONFIG", str(tmp_path / "nope.py"))
    with pytest.raises(SystemExit, match="nope.py does not exist"):
        _service([])


def test_cluster_mode_passes_hub_config_sections_to_the_service(tmp_path):
    from traitlets.config import Config

    from astrago.hub.cluster import service_config_sections
    from astrago.hub.service.config_file import write_service_config

    c = Config()
    c.JupyterHub.port = 8000
    c.JobsConfig.image = "registry.local/astrago/lab:1"
    c.MonitorConfig.sample_interval = 10.0
    sections = service_config_sections(c)
    assert sections == {"JobsConfig": {"image": "registry.local/astrago/lab:1"},
                        "MonitorConfig": {"sample_interval": 10.0}}
    path = write_service_config(str(tmp_path), sections)
    assert json.loads(path.read_text()) == sections
    assert write_service_config(str(tmp_path / "none"), {}) is None
