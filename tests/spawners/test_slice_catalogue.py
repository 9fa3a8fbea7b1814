"""The slice catalogue against the reference tables (REFERENCE.md, NVIDIA's MIG user guide)."""

from collections import Counter
from fractions import Fraction

import pytest

from astrago.spawners import slices
from astrago.spawners.slices import GPU_MODELS, InvalidSlice, SliceRequest, parse_slice


def geometry(text):
    """'4g+2g+1g' / '1gx7' (REFERENCE.md's notation) -> Counter of compute sizes."""
    sizes = Counter()
    for part in text.split("+"):
        size, _, times = part.partition("x")
        sizes[int(size.rstrip("g"))] += int(times or 1)
    return sizes


def by_compute(model, geometries):
    return sorted(
        (Counter({model.mig_profiles[p].compute: n for p, n in g.items()}) for g in geometries),
        key=lambda c: sorted(c.items()),
    )


# REFERENCE.md, "MIG profiles": the maximal geometries, stated there by compute size.
SEVEN_SLICE_MAXIMAL = ("7g | 4g+3g | 4g+2g+1g | 4g+1gx3 | 3gx2 | 3g+2gx2 | 3g+2g+1gx2 | 3g+1gx4 | "
                       "2gx3+1g | 2gx2+1gx3 | 2g+1gx5 | 1gx7")
A30_MAXIMAL = "4g | 2gx2 | 2g+1gx2 | 1gx4"


@pytest.mark.parametrize("name", ["A100-40GB", "A100-80GB", "H100-80GB", "H100-NVL-94GB", "H200-141GB"])
def test_seven_slice_maximal_geometries_are_the_reference_twelve(name):
    model = GPU_MODELS[name]
    expected = [geometry(g.strip()) for g in SEVEN_SLICE_MAXIMAL.split("|")]
    assert by_compute(model, slices.maximal_geometries(model)) == sorted(expected, key=lambda c: sorted(c.items()))


def test_a30_maximal_geometries_are_the_reference_four():
    model = GPU_MODELS["A30"]
    expected = [geometry(g.strip()) for g in A30_MAXIMAL.split("|")]
    assert by_compute(model, slices.maximal_geometries(model)) == sorted(expected, key=lambda c: sorted(c.items()))


def test_maximal_geometries_come_largest_first_as_nvidia_lists_them():
    assert [dict(g) for g in slices.maximal_geometries("H100-80GB")][:3] == [
        {"7g.80gb": 1},
        {"4g.40gb": 1, "3g.40gb": 1},
        {"4g.40gb": 1, "2g.20gb": 1, "1g.10gb": 1},
    ]


def test_seed_systems_non_maximal_geometries_are_feasible_but_not_maximal():
    # The seed's table listed 14: the 12 plus 3g+2g+1g and 3g+1gx3, which have room left.
    model = GPU_MODELS["H100-80GB"]
    for extra in ({"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 1}, {"3g.40gb": 1, "1g.10gb": 3}):
        assert slices.geometry_fits(model, extra)
        assert Counter(extra) not in slices.maximal_geometries(model)


@pytest.mark.parametrize(
    "text, fits",
    [
        ({"3g.40gb": 2, "1g.10gb": 1}, False),  # memory full
        ({"4g.40gb": 1, "3g.40gb": 1}, True),
        ({"1g.10gb+me": 2}, False),  # one +me per GPU
        ({"1g.10gb+me": 1, "1g.10gb": 6}, True),
        ({"1g.20gb": 4}, True),
        ({"1g.20gb": 4, "1g.10gb": 1}, False),
        ({"7g.80gb": 1, "1g.10gb": 1}, False),
        ({"2g.20gb": 4}, False),  # max 3
    ],
)
def test_geometry_fits_follows_the_placement_rules(text, fits):
    assert slices.geometry_fits("H100-80GB", text) is fits


def test_reference_profile_table():
    # REFERENCE.md "MIG profiles": profile (max instances) per GPU.
    table = {
        "A30": "1g.6gb (4), 1g.6gb+me (1), 2g.12gb (2), 2g.12gb+me (1), 4g.24gb (1)",
        "A100-40GB": "1g.5gb (7), 1g.5gb+me (1), 1g.10gb (4), 2g.10gb (3), 3g.20gb (2), 4g.20gb (1), 7g.40gb (1)",
        "A100-80GB": "1g.10gb (7), 1g.10gb+me (1), 1g.20gb (4), 2g.20gb (3), 3g.40gb (2), 4g.40gb (1), 7g.80gb (1)",
        "H100-80GB": "1g.10gb (7), 1g.10gb+me (1), 1g.20gb (4), 2g.20gb (3), 3g.40gb (2), 4g.40gb (1), 7g.80gb (1)",
        "H100-NVL-94GB": "1g.12gb (7), 1g.12gb+me (1), 1g.24gb (4), 2g.24gb (3), 3g.47gb (2), 4g.47gb (1), 7g.94gb (1)",
        "H200-141GB": "1g.18gb (7), 1g.18gb+me (1), 1g.35gb (4), 2g.35gb (3), 3g.71gb (2), 4g.71gb (1), 7g.141gb (1)",
    }
    for name, row in table.items():
        expected = {p.split(" (")[0]: int(p.split(" (")[1].rstrip(")")) for p in row.split(", ")}
        assert {p.name: p.max_instances for p in GPU_MODELS[name].mig_profiles.values()} == expected


def test_reference_placements_for_seven_slice_gpus():
    profiles = GPU_MODELS["A100-40GB"].mig_profiles
    assert {name: (p.starts, p.memory_slices) for name, p in profiles.items()} == {
        "1g.5gb": ((0, 1, 2, 3, 4, 5, 6), 1),
        "1g.5gb+me": ((0, 1, 2, 3, 4, 5, 6), 1),
        "1g.10gb": ((0, 2, 4, 6), 2),
        "2g.10gb": ((0, 2, 4), 2),
        "3g.20gb": ((0, 4), 4),
        "4g.20gb": ((0,), 4),
        "7g.40gb": ((0,), 8),
    }


def test_model_shape():
    h100 = GPU_MODELS["H100-80GB"]
    assert (h100.name, h100.compute_slices, h100.memory_slices, h100.memory_gib) == ("H100-80GB", 7, 8, 80)
    three = h100.mig_profiles["3g.40gb"]
    assert (three.name, three.compute, three.memory_slices, three.memory_gb, three.max_instances, three.starts) == (
        "3g.40gb", 3, 4, 40, 2, (0, 4))
    a30 = GPU_MODELS["A30"]
    assert (a30.compute_slices, a30.memory_slices, a30.memory_gib) == (4, 4, 24)
    assert {name: (s.percent, s.replicas, s.memory_limit_mib) for name, s in h100.mps_shares.items()} == {
        "mps-50": (50, 2, 40960), "mps-25": (25, 4, 20480), "mps-20": (20, 5, 16384), "mps-10": (10, 10, 8192)}


def test_creation_order_puts_4g_before_3g_and_3g_at_4():
    # A 3g created at 0 would block every later 4g.
    layout = slices.layout_for_geometry("H100-80GB", {"3g.40gb": 1, "4g.40gb": 1})
    assert layout == (slices.PlacedInstance("4g.40gb", 0), slices.PlacedInstance("3g.40gb", 4))


def test_every_maximal_geometry_has_a_layout_within_the_rules():
    for model in GPU_MODELS.values():
        for geometry in slices.maximal_geometries(model):
            layout = slices.layout_for_geometry(model, geometry)
            used = []
            for placed in layout:
                profile = model.mig_profiles[placed.profile]
                assert placed.start in profile.starts
                used.extend(range(placed.start, placed.start + profile.memory_slices))
            assert len(used) == len(set(used)) and max(used) < model.memory_slices
            assert Counter(p.profile for p in layout) == geometry


def test_layout_around_existing_instances():
    existing = [slices.PlacedInstance("3g.40gb", 4)]
    assert slices.layout_for_geometry("H100-80GB", {"2g.20gb": 2}, existing) == (
        slices.PlacedInstance("2g.20gb", 2), slices.PlacedInstance("2g.20gb", 0))
    with pytest.raises(InvalidSlice):
        slices.layout_for_geometry("H100-80GB", {"4g.40gb": 1}, existing + [slices.PlacedInstance("1g.10gb", 0)])


@pytest.mark.parametrize(
    "model, slice_name, units",
    [
        ("H100-80GB", "3g.40gb", Fraction(3, 7)),
        ("A30", "2g.12gb", Fraction(2, 4)),
        ("A100-40GB", "1g.10gb", Fraction(1, 7)),
        ("H200-141GB", "7g.141gb", Fraction(1)),
        (None, "1g.10gb", Fraction(1, 7)),
        ("H100-80GB", "mps-25", Fraction(1, 4)),
        (None, "gpu-4", Fraction(4)),
        (None, "cpu", Fraction(0)),
    ],
)
def test_slice_gpu_units(model, slice_name, units):
    assert slices.slice_gpu_units(model, slice_name) == units


def test_units_of_a_mig_profile_on_a_model_without_it_is_an_error():
    with pytest.raises(InvalidSlice, match="not a MIG profile of the A30"):
        slices.slice_gpu_units("A30", "3g.40gb")


@pytest.mark.parametrize(
    "name, parsed",
    [
        ("1g.10gb", SliceRequest("1g.10gb", "mig", profile="1g.10gb")),
        ("1g.10gb+me", SliceRequest("1g.10gb+me", "mig", profile="1g.10gb+me")),
        ("mps-25", SliceRequest("mps-25", "mps", percent=25)),
        ("gpu-8", SliceRequest("gpu-8", "gpu", count=8)),
        ("cpu", SliceRequest("cpu", "cpu")),
    ],
)
def test_parse_slice(name, parsed):
    assert parse_slice(name) == parsed


@pytest.mark.parametrize(
    "name, message",
    [
        ("gpu-9", "'gpu-9': whole GPUs are requested as gpu-1 to gpu-8."),
        ("gpu-0", "'gpu-0': whole GPUs are requested as gpu-1 to gpu-8."),
        ("mps-30", "'mps-30' is not an MPS share AstraGo offers; choose one of mps-50, mps-25, mps-20, mps-10."),
        ("5g.50gb", "'5g.50gb' is not a MIG profile of any GPU model AstraGo knows."),
        ("", "A slice name is required, e.g. 1g.10gb, mps-25, gpu-1 or cpu."),
        ("big", "'big' is not a slice name; use a MIG profile (1g.10gb), an MPS share (mps-25), "
                "whole GPUs (gpu-1 .. gpu-8) or cpu."),
    ],
)
def test_parse_slice_refuses_with_a_human_message(name, message):
    with pytest.raises(InvalidSlice) as error:
        parse_slice(name)
    assert str(error.value) == message
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"nvml_name": "NVIDIA H100 80GB HBM3"}, "H100-80GB"),
        ({"nvml_name": "NVIDIA A100 80GB PCIe"}, "A100-80GB"),
        ({"nvml_name": "NVIDIA H100 NVL"}, "H100-NVL-94GB"),
        ({"nvml_name": "NVIDIA A30"}, "A30"),
        ({"pci_device_id": 0x20B010DE}, "A100-40GB"),  # NVML's combined device/vendor id
        ({"pci_device_id": "0x2335"}, "H200-141GB"),
        ({"gfd_product": "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb"}, "A100-40GB"),  # single strategy
        ({"gfd_product": "NVIDIA-H100-80GB-HBM3-SHARED"}, "H100-80GB"),  # renamed shared resource
        ({"gfd_product": "A100-SXM4-40GB"}, "A100-40GB"),  # older GFD, no vendor prefix
        ({"nvml_name": "Tesla T4", "pci_device_id": 0x1EB810DE}, None),
    ],
)
def test_identify_model(kwargs, expected):
    model = slices.identify_model(**kwargs)
    assert (model.name if model else None) == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("A30", "A30"),
        ("A30-24GB", "A30"),  # the key with its memory, as other inventories write it
        ("NVIDIA A30 24GB", "A30"),  # the display name
        ("nvidia-a30", "A30"),  # an NVML/GFD spelling
        ("H100-80GB", "H100-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-80GB"),
        ("A100-SXM4-40GB", "A100-40GB"),
        ("H200-141GB", "H200-141GB"),
        ("A100", None),  # which memory is unsaid
        ("T4", None),
        ("", None),
    ],
)
def test_find_model_accepts_aliases(name, expected):
    model = slices.find_model(name)
    assert (model.name if model else None) == expected


def test_units_of_a_slice_on_an_alias_of_a_model():
    assert slices.slice_gpu_units("A30-24GB", "2g.12gb") == Fraction(1, 2)


def test_pci_id_wins_over_a_name():
    assert slices.identify_model(nvml_name="NVIDIA A30", pci_device_id=0x2330).name == "H100-80GB"


def test_all_balanced_is_a_feasible_geometry_of_every_model():
    for model in GPU_MODELS.values():
        assert slices.geometry_fits(model, model.balanced_geometry)


def test_budgets_alone_decide_feasibility():
    """Compute, memory, per-profile maximum and one +me decide exactly what fits, placements
    included. The benchmark's exact solver relies on this to state MIG as budgets."""
    from itertools import product

    for model in GPU_MODELS.values():
        profiles = list(model.mig_profiles.values())
        for counts in product(*[range(p.max_instances + 1) for p in profiles]):
            chosen = [(p, n) for p, n in zip(profiles, counts) if n]
            within_budgets = (sum(p.compute * n for p, n in chosen) <= model.compute_slices
                              and sum(p.memory_slices * n for p, n in chosen) <= model.memory_slices
                              and sum(n for p, n in chosen if p.media_extensions) <= 1)
            assert slices.geometry_fits(model, {p.name: n for p, n in chosen}) is within_budgets
