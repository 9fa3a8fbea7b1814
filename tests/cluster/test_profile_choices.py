"""The spawn page's choices (pure): catalogue x groups x quota, and the server-side re-check."""
import pytest

from astrago.spawners.kube.profiles import OptionsRefused, choose, profile_list, slice_choices

#: what GET users/<name>/offers answers (hub/quota/offers.py), for a cluster with MIG, MPS and whole GPUs
OFFERS = {"offers": [
    {"slice": "cpu", "kind": "cpu", "gpu_units": 0.0, "memory_gib": 0.0, "free": None, "allowed": True,
     "within_quota": True, "note": "no GPU"},
    {"slice": "1g.10gb", "kind": "mig", "gpu_units": 1 / 7, "memory_gib": 10.0, "model": "H100-80GB", "free": 3,
     "allowed": True, "within_quota": True, "quota_note": ""},
    {"slice": "mps-25", "kind": "mps", "gpu_units": 0.25, "memory_gib": 20.0, "model": "A100-80GB", "free": 0,
     "allowed": True, "within_quota": True, "quota_note": ""},
    {"slice": "3g.40gb", "kind": "mig", "gpu_units": 3 / 7, "memory_gib": 40.0, "model": "H100-80GB", "free": 1,
     "allowed": True, "within_quota": False, "quota_note": "Over your gpu_units quota: 0.29 left, 0.43 asked."},
    {"slice": "gpu-2", "kind": "gpu", "gpu_units": 2.0, "memory_gib": 160.0, "model": None, "free": 1,
     "allowed": True, "within_quota": True, "quota_note": ""},
]}

GROUP_SLICES = {"vision": ["1g.10gb", "3g.40gb"], "nlp": ["mps-25", "gpu-2"], "*": []}


def test_profile_list_without_group_rules_leaves_out_only_what_quota_refuses():
    assert profile_list(slice_choices(OFFERS, ["vision"])) == [
        {"display_name": "CPU only", "slug": "cpu", "description": "No GPU."},
        {"display_name": "MIG 1g.10gb", "slug": "1g-10gb", "default": True,
         "description": "0.14 GPU units, 10 GB GPU memory, H100-80GB, 3 free now."},
        {"display_name": "MPS share 25%", "slug": "mps-25",
         "description": "0.25 GPU units, 20 GB GPU memory, A100-80GB, none free now: you will wait in the queue. "
                        "Note: shares a GPU: a fatal error in one program stops every program on that GPU."},
        {"display_name": "2 whole GPUs", "slug": "gpu-2", "description": "2.00 GPU units, 160 GB GPU memory, 1 free now."},
    ]


def test_groups_filter_the_profiles():
    vision = [p["slug"] for p in profile_list(slice_choices(OFFERS, ["vision"], GROUP_SLICES))]
    nlp = [p["slug"] for p in profile_list(slice_choices(OFFERS, ["nlp"], GROUP_SLICES))]
    both = [p["slug"] for p in profile_list(slice_choices(OFFERS, ["nlp", "vision"], GROUP_SLICES))]
    nobody = [p["slug"] for p in profile_list(slice_choices(OFFERS, [], GROUP_SLICES))]
    assert vision == ["cpu", "1g-10gb"]  # 3g.40gb is allowed for the group but over quota
    assert nlp == ["cpu", "mps-25", "gpu-2"]
    assert both == ["cpu", "1g-10gb", "mps-25", "gpu-2"]
    assert nobody == ["cpu"]


def test_everyone_entry_applies_to_all_groups():
    rules = {"*": ["1g.10gb"]}
    assert [p["slug"] for p in profile_list(slice_choices(OFFERS, ["x"], rules))] == ["cpu", "1g-10gb"]
    assert [p["slug"] for p in profile_list(slice_choices(OFFERS, [], {"*": ["*"]}))] == \
        ["cpu", "1g-10gb", "mps-25", "gpu-2"]


def test_descriptions_are_escaped_for_kubespawners_form():
    offers = {"offers": [{"slice": "mps-50", "kind": "mps", "gpu_units": 0.5, "memory_gib": 40.0,
                          "model": "<script>", "free": 1, "within_quota": True}]}
    assert "&lt;script&gt;" in profile_list(slice_choices(offers, []))[0]["description"]


def test_form_choice_and_rest_choice_resolve_to_the_same_slice():
    choices = slice_choices(OFFERS, ["vision"], GROUP_SLICES)
    assert choose({"profile": "1g-10gb"}, choices).slice == "1g.10gb"
    assert choose({"slice": "1g.10gb"}, choices).slice == "1g.10gb"
    assert choose({}, choices).slice == "1g.10gb"  # the default profile: the first GPU slice
    assert choose(None, choices).slice == "1g.10gb"


@pytest.mark.parametrize("options,kind,message", [
    ({"slice": "gpu-2"}, "forbidden", "Your groups (vision) may not use gpu-2."),
    ({"slice": "3g.40gb"}, "quota-exceeded", "Over your gpu_units quota: 0.29 left, 0.43 asked."),
    ({"slice": "7g.80gb"}, "capacity-unavailable",
     "'7g.80gb' is not offered in this cluster; you may choose: cpu, 1g.10gb."),
    ({"slice": "9g.99gb"}, "invalid-slice", "'9g.99gb' is not a MIG profile of any GPU model AstraGo knows."),
    ({"profile": "nope"}, "invalid-request", "'nope' is not offered in this cluster; you may choose: cpu, 1g.10gb."),
    ({"slice": "cpu", "profile": "cpu"}, "invalid-request", 'Send either "slice" or "profile", not both.'),
    ({"slice": "cpu", "kubespawner_override": {"image": "evil"}}, "invalid-request",
     'Unknown spawn options: kubespawner_override. Send {"slice": "<slice name>"} or {"profile": "<profile slug>"}.'),
    ({"slice": ["cpu"]}, "invalid-request", "The slice or profile must be a name, e.g. 1g.10gb or cpu."),
])
def test_rest_spawns_are_rechecked_and_refused_in_plain_words(options, kind, message):
    with pytest.raises(OptionsRefused) as refused:
        choose(options, slice_choices(OFFERS, ["vision"], GROUP_SLICES))
    assert (refused.value.kind, refused.value.message) == (kind, message)


def test_users_without_groups_are_told_so():
    with pytest.raises(OptionsRefused) as refused:
        choose({"slice": "1g.10gb"}, slice_choices(OFFERS, [], GROUP_SLICES))
    assert refused.value.message == "Users without a group may not use 1g.10gb."
