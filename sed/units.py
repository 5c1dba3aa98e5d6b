"""Physical constants and unit conversions that every layer shares (sensor, fusion, planning).

Times on the wire and in the store are integer nanoseconds (``*_ns``); the speed of sound
turns them into metres.
"""

from __future__ import annotations

import math

NS_PER_S = 1_000_000_000


def speed_of_sound_m_per_s(temperature_c: float) -> float:
    """Speed of sound in dry air, m/s: ``331.3 * sqrt(1 + T / 273.15)``.

    >>> round(speed_of_sound_m_per_s(20.0), 1)
    343.2
    """
    return 331.3 * math.sqrt(1.0 + temperature_c / 273.15)


__all__ = ["NS_PER_S", "speed_of_sound_m_per_s"]
