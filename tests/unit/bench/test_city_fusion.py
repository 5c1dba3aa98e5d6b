"""The simulated city's fusion replay: incidents, priorities off and on, and the matching rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sed import wire
from sed.bench.city import SAMPLE_RATE_HZ, City, Contribution, Kind, Pole, Sound
from sed.bench.city_fusion import Heard, fuse, score
from sed.config import FusionSection, PolicySection, SiteSection
from sed.units import speed_of_sound_m_per_s

START_NS = 1_780_000_000 * 10**9
DURATION_S = 300.0
POLES = [
    Pole(sensor_id=f"pole-{k + 1:02d}", position_m=(x, y, 6.0))
    for k, (x, y) in enumerate([(-75.0, -75.0), (75.0, -75.0), (-75.0, 75.0), (75.0, 75.0)])
]
FUSION = FusionSection.model_validate({"secret_key_file": "unused", "authorized_keys_dir": "unused"})
SITE = SiteSection()
C_M_PER_S = speed_of_sound_m_per_s(SITE.temperature_c)


def make_city(sounds: list[Sound], *, duration_s: float = DURATION_S) -> City:
    """``sounds`` heard by every pole, with their exact propagation delays."""
    contributions = []
    for sound in sounds:
        for k, pole in enumerate(POLES):
            distance = math.dist(sound.position_m, pole.position_m)
            first = round((sound.emission_time_s + distance / C_M_PER_S) * SAMPLE_RATE_HZ)
            n = round(sound.duration_s * SAMPLE_RATE_HZ)
            contributions.append(
                Contribution(
                    sound=sound.index,
                    pole=k,
                    first_sample=first,
                    n_samples=n,
                    gain=1.0,
                    peak_dbfs=-20.0 - k,
                    distance_m=distance,
                )
            )
    waveforms = [np.zeros(round(s.duration_s * SAMPLE_RATE_HZ), np.float32) for s in sounds]
    return City(
        poles=POLES,
        sounds=sounds,
        waveforms=waveforms,
        contributions=contributions,
        duration_s=duration_s,
        temperature_c=15.0,
    )


def sound(index: int, kind: Kind, label: str, at_s: float, xy: tuple[float, float], subclass: str = "") -> Sound:
    return Sound(
        index=index,
        kind=kind,
        label=label,
        subclass=subclass or label,
        clip=f"{label}/x.flac",
        emission_time_s=at_s,
        position_m=(*xy, 1.5),
        duration_s=2.0,
        home_pole=0 if kind == "background" else None,
    )


def heard_at(city: City, s: Sound, *, poles: list[int], label: str, score: float, late_s: float = 0.0) -> list[Heard]:
    """Detections of ``s`` at ``poles`` at its exact arrival times (plus ``late_s``), received 1 s later."""
    out = []
    for k in poles:
        distance = math.dist(s.position_m, POLES[k].position_m)
        arrival_ns = START_NS + round((s.emission_time_s + distance / C_M_PER_S + late_s) * 1e9)
        detection = wire.Detection(
            detection_id=f"{POLES[k].sensor_id}:{arrival_ns}:{label}",
            sensor_id=POLES[k].sensor_id,
            label=wire.Label(label),
            score=score,
            arrival_time_ns=arrival_ns,
            arrival_uncertainty_ns=100_000,
            duration_ms=500.0,
            peak_dbfs=-20.0,
            position=wire.Position(x_m=POLES[k].position_m[0], y_m=POLES[k].position_m[1], z_m=6.0),
            clock_status=wire.ClockStatus.SYNCED,
            model_version="test",
        )
        out.append(Heard(detection=detection, received_at_ns=arrival_ns + 10**9))
    return out


def run_both(city: City, heard: list[Heard]) -> tuple[dict, dict]:
    off = fuse(
        heard,
        city,
        fusion=FUSION.model_copy(update={"policy": PolicySection(enabled=False)}),
        site=SITE,
        start_ns=START_NS,
    )
    on = fuse(heard, city, fusion=FUSION, site=SITE, start_ns=START_NS)
    return score(off, city, heard, start_ns=START_NS), score(on, city, heard, start_ns=START_NS)


def test_a_located_scripted_shot_is_alerted_and_a_lone_siren_is_a_false_alert_only_without_the_policy() -> None:
    shot = sound(0, "scripted", "gunshot", 100.0, (10.0, 20.0))
    siren = sound(1, "background", "negative", 200.0, (-70.0, -72.0), subclass="siren")
    city = make_city([shot, siren])
    heard = heard_at(city, shot, poles=[0, 1, 2, 3], label="gunshot", score=0.95)
    heard += heard_at(city, siren, poles=[0], label="gunshot", score=0.6)
    off, on = run_both(city, heard)
    for result in (off, on):
        (event,) = result["scripted_events"]
        assert event["alerted"] and event["best_priority"] == "alert" and event["poles_in_range"] == 4
        assert 1.0 <= event["delay_to_alert_s"] <= 10.0  # received 1 s after the sound, then the association wait
        assert result["incidents"] == 2
    assert off["false_by_priority"] == {"alert": 1, "unconfirmed": 0, "suppressed": 0}
    assert off["false_alerts_by_cause"] == {"siren": 1} and off["false_alerts"][0]["sensor_ids"] == ["pole-01"]
    assert off["false_alerts_per_100_sensor_hours"] == pytest.approx(100 / (4 * DURATION_S / 3600))
    # one pole, score below confirm_score: shown muted, not an alert
    assert on["false_by_priority"] == {"alert": 0, "unconfirmed": 1, "suppressed": 0}
    assert on["false_alerts_per_100_sensor_hours"] == 0 and on["all_scripted_alerted"]


def test_an_unlocated_incident_matches_an_event_only_when_heard_while_it_played_and_of_its_class() -> None:
    scream = sound(0, "scripted", "scream", 100.0, (-60.0, -60.0))
    city = make_city([scream])
    on_time = heard_at(city, scream, poles=[0], label="scream", score=0.99, late_s=0.3)
    off, _ = run_both(city, on_time)
    assert off["scripted_events"][0]["alerted"] and off["false_by_priority"]["alert"] == 0
    late = heard_at(city, scream, poles=[0], label="scream", score=0.99, late_s=5.0)  # the 2 s sound has ended
    off, _ = run_both(city, late)
    assert not off["scripted_events"][0]["alerted"] and off["scripted_events"][0]["delay_to_alert_s"] is None
    assert off["false_alerts_by_cause"] == {"noise": 1} and not off["all_scripted_alerted"]
    wrong_class = heard_at(city, scream, poles=[0], label="glass_break", score=0.99)
    off, _ = run_both(city, wrong_class)
    assert off["false_alerts_by_cause"] == {"scripted scream": 1}


def test_a_located_incident_far_from_the_source_is_false() -> None:
    shot = sound(0, "scripted", "gunshot", 100.0, (10.0, 20.0))
    scripted_elsewhere = sound(0, "scripted", "gunshot", 100.0, (150.0, -140.0))  # 212 m from the shot
    heard = heard_at(make_city([shot]), shot, poles=[0, 1, 2, 3], label="gunshot", score=0.95)
    off, _ = run_both(make_city([scripted_elsewhere]), heard)
    assert off["incidents"] == 1 and off["false_by_priority"]["alert"] == 1
    assert off["false_alerts"][0]["located"] and not off["scripted_events"][0]["alerted"]


def test_a_pole_that_keeps_firing_is_flagged_noisy_and_its_storm_suppressed_only_with_the_policy() -> None:
    bangs = [sound(k, "background", "negative", 20.0 + 20 * k, (-70.0, -72.0), subclass="fireworks") for k in range(25)]
    city = make_city(bangs, duration_s=600.0)
    heard = [h for bang in bangs for h in heard_at(city, bang, poles=[0], label="gunshot", score=0.95)]
    off, on = run_both(city, heard)
    assert off["by_priority"] == {"alert": 25, "unconfirmed": 0, "suppressed": 0}
    assert off["false_alerts_by_cause"] == {
        "fireworks": 25
    }  # flagged too, but without the policy a flag changes nothing
    assert on["incidents"] == 25 and on["by_priority"]["suppressed"] > 0
    assert on["by_priority"]["alert"] == on["false_by_priority"]["alert"] < 25
    assert on["noisy_poles_flagged"] == on["noisy_poles_at_end"] == {"pole-01": ["gunshot"]}
    assert any("gunshot storm" in t["event"] for t in on["transitions"])
