"""Whether a slice can ever be placed on an inventory, and what it costs there (pure)."""
from __future__ import annotations

from fractions import Fraction

from astrago.spawners import slices

from ..service.interfaces.admission import AdmissionError


#: the most replicas a gang may ask for (the jobs area bounds it lower)
GANG_LIMIT = 65


def most_at_once(inventory, slice_name: str, limit: int) -> int:
    """How many of `slice_name` an empty `inventory` holds at once, up to `limit` (pure)."""
    from astrago.spawners.placement import Placer

    placer = Placer(inventory)
    for n in range(limit):
        if placer.place(f"fit-{n}", slice_name) is None:
            return n
    return limit


class SliceFit:
    """GPU units of a slice on `inventory`, or the AdmissionError saying why it never fits.
    Cached per slice name: an inventory does not change (a new one gets a new SliceFit)."""

    def __init__(self, inventory):
        self.inventory = inventory
        self._cache: dict = {}

    def units(self, slice_name: str) -> Fraction:
        cached = self._cache.get(slice_name)
        if cached is None:
            try:
                cached = self._units(slice_name)
            except AdmissionError as exc:
                cached = exc
            if len(self._cache) < 10_000:  # names come from clients: bound the cache
                self._cache[slice_name] = cached
        if isinstance(cached, AdmissionError):
            raise AdmissionError(cached.kind, cached.detail, cached.extra)
        return cached

    def check_gang(self, slice_name: str, replicas: int) -> None:
        """AdmissionError capacity-unavailable when `replicas` of the slice never fit here at once."""
        if replicas <= 1 or slices.parse_slice(slice_name).kind == "cpu":
            return
        most = self._cache.get(("at once", slice_name))
        if most is None:
            most = self._cache[("at once", slice_name)] = most_at_once(self.inventory, slice_name, GANG_LIMIT)
        if most < replicas:
            raise AdmissionError("capacity-unavailable",
                                 f"{replicas} replicas on {slice_name} can never run here at once: at most {most} "
                                 f"{slice_name} slices exist together.", {"most": most})

    def _units(self, slice_name: str) -> Fraction:
        try:
            request = slices.parse_slice(slice_name)
        except slices.InvalidSlice as exc:
            raise AdmissionError("invalid-slice", str(exc)) from None
        if request.kind == "cpu":
            return Fraction(0)
        nodes = self.inventory.nodes
        gpus = [g for n in nodes for g in n.gpus]
        if request.kind == "gpu":
            most = max((sum(1 for g in n.gpus if g.mode == "full") for n in nodes), default=0)
            if most < request.count:
                raise AdmissionError("capacity-unavailable",
                                     f"{slice_name} can never be placed here: no node has {request.count} whole "
                                     f"GPU(s) (the most on one node is {most}).")
            return Fraction(request.count)
        if request.kind == "mps":
            hosts = [g for g in gpus if g.mode == "mps" and g.mps_replicas and 100 // g.mps_replicas == request.percent]
            if not hosts:
                raise AdmissionError("capacity-unavailable",
                                     f"{slice_name} can never be placed here: no GPU is shared through MPS in "
                                     f"{request.percent}% shares.")
            return Fraction(request.percent, 100)
        hosts = [g for g in gpus if g.mode == "mig" and any(i.profile == slice_name for i in g.mig_instances)]
        if not hosts:
            raise AdmissionError("capacity-unavailable",
                                 f"{slice_name} can never be placed here: no GPU has a MIG {slice_name} instance.")
        return slices.slice_gpu_units(hosts[0].model, slice_name)
