"""The GPU slice catalogue: GPU models, their MIG profiles and legal placements, MPS shares, whole GPUs.

Everything here is data plus what can be derived from it without I/O. The catalogue is the
single place that knows hardware facts; placement, the geometry planner, manifests and quota
accounting all ask it.

The facts come from NVIDIA's MIG user guide (profiles, `nvidia-smi mig -lgipp` placements),
mig-parted's default config (PCI device ids, `all-balanced`) and GPU feature discovery
(product labels). Adding a GPU model is a data change: one more `_model(...)` entry.

Geometries (which sets of MIG instances can coexist on one GPU) are *derived* from the
placement rules, never typed in: hand-kept lists of geometries have drifted elsewhere.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Mapping

__all__ = [
    "GPU_MODELS",
    "InvalidSlice",
    "MPS_REPLICA_CHOICES",
    "MAX_WHOLE_GPUS",
    "MigProfile",
    "GPUModel",
    "MpsShare",
    "PlacedInstance",
    "SliceRequest",
    "feasible_geometries",
    "geometry_fits",
    "geometry_gpu_units",
    "gfd_product_labels",
    "identify_model",
    "layout_for_geometry",
    "maximal_geometries",
    "models_offering",
    "parse_slice",
    "slice_gpu_units",
    "slice_memory_gib",
]

#: Whole-GPU requests may ask for 1 to this many GPUs (all on one node).
MAX_WHOLE_GPUS = 8

#: MPS replicas per GPU that AstraGo offers. Each replica gets 1/N of the SMs and of memory
#: (what the device plugin's `sharing.mps` does), so a share is named by its integer
#: thread percentage 100/N: only divisors of 100 give honest names.
MPS_REPLICA_CHOICES = (2, 4, 5, 10)


@dataclass(frozen=True)
class MigProfile:
    """One GPU-instance profile of one GPU model, e.g. `3g.40gb` on an H100-80GB."""

    name: str
    compute: int  # compute slices (the "3" in 3g)
    memory_slices: int  # memory slices on the GPU's memory axis
    memory_gb: int  # the "40" in 3g.40gb, as NVIDIA names it
    max_instances: int  # per GPU
    starts: tuple[int, ...]  # legal start positions on the memory axis
    nvml_profile_id: int  # what `nvidia-smi mig -lgip` lists as "ID"
    media_extensions: bool = False  # "+me": owns the GPU's media engines; one per GPU

    @property
    def is_base(self) -> bool:
        """A plain profile: neither `+me` nor a 1g with doubled memory.

        The reference's maximal geometries are stated over base profiles only.
        """
        return not self.media_extensions and not (self.compute == 1 and self.memory_slices > 1)


@dataclass(frozen=True)
class MpsShare:
    """An MPS share: one of N equal replicas of a whole GPU."""

    name: str  # "mps-25"
    replicas: int  # N replicas per GPU
    percent: int  # CUDA_MPS_ACTIVE_THREAD_PERCENTAGE
    memory_limit_mib: int  # CUDA_MPS_PINNED_DEVICE_MEM_LIMIT for this share


@dataclass(frozen=True)
class GPUModel:
    """A GPU model as the catalogue knows it; `name` is the catalogue key (e.g. "H100-80GB")."""

    name: str
    family: str
    memory_gib: int
    compute_slices: int
    memory_slices: int
    mig_profiles: Mapping[str, MigProfile]
    mps_shares: Mapping[str, MpsShare]
    pci_device_ids: tuple[int, ...]  # 16-bit PCI device ids (vendor 0x10DE)
    nvml_names: tuple[str, ...]  # product names as NVML reports them (GFD labels derive from these)
    balanced_geometry: Mapping[str, int]  # mig-parted's `all-balanced` for this model
    display_name: str = field(default="")


@dataclass(frozen=True)
class PlacedInstance:
    """A MIG instance at a start position on the memory axis (one element of a layout)."""

    profile: str
    start: int


# Legal start positions, keyed by (compute slices, memory slices), from `nvidia-smi mig -lgipp`.
_SEVEN_SLICE_STARTS = {
    (1, 1): (0, 1, 2, 3, 4, 5, 6),
    (1, 2): (0, 2, 4, 6),
    (2, 2): (0, 2, 4),
    (3, 4): (0, 4),
    (4, 4): (0,),
    (7, 8): (0,),
}
_FOUR_SLICE_STARTS = {
    (1, 1): (0, 1, 2, 3),
    (2, 2): (0, 2),
    (4, 4): (0,),
}

_PROFILE_NAME = re.compile(r"^(?P<compute>\d+)g\.(?P<memory>\d+)gb(?P<me>\+me)?$")


def _profiles(starts_by_shape, rows) -> dict[str, MigProfile]:
    """Build profiles from (name, memory slices, max instances, nvml id) rows."""
    profiles = {}
    for name, memory_slices, max_instances, nvml_id in rows:
        match = _PROFILE_NAME.match(name)
        compute = int(match["compute"])
        profiles[name] = MigProfile(
            name=name,
            compute=compute,
            memory_slices=memory_slices,
            memory_gb=int(match["memory"]),
            max_instances=max_instances,
            starts=starts_by_shape[(compute, memory_slices)],
            nvml_profile_id=nvml_id,
            media_extensions=bool(match["me"]),
        )
    return profiles


def _mps_shares(memory_gib: int) -> dict[str, MpsShare]:
    shares = {}
    for replicas in MPS_REPLICA_CHOICES:
        percent = 100 // replicas
        shares[f"mps-{percent}"] = MpsShare(
            name=f"mps-{percent}",
            replicas=replicas,
            percent=percent,
            memory_limit_mib=memory_gib * 1024 // replicas,
        )
    return shares


def _seven_slice_model(name, display_name, family, memory_gib, one, one_double, two, three, four, seven,
                       pci_device_ids, nvml_names):
    """A 7-compute / 8-memory-slice GPU (A100, H100, H200); profile ids are NVIDIA's."""
    profiles = _profiles(
        _SEVEN_SLICE_STARTS,
        [
            (one, 1, 7, 19),
            (f"{one}+me", 1, 1, 20),
            (one_double, 2, 4, 15),
            (two, 2, 3, 14),
            (three, 4, 2, 9),
            (four, 4, 1, 5),
            (seven, 8, 1, 0),
        ],
    )
    return GPUModel(
        name=name,
        display_name=display_name,
        family=family,
        memory_gib=memory_gib,
        compute_slices=7,
        memory_slices=8,
        mig_profiles=profiles,
        mps_shares=_mps_shares(memory_gib),
        pci_device_ids=pci_device_ids,
        nvml_names=nvml_names,
        balanced_geometry={one: 2, two: 1, three: 1},
    )


_A30 = GPUModel(
    name="A30",
    display_name="NVIDIA A30 24GB",
    family="ampere",
    memory_gib=24,
    compute_slices=4,
    memory_slices=4,
    mig_profiles=_profiles(
        _FOUR_SLICE_STARTS,
        [
            ("1g.6gb", 1, 4, 14),
            ("1g.6gb+me", 1, 1, 21),
            ("2g.12gb", 2, 2, 5),
            ("2g.12gb+me", 2, 1, 6),
            ("4g.24gb", 4, 1, 0),
        ],
    ),
    mps_shares=_mps_shares(24),
    pci_device_ids=(0x20B7,),
    nvml_names=("NVIDIA A30",),
    balanced_geometry={"1g.6gb": 2, "2g.12gb": 1},
)

#: The catalogue, keyed by catalogue name. Order matters only for display.
GPU_MODELS: dict[str, GPUModel] = {
    model.name: model
    for model in (
        _A30,
        _seven_slice_model(
            "A100-40GB", "NVIDIA A100 40GB", "ampere", 40,
            "1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb",
            pci_device_ids=(0x20B0, 0x20B1, 0x20F1),
            nvml_names=("NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"),
        ),
        _seven_slice_model(
            "A100-80GB", "NVIDIA A100 80GB", "ampere", 80,
            "1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb",
            pci_device_ids=(0x20B2, 0x20B5),
            nvml_names=("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"),
        ),
        _seven_slice_model(
            "H100-80GB", "NVIDIA H100 80GB", "hopper", 80,
            "1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb",
            pci_device_ids=(0x2330, 0x2331),
            nvml_names=("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"),
        ),
        _seven_slice_model(
            "H100-NVL-94GB", "NVIDIA H100 NVL 94GB", "hopper", 94,
            "1g.12gb", "1g.24gb", "2g.24gb", "3g.47gb", "4g.47gb", "7g.94gb",
            pci_device_ids=(0x2321,),
            nvml_names=("NVIDIA H100 NVL",),
        ),
        _seven_slice_model(
            "H200-141GB", "NVIDIA H200 141GB", "hopper", 141,
            "1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb",
            pci_device_ids=(0x2335, 0x233B),
            nvml_names=("NVIDIA H200", "NVIDIA H200 NVL"),
        ),
    )
}


# --------------------------------------------------------------------------- identification

def _normalise_product(name: str) -> str:
    """NVML says "NVIDIA H100 80GB HBM3", GFD says "NVIDIA-H100-80GB-HBM3" (plus "-MIG-1g.10gb"
    under the single strategy or "-SHARED" when shared): reduce all of them to "H100-80GB-HBM3"."""
    product = re.sub(r"[\s_]+", "-", name.strip()).upper()
    product = re.sub(r"-MIG-\d+G\.\d+GB(\+ME)?$", "", product)
    product = re.sub(r"-SHARED$", "", product)
    return re.sub(r"^(NVIDIA-|TESLA-)+", "", product)


def _pci_device(pci_device_id: int | str) -> int:
    """Accept NVML's combined 0xDDDDVVVV id, a 16-bit device id, or either as a hex string."""
    value = int(pci_device_id, 16) if isinstance(pci_device_id, str) else int(pci_device_id)
    return value >> 16 if value > 0xFFFF else value


def identify_model(nvml_name: str | None = None, pci_device_id: int | str | None = None,
                   gfd_product: str | None = None) -> GPUModel | None:
    """The catalogue model of a GPU, or None when the catalogue does not know it.

    The PCI device id is the most precise evidence, so it wins when given; names are
    matched after normalisation (NVML product names and GFD product labels differ only
    in spelling).
    """
    if pci_device_id is not None:
        device = _pci_device(pci_device_id)
        for model in GPU_MODELS.values():
            if device in model.pci_device_ids:
                return model
    for name in (nvml_name, gfd_product):
        if not name:
            continue
        product = _normalise_product(name)
        for model in GPU_MODELS.values():
            if product in {_normalise_product(known) for known in model.nvml_names}:
                return model
    return None


def _model_aliases() -> dict[str, GPUModel]:
    """Normalised names -> model: the catalogue key, the key with the memory where it lacks it
    ("A30-24GB"), the display name ("NVIDIA A30 24GB") and the NVML product names."""
    aliases: dict[str, GPUModel] = {}
    for model in GPU_MODELS.values():
        memory = f"-{model.memory_gib}GB"
        names = (model.name, model.name if model.name.endswith(memory) else model.name + memory,
                 model.display_name, *model.nvml_names)
        for name in names:
            aliases.setdefault(_normalise_product(name), model)
    return aliases


_MODEL_ALIASES = _model_aliases()


def find_model(name: str | None) -> GPUModel | None:
    """The catalogue model a name means: its key (`A30`) or an alias (`A30-24GB`, `NVIDIA A30 24GB`,
    `NVIDIA-A30`); None for a name the catalogue does not know."""
    if not name:
        return None
    if name in GPU_MODELS:
        return GPU_MODELS[name]
    return _MODEL_ALIASES.get(_normalise_product(name))


def gfd_product_labels(model: GPUModel) -> tuple[str, ...]:
    """`nvidia.com/gpu.product` values GPU feature discovery gives this model's GPUs
    (the NVML name with spaces as dashes)."""
    return tuple(re.sub(r"\s+", "-", name) for name in model.nvml_names)


def models_offering(slice_name: str) -> list[GPUModel]:
    """The catalogue models a slice can run on (every model for MPS and whole GPUs)."""
    request = parse_slice(slice_name)
    if request.kind == "mig":
        return [m for m in GPU_MODELS.values() if request.profile in m.mig_profiles]
    if request.kind == "mps":
        return [m for m in GPU_MODELS.values() if slice_name in m.mps_shares]
    return list(GPU_MODELS.values())


# --------------------------------------------------------------------------- slice names

class InvalidSlice(ValueError):
    """A slice name that the catalogue cannot honour; the message is for people."""


@dataclass(frozen=True)
class SliceRequest:
    """A parsed slice name: what kind of GPU share, and how much."""

    name: str
    kind: str  # "mig" | "mps" | "gpu" | "cpu"
    profile: str | None = None  # MIG profile name
    percent: int | None = None  # MPS thread percentage
    count: int = 0  # whole GPUs (gpu-n); 0 otherwise


@lru_cache(maxsize=None)
def _all_profile_names() -> frozenset[str]:
    return frozenset(name for model in GPU_MODELS.values() for name in model.mig_profiles)


def _mps_percents() -> list[int]:
    return sorted({100 // replicas for replicas in MPS_REPLICA_CHOICES}, reverse=True)


def parse_slice(name: str) -> SliceRequest:
    """Parse a slice name (`1g.10gb`, `1g.10gb+me`, `mps-25`, `gpu-2`, `cpu`)."""
    if not isinstance(name, str) or not name:
        raise InvalidSlice("A slice name is required, e.g. 1g.10gb, mps-25, gpu-1 or cpu.")
    if name == "cpu":
        return SliceRequest(name=name, kind="cpu")
    if name.startswith("gpu-"):
        count = name[len("gpu-"):]
        if not count.isdigit() or not 1 <= int(count) <= MAX_WHOLE_GPUS:
            raise InvalidSlice(f"{name!r}: whole GPUs are requested as gpu-1 to gpu-{MAX_WHOLE_GPUS}.")
        return SliceRequest(name=name, kind="gpu", count=int(count))
    if name.startswith("mps-"):
        percent = name[len("mps-"):]
        offered = _mps_percents()
        if not percent.isdigit() or int(percent) not in offered:
            choices = ", ".join(f"mps-{p}" for p in offered)
            raise InvalidSlice(f"{name!r} is not an MPS share AstraGo offers; choose one of {choices}.")
        return SliceRequest(name=name, kind="mps", percent=int(percent))
    if _PROFILE_NAME.match(name):
        if name not in _all_profile_names():
            raise InvalidSlice(f"{name!r} is not a MIG profile of any GPU model AstraGo knows.")
        return SliceRequest(name=name, kind="mig", profile=name)
    raise InvalidSlice(
        f"{name!r} is not a slice name; use a MIG profile (1g.10gb), an MPS share (mps-25), "
        f"whole GPUs (gpu-1 .. gpu-{MAX_WHOLE_GPUS}) or cpu."
    )


def _as_model(model: GPUModel | str | None) -> GPUModel | None:
    if model is None or isinstance(model, GPUModel):
        return model
    found = find_model(model)
    if found is None:
        raise InvalidSlice(f"{model!r} is not a GPU model AstraGo knows.")
    return found


def _mig_profile(model: GPUModel | None, profile: str) -> tuple[GPUModel, MigProfile]:
    if model is None:
        candidates = [m for m in GPU_MODELS.values() if profile in m.mig_profiles]
        model = candidates[0]
    if profile not in model.mig_profiles:
        raise InvalidSlice(f"{profile!r} is not a MIG profile of the {model.name}.")
    return model, model.mig_profiles[profile]


def slice_gpu_units(model: GPUModel | str | None, slice_name: str) -> Fraction:
    """GPU units of a slice (DESIGN.md "Units"): whole GPU = 1, MIG = compute slices over the
    GPU's total, MPS = thread percentage / 100, cpu = 0.

    A MIG profile name means the same compute share on every model that has it, so `model`
    may be None; given, it must offer the profile.
    """
    request = parse_slice(slice_name)
    model = _as_model(model)
    if request.kind == "cpu":
        return Fraction(0)
    if request.kind == "gpu":
        return Fraction(request.count)
    if request.kind == "mps":
        return Fraction(request.percent, 100)
    model, profile = _mig_profile(model, request.profile)
    return Fraction(profile.compute, model.compute_slices)


def slice_memory_gib(model: GPUModel | str | None, slice_name: str) -> Fraction:
    """GPU memory a slice gives, reported beside its GPU units (0 for cpu)."""
    request = parse_slice(slice_name)
    model = _as_model(model)
    if request.kind == "cpu":
        return Fraction(0)
    if request.kind == "mig":
        _, profile = _mig_profile(model, request.profile)
        return Fraction(profile.memory_gb)
    if model is None:
        raise InvalidSlice(f"{slice_name!r}: the GPU model is needed to know its memory.")
    if request.kind == "gpu":
        return Fraction(model.memory_gib * request.count)
    return Fraction(model.mps_shares[slice_name].memory_limit_mib, 1024)


# --------------------------------------------------------------------------- geometries

def _compute_used(model: GPUModel, counts: Mapping[str, int]) -> int:
    return sum(model.mig_profiles[name].compute * n for name, n in counts.items())


def _layouts(model: GPUModel) -> Iterable[tuple[PlacedInstance, ...]]:
    """Every set of instances that can coexist on one GPU, by the placement rules.

    Walk the memory axis left to right; at each free slot either leave it empty or start
    an instance there. Budgets checked on the way: compute slices, per-profile maximum,
    at most one "+me" instance. This is small (a few thousand layouts for 7-slice GPUs).
    """
    profiles = list(model.mig_profiles.values())

    def walk(slot, layout, compute, counts, media):
        if slot >= model.memory_slices:
            yield tuple(layout)
            return
        yield from walk(slot + 1, layout, compute, counts, media)
        for profile in profiles:
            if (slot not in profile.starts
                    or slot + profile.memory_slices > model.memory_slices
                    or compute + profile.compute > model.compute_slices
                    or counts[profile.name] >= profile.max_instances
                    or (profile.media_extensions and media)):
                continue
            counts[profile.name] += 1
            layout.append(PlacedInstance(profile.name, slot))
            yield from walk(slot + profile.memory_slices, layout, compute + profile.compute,
                            counts, media or profile.media_extensions)
            layout.pop()
            counts[profile.name] -= 1

    return walk(0, [], 0, Counter(), False)


def _geometry_key(counts: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((name, n) for name, n in counts.items() if n))


@lru_cache(maxsize=None)
def _feasible(model_name: str) -> frozenset[tuple[tuple[str, int], ...]]:
    model = GPU_MODELS[model_name]
    return frozenset(_geometry_key(Counter(i.profile for i in layout)) for layout in _layouts(model))


def feasible_geometries(model: GPUModel | str) -> list[Counter]:
    """Every multiset of profiles (including the empty one) some legal layout realises."""
    model = _as_model(model)
    return [Counter(dict(key)) for key in sorted(_feasible(model.name))]


def geometry_fits(model: GPUModel | str, geometry: Mapping[str, int]) -> bool:
    """Whether the instances `geometry` counts can all exist on one GPU of `model` at once."""
    model = _as_model(model)
    if any(name not in model.mig_profiles for name, n in geometry.items() if n):
        return False
    return _geometry_key(geometry) in _feasible(model.name)


def _size_order(model: GPUModel, counts: Mapping[str, int]) -> tuple:
    """Sort key: larger instances first, as NVIDIA lists geometries (7g, 4g+3g, ..., 1g x7)."""
    sizes = sorted((model.mig_profiles[name].compute for name, n in counts.items() for _ in range(n)),
                   reverse=True)
    return tuple(-size for size in sizes) + (0,)


@lru_cache(maxsize=None)
def _maximal(model_name: str) -> tuple[tuple[tuple[str, int], ...], ...]:
    model = GPU_MODELS[model_name]
    base = [p.name for p in model.mig_profiles.values() if p.is_base]
    feasible = _feasible(model.name)
    base_feasible = [key for key in feasible if all(name in base for name, _ in key)]
    maximal = []
    for key in base_feasible:
        counts = Counter(dict(key))
        if not any(_geometry_key(counts + Counter({name: 1})) in feasible for name in base):
            maximal.append(key)
    return tuple(sorted(maximal, key=lambda key: _size_order(model, dict(key))))


def maximal_geometries(model: GPUModel | str) -> list[Counter]:
    """Geometries of base profiles to which no further base profile can be added.

    Base profiles leave out `+me` and the double-memory 1g profiles (as the reference does).
    Ordered largest instances first.
    """
    model = _as_model(model)
    return [Counter(dict(key)) for key in _maximal(model.name)]


def geometry_gpu_units(model: GPUModel | str, geometry: Mapping[str, int]) -> Fraction:
    """GPU units a geometry offers when every instance is in use."""
    model = _as_model(model)
    return Fraction(_compute_used(model, geometry), model.compute_slices)


def _creation_rank(model: GPUModel, name: str) -> tuple:
    """Most constrained first: fewer legal starts, then more memory (7g, 4g, 3g, 2g, 1g).

    A 3g created before a 4g could take start 0 and block the 4g for good, which is
    why creation order matters at all.
    """
    profile = model.mig_profiles[name]
    return (len(profile.starts), -profile.memory_slices, -profile.compute, name)


@lru_cache(maxsize=4096)
def _layout(model_name: str, key: tuple[tuple[str, int], ...],
            occupied: frozenset[int]) -> tuple[PlacedInstance, ...] | None:
    model = GPU_MODELS[model_name]
    order = sorted((name for name, n in key for _ in range(n)), key=lambda n: _creation_rank(model, n))

    def place(i, used):
        if i == len(order):
            return []
        profile = model.mig_profiles[order[i]]
        # Highest start first: keeps the low slots, where 4g and 7g must start, free.
        for start in sorted(profile.starts, reverse=True):
            slots = set(range(start, start + profile.memory_slices))
            if start + profile.memory_slices > model.memory_slices or slots & used:
                continue
            rest = place(i + 1, used | slots)
            if rest is not None:
                return [PlacedInstance(profile.name, start)] + rest
        return None

    placed = place(0, set(occupied))
    return None if placed is None else tuple(placed)


def layout_for_geometry(model: GPUModel | str, geometry: Mapping[str, int],
                        occupied: Iterable[PlacedInstance] = ()) -> tuple[PlacedInstance, ...]:
    """Starts for every instance of `geometry`, in an order they can be created.

    `occupied` are instances that already exist and stay; the new ones are placed around
    them. Raises InvalidSlice when the geometry cannot be realised.
    """
    model = _as_model(model)
    existing = list(occupied)
    total = Counter(geometry) + Counter(i.profile for i in existing)
    if not geometry_fits(model, total):
        raise InvalidSlice(f"{dict(geometry)} does not fit on one {model.name} "
                           f"beside {[i.profile for i in existing]}.")
    used = frozenset(slot for inst in existing
                     for slot in range(inst.start, inst.start + model.mig_profiles[inst.profile].memory_slices))
    layout = _layout(model.name, _geometry_key(geometry), used)
    if layout is None:
        raise InvalidSlice(f"{dict(geometry)} fits a {model.name} but not around the existing instances.")
    return layout
