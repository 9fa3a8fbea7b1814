"""Quota arithmetic, the effective-quota rule and fair-share order, compared exactly."""
import math
from fractions import Fraction

import pytest

from astrago.hub.quota import fairshare
from astrago.hub.quota.cycle import Candidate, fair_order
from astrago.hub.quota.limits import QuotaLimits, Request, Usage, check, effective_quota, remaining
from astrago.hub.quota.usage_ledger import Interval, decayed_from_history


def Q(**kw):
    return QuotaLimits.from_dict(kw)


def test_seven_1g_slices_are_exactly_one_gpu_and_a_slice_never_costs_a_whole_gpu():
    one_g = Fraction(1, 7)
    assert sum([one_g] * 7) == 1
    limits = Q(gpu_units=1)
    used = Usage(gpu_units=one_g * 6)
    assert check(limits, used, Request("1g.10gb", one_g)) == []
    over = check(limits, Usage(gpu_units=one_g * 7), Request("1g.10gb", one_g))
    assert [(o.dimension, o.left) for o in over] == [("gpu_units", 0)]
    three_g = Fraction(3, 7)
    over = check(Q(gpu_units=Fraction(1, 2)), Usage(gpu_units=Fraction(1, 7)), Request("3g.40gb", three_g))
    assert over[0].to_dict() == {"dimension": "gpu_units", "limit": 0.5, "used": 1 / 7, "requested": 3 / 7,
                                 "left": 0.5 - 1 / 7}
    assert "Over your gpu_units quota: you asked for 0.43 GPU units, 0.36 of 0.5 left" in over[0].sentence()


def test_effective_quota_user_override_then_most_generous_group_then_default():
    default = Q(gpu_units=1, cpu=4, servers=1)
    team_a = Q(gpu_units=2, memory_gib=64)
    team_b = Q(gpu_units=Fraction(3, 7), cpu=16)
    user = Q(gpu_units=Fraction(1, 7))  # an override may be lower than the groups'
    assert effective_quota(None, [team_a, team_b], default) == Q(gpu_units=2, cpu=16, memory_gib=64, servers=1)
    assert effective_quota(user, [team_a, team_b], default) == Q(gpu_units=Fraction(1, 7), cpu=16, memory_gib=64,
                                                                 servers=1)
    assert effective_quota(None, [], default) == default
    assert effective_quota(None, [], None) == QuotaLimits()


def test_allowed_slices_union_of_groups_and_refusal():
    a = Q(allowed_slices=["1g.10gb"])
    b = Q(allowed_slices=["3g.40gb", "1g.10gb"])
    eff = effective_quota(None, [a, b], Q(allowed_slices=["cpu"]))
    assert eff.allowed_slices == ("1g.10gb", "3g.40gb")
    over = check(eff, Usage(), Request("gpu-1", Fraction(1)))
    assert [o.dimension for o in over] == ["slice:gpu-1"]


def test_servers_cpu_memory_profile_caps_and_gpu_hours():
    limits = Q(servers=2, cpu=8, memory_gib=32, profile_caps={"1g.10gb": 1}, gpu_hours=10)
    used = Usage(servers=2, cpu=Fraction(6), memory_gib=Fraction(30), profile_counts={"1g.10gb": 1},
                 gpu_hours=Fraction(10))
    over = check(limits, used, Request("1g.10gb", Fraction(1, 7), Fraction(4), Fraction(4)))
    assert [o.dimension for o in over] == ["cpu", "memory_gib", "servers", "gpu_hours",
                                           "slice:1g.10gb"]
    assert remaining(limits, used) == {"gpu_units": None, "cpu": 2.0, "memory_gib": 2.0, "storage_gib": None,
                                       "servers": 0, "gpu_hours": 0.0}


def test_bad_quota_documents_are_refused_with_the_field_named():
    for bad, word in (({"gpu_units": -1}, "gpu_units"), ({"servers": 1.5}, "servers"), ({"gpu": 1}, "unknown"),
                      ({"profile_caps": {"1g.10gb": -1}}, "1g.10gb"), ({"cpu": "lots"}, "cpu")):
        with pytest.raises(ValueError, match=word):
            QuotaLimits.from_dict(bad)
    assert Q(gpu_units="3/7").gpu_units == Fraction(3, 7)


def test_decayed_usage_halves_every_half_life():
    h = 3600.0
    one_hour_now = decayed_from_history([Interval("u", Fraction(1), 0, h)], now=h, half_life_s=1e12)
    assert one_hour_now["u"] == pytest.approx(1.0)
    later = decayed_from_history([Interval("u", Fraction(1), 0, h)], now=h + 7 * 24 * h, half_life_s=7 * 24 * h)
    H = 7 * 24 * h
    exact = 0.5 * (1 - 2 ** (-h / H)) / (h * math.log(2) / H)  # half of the hour's own decayed integral
    assert later["u"] == pytest.approx(exact, rel=1e-9)
    assert 0.49 < later["u"] < 0.5


def test_fair_order_group_share_then_user_usage_then_fifo():
    def waiting(cid, user, group, created):  # CPU requests: taking one charges nobody, the order is by usage alone
        return Candidate(cid, user, group, created, 0, "cpu", Fraction(0))

    w = [waiting("r1", "alice", "heavy", created=1), waiting("r2", "bob", "light", created=2),
         waiting("r3", "bob", "light", created=3), waiting("r4", "carol", "light", created=0)]
    order = fair_order(w, {"heavy": 10.0, "light": 2.0}, {"bob": 1.0, "carol": 1.5}, {"heavy": 1, "light": 1})
    assert [x.id for x in order] == ["r2", "r3", "r4", "r1"]
    # a heavier weight makes the same usage count less
    order = fair_order(w, {"heavy": 10.0, "light": 2.0}, {}, {"heavy": 10, "light": 1})
    assert [x.id for x in order][0] == "r1"
    assert fairshare.accounting_group(["b", "a"], {"b": 2}) == "b"
    assert fairshare.accounting_group(["b", "a"], {}) == "a"
    assert fairshare.accounting_group([], {}) == ""
