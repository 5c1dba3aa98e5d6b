"""The false-alarm policy: unconfirmed lone incidents, upgrades, storms, noisy sensors; clock injected."""

from __future__ import annotations

from typing import Any

import pytest

from sed import wire
from sed.config import ClassPolicy, PolicySection
from sed.fusion.policy import (
    INCIDENT_MEMORY_NS,
    MAX_EVENTS,
    SENSOR_WINDOW_NS,
    EventKind,
    FalseAlarmPolicy,
    Priority,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S
GUNSHOT, SCREAM = wire.Label.GUNSHOT, wire.Label.SCREAM


def incident(
    incident_id: str = "i-1", *, sensors: tuple[str, ...] = ("pole-1",), score: float = 0.5, label=GUNSHOT
) -> wire.Incident:
    return wire.Incident(
        incident_id=incident_id,
        label=label,
        score=score,
        origin_time_ns=T0,
        position=None,
        uncertainty_m=None,
        covariance_m2=None,
        detection_ids=[f"{s}:1" for s in sensors],
        sensor_ids=list(sensors),
    )


def policy(**gunshot: Any) -> FalseAlarmPolicy:
    """The default policy with the gunshot table changed."""
    return FalseAlarmPolicy(PolicySection(gunshot=ClassPolicy(**gunshot)))


# ----------------------------------------------------------------- unconfirmed and upgrades


def test_a_lone_low_confidence_incident_is_unconfirmed_and_a_confident_or_corroborated_one_an_alert() -> None:
    p = policy(min_sensors=2, confirm_score=0.9)
    assert p.classify(incident("low", score=0.89), T0) is Priority.UNCONFIRMED
    assert p.classify(incident("sure", score=0.9), T0) is Priority.ALERT
    assert p.classify(incident("two", sensors=("pole-1", "pole-2"), score=0.3), T0) is Priority.ALERT


def test_an_unconfirmed_incident_is_upgraded_when_a_second_pole_joins_or_a_surer_detection_arrives() -> None:
    p = policy()
    assert p.decide(incident("a"), T0).priority is Priority.UNCONFIRMED
    joined = p.decide(incident("a", sensors=("pole-1", "pole-2")), T0 + S)
    assert (joined.priority, joined.previous, joined.upgraded) == (Priority.ALERT, Priority.UNCONFIRMED, True)

    assert p.classify(incident("b", score=0.6), T0) is Priority.UNCONFIRMED
    assert p.classify(incident("b", score=0.95), T0 + S) is Priority.ALERT


def test_an_alert_is_never_downgraded() -> None:
    p = policy()
    assert p.classify(incident("a", score=0.95), T0) is Priority.ALERT
    for n in range(25):  # the pole turns noisy afterwards
        p.note_detection("pole-1", GUNSHOT, T0 + n)
    decision = p.decide(incident("a", score=0.95), T0 + S)
    assert (decision.priority, decision.upgraded) == (Priority.ALERT, False)


def test_streams_of_one_pole_do_not_corroborate_each_other() -> None:
    p = policy()
    p.note_detection("pole-3.0", GUNSHOT, T0, pole_id="pole-3")
    p.note_detection("pole-3.1", GUNSHOT, T0, pole_id="pole-3")
    assert p.classify(incident("a", sensors=("pole-3.0", "pole-3.1")), T0) is Priority.UNCONFIRMED
    p.note_detection("pole-4", GUNSHOT, T0, pole_id="pole-4")
    assert p.classify(incident("a", sensors=("pole-3.0", "pole-3.1", "pole-4")), T0) is Priority.ALERT


def test_min_sensors_1_and_confirm_score_0_make_every_lone_incident_an_alert() -> None:
    assert policy(min_sensors=1).classify(incident(score=0.1), T0) is Priority.ALERT
    assert policy(confirm_score=0.0).classify(incident(score=0.0), T0) is Priority.ALERT


def test_each_class_has_its_own_settings() -> None:
    p = FalseAlarmPolicy(PolicySection(scream=ClassPolicy(confirm_score=0.5)))
    assert p.classify(incident("s", score=0.6, label=SCREAM), T0) is Priority.ALERT
    assert p.classify(incident("g", score=0.6, label=GUNSHOT), T0) is Priority.UNCONFIRMED


def test_apply_returns_the_same_incident_with_its_priority() -> None:
    p = policy()
    before = incident(score=0.5)
    after = p.apply(before, T0)
    assert after.priority is Priority.UNCONFIRMED and after.incident_id == before.incident_id
    assert wire.decode(wire.encode(after)) == after


def test_a_disabled_policy_makes_every_incident_an_alert_and_counts_no_storm() -> None:
    p = FalseAlarmPolicy(PolicySection(enabled=False, gunshot=ClassPolicy(storm_incidents=1)))
    priorities = {p.classify(incident(f"i{n}", score=0.0), T0 + n) for n in range(5)}
    assert priorities == {Priority.ALERT} and p.storms() == frozenset()


# ----------------------------------------------------------------- storms


def test_more_than_storm_incidents_within_the_window_start_a_storm_that_suppresses_new_ones() -> None:
    p = policy(storm_incidents=3, storm_window_s=60.0, min_sensors=1)
    first = [p.classify(incident(f"i{n}"), T0 + n * S) for n in range(3)]
    assert first == [Priority.ALERT] * 3 and p.take_events() == []
    assert p.classify(incident("i3"), T0 + 3 * S) is Priority.SUPPRESSED
    (event,) = p.take_events()
    assert (event.kind, event.label, event.count, event.limit) == (EventKind.STORM_STARTED, GUNSHOT, 4, 3)
    assert "fusion.policy.gunshot.storm_incidents = 3" in event.describe()
    assert p.storms() == {GUNSHOT}
    assert p.classify(incident("s", label=SCREAM, score=0.95), T0 + 3 * S) is Priority.ALERT  # other classes alert


def test_a_storm_lasts_until_at_most_half_as_many_started_within_the_window_and_is_logged_once() -> None:
    p = policy(storm_incidents=4, storm_window_s=10.0, min_sensors=1)
    for n in range(5):  # 0 … 4 s: the fifth starts the storm
        p.classify(incident(f"i{n}"), T0 + n * S)
    assert p.storms() == {GUNSHOT}
    p.take_events()
    p.advance(T0 + 12 * S)  # starts at 3 s and 4 s are still in the window: 2 <= 4 / 2
    assert p.storms() == frozenset()
    (event,) = p.take_events()
    assert (event.kind, event.count) == (EventKind.STORM_ENDED, 2)
    assert p.classify(incident("after"), T0 + 12 * S) is Priority.ALERT


def test_the_storm_does_not_end_while_more_than_half_the_limit_still_start() -> None:
    p = policy(storm_incidents=4, storm_window_s=10.0, min_sensors=1)
    for n in range(5):
        p.classify(incident(f"i{n}"), T0 + n * S)
    p.advance(T0 + 10 * S + S // 2)  # starts at 1 … 4 s remain: 4 > 2
    assert p.storms() == {GUNSHOT}
    assert p.classify(incident("late"), T0 + 11 * S) is Priority.SUPPRESSED


def test_a_suppressed_incident_stays_suppressed_when_corroborated_or_after_the_storm() -> None:
    p = policy(storm_incidents=1, storm_window_s=10.0)
    p.classify(incident("i0", score=0.95), T0)
    assert p.classify(incident("i1", score=0.95), T0 + S) is Priority.SUPPRESSED
    later = incident("i1", sensors=("pole-1", "pole-2", "pole-3"), score=0.99)
    assert p.classify(later, T0 + 60 * S) is Priority.SUPPRESSED
    assert p.storms() == frozenset()


def test_updates_of_one_incident_are_not_counted_as_new_starts() -> None:
    p = policy(storm_incidents=2, storm_window_s=60.0)
    for n in range(10):
        p.classify(incident("one", sensors=("pole-1", "pole-2")), T0 + n * S)
    assert p.storms() == frozenset()


def test_an_incident_updated_after_the_memory_horizon_counts_as_new() -> None:
    p = policy(storm_incidents=1, storm_window_s=10.0)
    p.classify(incident("a", score=0.95), T0)
    p.advance(T0 + INCIDENT_MEMORY_NS)
    assert p.decide(incident("a", score=0.95), T0 + INCIDENT_MEMORY_NS).previous is None


# ----------------------------------------------------------------- noisy sensors


def test_a_sensor_over_its_hourly_limit_is_flagged_noisy_and_its_lone_incidents_are_not_alerts() -> None:
    p = policy(sensor_max_per_hour=4)
    for n in range(4):
        p.note_detection("pole-1", GUNSHOT, T0 + n * S)
    assert p.noisy_sensors() == {} and p.take_events() == []
    p.note_detection("pole-1", GUNSHOT, T0 + 4 * S)
    assert p.noisy_sensors() == {"pole-1": frozenset({GUNSHOT})}
    assert p.noisy_labels("pole-1") == {GUNSHOT} and p.noisy_labels("pole-2") == frozenset()
    (event,) = p.take_events()
    assert (event.kind, event.sensor_id, event.count, event.limit) == (EventKind.SENSOR_NOISY, "pole-1", 5, 4)
    assert "fusion.policy.gunshot.sensor_max_per_hour = 4" in event.describe()

    assert p.classify(incident("lone", score=0.99), T0 + 5 * S) is Priority.UNCONFIRMED  # however sure
    assert p.classify(incident("pair", sensors=("pole-1", "pole-2")), T0 + 5 * S) is Priority.ALERT
    assert p.classify(incident("other", sensors=("pole-2",), score=0.99), T0 + 5 * S) is Priority.ALERT
    assert p.classify(incident("scream", score=0.99, label=SCREAM), T0 + 5 * S) is Priority.ALERT


def test_the_noisy_flag_clears_only_below_half_the_limit() -> None:
    p = policy(sensor_max_per_hour=4)
    times = [T0 + n * 60 * S for n in range(5)]  # 0, 1, 2, 3, 4 min
    for at_ns in times:
        p.note_detection("pole-1", GUNSHOT, at_ns)
    p.take_events()
    p.advance(times[2] + SENSOR_WINDOW_NS + 1)  # 2 left in the hour: not below 4 / 2
    assert p.noisy_sensors() == {"pole-1": frozenset({GUNSHOT})}
    p.advance(times[3] + SENSOR_WINDOW_NS + 1)  # 1 left
    assert p.noisy_sensors() == {}
    (event,) = p.take_events()
    assert (event.kind, event.sensor_id, event.count) == (EventKind.SENSOR_CLEARED, "pole-1", 1)


def test_a_sensor_far_over_its_limit_is_counted_exactly_when_it_falls_back() -> None:
    p = policy(sensor_max_per_hour=10)
    for n in range(10_000):  # a stuck sensor: only the newest limit + 1 times are kept
        p.note_detection("pole-1", GUNSHOT, T0 + n * 10**6)
    p.advance(T0 + SENSOR_WINDOW_NS + 9_995 * 10**6)  # 4 of the last 11 remain in the hour: below 5
    assert p.noisy_sensors() == {}
    assert [e.count for e in p.take_events()] == [11, 4]


def test_seeding_replays_stored_detections_into_the_rates() -> None:
    p = policy(sensor_max_per_hour=2)
    p.seed([("pole-1", "gunshot", T0 + n) for n in range(3)])
    assert p.noisy_sensors() == {"pole-1": frozenset({GUNSHOT})}


def test_an_unknown_label_is_refused() -> None:
    with pytest.raises(ValueError, match="fireworks"):
        FalseAlarmPolicy().note_detection("pole-1", "fireworks", T0)


def test_events_not_taken_are_bounded() -> None:
    p = policy(sensor_max_per_hour=1)
    for n in range(MAX_EVENTS + 5):
        p.note_detection(f"pole-{n}", GUNSHOT, T0)
        p.note_detection(f"pole-{n}", GUNSHOT, T0)
    assert len(p.take_events()) == MAX_EVENTS
