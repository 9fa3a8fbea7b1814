"""Fair share's settings and who is charged (pure).

Kueue-style: a group's share is its decayed past usage (GPU-hours, halving every
`half_life`; kept by usage_ledger) divided by its weight; the group furthest below its
share goes first, then the user with the least decayed usage, then first come first
served (the order itself: cycle.iter_fair_order).
"""
from __future__ import annotations

DEFAULT_HALF_LIFE_S = 7 * 24 * 3600.0


def accounting_group(groups: list[str], weights: dict[str, float]) -> str:
    """The group a user's usage is charged to: the first (by name) that has a weight, else the first."""
    weighted = sorted(g for g in groups if g in weights)
    if weighted:
        return weighted[0]
    return sorted(groups)[0] if groups else ""
