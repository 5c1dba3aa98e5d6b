"""Multilateration: where was a sound made, given when it arrived at several sensors.

Time difference of arrival with an unknown emission time ``t0``: for sensors ``s_i`` and
arrival times ``t_i`` we find the source ``p`` minimising
``sum_i rho((c (t_i - t0) - |p - s_i|) / sigma_i)`` with a Huber ``rho``.

* **Geometry.** ``source_z_m=None`` solves in the horizontal plane (distances in x-y only):
  ShotSpotter's "2D" constraint, which their Pittsburgh study found as accurate as any 3D
  model, because sound from a shot at street level reaches rooftop sensors by diffraction
  over the roofs, along nearly horizontal paths. ``source_z_m=z`` uses 3-D distances to a
  source at height ``z`` ("2.5D"). ``solve_z=True`` also solves for the height when at
  least five sensors report and their heights span enough to determine it; otherwise it
  falls back to the plane and says so in ``Solution.dimensions``.
* **Start.** A closed-form start: the linearised spherical equations of Mathias, Leonardi
  and Galati (the "MLG" of ShotSpotter's tech note 098), least squares for four or more
  sensors; for three sensors the quadratic whose roots are the (up to two) exact solutions.
* **Refinement.** Damped Gauss-Newton with Huber weights (outliers beyond 3 sigma are
  down-weighted, not trusted).
* **Wind.** A steady horizontal wind ``w`` carries the wavefront: to first order in
  ``|w| / c`` the range to sensor i shortens by ``w . (s_i - p) / c``. That is absorbed
  exactly by shifting each range by ``w . s_i / c`` and the emission term by ``w . p / c``,
  so the same solvers apply (1.8 m/s moves a shot heard 300-900 m away by about 1-2 m).
* **Uncertainty.** The covariance is the inverse Fisher information ``(J^T W J)^-1`` at the
  solution, from each arrival's stated 1-sigma timing uncertainty, inflated by the
  residuals' reduced chi-square when they scatter more than stated (never deflated).
* **No fake points.** Fewer than three sensors: ``too_few_sensors``; sensors (nearly) on a
  line, or an information matrix too ill-conditioned to invert: ``degenerate_geometry``;
  three sensors with two exact solutions: ``ambiguous`` with both in ``candidates_m``. In
  every case ``nearest_sensor_id`` names the earliest sensor: the source is closer to it
  than to any other reporting sensor (that sensor's Voronoi cell is the region).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence

import numpy as np

from sed.errors import GeometryError
from sed.fusion.tdoa import closed_form_starts, distinct_exact, fit_all, placeholder_z, refine, to_site
from sed.units import NS_PER_S, speed_of_sound_m_per_s

#: Chi-square quantile, 2 degrees of freedom, 95 %: radius^2 of the 95 % circle in sigma^2 units.
CHI2_2DOF_95 = 5.991464547107979
#: Sensors whose horizontal spread across their main axis is below this are "on a line", m.
_MIN_CROSS_SPREAD_M = 1.0
#: Sensor heights must span at least this to solve for the source height, m.
_MIN_HEIGHT_SPAN_M = 10.0


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
    quality : float > 0
        Strength of the arrival on a dB-like scale (e.g. the pick's SNR in dB). Association
        prefers groups of high quality, and treats an arrival that follows a not much
        weaker one (within 6 units) of its sensor within 0.3 s as a possible echo.
        :func:`locate` ignores it.
    directness : float
        Log-odds, judged at the sensor, that this is the direct sound of an event rather
        than an echo or an unrelated impulse (e.g. :attr:`sed.dsp.onset.Pick.directness`);
        0 (default) = no opinion. The likelihood association adds it to a group's score;
        :func:`locate` ignores it.
    """

    sensor_id: str
    position_m: tuple[float, float, float]
    arrival_time_ns: int
    uncertainty_ns: int = 1_000_000
    label: str = ""
    detection_id: str = ""
    quality: float = 1.0
    directness: float = 0.0


class SolveStatus(enum.StrEnum):
    LOCATED = "located"
    TOO_FEW = "too_few_sensors"
    DEGENERATE = "degenerate_geometry"
    AMBIGUOUS = "ambiguous"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Solution:
    """Result of :func:`locate`.

    Attributes
    ----------
    status : SolveStatus
    position_m : tuple[float, float, float] or None
        Source (x, y, z), m; ``None`` unless ``status`` is ``located``. In the plane
        (``dimensions == "2d"``) z is the mean sensor height, a placeholder.
    origin_time_ns : int or None
        Emission time, UTC ns.
    covariance_m2 : np.ndarray [shape=(2, 2)] or None
        Horizontal (x, y) covariance, m^2.
    uncertainty_m : float or None
        Radius of the 95 % circle (from the ellipse's major axis), m.
    residuals_m : np.ndarray [shape=(n,)]
        ``c (t_i - t0) - |p - s_i|`` per arrival, in the order given, m.
    sensor_ids : tuple of str
    candidates_m : tuple of (x, y, z)
        The exact solutions when ``status`` is ``ambiguous``.
    nearest_sensor_id : str
        The earliest-hit sensor (the source lies in its Voronoi cell).
    dimensions : str
        ``"2d"`` (plane), ``"2.5d"`` (given height) or ``"3d"`` (height solved).
    height_std_m : float or None
        1-sigma of the solved height (``"3d"`` only).
    """

    status: SolveStatus
    position_m: tuple[float, float, float] | None
    origin_time_ns: int | None
    covariance_m2: np.ndarray | None
    uncertainty_m: float | None
    residuals_m: np.ndarray
    sensor_ids: tuple[str, ...]
    candidates_m: tuple[tuple[float, float, float], ...] = ()
    nearest_sensor_id: str = ""
    dimensions: str = "2d"
    height_std_m: float | None = None


def locate(
    arrivals: Sequence[Arrival],
    *,
    temperature_c: float,
    source_z_m: float | None = None,
    solve_z: bool = False,
    robust: bool = True,
    method: str = "ml",
    wind_m_per_s: tuple[float, float] | None = None,
    prefer_m: tuple[float, float, float] | None = None,
) -> Solution:
    """Source position and emission time from the arrivals of one sound at >= 3 sensors.

    Parameters
    ----------
    arrivals : sequence of Arrival
        One per sensor.
    temperature_c : float
        Air temperature, for the speed of sound.
    source_z_m : float, optional
        Source height in the site frame ("2.5D"); ``None`` solves in the horizontal plane.
    solve_z : bool
        Also solve for the height when >= 5 sensors with heights spanning >= 10 m report
        (falls back to the plane or ``source_z_m`` otherwise; see ``Solution.dimensions``).
    robust : bool
        Huber-weight arrivals whose residual exceeds 3 sigma.
    method : {"ml", "mlg"}
        ``"ml"``: the (robust) maximum-likelihood point, refined from the closed-form
        start. ``"mlg"``: the closed-form least-squares point itself (Mathias, Leonardi and
        Galati; ShotSpotter's published solver), for four or more sensors in 2D/2.5D;
        residuals and covariance are evaluated there.
    wind_m_per_s : (float, float), optional
        Horizontal wind velocity (x, y components of where it blows *to*; m/s) in the site
        frame. ``None`` (default): still air.
    prefer_m : (float, float, float), optional
        Three arrivals can fit two points exactly: with this, the one nearer to it (e.g. the
        candidate other evidence singled out) instead of ``AMBIGUOUS``.

    Returns
    -------
    Solution
        ``status`` says whether a point was found; never a fake point.

    Raises
    ------
    GeometryError
        Two arrivals from one sensor, or a non-finite position or time.
    """
    sensor_ids = tuple(a.sensor_id for a in arrivals)
    if len(set(sensor_ids)) != len(sensor_ids):
        repeated = sorted({s for s in sensor_ids if sensor_ids.count(s) > 1})
        raise GeometryError(f"locate: sensors {repeated} give more than one arrival; expected one per sensor")
    sensors = np.array([a.position_m for a in arrivals], dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(sensors)):
        raise GeometryError(f"locate: non-finite sensor position among {sensor_ids}")
    nearest = min(arrivals, key=lambda a: a.arrival_time_ns).sensor_id if arrivals else ""
    empty = Solution(
        status=SolveStatus.TOO_FEW, position_m=None, origin_time_ns=None, covariance_m2=None,
        uncertainty_m=None, residuals_m=np.full(len(arrivals), np.nan), sensor_ids=sensor_ids,
        nearest_sensor_id=nearest, dimensions="2d" if source_z_m is None else "2.5d",
    )  # fmt: skip
    if len(arrivals) < 3:
        return empty
    c = speed_of_sound_m_per_s(temperature_c)
    reference_ns = min(a.arrival_time_ns for a in arrivals)
    ranges_m = np.array([(a.arrival_time_ns - reference_ns) / NS_PER_S * c for a in arrivals])
    sigma_m = np.array([max(a.uncertainty_ns, 1) / NS_PER_S * c for a in arrivals])
    origin = sensors.mean(axis=0)
    local = sensors - origin
    drift = np.zeros(2) if wind_m_per_s is None else np.asarray(wind_m_per_s, dtype=np.float64) / c
    if not np.all(np.isfinite(drift)) or drift.shape != (2,):
        raise GeometryError(f"locate: wind_m_per_s={wind_m_per_s!r}; expected two finite numbers")
    ranges_m = ranges_m + local[:, :2] @ drift

    centred_xy = local[:, :2] - local[:, :2].mean(axis=0)
    if np.linalg.svd(centred_xy, compute_uv=False)[-1] / math.sqrt(len(arrivals)) < _MIN_CROSS_SPREAD_M:
        return dataclasses.replace(empty, status=SolveStatus.DEGENERATE)

    want_3d = solve_z and len(arrivals) >= 5 and np.ptp(sensors[:, 2]) >= _MIN_HEIGHT_SPAN_M
    fixed_z = None if source_z_m is None else source_z_m - origin[2]
    if method not in ("ml", "mlg"):
        raise GeometryError(f"locate: method={method!r}; expected 'ml' or 'mlg'")
    fits = fit_all(local, ranges_m, sigma_m, fixed_z, robust=robust)
    if method == "mlg" and len(arrivals) >= 4 and not solve_z:
        start = closed_form_starts(local, ranges_m, fixed_z)[0]
        closed = refine(local, ranges_m, sigma_m, start, fixed_z, robust=robust, iterations=0)
        fits = [closed] if closed is not None else fits
    if not fits:
        return dataclasses.replace(empty, status=SolveStatus.DEGENERATE)
    if len(arrivals) == 3:
        distinct = distinct_exact(fits)
        if len(distinct) > 1 and prefer_m is not None:
            distinct = [min(distinct, key=lambda f: math.dist(to_site(f.params, origin, fixed_z)[:2], prefer_m[:2]))]
            fits = distinct
        if len(distinct) > 1:
            return dataclasses.replace(
                empty, status=SolveStatus.AMBIGUOUS,
                candidates_m=tuple(to_site(f.params, origin, fixed_z) for f in distinct),
            )  # fmt: skip
    best = min(fits, key=lambda f: f.cost)
    dimensions = "2d" if fixed_z is None else "2.5d"
    if want_3d:
        start3 = np.array([best.params[0], best.params[1], 0.0 if fixed_z is None else fixed_z, best.params[2]])
        fit3 = refine(local, ranges_m, sigma_m, start3, None, robust=robust, solve_z=True)
        if fit3 is not None and fit3.covariance is not None:
            best, dimensions = fit3, "3d"
    if best.covariance is None:
        return dataclasses.replace(empty, status=SolveStatus.DEGENERATE, residuals_m=best.residuals_m)
    covariance = best.covariance[:2, :2]
    x, y = best.params[:2] + origin[:2]
    z = float(best.params[2] + origin[2]) if dimensions == "3d" else placeholder_z(source_z_m, sensors)
    tau_m = best.params[-1] - float(best.params[:2] @ drift)
    return Solution(
        status=SolveStatus.LOCATED,
        position_m=(float(x), float(y), z),
        origin_time_ns=reference_ns + round(tau_m / c * NS_PER_S),
        covariance_m2=covariance,
        uncertainty_m=float(math.sqrt(CHI2_2DOF_95 * max(np.linalg.eigvalsh(covariance).max(), 0.0))),
        residuals_m=best.residuals_m,
        sensor_ids=sensor_ids,
        nearest_sensor_id=nearest,
        dimensions=dimensions,
        height_std_m=float(math.sqrt(best.covariance[2, 2])) if dimensions == "3d" else None,
    )


def error_ellipse(covariance_m2: np.ndarray, *, probability: float = 0.95) -> tuple[float, float, float]:
    """Semi-axes (major, minor), m, and major-axis angle from +x, degrees, of a 2-D covariance."""
    scale = -2.0 * math.log(1.0 - probability)  # chi-square quantile, 2 dof
    values, vectors = np.linalg.eigh(np.asarray(covariance_m2, dtype=np.float64))
    values = np.maximum(values, 0.0)
    angle_deg = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))
    return math.sqrt(scale * values[1]), math.sqrt(scale * values[0]), angle_deg


__all__ = [
    "CHI2_2DOF_95",
    "NS_PER_S",
    "Arrival",
    "Solution",
    "SolveStatus",
    "error_ellipse",
    "locate",
    "speed_of_sound_m_per_s",
]
