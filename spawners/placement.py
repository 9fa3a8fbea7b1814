"""Placement: fit a slice request onto an inventory, and release it again.

The `Placer` is pure state over a `ClusterInventory` (no I/O): it is the allocation ledger of
a single machine and the simulator of a cluster.

- On a single machine the MIG instances already exist and nobody re-cuts them behind the
  users' backs: create the Placer with `recut=None` (the default) and it only hands out
  existing instances.
- In cluster simulation, pass a `GeometryChooser` as `recut`: when no free instance of the
  profile exists, an *idle* MIG GPU (no allocation on it) of a model offering the profile
  is re-cut to the geometry the chooser picks. Only idle GPUs: re-cutting stops a GPU's
  clients. Every re-cut is counted in `reconfigurations`.

Policy (`fit="best"`, the default) keeps large slices placeable:
- a MIG request takes a free instance on a GPU that is already in use, the most packed first,
  so idle GPUs stay whole for re-cuts and large profiles;
- MPS shares fill the most used MPS GPU first; whole GPUs go to the node with the fewest
  free whole GPUs that still fits, so nodes with many free GPUs remain for gpu-8 requests.
`fit="first"` takes the first candidate in inventory order (a baseline for the benchmark).

Cost per request: each candidate set is kept in a `_PreferenceIndex`, a few heaps keyed by
a small preference key, so `place` and `release` are O(#keys + log n) rather than a scan.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Mapping, Protocol

from . import slices
from .inventory import ClusterInventory, NodeInventory

__all__ = ["GeometryChooser", "GpuSnapshot", "InstanceSnapshot", "Placement", "Placer", "fill_with_profile"]


@dataclass(frozen=True)
class Placement:
    """Where a request went. `gpu_uuids` are the physical GPUs (one per MIG instance too)."""

    request_id: str
    slice: str
    node: str | None
    model: str | None
    gpu_units: Fraction
    gpu_uuids: tuple[str, ...] = ()
    gpu_indices: tuple[int, ...] = ()
    mig_instance_uuids: tuple[str, ...] = ()
    mps_percent: int | None = None
    mps_memory_limit_mib: int | None = None
    recut_gpus: tuple[str, ...] = ()  # GPUs re-cut to make room for this request


@dataclass(frozen=True)
class InstanceSnapshot:
    uuid: str
    profile: str
    start: int | None
    holder: str | None


@dataclass(frozen=True)
class GpuSnapshot:
    """A read-only view of one GPU's state, for tests, metrics and the admin panel."""

    node: str
    uuid: str
    index: int
    model: str | None
    mode: str
    instances: tuple[InstanceSnapshot, ...] = ()
    holders: tuple[str, ...] = ()  # whole-GPU holder, or the MPS clients
    mps_replicas: int = 0


class GeometryChooser(Protocol):
    """Decides what an idle MIG GPU is re-cut to when `profile` has no free instance.

    A chooser may also offer `plan_batch(placer, demand) -> {gpu uuid: geometry}`: the cuts of
    idle GPUs for a whole batch's MIG demand (profile -> count), which `Placer.place_batch` makes
    before it places the batch."""

    def geometry_for(self, model: slices.GPUModel, profile: str, placer: "Placer") -> Mapping[str, int]:
        ...


def fill_with_profile(model: slices.GPUModel, profile: str) -> Counter:
    """As many instances of `profile` as fit, then the rest filled largest profile first.

    The naive cut a first-fit scheduler makes; used by the benchmark's `first-fit` policy.
    """
    geometry = Counter()
    while slices.geometry_fits(model, geometry + Counter({profile: 1})):
        geometry[profile] += 1
    base = sorted((p for p in model.mig_profiles.values() if p.is_base), key=lambda p: -p.compute)
    for candidate in base:
        while slices.geometry_fits(model, geometry + Counter({candidate.name: 1})):
            geometry[candidate.name] += 1
    return geometry


class FillWithProfile:
    """`GeometryChooser` adapter for `fill_with_profile`."""

    def geometry_for(self, model, profile, placer):
        return fill_with_profile(model, profile)


# --------------------------------------------------------------------------- internal state

class _PreferenceIndex:
    """Items (ints, in inventory order) under a small, totally ordered preference key.

    `best()` returns the item with the smallest key, lowest item first among equals. One
    heap per distinct key with lazy deletion: a heap entry is live while the item's current
    key is that heap's key. Keys are few (free slices 0..7, a flag), so a lookup is cheap.
    """

    __slots__ = ("_key", "_heaps", "_pushes")

    def __init__(self):
        self._key: dict[int, tuple] = {}
        self._heaps: dict[tuple, list[int]] = {}
        self._pushes = 0

    def __len__(self):
        return len(self._key)

    def set(self, item: int, key: tuple) -> None:
        if self._key.get(item) == key:
            return
        self._key[item] = key
        heapq.heappush(self._heaps.setdefault(key, []), item)
        self._pushes += 1
        if self._pushes > 4 * len(self._key) + 64:
            self._compact()

    def discard(self, item: int) -> None:
        self._key.pop(item, None)

    def _compact(self) -> None:
        heaps = defaultdict(list)
        for item, key in self._key.items():
            heaps[key].append(item)
        for heap in heaps.values():
            heapq.heapify(heap)
        self._heaps = dict(heaps)
        self._pushes = len(self._key)

    def _top(self, key):
        heap = self._heaps[key]
        while heap and self._key.get(heap[0]) != key:
            heapq.heappop(heap)
        if not heap:
            del self._heaps[key]
            return None
        return heap[0]

    def best(self, accept=None) -> tuple[tuple, int] | None:
        """(key, item) of the preferred item whose key `accept(key)` allows."""
        for key in sorted(self._heaps):
            if accept is not None and not accept(key):
                continue
            item = self._top(key)
            if item is not None:
                return key, item
        return None

    def lowest(self, accept=None) -> tuple[tuple, int] | None:
        """(key, item) of the lowest item among all keys `accept` allows (first fit)."""
        found = None
        for key in list(self._heaps):
            if accept is not None and not accept(key):
                continue
            item = self._top(key)
            if item is not None and (found is None or item < found[1]):
                found = (key, item)
        return found


class _Instance:
    __slots__ = ("uuid", "profile", "start", "compute", "holder")

    def __init__(self, uuid, profile, start, compute):
        self.uuid, self.profile, self.start, self.compute = uuid, profile, start, compute
        self.holder = None


class _Gpu:
    __slots__ = ("seq", "node", "device", "model", "instances", "holders", "busy")

    def __init__(self, seq, node, device, model):
        self.seq, self.node, self.device, self.model = seq, node, device, model
        self.instances: list[_Instance] = []
        self.holders: list[str] = []  # whole-GPU holder or MPS clients
        self.busy = 0  # allocations on this GPU

    def free_compute(self) -> int:
        return sum(i.compute for i in self.instances if i.holder is None)

    def has_free(self, profile) -> bool:
        return any(i.holder is None and i.profile == profile for i in self.instances)


class _Node:
    __slots__ = ("seq", "name", "gpus", "free_full")

    def __init__(self, seq, name):
        self.seq, self.name = seq, name
        self.gpus: list[_Gpu] = []
        self.free_full: dict[str | None, list[_Gpu]] = defaultdict(list)


@dataclass
class _Allocation:
    placement: Placement
    gpus: list = field(default_factory=list)
    instances: list = field(default_factory=list)


# --------------------------------------------------------------------------- the placer

class Placer:
    """Places slice requests onto a ClusterInventory and releases them.

    `recut`: None (default) hands out existing MIG instances only, as on a single machine;
    a `GeometryChooser` also re-cuts idle MIG GPUs (cluster simulation).
    `fit`: "best" (default, keeps large slices placeable) or "first" (inventory order).
    """

    def __init__(self, inventory: ClusterInventory, *, recut: GeometryChooser | None = None, fit: str = "best"):
        if fit not in ("best", "first"):
            raise ValueError("fit must be 'best' or 'first'")
        self.recut = recut
        self.fit = fit
        self.inventory = inventory  # what the placer was built over (its devices; states are the placer's)
        self.reconfigurations = 0
        self.last_refusal: str | None = None
        self._allocations: dict[str, _Allocation] = {}
        self._nodes: dict[str, _Node] = {}
        self._node_list: list[_Node] = []
        self._gpus: list[_Gpu] = []
        self._gpus_by_uuid: dict[str, _Gpu] = {}
        self._pending_recuts: list[str] = []  # GPUs re-cut while placing the current request
        self._cut_for_batch: set[str] = set()  # GPUs `place_batch` re-cut that no placement has reported yet
        # Indexes: free MIG instances per (model, profile); idle MIG GPUs per model; MPS GPUs
        # with a free replica per (model, replicas); nodes with free whole GPUs per model.
        self._free_mig: dict[tuple, _PreferenceIndex] = defaultdict(_PreferenceIndex)
        self._idle_mig: dict[str, _PreferenceIndex] = defaultdict(_PreferenceIndex)
        self._free_mps: dict[tuple, _PreferenceIndex] = defaultdict(_PreferenceIndex)
        self._free_full: dict[str | None, _PreferenceIndex] = defaultdict(_PreferenceIndex)
        # Counts the geometry planner reads: free and allocated instances per (model, profile).
        self.free_instances: Counter = Counter()
        self.allocated_instances: Counter = Counter()
        for node in inventory.nodes:
            self._add_node(node)

    # ---- construction

    def _add_node(self, node: NodeInventory) -> None:
        if node.name in self._nodes:
            raise ValueError(f"node {node.name!r} appears twice")
        state = _Node(len(self._nodes), node.name)
        self._nodes[node.name] = state
        self._node_list.append(state)
        for device in node.gpus:
            gpu = _Gpu(len(self._gpus), state, device, slices.GPU_MODELS.get(device.model))
            self._gpus.append(gpu)
            self._gpus_by_uuid[device.uuid] = gpu
            state.gpus.append(gpu)
            if device.time_slicing_replicas:
                continue  # listed, never placed on (see GPUDevice)
            if device.mode == "mig" and gpu.model is not None:
                gpu.instances = [_Instance(i.uuid, i.profile, i.start, gpu.model.mig_profiles[i.profile].compute)
                                 for i in device.mig_instances if i.profile in gpu.model.mig_profiles]
                self.free_instances.update((gpu.model.name, i.profile) for i in gpu.instances)
                self._reindex_mig(gpu)
            elif device.mode == "mps":
                self._reindex_mps(gpu)
            elif device.mode == "full":
                state.free_full[device.model].append(gpu)
        for model in state.free_full:
            self._reindex_full(state, model)

    # ---- index maintenance

    def _reindex_mig(self, gpu: _Gpu) -> None:
        model = gpu.model.name
        idle = gpu.busy == 0
        free = gpu.free_compute()
        # Busy GPUs first (0), then the most packed: idle GPUs stay whole for re-cuts.
        key = (0 if not idle else 1, free) if self.fit == "best" else ()
        for profile in gpu.model.mig_profiles:
            if gpu.has_free(profile):
                self._free_mig[(model, profile)].set(gpu.seq, key)
            else:
                self._free_mig[(model, profile)].discard(gpu.seq)
        if idle:
            # Uncut GPUs are re-cut first: nothing offered there is lost.
            self._idle_mig[model].set(gpu.seq, (len(gpu.instances) > 0,) if self.fit == "best" else ())
        else:
            self._idle_mig[model].discard(gpu.seq)

    def _reindex_mps(self, gpu: _Gpu) -> None:
        index = self._free_mps[(gpu.device.model, gpu.device.mps_replicas)]
        free = gpu.device.mps_replicas - len(gpu.holders)
        if free > 0:
            index.set(gpu.seq, (free,) if self.fit == "best" else ())
        else:
            index.discard(gpu.seq)

    def _reindex_full(self, node: _Node, model: str | None) -> None:
        free = len(node.free_full[model])
        if free:
            self._free_full[model].set(node.seq, (free,))
        else:
            self._free_full[model].discard(node.seq)

    # ---- public API

    def place(self, request_id: str, slice_name: str, count: int = 1, model: str | None = None,
              node: str | None = None) -> Placement | None:
        """Place `count` of `slice_name` (all on one node), or return None and say why in
        `last_refusal`. `model` and `node` constrain where."""
        if request_id in self._allocations:
            raise ValueError(f"request {request_id!r} is already placed")
        request = slices.parse_slice(slice_name)
        if count < 1:
            raise ValueError("count must be at least 1")
        if model is not None:
            known = slices.find_model(model)
            if known is None:
                raise slices.InvalidSlice(f"{model!r} is not a GPU model AstraGo knows.")
            model = known.name
        if node is not None and node not in self._nodes:
            self.last_refusal = f"there is no node {node!r}"
            return None
        self.last_refusal = None
        if request.kind == "cpu":
            allocation = _Allocation(Placement(request_id, slice_name, node, None, Fraction(0)))
        elif request.kind == "gpu":
            allocation = self._place_whole(request_id, request, count, model, node)
        elif count > 1:
            allocation = self._place_many_on_one_node(request_id, request, count, model, node)
        elif request.kind == "mig":
            allocation = self._place_mig(request_id, request, model, node)
        else:
            allocation = self._place_mps(request_id, request, model, node)
        if allocation is None:
            where = f" on node {node}" if node else " on any node"
            what = f"{model} " if model else ""
            self.last_refusal = self.last_refusal or f"no free {what}{slice_name}{where}"
            return None
        self._allocations[request_id] = allocation
        return allocation.placement

    def place_batch(self, requests: Iterable[tuple]) -> list[Placement | None]:
        """Place requests pending together (`(request_id, slice_name[, model])` each, e.g. all that
        arrived at once): when the chooser plans batches, the idle MIG GPUs are first cut for the
        batch's whole MIG demand, so no single request's cut strands what the others need; then
        the requests are placed largest first. Placements (or None) in the order given; a GPU
        cut for the batch is in `recut_gpus` of the first placement on it."""
        requests = [tuple(r) for r in requests]
        units = []
        demand: Counter = Counter()
        for request in requests:
            parsed = slices.parse_slice(request[1])
            units.append(slices.slice_gpu_units(request[2] if len(request) > 2 else None, request[1]))
            if parsed.kind == "mig":
                demand[parsed.profile] += 1
        plan_batch = getattr(self.recut, "plan_batch", None)
        if demand and plan_batch is not None:
            for uuid, geometry in plan_batch(self, dict(demand)).items():
                gpu = self._gpus_by_uuid[uuid]
                if gpu.busy == 0 and not gpu.device.time_slicing_replicas and gpu.model is not None \
                        and Counter(geometry) != Counter(i.profile for i in gpu.instances):
                    self._recut(gpu, Counter(geometry))
                    self._cut_for_batch.add(uuid)
            self._pending_recuts = []
        placed: list[Placement | None] = [None] * len(requests)
        for k in sorted(range(len(requests)), key=lambda k: -units[k]):
            request_id, slice_name, *model = requests[k]
            placed[k] = self.place(request_id, slice_name, model=model[0] if model else None)
        return placed

    def restore(self, request_id: str, slice_name: str, held: Mapping) -> bool:
        """Re-take exactly the devices a saved placement names (`gpu_uuids`,
        `mig_instance_uuids`), as after a service restart. False when one is gone or taken.

        A scan of the GPUs: start-up only, not the per-request path.
        """
        if request_id in self._allocations:
            return True
        request = slices.parse_slice(slice_name)
        if request.kind == "cpu":
            self._allocations[request_id] = _Allocation(
                Placement(request_id, slice_name, held.get("node"), None, Fraction(0)))
            return True
        by_uuid = {g.device.uuid: g for g in self._gpus}
        gpus = [by_uuid.get(u) for u in held.get("gpu_uuids") or ()]
        if not gpus or any(g is None for g in gpus):
            return False
        mig_uuids = list(held.get("mig_instance_uuids") or ())
        if mig_uuids:
            taken = []
            for uuid_, gpu in zip(mig_uuids, gpus):
                instance = next((i for i in gpu.instances if i.uuid == uuid_ and i.holder is None), None)
                if instance is None:
                    return False
                taken.append((instance, gpu))
            allocation = self._take_instances(request_id, slice_name, gpus[0].node.name, gpus[0].model, taken)
        else:
            for gpu in gpus:
                if gpu.device.mode == "mps":
                    if len(gpu.holders) >= gpu.device.mps_replicas:
                        return False
                elif gpu.holders or gpu not in gpu.node.free_full[gpu.device.model]:
                    return False
            for gpu in gpus:
                if gpu.device.mode != "mps":
                    gpu.node.free_full[gpu.device.model].remove(gpu)
                    self._reindex_full(gpu.node, gpu.device.model)
            allocation = self._take_gpus(request_id, slice_name, gpus)
        self._allocations[request_id] = allocation
        return True

    def release(self, request_id: str) -> Placement | None:
        """Free what `request_id` holds; returns its placement (None if it held nothing)."""
        allocation = self._allocations.pop(request_id, None)
        if allocation is None:
            return None
        touched = {}
        for instance, gpu in allocation.instances:
            instance.holder = None
            gpu.busy -= 1
            self.free_instances[(gpu.model.name, instance.profile)] += 1
            self.allocated_instances[(gpu.model.name, instance.profile)] -= 1
            touched[gpu.seq] = gpu
        for gpu in touched.values():
            self._reindex_mig(gpu)
        for gpu in allocation.gpus:
            gpu.holders.remove(request_id)
            gpu.busy -= 1
            if gpu.device.mode == "mps":
                self._reindex_mps(gpu)
            else:
                gpu.node.free_full[gpu.device.model].append(gpu)
                self._reindex_full(gpu.node, gpu.device.model)
        return allocation.placement

    def placement(self, request_id: str) -> Placement | None:
        allocation = self._allocations.get(request_id)
        return allocation.placement if allocation else None

    def placements(self) -> list[Placement]:
        return [a.placement for a in self._allocations.values()]

    def snapshot(self) -> list[GpuSnapshot]:
        """Every GPU's current layout and holders (instances in memory order)."""
        return [
            GpuSnapshot(
                node=gpu.node.name, uuid=gpu.device.uuid, index=gpu.device.index,
                model=gpu.device.model, mode=gpu.device.mode,
                instances=tuple(InstanceSnapshot(i.uuid, i.profile, i.start, i.holder)
                                for i in sorted(gpu.instances, key=lambda i: (i.start is None, i.start))),
                holders=tuple(gpu.holders), mps_replicas=gpu.device.mps_replicas,
            )
            for gpu in self._gpus
        ]

    def idle_mig_gpus(self, model: str) -> int:
        return len(self._idle_mig[model])

    def geometry_of(self, gpu_uuid: str) -> Counter:
        """The current MIG geometry of a GPU (after any re-cuts)."""
        gpu = self._gpus_by_uuid[gpu_uuid]
        return Counter(i.profile for i in gpu.instances)

    # ---- MIG

    def _candidate_models(self, offering: list[slices.GPUModel], model: str | None) -> list[str]:
        names = [m.name for m in offering]
        return [model] if model is not None and model in names else ([] if model is not None else names)

    def _place_mig(self, request_id, request, model, node) -> _Allocation | None:
        models = self._candidate_models(slices.models_offering(request.name), model)
        if not models:
            self.last_refusal = f"the {model} has no MIG profile {request.name}"
            return None
        gpu = self._gpu_with_free_instance(request.profile, models, node)
        if gpu is None and self.recut is not None:
            gpu = self._recut_idle_gpu(request.profile, models, node)
        if gpu is None:
            return None
        instance = self._free_instance(gpu, request.profile)
        return self._take_instances(request_id, request.name, gpu.node.name, gpu.model, [(instance, gpu)])

    def _gpu_with_free_instance(self, profile, models, node) -> _Gpu | None:
        if node is not None:
            candidates = [g for g in self._nodes[node].gpus
                          if g.model is not None and g.model.name in models and g.device.mode == "mig"
                          and not g.device.time_slicing_replicas and g.has_free(profile)]
            if not candidates:
                return None
            if self.fit == "first":
                return candidates[0]
            return min(candidates, key=lambda g: (g.busy == 0, g.free_compute(), g.seq))
        found = None
        for name in models:
            index = self._free_mig.get((name, profile))
            if index is None:
                continue
            hit = index.best() if self.fit == "best" else index.lowest()
            if hit is not None and (found is None or (hit[0], hit[1]) < found):
                found = (hit[0], hit[1])
        return None if found is None else self._gpus[found[1]]

    def _recut_idle_gpu(self, profile, models, node) -> _Gpu | None:
        candidates = []
        for name in models:
            if node is not None:
                for gpu in self._nodes[node].gpus:
                    if (gpu.model is not None and gpu.model.name == name and gpu.device.mode == "mig"
                            and gpu.busy == 0 and not gpu.device.time_slicing_replicas):
                        candidates.append(((len(gpu.instances) > 0,), gpu.seq))
                        break
                continue
            hit = self._idle_mig[name].best() if self.fit == "best" else self._idle_mig[name].lowest()
            if hit is not None:
                candidates.append(hit)
        if not candidates:
            return None
        gpu = self._gpus[min(candidates)[1]] if self.fit == "best" else self._gpus[min(c[1] for c in candidates)]
        geometry = Counter(self.recut.geometry_for(gpu.model, profile, self))
        if geometry[profile] < 1 or not slices.geometry_fits(gpu.model, geometry):
            raise ValueError(f"geometry chooser returned {dict(geometry)} for {profile} on {gpu.model.name}")
        self._recut(gpu, geometry)
        return gpu

    def _recut(self, gpu: _Gpu, geometry: Counter) -> None:
        """Replace an idle GPU's instances by `geometry` (ids as the static source makes them)."""
        assert gpu.busy == 0, "only idle GPUs are re-cut"
        model = gpu.model
        for instance in gpu.instances:
            self.free_instances[(model.name, instance.profile)] -= 1
        node, index = gpu.node.name, gpu.device.index
        gpu.instances = [_Instance(f"MIG-sim-{node}-{index}-{p.start}-{p.profile}", p.profile, p.start,
                                   model.mig_profiles[p.profile].compute)
                         for p in slices.layout_for_geometry(model, geometry)]
        self.free_instances.update((model.name, i.profile) for i in gpu.instances)
        self.reconfigurations += 1
        self._pending_recuts.append(gpu.device.uuid)
        self._reindex_mig(gpu)

    @staticmethod
    def _free_instance(gpu: _Gpu, profile: str) -> _Instance:
        return next(i for i in gpu.instances if i.holder is None and i.profile == profile)

    def _take_instances(self, request_id, slice_name, node, model, taken) -> _Allocation:
        for instance, gpu in taken:
            instance.holder = request_id
            gpu.busy += 1
            self.free_instances[(model.name, instance.profile)] -= 1
            self.allocated_instances[(model.name, instance.profile)] += 1
        for gpu in {gpu.seq: gpu for _, gpu in taken}.values():
            self._reindex_mig(gpu)
        cut_for_batch = [uuid for uuid in dict.fromkeys(gpu.device.uuid for _, gpu in taken)
                         if uuid in self._cut_for_batch]
        self._cut_for_batch.difference_update(cut_for_batch)
        recut, self._pending_recuts = tuple(self._pending_recuts) + tuple(cut_for_batch), []
        placement = Placement(
            request_id=request_id, slice=slice_name, node=node, model=model.name,
            gpu_units=slices.slice_gpu_units(model, slice_name) * len(taken),
            gpu_uuids=tuple(gpu.device.uuid for _, gpu in taken),
            gpu_indices=tuple(gpu.device.index for _, gpu in taken),
            mig_instance_uuids=tuple(instance.uuid for instance, _ in taken),
            recut_gpus=recut,
        )
        return _Allocation(placement, instances=list(taken))

    # ---- MPS

    def _place_mps(self, request_id, request, model, node) -> _Allocation | None:
        replicas = 100 // request.percent
        models = [model] if model is not None else list(slices.GPU_MODELS)
        if node is not None:
            gpus = [g for g in self._nodes[node].gpus if g.device.mode == "mps" and g.device.mps_replicas == replicas
                    and g.device.model in models and len(g.holders) < replicas]
            if not gpus:
                return None
            gpu = gpus[0] if self.fit == "first" else min(gpus, key=lambda g: (replicas - len(g.holders), g.seq))
        else:
            found = None
            for name in models:
                index = self._free_mps.get((name, replicas))
                hit = None if index is None else (index.best() if self.fit == "best" else index.lowest())
                if hit is not None and (found is None or hit < found):
                    found = hit
            if found is None:
                return None
            gpu = self._gpus[found[1]]
        return self._take_gpus(request_id, request.name, [gpu])

    def _take_gpus(self, request_id, slice_name, gpus) -> _Allocation:
        for gpu in gpus:
            gpu.holders.append(request_id)
            gpu.busy += 1
            if gpu.device.mode == "mps":
                self._reindex_mps(gpu)
        first = gpus[0]
        model = first.model
        share = model.mps_shares.get(slice_name) if (model and first.device.mode == "mps") else None
        placement = Placement(
            request_id=request_id, slice=slice_name, node=first.node.name, model=first.device.model,
            gpu_units=(slices.slice_gpu_units(model, slice_name) if first.device.mode == "mps"
                       else Fraction(len(gpus))),
            gpu_uuids=tuple(g.device.uuid for g in gpus),
            gpu_indices=tuple(g.device.index for g in gpus),
            mps_percent=share.percent if share else (100 // first.device.mps_replicas
                                                     if first.device.mode == "mps" else None),
            mps_memory_limit_mib=(share.memory_limit_mib if share else
                                  (first.device.memory_mib // first.device.mps_replicas
                                   if first.device.mode == "mps" else None)),
        )
        return _Allocation(placement, gpus=list(gpus))

    # ---- whole GPUs

    def _place_whole(self, request_id, request, count, model, node) -> _Allocation | None:
        wanted = request.count * count
        models = [model] if model is not None else list(self._free_full)
        if node is not None:
            state = self._nodes[node]
            options = [(len(state.free_full[m]), m) for m in models if len(state.free_full.get(m, ())) >= wanted]
            if not options:
                return None
            chosen_model = min(options, key=lambda o: o[0] if self.fit == "best" else 0)[1]
        else:
            found = None
            for name in models:
                index = self._free_full.get(name)
                if index is None:
                    continue
                accept = lambda key: key[0] >= wanted  # noqa: E731
                hit = index.best(accept) if self.fit == "best" else index.lowest(accept)
                if hit is not None and (found is None or hit < found[0]):
                    found = (hit, name)
            if found is None:
                return None
            state = self._node_list[found[0][1]]
            chosen_model = found[1]
        free = state.free_full[chosen_model]
        free.sort(key=lambda g: g.device.index)
        taken, state.free_full[chosen_model] = free[:wanted], free[wanted:]
        self._reindex_full(state, chosen_model)
        return self._take_gpus(request_id, request.name, taken)

    # ---- several MIG instances or MPS shares on one node (rare; a scan of the nodes)

    def _place_many_on_one_node(self, request_id, request, count, model, node) -> _Allocation | None:
        nodes = [self._nodes[node]] if node is not None else list(self._nodes.values())
        for state in nodes:
            placed = []
            for k in range(count):
                one = self.place(f"{request_id}\x00{k}", request.name, 1, model, state.name)
                if one is None:
                    break
                placed.append(f"{request_id}\x00{k}")
            if len(placed) == count:
                parts = [self._allocations.pop(part) for part in placed]
                merged = _Allocation(
                    Placement(
                        request_id=request_id, slice=request.name, node=state.name, model=parts[0].placement.model,
                        gpu_units=sum((p.placement.gpu_units for p in parts), Fraction(0)),
                        gpu_uuids=sum((p.placement.gpu_uuids for p in parts), ()),
                        gpu_indices=sum((p.placement.gpu_indices for p in parts), ()),
                        mig_instance_uuids=sum((p.placement.mig_instance_uuids for p in parts), ()),
                        mps_percent=parts[0].placement.mps_percent,
                        mps_memory_limit_mib=parts[0].placement.mps_memory_limit_mib,
                        recut_gpus=sum((p.placement.recut_gpus for p in parts), ()),
                    ),
                    gpus=[g for p in parts for g in p.gpus],
                    instances=[i for p in parts for i in p.instances],
                )
                part_ids = set(placed)
                for gpu in merged.gpus:
                    gpu.holders = [request_id if h in part_ids else h for h in gpu.holders]
                for instance, _ in merged.instances:
                    instance.holder = request_id
                return merged
            for part in placed:
                self.release(part)
        return None
