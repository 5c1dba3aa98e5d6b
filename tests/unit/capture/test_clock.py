"""Live sample clock: drift estimation, re-anchoring, xruns, clock steps, sync status.

The audio device is simulated as a crystal running off nominal: sample ``k`` is captured
at ``t0 + k / true_rate``; its callback runs a random (exponential) delay after the
block's last sample, never earlier and never before the previous callback.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sed.capture.clock import DisciplinedClock, SampleClock
from sed.units import NS_PER_S
from sed.wire import ClockStatus

NOMINAL_HZ = 48000
BLOCK = 480
T0_NS = 5 * NS_PER_S  # monotonic time of sample 0
UTC_MINUS_MONO_NS = 1_700_000_000 * NS_PER_S
MIN_LATENCY_NS = 1_000_000


@dataclasses.dataclass
class Device:
    """A simulated capture device feeding a clock."""

    clock: DisciplinedClock
    rng: np.random.Generator
    drift_ppm: float = 0.0
    jitter_mean_ns: float = 2e6
    next_sample: int = 0  # index the clock will see next
    lost_samples: int = 0  # captured but never delivered
    last_callback_ns: int = 0
    utc_minus_mono_ns: int = UTC_MINUS_MONO_NS

    @property
    def true_rate_hz(self) -> float:
        return NOMINAL_HZ * (1 + self.drift_ppm * 1e-6)

    def capture_mono_ns(self, sample_index: float) -> float:
        """When the device captured the sample the clock numbers ``sample_index``."""
        return T0_NS + (sample_index + self.lost_samples) / self.true_rate_hz * NS_PER_S

    def true_utc_ns(self, sample_index: float) -> float:
        return self.capture_mono_ns(sample_index) + self.utc_minus_mono_ns

    def run(self, seconds: float, *, late_ns: int = 0, overflow_first: bool = False) -> None:
        for i in range(round(seconds * NOMINAL_HZ / BLOCK)):
            first, end = self.next_sample, self.next_sample + BLOCK
            due = self.capture_mono_ns(end) + MIN_LATENCY_NS + self.rng.exponential(self.jitter_mean_ns)
            if i == 0:
                due += late_ns
            self.last_callback_ns = max(int(due), self.last_callback_ns)
            self.clock.observe(
                first_sample=first,
                end_sample=end,
                mono_ns=self.last_callback_ns,
                wall_ns=self.last_callback_ns + self.utc_minus_mono_ns,
                overflow=overflow_first and i == 0,
            )
            self.next_sample = end

    def error_ns(self, sample_index: float) -> float:
        """Clock's UTC for a sample minus the truth (plus the unobservable minimum latency)."""
        return self.clock.to_ns(sample_index) - (self.true_utc_ns(sample_index) + MIN_LATENCY_NS)


def _device(rng: np.random.Generator, **kwargs: object) -> Device:
    clock_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in {"sync_check", "holdover_s", "jump_hold_s"}}
    return Device(clock=DisciplinedClock(nominal_rate_hz=NOMINAL_HZ, **clock_kwargs), rng=rng, **kwargs)


def test_drift_is_estimated_and_times_stay_within_a_tenth_of_a_millisecond(rng: np.random.Generator) -> None:
    device = _device(rng, drift_ppm=80.0)
    device.run(60.0)
    assert device.clock.drift_ppm == pytest.approx(80.0, abs=5.0)
    newest = device.next_sample
    for age_s in (0.0, 1.0, 5.0, 10.0):  # detections look back into buffered audio
        assert abs(device.error_ns(newest - age_s * NOMINAL_HZ)) < 100_000
    report = device.clock.report(newest)
    assert report.xruns == 0 and report.jumps == 0
    assert report.status is ClockStatus.SYNCED
    assert -20_000_000 < report.offset_ns < 0  # the newest sample was captured just before it was observed


def test_a_late_callback_is_not_an_xrun(rng: np.random.Generator) -> None:
    device = _device(rng)
    device.run(3.0)
    device.run(2.0, late_ns=80_000_000)  # one callback 80 ms late, the next ones catch up
    assert device.clock.xruns == 0
    assert abs(device.error_ns(device.next_sample)) < 200_000


def test_lost_input_starts_a_new_segment_and_times_on_both_sides_stay_right(rng: np.random.Generator) -> None:
    device = _device(rng)
    device.run(3.0)
    before = device.next_sample - NOMINAL_HZ
    assert abs(device.error_ns(before)) < 200_000
    time_before_ns = device.clock.to_ns(before)
    device.lost_samples += 4800  # 100 ms dropped without a flag
    gap_at = device.next_sample
    device.run(2.0)
    assert device.clock.xruns == 1
    assert abs(device.error_ns(gap_at + NOMINAL_HZ)) < 200_000
    # Samples before the gap keep the mapping of their own segment.
    assert device.clock.to_ns(before) == pytest.approx(time_before_ns, abs=50_000)
    # An xrun flagged by PortAudio counts too.
    device.lost_samples += 480
    device.run(1.0, overflow_first=True)
    assert device.clock.xruns == 2
    assert abs(device.error_ns(device.next_sample - NOMINAL_HZ // 2)) < 200_000


def test_fresh_segment_is_unsynced_until_it_settles(rng: np.random.Generator) -> None:
    device = _device(rng)
    device.run(0.2)
    assert device.clock.status_of(device.next_sample - 1) is ClockStatus.UNSYNCED
    device.run(0.5)
    assert device.clock.status_of(device.next_sample - 1) is ClockStatus.SYNCED


def test_clock_step_is_counted_and_nearby_times_are_not_vouched_for(rng: np.random.Generator) -> None:
    device = _device(rng, jump_hold_s=2.0)
    device.run(3.0)
    before_jump = device.next_sample - NOMINAL_HZ
    assert device.clock.status_of(before_jump) is ClockStatus.SYNCED
    device.utc_minus_mono_ns += 250_000_000  # the system clock is stepped 250 ms forward
    device.run(1.0)
    assert device.clock.jumps == 1
    assert device.clock.status_of(before_jump) is ClockStatus.UNSYNCED
    assert device.clock.status_of(device.next_sample - 1) is ClockStatus.UNSYNCED  # within the hold
    # Times follow the stepped system clock, which is assumed to have been corrected.
    assert abs(device.error_ns(device.next_sample - 1)) < 200_000
    device.run(2.5)
    assert device.clock.status_of(device.next_sample - 1) is ClockStatus.SYNCED
    assert device.clock.report(device.next_sample).jumps == 1


def test_lost_system_clock_discipline_gives_holdover_then_unsynced(rng: np.random.Generator) -> None:
    synced = [True]
    device = _device(rng, sync_check=lambda: synced[0], holdover_s=2.0)
    device.run(2.0)
    assert device.clock.status_of(device.next_sample - 1) is ClockStatus.SYNCED
    synced[0] = False
    device.run(1.5)
    assert device.clock.status_of(device.next_sample - 1) is ClockStatus.HOLDOVER
    device.run(2.0)
    assert device.clock.status_of(device.next_sample - 1) is ClockStatus.UNSYNCED


def test_never_synced_system_clock_means_unsynced(rng: np.random.Generator) -> None:
    device = _device(rng, sync_check=lambda: False)
    device.run(2.0)
    assert device.clock.report(device.next_sample).status is ClockStatus.UNSYNCED


def test_exact_clock_maps_both_ways() -> None:
    clock = SampleClock(sample_rate_hz=16000, anchor_ns=10 * NS_PER_S)
    assert clock.to_ns(16000) == 11 * NS_PER_S
    assert clock.to_sample(clock.to_ns(1234.5)) == pytest.approx(1234.5)
    assert clock.status_of(99) is ClockStatus.SYNCED
