"""Pulses mode of ``sed bench localize``: ShotSpotter's pulse picks as arrivals, and the baseline
of our solver on ShotSpotter's own pulse groups.

Each pulse of ``allpulses.json`` becomes an :class:`~sed.fusion.locate.Arrival` as a sensor
would report it: its SNR as ``quality``, and a :func:`~sed.dsp.onset.directness` judged from
that sensor's own pulse stream, as the onset picker judges an onset from the waveform (a
direct sound dominates what the sensor heard in the 300 ms before it; an echo follows a
louder sound).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sed.bench import localize_score as scoring
from sed.bench.pittsburgh import LiveFireTest, Pulse
from sed.dsp.onset import directness
from sed.fusion.associate import Group
from sed.fusion.locate import Arrival, Solution

#: Timing uncertainty given to a ShotSpotter pulse (ms picks, paths bent by buildings), ns.
PULSE_UNCERTAINTY_NS = 5_000_000
#: A pulse is compared with its sensor's pulses this long before it (as the picker's dominance), ns.
PULSE_DOMINANCE_WINDOW_NS = 300_000_000


def pulse_arrivals(test: LiveFireTest) -> list[Arrival]:
    """Every pulse of the test as an arrival (detection_id = pulse uuid), with its SNR as
    ``quality`` and a :func:`~sed.dsp.onset.directness` from the sensor's own pulse stream:
    dominance = power over the loudest pulse of that sensor in the 300 ms before (its SNR
    when there is none), jump = its SNR."""
    return [
        Arrival(
            sensor_id=p.serial,
            position_m=p.position_m,
            arrival_time_ns=p.arrival_time_ns,
            uncertainty_ns=PULSE_UNCERTAINTY_NS,
            label="gunshot",
            detection_id=p.uuid,
            quality=max(p.snr_db, 1.0) if np.isfinite(p.snr_db) else 1.0,
            directness=directness(dominance_db, p.snr_db) if np.isfinite(p.snr_db) else 0.0,
        )
        for p, dominance_db in zip(test.pulses, _pulse_dominance_db(test.pulses), strict=True)
    ]


def _pulse_dominance_db(pulses: Sequence[Pulse]) -> list[float]:
    """Per pulse: power over the loudest earlier pulse of its sensor within 300 ms, dB (its SNR
    when there is none; NaN powers count as absent)."""
    out = []
    for pulse in pulses:
        before = [
            q.power_db_spl
            for q in pulses
            if q.serial == pulse.serial
            and 0 < pulse.arrival_time_ns - q.arrival_time_ns <= PULSE_DOMINANCE_WINDOW_NS
            and np.isfinite(q.power_db_spl)
        ]
        usable = before and np.isfinite(pulse.power_db_spl)
        out.append(pulse.power_db_spl - max(before) if usable else pulse.snr_db)
    return out


def tuple_baseline(test: LiveFireTest, *, solve: Callable[[list[Arrival]], Solution]) -> list[scoring.ShotResult]:
    """Our solver on ShotSpotter's own pulse groups (first pulse per sensor)."""
    by_uuid = {p.uuid: p for p in test.pulses}
    groups = []
    for uuids in test.shot_pulse_uuids:
        first: dict[str, Arrival] = {}
        for pulse in sorted((by_uuid[u] for u in uuids if u in by_uuid), key=lambda p: p.arrival_time_ns):
            first.setdefault(
                pulse.serial,
                Arrival(
                    sensor_id=pulse.serial,
                    position_m=pulse.position_m,
                    arrival_time_ns=pulse.arrival_time_ns,
                    uncertainty_ns=PULSE_UNCERTAINTY_NS,
                    detection_id=pulse.uuid,
                ),
            )
        solution = solve(list(first.values()))
        if solution.status == "located":
            groups.append(Group(label="gunshot", arrivals=tuple(first.values()), solution=solution))
    results, _ = scoring.score_test(test, groups)
    return results


__all__ = ["PULSE_DOMINANCE_WINDOW_NS", "PULSE_UNCERTAINTY_NS", "pulse_arrivals", "tuple_baseline"]
