"""What the options form offers a user: allowed slices, their cost, what is free (pure view)."""
from __future__ import annotations

from fractions import Fraction

from astrago.spawners import slices

from .limits import QuotaLimits, Request, Usage, check, remaining


def catalogue_of(inventory) -> list[dict]:
    """Each slice that exists in the inventory with its GPU units and memory, smallest first."""
    seen: dict[str, dict] = {}
    whole_per_node = []
    for node in inventory.nodes:
        full = [g for g in node.gpus if g.mode == "full"]
        whole_per_node.append(len(full))
        for g in node.gpus:
            if g.mode == "mig":
                for inst in g.mig_instances:
                    if inst.profile not in seen:
                        seen[inst.profile] = {"slice": inst.profile, "kind": "mig",
                                              "gpu_units": slices.slice_gpu_units(g.model, inst.profile),
                                              "memory_gib": float(slices.slice_memory_gib(g.model, inst.profile)),
                                              "model": g.model}
            elif g.mode == "mps" and g.mps_replicas:
                pct = 100 // g.mps_replicas
                name = f"mps-{pct}"
                if name not in seen:
                    seen[name] = {"slice": name, "kind": "mps", "gpu_units": Fraction(pct, 100),
                                  "memory_gib": round(g.memory_mib / 1024 / g.mps_replicas, 1), "model": g.model}
    most = max(whole_per_node, default=0)
    mem_full = next((g.memory_mib / 1024 for n in inventory.nodes for g in n.gpus if g.mode == "full"), 0)
    for n in (1, 2, 4, 8):
        if n <= most:
            seen[f"gpu-{n}"] = {"slice": f"gpu-{n}", "kind": "gpu", "gpu_units": Fraction(n),
                                "memory_gib": round(mem_full * n, 1), "model": None}
    return sorted(seen.values(), key=lambda o: (o["gpu_units"], o["slice"]))


def free_counts(placer) -> dict[str, int]:
    """How many of each slice could be placed right now (MIG: free instances; whole: free GPUs)."""
    counts: dict[str, int] = {}
    free_full_by_node: dict[str, int] = {}
    for gpu in placer.snapshot():
        if gpu.mode == "mig":
            for inst in gpu.instances:
                if inst.holder is None:
                    counts[inst.profile] = counts.get(inst.profile, 0) + 1
        elif gpu.mode == "mps":
            pct = 100 // gpu.mps_replicas if gpu.mps_replicas else 0
            if pct:
                counts[f"mps-{pct}"] = counts.get(f"mps-{pct}", 0) + gpu.mps_replicas - len(gpu.holders)
        elif not gpu.holders:
            free_full_by_node[gpu.node] = free_full_by_node.get(gpu.node, 0) + 1
    for n in (1, 2, 4, 8):
        counts[f"gpu-{n}"] = sum(free // n for free in free_full_by_node.values())
    return counts


def build_offers(desk, limits: QuotaLimits, used: Usage, inventory_note: str) -> dict:
    free = free_counts(desk.placer)
    cpu_over = check(limits, used, Request("cpu", Fraction(0)))
    offers = [{"slice": "cpu", "kind": "cpu", "gpu_units": 0.0, "memory_gib": 0.0, "free": None,
               "allowed": True, "within_quota": not cpu_over, "quota_note": " ".join(o.sentence() for o in cpu_over),
               "note": "no GPU"}]
    for item in catalogue_of(desk.inventory):
        name = item["slice"]
        allowed = limits.allowed_slices is None or name in limits.allowed_slices
        if not allowed:
            continue
        over = check(limits, used, Request(name, item["gpu_units"]))
        offers.append({
            "slice": name, "kind": item["kind"], "gpu_units": float(item["gpu_units"]),
            "gpu_units_exact": f"{item['gpu_units'].numerator}/{item['gpu_units'].denominator}",
            "memory_gib": item["memory_gib"], "model": item["model"], "free": free.get(name, 0),
            "allowed": True, "within_quota": not over,
            "quota_note": " ".join(o.sentence() for o in over),
            "note": ("shares a GPU: a fatal error in one client stops all clients on that GPU"
                     if item["kind"] == "mps" else "isolated slice of a GPU" if item["kind"] == "mig" else ""),
        })
    return {"offers": offers, "remaining": remaining(limits, used), "inventory_note": inventory_note,
            "limits": limits.to_dict()}
