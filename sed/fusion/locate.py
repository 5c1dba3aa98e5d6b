"""Multilateration: where was a sound made, given when it arrived at several sensors.

Time difference of arrival with an unknown emission time: for sensors ``s_i`` and arrival
times ``t_i`` we solve for the source ``p`` and the emission time ``t0`` minimising
``sum_i rho((c (t_i - t0) - |p - s_i|) / sigma_i)``. The covariance comes from the
Jacobian at the solution and the stated timing uncertainty.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence

import numpy as np
import scipy.optimize

#: Chi-square quantile, 2 degrees of freedom, 95 %: radius^2 of the 95 % circle in sigma^2 units.
CHI2_2DOF_95 = 5.991464547107979
NS_PER_S = 1_000_000_000


def speed_of_sound_m_per_s(temperature_c: float) -> float:
    """Speed of sound in dry air, m/s: ``331.3 * sqrt(1 + T / 273.15)``.

    >>> round(speed_of_sound_m_per_s(20.0), 1)
    343.2
    """
    return 331.3 * math.sqrt(1.0 + temperature_c / 273.15)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Arrival:
    """One sensor's arrival time of one sound.

    Attributes
    ----------
    sensor_id : str
    position_m : tuple[float, float, float]
        Sensor position (x, y, z), metres, in the site frame.
    arrival_time_ns : int
        UTC nanoseconds.
    uncertainty_ns : int
        1-sigma timing uncertainty, ns.
    label : str
        Event class ("gunshot", …); association never mixes classes.
    detection_id : str
        Wire id of the detection this arrival came from ("" for pulses without one).
    """

    sensor_id: str
    position_m: tuple[float, float, float]
    arrival_time_ns: int
    uncertainty_ns: int = 1_000_000
    label: str = ""
    detection_id: str = ""


class SolveStatus(enum.StrEnum):
    LOCATED = "located"
    TOO_FEW = "too_few_sensors"
    DEGENERATE = "degenerate_geometry"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Solution:
    """Result of :func:`locate`.

    ``position_m`` is ``None`` unless ``status`` is ``located``; ``covariance_m2`` is the
    2x2 horizontal covariance (m^2) and ``uncertainty_m`` the 95 % radius.
    """

    status: SolveStatus
    position_m: tuple[float, float, float] | None
    origin_time_ns: int | None
    covariance_m2: np.ndarray | None
    uncertainty_m: float | None
    residuals_m: np.ndarray
    sensor_ids: tuple[str, ...]


def locate(
    arrivals: Sequence[Arrival],
    *,
    temperature_c: float,
    source_z_m: float | None = None,
) -> Solution:
    """Solve a 2-D TDOA position (x, y and emission time) from >= 3 arrivals.

    Parameters
    ----------
    arrivals : sequence of Arrival
        One per sensor (distinct sensors).
    temperature_c : float
        Air temperature, for the speed of sound.
    source_z_m : float, optional
        Source height in the site frame; default the mean sensor height.

    Returns
    -------
    Solution
        ``status`` says whether a point was found; never a fake point.
    """
    sensor_ids = tuple(a.sensor_id for a in arrivals)
    if len(set(sensor_ids)) < 3:
        return Solution(
            status=SolveStatus.TOO_FEW,
            position_m=None,
            origin_time_ns=None,
            covariance_m2=None,
            uncertainty_m=None,
            residuals_m=np.zeros(0),
            sensor_ids=sensor_ids,
        )
    c = speed_of_sound_m_per_s(temperature_c)
    sensors = np.array([a.position_m for a in arrivals], dtype=np.float64)
    reference_ns = min(a.arrival_time_ns for a in arrivals)
    times_s = np.array([(a.arrival_time_ns - reference_ns) / NS_PER_S for a in arrivals])
    sigma_m = np.array([max(a.uncertainty_ns, 1) / NS_PER_S * c for a in arrivals])
    z = float(np.mean(sensors[:, 2])) if source_z_m is None else source_z_m

    def residuals(params: np.ndarray) -> np.ndarray:
        x, y, t0 = params
        distances = np.sqrt((sensors[:, 0] - x) ** 2 + (sensors[:, 1] - y) ** 2 + (sensors[:, 2] - z) ** 2)
        return (c * (times_s - t0) - distances) / sigma_m

    first = int(np.argmin(times_s))
    start = np.array([sensors[first, 0], sensors[first, 1], -1e-3])
    best = None
    # The first-hit sensor is near the source; also try the centroid, to avoid a mirror minimum.
    for guess in (start, np.array([*sensors[:, :2].mean(axis=0), -np.ptp(times_s)])):
        result = scipy.optimize.least_squares(residuals, guess, method="lm")
        if best is None or result.cost < best.cost:
            best = result
    assert best is not None
    # Residuals are already divided by sigma, so J^T J is the Fisher information of (x, y, t0).
    information = best.jac.T @ best.jac
    if np.linalg.cond(information) > 1e12:
        return Solution(
            status=SolveStatus.DEGENERATE,
            position_m=None,
            origin_time_ns=None,
            covariance_m2=None,
            uncertainty_m=None,
            residuals_m=best.fun * sigma_m,
            sensor_ids=sensor_ids,
        )
    covariance = np.linalg.inv(information)[:2, :2]
    x, y, t0 = best.x
    return Solution(
        status=SolveStatus.LOCATED,
        position_m=(float(x), float(y), z),
        origin_time_ns=reference_ns + round(t0 * NS_PER_S),
        covariance_m2=covariance,
        uncertainty_m=float(math.sqrt(CHI2_2DOF_95 * np.linalg.eigvalsh(covariance).max())),
        residuals_m=best.fun * sigma_m,
        sensor_ids=sensor_ids,
    )


__all__ = ["Arrival", "Solution", "SolveStatus", "locate", "speed_of_sound_m_per_s"]
