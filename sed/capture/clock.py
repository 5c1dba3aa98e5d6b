"""Sample clock → UTC nanoseconds.

A capture stream counts samples; the clock maps a (possibly fractional) sample index to
integer UTC nanoseconds from an anchor ``(anchor_sample, anchor_ns)`` and an effective
sample rate. Sources with a perfect clock (files, the simulator) anchor once at sample 0;
live sources re-anchor against the disciplined system clock (see
:class:`~sed.capture.clock.SampleClock.observe`).
"""

from __future__ import annotations

import dataclasses

from sed.wire import ClockStatus

NS_PER_S = 1_000_000_000


@dataclasses.dataclass(kw_only=True)
class SampleClock:
    """Maps sample indices of one capture stream to UTC ns.

    Attributes
    ----------
    sample_rate_hz : float
        Effective rate of the sample counter (nominal until drift is estimated).
    anchor_sample : int
        Sample index whose UTC time is ``anchor_ns``.
    anchor_ns : int
        UTC ns of ``anchor_sample``.
    status : ClockStatus
        Whether the anchor can be vouched for.
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


__all__ = ["NS_PER_S", "SampleClock"]
