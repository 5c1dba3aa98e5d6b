"""Sample clock → UTC nanoseconds, and how far each timestamp can be vouched for.

A capture stream counts samples; a clock maps a (possibly fractional) sample index to
integer UTC nanoseconds and says, per sample, whether that time can be trusted
(:class:`~sed.wire.ClockStatus`). Two kinds:

- :class:`SampleClock`, an exact linear mapping: files and the simulator, whose samples
  are defined at known times.
- :class:`DisciplinedClock`, for live capture. Every audio callback is an observation
  "samples up to ``end_sample`` had been captured by monotonic time ``mono_ns``". A
  callback can run late, never early, so the mapping is the *lower envelope* of the
  observations: the effective sample rate is a straight line through the earliest
  observation of each half second over the last minute (drift estimation), its offset the
  earliest observation of the last few seconds; both are refitted (re-anchored) every half
  second. Monotonic time becomes UTC through the system clock (assumed disciplined by
  GPS/PTP/chrony), whose offset from the monotonic clock changes only when the clock is
  *stepped*: that is how clock jumps are seen. Lost input (an xrun) is seen from
  PortAudio's overflow flag or from observations that stay late by more than a gap; the
  samples after it start a new *segment* with a fit of its own, so a detection is always
  timed by the audio run that contains it. (From callback timing alone, a step in the
  device's latency looks like lost input; both start a new segment and count as an xrun.
  A step smaller than the gap is absorbed as the old observations leave the offset
  window: for up to :data:`OFFSET_WINDOW_S`, times are off by at most the gap.)

A time is ``synced`` only if its segment has been observed for ``settle_s``, no clock
jump happened after it or shortly before it, and the kernel says the system clock is
disciplined (:mod:`sed.capture.timesync`); ``holdover`` if the kernel lost sync less
than ``holdover_s`` ago; otherwise ``unsynced``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from sed.units import NS_PER_S
from sed.wire import ClockStatus

#: The fitted sample rate is kept within this many ppm of the nominal rate.
MAX_DRIFT_PPM = 1000.0
#: Segments kept for timing detections in audio that is still buffered.
MAX_SEGMENTS = 32
#: The offset is the lower envelope of this much recent observation, s. Shorter follows a
#: step of the device's latency sooner; longer rides out bursts of late callbacks better.
OFFSET_WINDOW_S = 2.0
#: The drift fit needs observations spanning this long, s (before: the nominal rate).
MIN_DRIFT_SPAN_S = 5.0
#: Bins of the drift fit: the earliest observation of each counts, s.
DRIFT_BIN_S = 0.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClockReport:
    """A clock's health, for heartbeats.

    Attributes
    ----------
    status : ClockStatus
        Of the newest sample.
    offset_ns : int
        UTC of the newest sample minus the system clock when it was observed (about minus
        the capture latency for live input).
    drift_ppm : float
        Measured sample rate over nominal, minus 1, in parts per million.
    xruns : int
        Input overruns (lost samples) since the stream started.
    jumps : int
        System clock steps seen since the stream started.
    """

    status: ClockStatus
    offset_ns: int
    drift_ppm: float = 0.0
    xruns: int = 0
    jumps: int = 0


class CaptureClock(Protocol):
    """What the pipeline and the heartbeats need from a clock."""

    def to_ns(self, sample_index: float) -> int:
        """UTC ns of a (fractional) sample index."""
        ...

    def status_of(self, sample_index: float) -> ClockStatus:
        """How far the time of this sample can be vouched for."""
        ...

    def report(self, newest_sample: int) -> ClockReport: ...


@dataclasses.dataclass(kw_only=True)
class SampleClock:
    """An exact linear mapping from sample indices to UTC ns (files, the simulator).

    Attributes
    ----------
    sample_rate_hz : float
    anchor_sample : int
        Sample index whose UTC time is ``anchor_ns``.
    anchor_ns : int
        UTC ns of ``anchor_sample``.
    status : ClockStatus
        The status of every sample.
    """

    sample_rate_hz: float
    anchor_sample: int = 0
    anchor_ns: int = 0
    status: ClockStatus = ClockStatus.SYNCED

    def to_ns(self, sample_index: float) -> int:
        """UTC ns of a (fractional) sample index."""
        return self.anchor_ns + round((sample_index - self.anchor_sample) * NS_PER_S / self.sample_rate_hz)

    def to_sample(self, time_ns: int) -> float:
        """Fractional sample index heard at UTC ``time_ns``."""
        return self.anchor_sample + (time_ns - self.anchor_ns) * self.sample_rate_hz / NS_PER_S

    def samples_to_ns(self, n_samples: float) -> int:
        """Duration of ``n_samples`` samples, ns."""
        return round(n_samples * NS_PER_S / self.sample_rate_hz)

    def status_of(self, sample_index: float) -> ClockStatus:
        return self.status

    def report(self, newest_sample: int) -> ClockReport:
        return ClockReport(status=self.status, offset_ns=self.to_ns(newest_sample) - time.time_ns())


class _Segment:
    """Observations of one unbroken run of samples and the lower-envelope fit through them."""

    def __init__(self, first_sample: float) -> None:
        self.first_sample = first_sample
        self.samples: list[float] = []  # end sample of each observation
        self.monos: list[int] = []  # monotonic ns by which those samples had been captured
        self.ref_sample = first_sample
        self.ref_mono_ns = 0
        self.fitted = False

    def to_mono(self, sample_index: float, ns_per_sample: float) -> float:
        return self.ref_mono_ns + (sample_index - self.ref_sample) * ns_per_sample

    def span_ns(self) -> int:
        return self.monos[-1] - self.monos[0] if self.monos else 0

    def trim(self, keep_ns: int) -> None:
        cut = int(np.searchsorted(np.asarray(self.monos), self.monos[-1] - keep_ns))
        if cut > 0:
            del self.samples[:cut], self.monos[:cut]


class DisciplinedClock:
    """Maps the sample counter of a live stream to UTC, re-anchored on the system clock.

    Parameters
    ----------
    nominal_rate_hz : float > 0
        Rate of the sample indices handed to :meth:`observe` and :meth:`to_ns`.
    sync_check : callable returning bool, or None
        Is the system clock disciplined (e.g. :func:`sed.capture.timesync.kernel_clock_synced`)?
        ``None`` assumes it always is.
    input_latency_ns : int >= 0
        Fixed delay from sound at the microphone to the earliest possible callback beyond
        the buffering the observations see (ADC filter delay; measured per hardware model).
    fit_window_s : float
        Observations used for the drift fit, s.
    settle_s : float
        A segment's times are vouched for once it has been observed this long, s.
    holdover_s : float
        After the system clock loses discipline, times count as ``holdover`` this long, s.
    jump_threshold_ns : int
        A change of the UTC - monotonic offset larger than this is a clock step.
    jump_hold_s : float
        Times within this long after a clock step (and all before it) are ``unsynced``, s.
    xrun_gap_ns : int
        Observations later than the fit by more than this, for ``xrun_confirm_s`` on end,
        mean input was lost.
    xrun_confirm_s : float
    sync_check_interval_s : float
        How often ``sync_check`` is called, s.
    """

    def __init__(
        self,
        *,
        nominal_rate_hz: float,
        sync_check: Callable[[], bool] | None = None,
        input_latency_ns: int = 0,
        fit_window_s: float = 60.0,
        settle_s: float = 0.5,
        holdover_s: float = 300.0,
        jump_threshold_ns: int = 1_000_000,
        jump_hold_s: float = 10.0,
        xrun_gap_ns: int = 20_000_000,
        xrun_confirm_s: float = 0.25,
        sync_check_interval_s: float = 1.0,
    ) -> None:
        self.nominal_rate_hz = float(nominal_rate_hz)
        self._nominal_ns_per_sample = NS_PER_S / self.nominal_rate_hz
        self._ns_per_sample = self._nominal_ns_per_sample
        self._sync_check = sync_check
        self._latency_ns = int(input_latency_ns)
        self._window_ns = int(fit_window_s * NS_PER_S)
        self._settle_ns = int(settle_s * NS_PER_S)
        self._holdover_ns = int(holdover_s * NS_PER_S)
        self._jump_threshold_ns = int(jump_threshold_ns)
        self._jump_hold_ns = int(jump_hold_s * NS_PER_S)
        self._gap_ns = int(xrun_gap_ns)
        self._confirm_ns = int(xrun_confirm_s * NS_PER_S)
        self._check_interval_ns = int(sync_check_interval_s * NS_PER_S)
        self._segments: list[_Segment] = []
        self._suspect: tuple[int, float, int] | None = None  # (point index, first sample, mono ns)
        self._utc_offset_ns: int | None = None
        self._offset_pending = False
        self._last_jump_mono_ns: int | None = None
        self._last_mono_ns = 0
        self._last_wall_ns = 0
        self._next_refit_mono_ns = 0
        self._next_check_mono_ns = 0
        self._synced_now = sync_check is None
        self._last_synced_mono_ns: int | None = None
        self.xruns = 0
        self.jumps = 0
        self.last_xrun = ""  # what the latest xrun was seen from, for the log
        # observe() runs in the capture thread, report() in the sender's: one lock for all state.
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ observations
    def observe(
        self, *, first_sample: float, end_sample: float, mono_ns: int, wall_ns: int, overflow: bool = False
    ) -> None:
        """One callback: samples ``[first_sample, end_sample)`` were delivered at ``mono_ns``/``wall_ns``.

        ``overflow`` says input was lost just before ``first_sample`` (PortAudio's
        ``input_overflow``, or a full queue).
        """
        with self._lock:
            self._observe(first_sample, end_sample, mono_ns, wall_ns, overflow)

    def _observe(self, first_sample: float, end_sample: float, mono_ns: int, wall_ns: int, overflow: bool) -> None:
        self._watch_system_clock(mono_ns, wall_ns)
        if not self._segments or overflow:
            if self._segments:
                self.xruns += 1
                self.last_xrun = f"input overflow flagged before sample {first_sample:.0f}"
            self._start_segment(first_sample)
        segment = self._segments[-1]
        captured_ns = mono_ns - self._latency_ns
        if segment.fitted:
            late_ns = captured_ns - segment.to_mono(end_sample, self._ns_per_sample)
            if late_ns <= self._gap_ns:
                self._suspect = None
            elif self._suspect is None:
                self._suspect = (len(segment.samples), first_sample, captured_ns)
        segment.samples.append(end_sample)
        segment.monos.append(captured_ns)
        if self._suspect is not None and captured_ns - self._suspect[2] >= self._confirm_ns:
            self._split_at_suspect()
        elif not segment.fitted or mono_ns >= self._next_refit_mono_ns:
            self._refit(segment)
            self._next_refit_mono_ns = mono_ns + NS_PER_S // 2

    def _watch_system_clock(self, mono_ns: int, wall_ns: int) -> None:
        self._last_mono_ns, self._last_wall_ns = mono_ns, wall_ns
        offset = wall_ns - mono_ns
        if self._utc_offset_ns is None:
            self._utc_offset_ns = offset
        elif abs(offset - self._utc_offset_ns) > self._jump_threshold_ns:
            if self._offset_pending:  # twice in a row: not a preempted pair of clock reads
                self.jumps += 1
                self._last_jump_mono_ns = mono_ns
                self._utc_offset_ns = offset
                self._offset_pending = False
            else:
                self._offset_pending = True
        else:
            self._offset_pending = False
        if self._sync_check is not None and mono_ns >= self._next_check_mono_ns:
            self._synced_now = bool(self._sync_check())
            self._next_check_mono_ns = mono_ns + self._check_interval_ns
        if self._synced_now:
            self._last_synced_mono_ns = mono_ns

    def _start_segment(self, first_sample: float) -> None:
        self._segments.append(_Segment(first_sample))
        del self._segments[:-MAX_SEGMENTS]
        self._suspect = None

    def _split_at_suspect(self) -> None:
        assert self._suspect is not None
        index, first_sample, _ = self._suspect
        old = self._segments[-1]
        self.xruns += 1
        late_ms = (old.monos[index] - old.to_mono(old.samples[index], self._ns_per_sample)) / 1e6
        self.last_xrun = f"callbacks from sample {first_sample:.0f} on stayed {late_ms:.0f} ms late"
        self._start_segment(first_sample)
        new = self._segments[-1]
        new.samples, new.monos = old.samples[index:], old.monos[index:]
        del old.samples[index:], old.monos[index:]
        self._refit(new)

    def _refit(self, segment: _Segment) -> None:
        """Drift from the lower envelope of the whole window, offset from the recent envelope."""
        segment.trim(self._window_ns)
        s = np.asarray(segment.samples, dtype=np.float64)
        m = np.asarray(segment.monos, dtype=np.int64)
        # Detrend by the nominal rate so that minima over bins are meaningful.
        base_s, base_m = s[-1], m[-1]
        d = (m - base_m).astype(np.float64) - (s - base_s) * self._nominal_ns_per_sample
        age = (m - m[0]).astype(np.float64)
        if age[-1] >= MIN_DRIFT_SPAN_S * NS_PER_S:
            bins = (age // (DRIFT_BIN_S * NS_PER_S)).astype(np.int64)
            starts = np.flatnonzero(np.diff(bins, prepend=-1))
            stops = [*starts[1:], d.size]
            lowest = starts + np.array([int(np.argmin(d[a:b])) for a, b in zip(starts, stops, strict=True)])
            slope = np.polyfit(s[lowest] - base_s, d[lowest], 1)[0]  # ns per sample beyond nominal
            limit = self._nominal_ns_per_sample * MAX_DRIFT_PPM * 1e-6
            self._ns_per_sample = self._nominal_ns_per_sample + float(np.clip(slope, -limit, limit))
        recent = m >= base_m - OFFSET_WINDOW_S * NS_PER_S
        excess = (m[recent] - base_m).astype(np.float64) - (s[recent] - base_s) * self._ns_per_sample
        segment.ref_sample = float(base_s)
        segment.ref_mono_ns = int(base_m + round(float(excess.min())))
        segment.fitted = True

    # ------------------------------------------------------------------ queries
    def _segment_of(self, sample_index: float) -> _Segment | None:
        for segment in reversed(self._segments):
            if segment.first_sample <= sample_index:
                return segment if segment.fitted else None
        return None

    def to_ns(self, sample_index: float) -> int:
        """UTC ns of a (fractional) sample index (extrapolated before the first kept segment)."""
        with self._lock:
            return self._to_ns(sample_index)

    def _to_ns(self, sample_index: float) -> int:
        segment = self._segment_of(sample_index) or next((s for s in self._segments if s.fitted), None)
        if segment is None or self._utc_offset_ns is None:
            raise RuntimeError("DisciplinedClock.to_ns before the first observation")
        return round(segment.to_mono(sample_index, self._ns_per_sample)) + self._utc_offset_ns

    def status_of(self, sample_index: float) -> ClockStatus:
        with self._lock:
            return self._status_of(sample_index)

    def _status_of(self, sample_index: float) -> ClockStatus:
        segment = self._segment_of(sample_index)
        if segment is None or segment.span_ns() < self._settle_ns:
            return ClockStatus.UNSYNCED
        if self._last_jump_mono_ns is not None:
            mono = segment.to_mono(sample_index, self._ns_per_sample)
            if mono < self._last_jump_mono_ns + self._jump_hold_ns:
                return ClockStatus.UNSYNCED
        if self._synced_now:
            return ClockStatus.SYNCED
        if self._last_synced_mono_ns is not None and self._last_mono_ns - self._last_synced_mono_ns < self._holdover_ns:
            return ClockStatus.HOLDOVER
        return ClockStatus.UNSYNCED

    @property
    def drift_ppm(self) -> float:
        """Measured sample rate over nominal, minus 1, ppm."""
        return (self._nominal_ns_per_sample / self._ns_per_sample - 1.0) * 1e6

    def report(self, newest_sample: int) -> ClockReport:
        with self._lock:
            return self._report(newest_sample)

    def _report(self, newest_sample: int) -> ClockReport:
        if not self._segments or not self._segments[-1].fitted:
            return ClockReport(status=ClockStatus.UNSYNCED, offset_ns=0, xruns=self.xruns, jumps=self.jumps)
        segment = self._segments[-1]
        newest = segment.samples[-1] if segment.samples else newest_sample
        return ClockReport(
            status=self._status_of(newest - 1),
            offset_ns=self._to_ns(newest) - self._last_wall_ns,
            drift_ppm=self.drift_ppm,
            xruns=self.xruns,
            jumps=self.jumps,
        )


__all__ = ["NS_PER_S", "CaptureClock", "ClockReport", "DisciplinedClock", "SampleClock"]
