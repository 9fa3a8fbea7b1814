"""Pure parts of the environments area and the spawners' side, against literals: names, package lists,
images, the build plan, the .pth layering, which servers use an environment, who may use one."""
from __future__ import annotations

import pytest
from packaging.tags import Tag
from packaging.version import Version

from astrago.hub.environments import layering, names, plan, usage
from astrago.hub.environments.catalog import Catalog
from astrago.hub.service.interfaces.environments import EnvironmentRecord, EnvironmentRefused
from astrago.spawners.kube.profiles import SliceChoice, environment_option, profile_list
from astrago.spawners.local.options_form import render_environments


def test_names_are_safe_identifiers_and_base_is_reserved():
    assert names.check_name("torch-2_5") == "torch-2_5"
    for bad in ("Torch", "2torch", "a" * 41, "ml/x", "..", "a.b", "", None, "x y"):
        with pytest.raises(names.Invalid, match="cannot name an environment"):
            names.check_name(bad)
    with pytest.raises(names.Invalid, match="'base' is reserved"):
        names.check_name("base")


def test_packages_are_requirements_or_wheel_paths_never_pip_options():
    assert names.parse_packages("numpy  pandas>=2 numpy") == ["numpy", "pandas>=2"]
    assert names.parse_packages(["torch==2.5.1", "/opt/wheels/x-1-py3-none-any.whl"]) == \
        ["torch==2.5.1", "/opt/wheels/x-1-py3-none-any.whl"]
    assert names.parse_packages(None) == [] and names.parse_packages("") == []
    for bad, why in (("-r /etc/shadow", "is a pip option"), ("--index-url=http://x", "is a pip option"),
                     ("/opt/../etc/x.whl", "absolute path to a .whl"), ("/opt/x.tar.gz", "absolute path to a .whl"),
                     ("numpy>>1", "is not a package requirement")):
        with pytest.raises(names.Invalid, match=why):
            names.parse_packages(bad)
    with pytest.raises(names.Invalid, match="At most 64 packages"):
        names.parse_packages(" ".join(f"p{i}" for i in range(65)))


def test_teams_images_and_the_offline_registry_prefix():
    assert names.check_teams("ml, vision,,ml") == ["ml", "vision"]
    assert names.check_teams(None) == []
    with pytest.raises(names.Invalid):
        names.check_teams("ml;rm -rf")
    assert names.check_image("quay.io/jupyter/pytorch-notebook:2024-10") == "quay.io/jupyter/pytorch-notebook:2024-10"
    with pytest.raises(names.Invalid):
        names.check_image("Not An Image")
    assert names.pulled_image("jupyter/base:1", "registry.local:5000") == "registry.local:5000/jupyter/base:1"
    assert names.pulled_image("registry.local:5000/jupyter/base:1", "registry.local:5000/") == \
        "registry.local:5000/jupyter/base:1"
    assert names.pulled_image("jupyter/base:1", "") == "jupyter/base:1"


def test_local_wheels_are_preferred_where_they_satisfy_the_requirement():
    wheels = ["/opt/wheels/torch-2.5.1-cp311-cp311-manylinux_2_28_x86_64.whl",
              "/opt/wheels/torch-2.4.0-cp311-cp311-manylinux_2_28_x86_64.whl",
              "/opt/wheels/torch-2.5.1-cp39-cp39-manylinux_2_28_x86_64.whl", "/opt/wheels/not-a-wheel.whl"]
    supported = [Tag("cp311", "cp311", "manylinux_2_28_x86_64"), Tag("py3", "none", "any")]
    local = plan.local_wheel_versions(wheels, supported)
    assert local == {"torch": [Version("2.4.0"), Version("2.5.1")]}
    assert plan.prefer_local_wheels(["torch", "Torch[opt]>=2", "torch<2.5", "torch==2.3", "numpy",
                                     "/x/y-1-py3-none-any.whl"], local) == \
        ["torch==2.5.1", "Torch[opt]==2.5.1", "torch==2.4.0", "torch==2.3", "numpy", "/x/y-1-py3-none-any.whl"]


def test_the_build_plan_of_a_python_environment():
    steps = plan.build_plan(prefix="/srv/envs/ml", base_prefix="/opt/astrago/user-env", service_python="/hub/bin/python",
                            requirements=["numpy", "torch", "/w/probe-1.0-py3-none-any.whl"], wheel_dirs=["/opt/wheels"],
                            local_wheels={"torch": [Version("2.5.1")]})
    check = plan.CHECK.format(modules=("jupyterlab", "ipykernel", "jupyterhub", "astrago.extensions"))
    assert steps == [
        plan.Step("Creating the virtual environment",
                  ("/opt/astrago/user-env/bin/python", "-m", "venv", "--without-pip", "/srv/envs/ml")),
        plan.Step("Layering it on the shared user environment",
                  ("/hub/bin/python", "-m", "astrago.hub.environments.layering", "layer", "/srv/envs/ml",
                   "/opt/astrago/user-env")),
        plan.Step("Installing numpy torch /w/probe-1.0-py3-none-any.whl",
                  ("/srv/envs/ml/bin/python", "-m", "pip", "install", "--no-input", "--progress-bar", "off",
                   "--disable-pip-version-check", "--root-user-action", "ignore", "--find-links", "/opt/wheels",
                   "numpy", "torch==2.5.1", "/w/probe-1.0-py3-none-any.whl")),
        plan.Step("Adding AstraGo's extensions (magics, JupyterLab settings)",
                  ("/srv/envs/ml/bin/python", "-m", "astrago.extensions.ipython_config", "/srv/envs/ml")),
        plan.Step("Checking that JupyterLab, ipykernel and the packages import",
                  ("/srv/envs/ml/bin/python", "-c", check, "numpy", "torch", "probe")),
        plan.Step("Opening it to every account",
                  ("/hub/bin/python", "-m", "astrago.hub.environments.layering", "open", "/srv/envs/ml")),
    ]
    # nothing to install: no pip step
    bare = plan.build_plan(prefix="/e", base_prefix="/b", service_python="/p", requirements=[])
    assert [s.title for s in bare] == ["Creating the virtual environment", "Layering it on the shared user environment",
                                       "Adding AstraGo's extensions (magics, JupyterLab settings)",
                                       "Checking that JupyterLab, ipykernel and the packages import",
                                       "Opening it to every account"]


def test_the_pth_puts_the_base_after_the_environments_own_packages():
    assert layering.PTH_NAME == "zz-astrago-base-environment.pth"
    assert layering.pth_text("/opt/astrago/user-env/lib/python3.11/site-packages") == (
        "# AstraGo: layered on the shared user environment; this environment's own packages come first\n"
        "import site; site.addsitedir('/opt/astrago/user-env/lib/python3.11/site-packages')\n")


def test_base_commands_are_rewritten_for_the_environment():
    script = b"#!/opt/astrago/user-env/bin/python3\nimport sys\nfrom jupyterhub.singleuser import main\n"
    assert layering.script_for(script, "/opt/astrago/user-env", "/srv/envs/ml") == \
        b"#!/srv/envs/ml/bin/python\nimport sys\nfrom jupyterhub.singleuser import main\n"
    assert layering.script_for(b"#!/bin/sh\necho\n", "/opt/astrago/user-env", "/srv/envs/ml") is None
    assert layering.script_for(b"#!/usr/bin/python3\n", "/opt/astrago/user-env", "/srv/envs/ml") is None


def test_servers_using_an_environment_from_the_hubs_user_models():
    users = [
        {"name": "ana", "servers": {"": {"ready": True, "user_options": {"slice": "cpu", "environment": "ml"}},
                                    "gpu": {"pending": "spawn", "ready": False, "user_options": {"environment": "ml"}}}},
        {"name": "ben", "servers": {"": {"ready": True, "user_options": {"slice": "cpu"}}}},
        {"name": "cy", "servers": {"": {"ready": False, "pending": None, "stopped": True,
                                        "user_options": {"environment": "ml"}}}},
    ]
    assert usage.servers_in(users, "ml") == [{"user": "ana", "server": ""}, {"user": "ana", "server": "gpu"}]
    assert usage.servers_in(users, "other") == []


def _catalog():
    base = EnvironmentRecord("base", "python", "ready", prefix="/opt/astrago/user-env")
    cat = Catalog(db=None, base=base, pulled_image=lambda image: "registry.local/" + image)
    row = {"packages": [], "description": "", "prefix": None, "image": None, "pull_policy": None, "step": 0,
           "steps": 0, "step_title": "", "size_bytes": None, "error": "", "created_by": "admin", "created_at": None,
           "updated_at": None}
    cat.rows = {
        "ml": {**row, "name": "ml", "kind": "python", "status": "ready", "teams": ["ml"], "prefix": "/e/ml"},
        "open": {**row, "name": "open", "kind": "python", "status": "ready", "teams": [], "prefix": "/e/open"},
        "wip": {**row, "name": "wip", "kind": "python", "status": "building", "teams": [], "step": 3, "steps": 6},
        "bad": {**row, "name": "bad", "kind": "python", "status": "failed", "teams": []},
        "img": {**row, "name": "img", "kind": "image", "status": "ready", "teams": ["ml"], "image": "ml/torch:2",
                "pull_policy": "IfNotPresent"},
    }
    return cat


def test_who_may_use_which_environment_in_plain_words():
    cat = _catalog()
    assert [r.name for r in cat.allowed_for("ana", ["ml"])] == ["base", "img", "ml", "open"]
    assert [r.name for r in cat.allowed_for("cy", [])] == ["base", "open"]
    assert cat.usable_by(None, "cy", []).prefix == "/opt/astrago/user-env"
    assert cat.usable_by("ml", "ana", ["ml"]).python == "/e/ml/bin/python"
    assert cat.environment("img").image == "registry.local/ml/torch:2"
    cases = {
        "ml": ("forbidden", "The environment 'ml' is for the team(s) ml, and cy is in none of them. You may choose: "
                            "base, open."),
        "nope": ("not-found", "There is no environment 'nope' you may use; you may choose: base, open."),
        "wip": ("conflict", "The environment 'wip' is still being built (step 3 of 6); wait until it is ready or "
                            "choose another: base, open."),
        "bad": ("conflict", "The environment 'bad' failed to build and cannot be used; an administrator can delete "
                            "and create it again. You may choose: base, open."),
    }
    for name, (kind, detail) in cases.items():
        with pytest.raises(EnvironmentRefused) as refused:
            cat.usable_by(name, "cy", [])
        assert (refused.value.kind, refused.value.detail) == (kind, detail)


ANSWER = {"default": "base", "environments": [
    {"name": "base", "builtin": True, "description": "The shared user environment.", "packages": [], "image": None},
    {"name": "ml", "builtin": False, "description": "", "packages": ["torch", "numpy"], "image": None},
]}


def test_the_local_spawn_form_offers_the_environments():
    assert render_environments(ANSWER) == (
        '<fieldset id="astrago-environments"><legend>Choose the environment</legend>'
        '<label class="astrago-environment" data-environment="base"><input type="radio" name="environment" '
        'value="base" checked> <strong>base</strong> <span>(The shared user environment.)</span></label>'
        '<label class="astrago-environment" data-environment="ml"><input type="radio" name="environment" '
        'value="ml"> <strong>ml</strong> <span>(torch numpy)</span></label>'
        '</fieldset><style>.astrago-environment{display:block;padding:6px 0}</style>')
    assert render_environments({"environments": ANSWER["environments"][:1]}) == ""
    assert render_environments(None) == ""


def test_the_cluster_profiles_offer_the_environments_as_a_profile_option():
    option = {"display_name": "Environment", "choices": {
        "base": {"display_name": "base: The shared user environment.", "default": True},
        "ml": {"display_name": "ml", "default": False}}}
    assert environment_option(ANSWER) == option
    choice = SliceChoice(slice="cpu", kind="cpu", slug="cpu", display_name="CPU only", description="No GPU.")
    assert profile_list([choice], ANSWER) == [{"display_name": "CPU only", "slug": "cpu", "description": "No GPU.",
                                               "default": True, "profile_options": {"environment": option}}]
    assert profile_list([choice], None) == [{"display_name": "CPU only", "slug": "cpu", "description": "No GPU.",
                                             "default": True}]


def test_a_job_spec_names_its_environment():
    from astrago.hub.jobs.spec import SpecError, parse_job_spec

    spec = parse_job_spec({"kind": "command", "command": "python train.py", "environment": "torch"},
                          home="/home/astrago-ana", cluster=False)
    assert spec.environment == "torch"
    assert parse_job_spec(spec.to_dict(), home="/home/astrago-ana", cluster=False) == spec  # a definition's spec
    assert parse_job_spec({"kind": "command", "command": "true"}, home="/h", cluster=False).environment == ""
    for bad in ("Torch", "../x", 3):
        with pytest.raises(SpecError, match="is not an environment's name"):
            parse_job_spec({"kind": "command", "command": "true", "environment": bad}, home="/h", cluster=False)
    with pytest.raises(SpecError, match="cannot be overridden"):  # nobody points a job at another python
        parse_job_spec({"kind": "command", "command": "true", "env": {"ASTRAGO_ENVIRONMENT_PREFIX": "/tmp/x"}},
                       home="/h", cluster=False)
