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
from collections.abc import Callable, Sequence

import numpy as np

from sed.errors import GeometryError

#: Chi-square quantile, 2 degrees of freedom, 95 %: radius^2 of the 95 % circle in sigma^2 units.
CHI2_2DOF_95 = 5.991464547107979
NS_PER_S = 1_000_000_000
#: Huber threshold, in units of an arrival's sigma.
_HUBER_K = 3.0
#: Sensors whose horizontal spread across their main axis is below this are "on a line", m.
_MIN_CROSS_SPREAD_M = 1.0
#: Sensor heights must span at least this to solve for the source height, m.
_MIN_HEIGHT_SPAN_M = 10.0
#: Largest accepted condition number of the (scaled) information matrix.
_MAX_CONDITION = 1e10
_MAX_ITERATIONS = 30


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
    quality : float > 0
        Strength of the arrival on a dB-like scale (e.g. the pick's SNR in dB). Association
        prefers groups of high quality, and treats an arrival that follows a not much
        weaker one (within 6 units) of its sensor within 0.3 s as a possible echo.
        :func:`locate` ignores it.
    """

    sensor_id: str
    position_m: tuple[float, float, float]
    arrival_time_ns: int
    uncertainty_ns: int = 1_000_000
    label: str = ""
    detection_id: str = ""
    quality: float = 1.0


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

    centred_xy = local[:, :2] - local[:, :2].mean(axis=0)
    if np.linalg.svd(centred_xy, compute_uv=False)[-1] / math.sqrt(len(arrivals)) < _MIN_CROSS_SPREAD_M:
        return dataclasses.replace(empty, status=SolveStatus.DEGENERATE)

    want_3d = solve_z and len(arrivals) >= 5 and np.ptp(sensors[:, 2]) >= _MIN_HEIGHT_SPAN_M
    fixed_z = None if source_z_m is None else source_z_m - origin[2]
    if method not in ("ml", "mlg"):
        raise GeometryError(f"locate: method={method!r}; expected 'ml' or 'mlg'")
    fits = _fits(local, ranges_m, sigma_m, fixed_z, robust=robust)
    if method == "mlg" and len(arrivals) >= 4 and not solve_z:
        start = _closed_form_starts(local, ranges_m, fixed_z)[0]
        closed = _refine(local, ranges_m, sigma_m, start, fixed_z, robust=robust, iterations=0)
        fits = [closed] if closed is not None else fits
    if not fits:
        return dataclasses.replace(empty, status=SolveStatus.DEGENERATE)
    if len(arrivals) == 3:
        distinct = _distinct(fits)
        if len(distinct) > 1:
            return dataclasses.replace(
                empty, status=SolveStatus.AMBIGUOUS,
                candidates_m=tuple(_to_site(f.params, origin, fixed_z) for f in distinct),
            )  # fmt: skip
    best = min(fits, key=lambda f: f.cost)
    dimensions = "2d" if fixed_z is None else "2.5d"
    if want_3d:
        start3 = np.array([best.params[0], best.params[1], 0.0 if fixed_z is None else fixed_z, best.params[2]])
        fit3 = _refine(local, ranges_m, sigma_m, start3, None, robust=robust, solve_z=True)
        if fit3 is not None and fit3.covariance is not None:
            best, dimensions = fit3, "3d"
    if best.covariance is None:
        return dataclasses.replace(empty, status=SolveStatus.DEGENERATE, residuals_m=best.residuals_m)
    covariance = best.covariance[:2, :2]
    x, y = best.params[:2] + origin[:2]
    z = float(best.params[2] + origin[2]) if dimensions == "3d" else _placeholder_z(source_z_m, sensors)
    tau_m = best.params[-1]
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


@dataclasses.dataclass(frozen=True)
class _Fit:
    params: np.ndarray  # (x, y, tau) or (x, y, z, tau), local frame, tau = c * t0 (m)
    cost: float
    residuals_m: np.ndarray
    covariance: np.ndarray | None


def _placeholder_z(source_z_m: float | None, sensors: np.ndarray) -> float:
    return float(np.mean(sensors[:, 2])) if source_z_m is None else float(source_z_m)


def _to_site(params: np.ndarray, origin: np.ndarray, fixed_z: float | None) -> tuple[float, float, float]:
    z = origin[2] + (fixed_z or 0.0)
    return (float(params[0] + origin[0]), float(params[1] + origin[1]), float(z))


def _distinct(fits: list[_Fit]) -> list[_Fit]:
    """Exact (zero-cost) fits more than 1 m apart."""
    exact = [f for f in fits if f.cost < 1e-6]
    kept: list[_Fit] = []
    for fit in exact:
        if all(np.hypot(*(fit.params[:2] - k.params[:2])) > 1.0 for k in kept):
            kept.append(fit)
    return kept


def _height_terms(local: np.ndarray, fixed_z: float | None) -> np.ndarray:
    return np.zeros(len(local)) if fixed_z is None else (fixed_z - local[:, 2]) ** 2


def _closed_form_starts(local: np.ndarray, ranges_m: np.ndarray, fixed_z: float | None) -> list[np.ndarray]:
    """Starting points (x, y, tau) from the linearised equations.

    ``|p - s_i|^2 = (r_i - tau)^2`` expands to
    ``-2 x x_i - 2 y y_i + 2 r_i tau + w = r_i^2 - x_i^2 - y_i^2 - h_i`` with
    ``w = x^2 + y^2 - tau^2`` and ``h_i`` the squared height difference (2.5D).
    """
    xy = local[:, :2]
    rhs = ranges_m**2 - (xy**2).sum(axis=1) - _height_terms(local, fixed_z)
    design = np.column_stack([-2.0 * xy, 2.0 * ranges_m, np.ones(len(local))])
    starts: list[np.ndarray] = []
    if len(local) >= 4:
        solution, *_ = np.linalg.lstsq(design, rhs, rcond=None)
        if np.all(np.isfinite(solution)):
            starts.append(solution[:3])
    # Exact solutions through three sensors: the earliest three (well spread) or all three.
    order = np.argsort(ranges_m)[:3]
    a3 = design[order, :3]
    if abs(np.linalg.det(a3)) > 1e-9 * max(1.0, float(np.abs(a3).max())) ** 3:
        u = np.linalg.solve(a3, rhs[order])
        v = np.linalg.solve(a3, -np.ones(3))
        # w = x^2 + y^2 - tau^2 with (x, y, tau) = u + w v: a quadratic in w.
        qa = v[0] ** 2 + v[1] ** 2 - v[2] ** 2
        qb = 2.0 * (u[0] * v[0] + u[1] * v[1] - u[2] * v[2]) - 1.0
        qc = u[0] ** 2 + u[1] ** 2 - u[2] ** 2
        roots = [-qc / qb] if abs(qa) < 1e-12 else _real_roots(qa, qb, qc)
        for w in roots:
            candidate = u + w * v
            if candidate[2] <= ranges_m.min() + 1e-6:  # emitted before the first arrival
                starts.append(candidate)
    # Fallbacks: beside the first-hit sensor and at the centroid, emitted a little earlier.
    first = int(np.argmin(ranges_m))
    starts.append(np.array([xy[first, 0], xy[first, 1], -1.0]))
    starts.append(np.array([0.0, 0.0, -float(np.ptp(ranges_m))]))
    return starts


def _fits(
    local: np.ndarray, ranges_m: np.ndarray, sigma_m: np.ndarray, fixed_z: float | None, *, robust: bool
) -> list[_Fit]:
    """Refinements from the closed-form starts; stop early once a fit explains every arrival."""
    fits = []
    for start in _closed_form_starts(local, ranges_m, fixed_z):
        fit = _refine(local, ranges_m, sigma_m, start, fixed_z, robust=robust)
        if fit is None:
            continue
        fits.append(fit)
        good = bool(np.all(np.abs(fit.residuals_m) <= _HUBER_K * sigma_m))
        if len(local) > 3 and good:
            break
    return fits


def _real_roots(a: float, b: float, c: float) -> list[float]:
    discriminant = b * b - 4.0 * a * c
    if discriminant < 0:
        return []
    root = math.sqrt(discriminant)
    return [(-b - root) / (2.0 * a), (-b + root) / (2.0 * a)]


def _refine(
    local: np.ndarray,
    ranges_m: np.ndarray,
    sigma_m: np.ndarray,
    start: np.ndarray,
    fixed_z: float | None,
    *,
    robust: bool,
    solve_z: bool = False,
    iterations: int = _MAX_ITERATIONS,
) -> _Fit | None:
    """Damped Gauss-Newton (Levenberg-Marquardt) with Huber IRLS weights, from ``start``."""
    n_params = 4 if solve_z else 3
    params = np.array(start, dtype=np.float64)
    height = _height_terms(local, fixed_z)

    def model(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        delta = p[:2] - local[:, :2]
        squared = (delta**2).sum(axis=1) + (((p[2] - local[:, 2]) ** 2) if solve_z else height)
        distance = np.sqrt(np.maximum(squared, 1e-12))
        residual = (ranges_m - p[-1]) - distance
        jac = np.empty((len(local), n_params))
        jac[:, :2] = -delta / distance[:, None]
        if solve_z:
            jac[:, 2] = -(p[2] - local[:, 2]) / distance
        jac[:, -1] = -1.0
        return residual, jac

    def weights(residual: np.ndarray) -> np.ndarray:
        z = np.abs(residual) / sigma_m
        huber = np.minimum(1.0, _HUBER_K / np.maximum(z, 1e-12)) if robust else np.ones_like(z)
        return huber / sigma_m**2

    def cost_of(residual: np.ndarray) -> float:
        z = np.abs(residual) / sigma_m
        if not robust:
            return float(0.5 * (z**2).sum())
        return float(np.where(z <= _HUBER_K, 0.5 * z**2, _HUBER_K * z - 0.5 * _HUBER_K**2).sum())

    residual, jac = model(params)
    cost = cost_of(residual)
    damping = 1e-3
    for _ in range(iterations):
        w = weights(residual)
        information = jac.T @ (jac * w[:, None])
        gradient = jac.T @ (w * residual)
        accepted = False
        for _ in range(10):
            system = information + damping * np.diag(np.diag(information) + 1e-9)
            try:
                step = -np.linalg.solve(system, gradient)
            except np.linalg.LinAlgError:
                damping *= 10.0
                continue
            trial = params + step
            trial_residual, trial_jac = model(trial)
            trial_cost = cost_of(trial_residual)
            if np.isfinite(trial_cost) and trial_cost <= cost:
                params, residual, jac, cost = trial, trial_residual, trial_jac, trial_cost
                damping = max(damping / 10.0, 1e-9)
                accepted = True
                break
            damping *= 10.0
        if not accepted or float(np.abs(step[:2]).max()) < 1e-5:
            break
    if not np.all(np.isfinite(params)):
        return None
    return _Fit(params=params, cost=cost, residuals_m=residual, covariance=_covariance(jac, residual, weights))


def _covariance(
    jac: np.ndarray, residual: np.ndarray, weights: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray | None:
    w = weights(residual)
    information = jac.T @ (jac * w[:, None])
    scale = np.sqrt(np.diag(information))
    if not np.all(scale > 0):
        return None
    normalised = information / np.outer(scale, scale)
    if np.linalg.cond(normalised) > _MAX_CONDITION:
        return None
    covariance = np.linalg.inv(normalised) / np.outer(scale, scale)
    dof = len(residual) - jac.shape[1]
    if dof > 0:
        reduced_chi2 = float((w * residual**2).sum()) / dof
        covariance = covariance * max(1.0, reduced_chi2)
    return covariance


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
