"""The idle-GPU rules on a simulated clock (pure, exact)."""
import pytest

from astrago.hub.monitor.reclaim.rules import RETRY_SECONDS, Action, Candidate, Policy, Track, step

H = 3600.0
POLICY = Policy(enabled=True, dry_run=False, idle_threshold_percent=5.0, idle_hours=2.0, grace_hours=0.5,
                max_gap_seconds=600.0)


def cand(util, aid="a1", user="alice", groups=("team-a",), kind="workspace", units=3 / 7, slice_="3g.40gb"):
    return Candidate(aid, user, tuple(groups), kind, f"{user}/" if kind == "workspace" else "job-1", slice_, units,
                     util)


class Clock:
    """Runs `step` every `interval` seconds with readings from `util_at(t)`; a real stop
    releases the allocation, so it is gone from the next round on (`keep=True`: it stays)."""

    def __init__(self, policy=POLICY, interval=300.0, keep=False):
        self.policy, self.interval, self.t, self.keep = policy, interval, 0.0, keep
        self.tracks: dict = {}
        self.log: list[tuple[float, str, str]] = []
        self.released = False

    def run_until(self, end, util_at, **kw):
        while self.t <= end:
            candidates = [] if self.released else [cand(util_at(self.t), **kw)]
            self.tracks, actions = step(self.tracks, candidates, self.t, self.policy)
            self.log += [(a.at, a.kind, a.reason) for a in actions]
            self.released = self.released or (not self.keep and any(
                a.kind == "reclaim" and not a.dry_run for a in actions))
            self.t += self.interval
        return self.log


def test_idle_for_the_hours_warns_then_stops_after_the_grace():
    log = Clock().run_until(3 * H, lambda t: 0.01)
    assert log == [(2 * H, "warn", "under 5% busy for 2.0 h"), (2.5 * H, "reclaim", "under 5% busy for 2.5 h")]


def test_the_warning_says_when_the_stop_is_due_and_the_track_remembers_it():
    c = Clock()
    c.run_until(2 * H, lambda t: 0.0)
    t = c.tracks["a1"]
    assert (t.state, t.idle_since, t.warned_at, t.reclaim_at, t.dry_run) == ("warned", 0.0, 2 * H, 2.5 * H, False)
    assert t.idle_for(2 * H) == 2 * H


def test_busy_again_withdraws_the_warning_and_the_idle_clock_starts_over():
    log = Clock().run_until(4.75 * H, lambda t: 0.0 if t < 2.25 * H or t >= 2.5 * H else 0.4)
    assert log == [(2 * H, "warn", "under 5% busy for 2.0 h"),
                   (2.25 * H, "withdraw", "the slice is busy again"),
                   (4.5 * H, "warn", "under 5% busy for 2.0 h")]  # idle again from 2.5 h


def test_at_the_threshold_is_busy_and_just_under_it_is_idle():
    assert Clock().run_until(3 * H, lambda t: 0.05) == []
    assert [k for _, k, _ in Clock().run_until(3 * H, lambda t: 0.0499)] == ["warn", "reclaim"]


def test_no_reading_is_never_idle_and_a_long_gap_breaks_the_streak():
    assert Clock().run_until(10 * H, lambda t: None) == []
    # a 15-minute gap (> max_gap 10 min) at 1 h: the streak restarts when readings come back
    c = Clock(interval=300.0)
    log = c.run_until(4 * H, lambda t: None if H <= t < H + 900 else 0.0)
    assert log[0] == (H + 900 + 2 * H - 300 + 300, "warn", "under 5% busy for 2.0 h")
    # a 5-minute gap (within max_gap) keeps the streak
    log = Clock(interval=300.0).run_until(3 * H, lambda t: None if t == H else 0.0)
    assert log[0][:2] == (2 * H, "warn")


def test_readings_lost_after_the_warning_withdraw_it():
    c = Clock()
    log = c.run_until(3 * H, lambda t: 0.0 if t <= 2 * H else None)
    assert log == [(2 * H, "warn", "under 5% busy for 2.0 h"),
                   (2 * H + 900, "withdraw", "its readings were interrupted")]


def test_exempt_groups_are_never_warned_and_a_pending_warning_is_withdrawn():
    exempt = Policy(**{**POLICY.to_dict(), "exempt_groups": ("oncall",)})
    c = Clock(exempt)
    assert c.run_until(5 * H, lambda t: 0.0, groups=("team-a", "oncall")) == []
    assert c.tracks["a1"].state == "exempt" and c.tracks["a1"].idle_since == 0.0  # idle time still shown
    c = Clock()
    c.run_until(2 * H, lambda t: 0.0)
    c.policy = exempt
    assert c.run_until(2 * H + 300, lambda t: 0.0, groups=("oncall",))[-1] == (2 * H + 300, "withdraw",
                                                                         "the user's group is exempt")


def test_jobs_and_cpu_only_servers_are_never_tracked():
    tracks, actions = step({}, [cand(0.0, kind="job"), cand(0.0, aid="a2", units=0.0, slice_="cpu")], 0.0, POLICY)
    assert tracks == {} and actions == []


def test_dry_run_decides_the_same_but_marks_it_and_switching_it_off_starts_with_a_real_warning():
    dry = Policy(**{**POLICY.to_dict(), "dry_run": True})
    c = Clock(dry)
    c.run_until(3 * H, lambda t: 0.0)
    assert [(at, k) for at, k, _ in c.log] == [(2 * H, "warn"), (2.5 * H, "reclaim")]
    assert c.tracks["a1"].state == "reclaimed" and c.tracks["a1"].dry_run
    c.policy = POLICY  # dry run off: nobody is stopped without a real warning first
    tracks, actions = step(c.tracks, [cand(0.0)], c.t, POLICY)
    assert [(a.kind, a.dry_run) for a in actions] == [("warn", False)]
    assert tracks["a1"].reclaim_at == c.t + 0.5 * H


def test_switching_dry_run_on_withdraws_a_real_warning():
    c = Clock()
    c.run_until(2 * H, lambda t: 0.0)
    tracks, actions = step(c.tracks, [cand(0.0)], c.t, Policy(**{**POLICY.to_dict(), "dry_run": True}))
    assert [(a.kind, a.dry_run, a.reason) for a in actions] == [("withdraw", False, "dry run was switched on"),
                                                               ("warn", True, "under 5% busy for 2.1 h")]


def test_switched_off_watches_but_never_acts():
    off = Policy(**{**POLICY.to_dict(), "enabled": False})
    c = Clock(off)
    assert c.run_until(5 * H, lambda t: 0.0) == []
    assert c.tracks["a1"].idle_for(c.t) > 4 * H


def test_a_stop_that_did_not_take_is_tried_again_later():
    c = Clock(keep=True)
    c.run_until(2.5 * H, lambda t: 0.0)
    assert c.log[-1][1] == "reclaim"
    later = c.tracks["a1"].acted_at + RETRY_SECONDS
    tracks, actions = step(c.tracks, [cand(0.0)], later - 1, POLICY)
    assert actions == []
    tracks, actions = step(tracks, [cand(0.0)], later, POLICY)
    assert [(a.kind, a.reason) for a in actions] == [("reclaim", "the previous stop did not take; trying again")]


def test_tracks_of_released_allocations_are_dropped_and_actions_carry_what_the_hook_needs():
    c = Clock()
    c.run_until(2 * H, lambda t: 0.0)
    tracks, actions = step(c.tracks, [], c.t, POLICY)
    assert tracks == {} and actions == []
    tiny = Policy(**{**POLICY.to_dict(), "idle_hours": 1 / 3600})
    tracks, none = step({}, [cand(0.0)], 0.0, tiny)
    _, [warn] = step(tracks, [cand(0.0)], 1.0, tiny)
    assert none == [] and warn == Action("warn", "a1", "alice", "alice/", "3g.40gb", 1.0, 0.0, 1801.0, False,
                                         "under 5% busy for 1 s")


def test_several_allocations_are_independent_and_ordered():
    hourly = Policy(**{**POLICY.to_dict(), "max_gap_seconds": 2 * H})
    tracks, _ = step({}, [cand(0.0, aid="b"), cand(0.0, aid="a"), cand(0.9, aid="c")], 0.0, hourly)
    tracks, actions = step(tracks, [cand(0.0, aid="b"), cand(0.0, aid="a"), cand(0.9, aid="c")], 2 * H, hourly)
    assert [(a.allocation_id, a.kind) for a in actions] == [("a", "warn"), ("b", "warn")]
    assert tracks["c"] == Track("c", "alice", "alice/", "3g.40gb", "watching", None, 2 * H, 0.9)


def test_policy_validation_names_the_problem():
    assert Policy.from_dict({"idle_hours": 0.5}, base=POLICY).idle_hours == 0.5
    for bad, message in (({"idle_threshold_percent": 0}, "over 0"), ({"grace_hours": -1}, "at least 0"),
                         ({"dry_run": "no"}, "true or false"), ({"exempt_groups": "ops"}, "list of group names"),
                         ({"webhook_url": "ftp://x"}, "http(s) URL"), ({"idle": 3}, "unknown policy setting")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Policy.from_dict(bad)
    assert Policy.from_dict({"exempt_groups": ["b", "a", "b"]}).exempt_groups == ("a", "b")
