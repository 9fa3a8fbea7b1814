"""Jobs in cluster mode (defects 6 and 7): a job pod mounts the volume KubeSpawner made for its
user, named by kubespawner's own slug functions, and a job that names no image runs the hub's
single-user image. Pure: the executor's manifest, compared with literal values."""
from __future__ import annotations

from dataclasses import replace

import pytest

from astrago.hub.jobs.config import JobsConfig
from astrago.hub.jobs.executors.base import JobRun
from astrago.hub.jobs.executors.kubernetes import KubernetesExecutor
from astrago.hub.jobs.manifests import user_claim_name
from astrago.hub.service.environment import config_from_environment

RUN = JobRun(id="0123456789ab", owner="alice@example.org", attempt=1, kind="command", name="train", input="",
             code="", command="python train.py", parameters={}, workdir="", slice="1g.10gb", cpu=2, memory_gib=8,
             image="", env={}, placement={}, max_runtime_s=3600, started_at=None)


@pytest.mark.parametrize("template, user, expected", [
    ("claim-{user_server}", "alice@example.org", "claim-alice-example-org---7a64adf2"),  # z2jh / KubeSpawner 7
    ("claim-{username}", "alice@example.org", "claim-alice-example-org---7a64adf2"),
    ("claim-{user_server}", "bob", "claim-bob"),
    ("claim-{unescaped_username}", "bob", "claim-bob"),
])
def test_claim_names_follow_kubespawners_safe_scheme(template, user, expected):
    assert user_claim_name(template, user) == expected


def test_the_escape_scheme_is_kubespawners_old_one():
    assert user_claim_name("claim-{username}", "alice@example.org", slug_scheme="escape") == \
        "claim-alice-40example-2eorg"
    with pytest.raises(ValueError):
        user_claim_name("claim-{username}", "alice", slug_scheme="raw")


def _pod(config, run=RUN):
    return KubernetesExecutor(config).manifest(run, "")["spec"]["template"]["spec"]


def test_a_job_pod_mounts_the_users_volume_as_kubespawner_named_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ASTRAGO_SLUG_SCHEME", raising=False)
    pod = _pod(JobsConfig(namespace="astrago", data_dir=str(tmp_path), home_claim_template="claim-{user_server}"))
    assert pod["volumes"] == [{"name": "home", "persistentVolumeClaim": {
        "claimName": "claim-alice-example-org---7a64adf2"}}]
    # the service's own default template gives the same name
    assert _pod(JobsConfig(namespace="astrago", data_dir=str(tmp_path)))["volumes"] == pod["volumes"]
    monkeypatch.setenv("ASTRAGO_SLUG_SCHEME", "escape")  # hub/cluster.py passes the hub's KubeSpawner.slug_scheme
    escaped = JobsConfig(config=config_from_environment(), namespace="astrago", data_dir=str(tmp_path))
    assert _pod(escaped)["volumes"][0]["persistentVolumeClaim"] == {"claimName": "claim-alice-40example-2eorg"}


def test_a_job_without_an_image_runs_the_configured_singleuser_image(tmp_path):
    config = JobsConfig(namespace="astrago", data_dir=str(tmp_path),
                        image="harbor.example.org/astrago/singleuser:0.1.0")
    assert _pod(config)["containers"][0]["image"] == "harbor.example.org/astrago/singleuser:0.1.0"
    own = replace(RUN, image="harbor.example.org/ml/train:3")
    assert _pod(config, own)["containers"][0]["image"] == "harbor.example.org/ml/train:3"


def test_no_template_means_no_volume(tmp_path):
    assert "volumes" not in _pod(JobsConfig(namespace="astrago", data_dir=str(tmp_path), home_claim_template=""))
