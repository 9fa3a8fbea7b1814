"""Usage kept as it changes (hub/quota/usage_ledger.py): decay anchored at the last update
equals the recomputation from history; GPU-hours in the rolling period and what users hold,
compared with literal values."""
import random
from fractions import Fraction

import pytest

from astrago.hub.quota.limits import Usage
from astrago.hub.quota.usage_ledger import Held, Interval, UsageLedger, decayed_from_history, gpu_hours, rebuild

H = 3600.0
DAY = 24 * H
HALF_LIFE = 7 * DAY


def held(aid, user, group, units, start, slice_name="gpu-1", kind="workspace", cpu=0):
    return Held(aid, user, group, slice_name, Fraction(units), Fraction(cpu), Fraction(0), kind, start)


def test_the_one_formula():
    assert gpu_hours(2.0, 0.0, 1800.0) == 1.0
    assert gpu_hours(3 / 7, 100.0, 100.0) == 0.0
    assert gpu_hours(1.0, 10.0, 5.0) == 0.0


def test_decay_anchored_at_the_last_update_equals_the_recomputation_from_history():
    rng = random.Random(15)
    ledger = UsageLedger(HALF_LIFE, 30 * DAY)
    intervals, open_ = [], {}
    now = 1_000_000.0
    for i in range(400):
        now += rng.uniform(0, 6 * H)
        if open_ and rng.random() < 0.45:
            aid = rng.choice(sorted(open_))
            h = open_.pop(aid)
            ledger.release(aid, now)
            intervals += [Interval(h.user, h.units, h.start, now), Interval(h.group, h.units, h.start, now)]
        else:
            user = f"u{rng.randrange(6)}"
            h = held(f"a{i}", user, f"g{int(user[1:]) % 3}", rng.choice(["1/7", "3/7", "1", "2"]), now)
            ledger.hold(h, now)
            open_[h.id] = h
    intervals += [iv for h in open_.values() for iv in (Interval(h.user, h.units, h.start, None),
                                                        Interval(h.group, h.units, h.start, None))]
    for later in (now, now + 3 * H, now + 40 * DAY):
        expected = decayed_from_history(intervals, later, HALF_LIFE)
        for subject, value in expected.items():
            kind = "group" if subject.startswith("g") else "user"
            assert ledger.decayed(kind, subject, later) == pytest.approx(value, rel=1e-9, abs=1e-9)


def test_rebuilt_from_history_it_is_the_ledger_that_saw_every_change():
    fed = UsageLedger(HALF_LIFE, 30 * DAY)
    fed.hold(held("a", "ann", "g", 1, 0.0), 0.0)
    fed.hold(held("b", "bob", "g", "3/7", 2 * H), 2 * H)
    fed.release("a", 5 * H)
    now = 9 * H
    built = rebuild(HALF_LIFE, 30 * DAY, [held("b", "bob", "g", "3/7", 2 * H)], [("ann", "g", 1.0, 0.0, 5 * H)], now)
    for kind, name in (("user", "ann"), ("user", "bob"), ("group", "g")):
        assert built.decayed(kind, name, now) == pytest.approx(fed.decayed(kind, name, now), rel=1e-12)
    assert built.gpu_hours("ann", now) == fed.gpu_hours("ann", now) == 5.0
    assert built.gpu_hours("bob", now) == pytest.approx(fed.gpu_hours("bob", now)) == pytest.approx(3 / 7 * 7)


def test_gpu_hours_in_the_rolling_period():
    ledger = UsageLedger(HALF_LIFE, 30 * DAY)
    ledger.hold(held("old", "ann", "g", 2, 0.0), 0.0)
    ledger.release("old", 2 * H)  # 4 GPU-hours, 31 days before `now` ends: half an hour of it is in the period
    ledger.hold(held("run", "ann", "g", "1/2", 30 * DAY), 30 * DAY)
    now = 30 * DAY + 1.5 * H
    assert ledger.gpu_hours("ann", now) == pytest.approx(2 * 0.5 + 0.5 * 1.5)
    assert ledger.all_gpu_hours(now) == {"ann": pytest.approx(1.75)}
    assert ledger.gpu_hours("ann", now + DAY) == pytest.approx(0.5 * (1.5 + 24))  # the old one left the period
    assert ledger.gpu_hours("nobody", now) == 0.0


def test_what_a_user_holds_and_the_undo_of_each_change():
    ledger = UsageLedger(HALF_LIFE, 30 * DAY)
    ledger.hold(held("a", "ann", "g", "1/7", 0.0, "1g.10gb"), 0.0)
    undo_hold = ledger.hold(held("j", "ann", "g", 0, 10.0, "cpu", kind="job", cpu="2.5"), 10.0)
    assert ledger.usage("ann", 3610.0) == Usage(gpu_units=Fraction(1, 7), cpu=Fraction(5, 2), servers=2,
                                                gpu_hours=Fraction(gpu_hours(1 / 7, 0.0, 3610.0)),
                                                profile_counts={"1g.10gb": 1, "cpu": 1})
    assert (ledger.running_jobs_by_user(), ledger.job_cpu) == ({"ann": 1}, Fraction(5, 2))
    before = ledger.decayed("user", "ann", 100.0)
    undo_release = ledger.release("a", 50.0)
    assert ledger.usage("ann", 60.0, with_hours=False) == Usage(cpu=Fraction(5, 2), servers=1,
                                                                profile_counts={"cpu": 1})
    undo_release()
    assert ledger.decayed("user", "ann", 100.0) == before
    undo_hold()
    assert ledger.usage("ann", 60.0, with_hours=False) == Usage(gpu_units=Fraction(1, 7), servers=1,
                                                                profile_counts={"1g.10gb": 1})
    assert (ledger.running_jobs_by_user(), ledger.job_cpu) == ({}, Fraction(0))
    assert ledger.release("never-held", 70.0) is None


def test_fair_usage_counts_what_is_held_as_an_hour_more():
    ledger = UsageLedger(HALF_LIFE, 30 * DAY)
    ledger.hold(held("a", "ann", "g", 2, 0.0), 0.0)
    groups, users = ledger.fair_usage(["g", "h"], ["ann"], 0.0, 1.0)
    assert (groups, users) == ({"g": 2.0}, {"ann": 2.0})
