"""MIG geometry planning: which MIG layout each GPU should have, so that demand gets placed.

Pure functions over the catalogue, an inventory and a placer's state; no I/O.

The model. Demand is a count per MIG profile (pending requests plus the expected ones). A
profile's *value* is its GPU units (compute slices / the GPU's total), so the objective is
the GPU units of demand that the fleet's free instances can serve:

    served = sum over profiles p of units(p) * min(demand(p), free instances of p)

GPUs with an allocation keep their layout (re-cutting stops a GPU's clients); every idle MIG
GPU may get any *maximal* geometry (one to which no further instance can be added; a
non-maximal one is never better). Picking one geometry per idle GPU to maximise `served` is
a small integer program; a greedy pass by marginal gain followed by single-GPU improvement
moves gets it (ties prefer keeping the current layout, so nothing is re-cut needlessly).

Two entry points:

- `plan_geometries(inventory, demand, placer=None)`: a whole-fleet plan, rendered as a
  mig-parted config (`mig_parted_config()`) and per-node `nvidia.com/mig.config` labels.
- `DemandAwareChooser`: the same scoring, one GPU at a time, as the `GeometryChooser` a
  `Placer` calls when a request finds no free instance (the benchmark's `planner` policy).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Mapping

from . import slices
from .inventory import ClusterInventory

__all__ = [
    "DemandAwareChooser",
    "DemandEstimator",
    "GeometryPlan",
    "GpuPlan",
    "best_geometry",
    "candidate_geometries",
    "plan_geometries",
]

MIG_CONFIG_LABEL = "nvidia.com/mig.config"


@lru_cache(maxsize=None)
def _candidates(model_name: str, profiles: frozenset[str]) -> tuple[tuple[tuple[str, int], ...], ...]:
    model = slices.GPU_MODELS[model_name]
    allowed = {p.name for p in model.mig_profiles.values() if p.is_base} | (profiles & set(model.mig_profiles))
    feasible = [g for g in slices.feasible_geometries(model) if set(g) <= allowed]
    keys = {tuple(sorted(g.items())) for g in feasible}
    maximal = [key for key in keys
               if not any(tuple(sorted((Counter(dict(key)) + Counter({p: 1})).items())) in keys for p in allowed)]
    return tuple(sorted(maximal))


def candidate_geometries(model: slices.GPUModel, profiles: Iterable[str] = ()) -> list[Counter]:
    """Maximal geometries over the base profiles plus the named ones (e.g. `1g.20gb`, `+me`)."""
    return [Counter(dict(key)) for key in _candidates(model.name, frozenset(profiles))]


@lru_cache(maxsize=None)
def _compute_slices(model_name: str) -> dict[str, int]:
    return {name: p.compute for name, p in slices.GPU_MODELS[model_name].mig_profiles.items()}


def _served(model, geometry: Mapping[str, int], wanted: Mapping[str, float]) -> float:
    """GPU units of `wanted` that `geometry` serves (summed in compute slices: exact for counts,
    and cheap enough for the planner's inner loop)."""
    compute = _compute_slices(model.name)
    return sum(compute[p] * min(n, wanted.get(p, 0)) for p, n in geometry.items()) / model.compute_slices


def best_geometry(model: slices.GPUModel, unmet: Mapping[str, float], expected: Mapping[str, float] = None,
                  must_include: str | None = None, current: Mapping[str, int] | None = None) -> Counter:
    """The geometry for one idle GPU: most unmet demand served, then most expected demand,
    then the current layout (no re-cut), then most GPU units, then larger instances."""
    expected = expected or {}
    profiles = set(unmet) | set(expected) | ({must_include} if must_include else set())
    best, best_score = None, None
    current_key = tuple(sorted((p, n) for p, n in (current or {}).items() if n > 0))
    for key in _candidates(model.name, frozenset(profiles)):
        geometry = dict(key)
        if must_include and geometry.get(must_include, 0) < 1:
            continue
        score = (
            _served(model, geometry, unmet),
            _served(model, geometry, expected),
            key == current_key,
            *_size_score(model.name, key),
        )
        if best_score is None or score > best_score:
            best, best_score = key, score
    if best is None:
        raise slices.InvalidSlice(f"no geometry of the {model.name} holds {must_include}")
    return Counter(dict(best))


@lru_cache(maxsize=None)
def _size_score(model_name: str, key: tuple[tuple[str, int], ...]) -> tuple[Fraction, tuple[int, ...]]:
    """The tie-breaks of `best_geometry` that depend on the geometry alone: its GPU units, then
    its instances' sizes, largest first."""
    model = slices.GPU_MODELS[model_name]
    sizes = tuple(sorted((model.mig_profiles[p].compute for p, n in key for _ in range(n)), reverse=True))
    return slices.geometry_gpu_units(model, dict(key)), sizes


# --------------------------------------------------------------------------- demand

class DemandEstimator:
    """Expected concurrent requests per profile, from what has been seen (Little's law).

    expected(p) = arrival rate of p over the last `window` seconds x mean holding time.
    Until a release has been seen the holding time is unknown and the window stands in.
    Times are whatever clock the caller uses (the benchmark's trace time); nothing here
    reads a clock.
    """

    def __init__(self, window: float = 3600.0):
        self.window = window
        self._arrivals: dict[str, deque] = {}
        self._first_seen: float | None = None
        self._held_total = 0.0
        self._held_count = 0

    def observe_request(self, slice_name: str, t: float) -> None:
        if self._first_seen is None:
            self._first_seen = t
        self._arrivals.setdefault(slice_name, deque()).append(t)

    def observe_release(self, slice_name: str, t: float, held_for: float) -> None:
        self._held_total += held_for
        self._held_count += 1

    def _trim(self, now: float) -> None:
        for arrivals in self._arrivals.values():
            while arrivals and arrivals[0] < now - self.window:
                arrivals.popleft()

    def arrival_shares(self, now: float) -> dict[str, float]:
        """Each slice's share of the arrivals in the last `window`."""
        self._trim(now)
        total = sum(len(a) for a in self._arrivals.values())
        return {name: len(a) / total for name, a in self._arrivals.items()} if total else {}

    def expected(self, now: float) -> dict[str, float]:
        if self._first_seen is None:
            return {}
        span = max(min(self.window, now - self._first_seen), 1e-9)
        holding = self._held_total / self._held_count if self._held_count else span
        result = {}
        for name, arrivals in self._arrivals.items():
            while arrivals and arrivals[0] < now - self.window:
                arrivals.popleft()
            result[name] = len(arrivals) / span * holding
        return result


class DemandAwareChooser:
    """`GeometryChooser` for the placer: what an idle GPU is re-cut to when `profile` has no
    free instance anywhere.

    As many instances of `profile` as fit: its supply ran out, and supply that follows
    arrivals strands least. Measured in bench/placement: cutting geometries mixed to a demand
    forecast stranded instances whenever the forecast was off and placed 2-15 % fewer GPU
    units; so did choosing the filler by forecast. The room left is therefore filled with
    the largest instances that fit (they keep larger requests placeable), and the recent
    arrival mix only breaks ties between equally large fillers. `now` is advanced by the
    caller before each placement (`chooser.now = t`).
    """

    def __init__(self, estimator: DemandEstimator):
        self.estimator = estimator
        self.now = 0.0

    def plan_batch(self, placer, demand: Mapping[str, int]) -> dict[str, Counter]:
        """Cuts of idle GPUs for a batch of pending requests (`Placer.place_batch`): the fleet
        plan (`plan_geometries`) for the batch's demand. Unlike arrivals one at a time, the whole
        demand is known, so cutting to it strands nothing."""
        plan = plan_geometries(placer.inventory, demand, placer)
        return {gpu.uuid: Counter(gpu.proposed) for gpu in plan.gpus if gpu.recut and not gpu.busy}

    def geometry_for(self, model, profile, placer):
        shares = self.estimator.arrival_shares(self.now)
        candidates, units = _homogeneous_candidates(model.name, profile)
        best, best_score = None, None
        for geometry, sizes in candidates:
            expected = sum(units[q] * n * shares.get(q, 0.0) for q, n in geometry)
            score = (sizes, expected)
            if best_score is None or score > best_score:
                best, best_score = geometry, score
        return Counter(dict(best))


@lru_cache(maxsize=None)
def _homogeneous_candidates(model_name: str, profile: str):
    """Maximal geometries holding as many `profile` instances as fit, with their sizes."""
    model = slices.GPU_MODELS[model_name]
    holding = [g for g in candidate_geometries(model, [profile]) if g[profile] >= 1]
    most = max(g[profile] for g in holding)
    candidates = []
    for geometry in holding:
        if geometry[profile] == most:
            sizes = tuple(sorted((model.mig_profiles[p].compute for p in geometry.elements()), reverse=True))
            candidates.append((tuple(sorted(geometry.items())), sizes))
    units = {name: p.compute / model.compute_slices for name, p in model.mig_profiles.items()}
    return tuple(candidates), units


# --------------------------------------------------------------------------- fleet plan

@dataclass(frozen=True)
class GpuPlan:
    node: str
    index: int
    uuid: str
    model: str
    current: Mapping[str, int]
    proposed: Mapping[str, int]
    layout: tuple[slices.PlacedInstance, ...]  # in creation order, with starts
    busy: bool

    @property
    def recut(self) -> bool:
        return Counter(self.current) != Counter(self.proposed)


@dataclass(frozen=True)
class GeometryPlan:
    gpus: tuple[GpuPlan, ...]
    demand: Mapping[str, int]
    served_gpu_units: Fraction  # GPU units of demand the proposed layouts can serve
    full_gpus: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # node -> non-MIG GPU indices

    @property
    def recut_gpus(self) -> list[GpuPlan]:
        return [g for g in self.gpus if g.recut]

    def node_configs(self) -> dict[str, list[dict]]:
        """Per node, the mig-parted device entries (GPUs with one geometry grouped)."""
        configs: dict[str, list[dict]] = {}
        for node in sorted({g.node for g in self.gpus} | set(self.full_gpus)):
            groups: dict[tuple, list[int]] = {}
            order: dict[tuple, dict] = {}
            for gpu in sorted((g for g in self.gpus if g.node == node), key=lambda g: g.index):
                devices = {}
                for placed in gpu.layout:  # creation order: mig-parted creates in this order
                    devices[placed.profile] = devices.get(placed.profile, 0) + 1
                key = tuple(devices.items())
                groups.setdefault(key, []).append(gpu.index)
                order[key] = devices
            entries = [{"devices": indices, "mig-enabled": True, "mig-devices": order[key]}
                       for key, indices in groups.items()]
            if self.full_gpus.get(node):
                entries.append({"devices": list(self.full_gpus[node]), "mig-enabled": False})
            configs[node] = sorted(entries, key=lambda e: e["devices"][0])
        return configs

    @staticmethod
    def config_name(entries: list[dict]) -> str:
        digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()[:10]
        return f"astrago-{digest}"

    def mig_parted_config(self) -> dict:
        """A mig-parted config (`version: v1`, `mig-configs`), one entry per distinct node layout."""
        configs = {}
        for entries in self.node_configs().values():
            configs[self.config_name(entries)] = entries
        return {"version": "v1", "mig-configs": dict(sorted(configs.items()))}

    def node_labels(self, changed_only: bool = True) -> dict[str, dict[str, str]]:
        """`nvidia.com/mig.config` per node; by default only for nodes where a GPU is re-cut."""
        changed = {g.node for g in self.recut_gpus}
        return {node: {MIG_CONFIG_LABEL: self.config_name(entries)}
                for node, entries in self.node_configs().items() if node in changed or not changed_only}


def plan_geometries(inventory: ClusterInventory, demand: Mapping[str, int], placer=None,
                    improvement_passes: int = 3) -> GeometryPlan:
    """Propose a geometry per MIG GPU for `demand` (profile -> pending + expected requests).

    GPUs holding an allocation (per `placer`, the ledger; none without one) keep their
    layout, and their free instances count as supply. Idle GPUs get the maximal geometry
    with the best marginal gain; then each idle GPU is revisited while that improves the
    total (ties keep the current layout).
    """
    state = {gpu.uuid: gpu for gpu in placer.snapshot()} if placer is not None else {}
    supply_fixed = Counter()
    fixed, idle, full_gpus = [], [], {}
    for node, gpu in inventory.gpus():
        model = slices.GPU_MODELS.get(gpu.model)
        if gpu.mode != "mig" or model is None:
            full_gpus.setdefault(node.name, []).append(gpu.index)
            continue
        instances = state[gpu.uuid].instances if gpu.uuid in state else gpu.mig_instances
        current = Counter(i.profile for i in instances)
        if any(getattr(i, "holder", None) for i in instances):
            layout = tuple(slices.PlacedInstance(i.profile, i.start) for i in instances)
            fixed.append((node, gpu, model, current, layout))
            supply_fixed.update(i.profile for i in instances if i.holder is None)
        else:
            idle.append((node, gpu, model, current))

    unmet = Counter({p: n for p, n in demand.items()})
    unmet.subtract(supply_fixed)
    chosen: list[Counter] = [Counter() for _ in idle]
    # 1. Cut idle GPUs keep their layout while it serves something: no needless re-cuts.
    for k, (_, _, model, current) in enumerate(idle):
        if current and _served(model, current, _positive(unmet)) > 0:
            chosen[k] = Counter(current)
            unmet.subtract(current)
    # 2. The others get the geometry with the best marginal gain; none -> left as they are.
    for k, (_, _, model, current) in enumerate(idle):
        if chosen[k]:
            continue
        wanted = _positive(unmet)
        geometry = best_geometry(model, wanted, current=current or None)
        chosen[k] = geometry if _served(model, geometry, wanted) > 0 else Counter(current)
        unmet.subtract(chosen[k])
    # 3. Revisit each GPU: re-cut only when that serves strictly more.
    for _ in range(improvement_passes):
        improved = False
        for k, (_, _, model, current) in enumerate(idle):
            unmet.update(chosen[k])  # take this GPU's supply back out
            wanted = _positive(unmet)
            geometry = best_geometry(model, wanted, current=current or None) if wanted else Counter(current)
            if _served(model, geometry, wanted) > _served(model, chosen[k], wanted) + 1e-9:
                chosen[k] = geometry
                improved = True
            unmet.subtract(chosen[k])
        if not improved:
            break

    plans = []
    supply = Counter(supply_fixed)
    for (node, gpu, model, current), geometry in zip(idle, chosen):
        supply.update(geometry)
        plans.append(GpuPlan(node.name, gpu.index, gpu.uuid, model.name, dict(current), dict(geometry),
                             slices.layout_for_geometry(model, geometry), busy=False))
    for node, gpu, model, current, layout in fixed:
        plans.append(GpuPlan(node.name, gpu.index, gpu.uuid, model.name, dict(current), dict(current),
                             layout, busy=True))
    served = Fraction(0)
    for profile, wanted in demand.items():
        model = next((m for m in slices.GPU_MODELS.values() if profile in m.mig_profiles), None)
        if model is not None:
            served += slices.slice_gpu_units(model, profile) * min(wanted, supply[profile])
    plans.sort(key=lambda p: (p.node, p.index))
    return GeometryPlan(gpus=tuple(plans), demand=dict(demand), served_gpu_units=served,
                        full_gpus={node: tuple(indices) for node, indices in full_gpus.items()})


def _positive(counter: Counter) -> dict[str, int]:
    return {p: n for p, n in counter.items() if n > 0}
