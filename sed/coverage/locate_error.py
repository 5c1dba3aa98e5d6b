"""How many sensors hear a place, and how well the ones that do can locate it.

Incremental by design: the planner's greedy search adds one candidate site at a time, so
both the count distribution and the Fisher information are updated per sensor, never
recomputed from scratch.

* **Count.** The number N of sensors that detect an event at a cell is Poisson-binomial in
  the sensors' detection probabilities; only P(N=0), P(N=1), P(N=2) are kept, since a
  position needs N >= 3 (P(N>=3) = 1 - their sum).
* **Position error.** Time difference of arrival with unknown emission time ``t0``: sensor i
  at ``s_i`` hears at ``t_i = t0 + |x - s_i| / c + e_i``, ``e_i ~ N(0, sigma^2)``. Its Fisher
  information about ``theta = (x, y, t0)`` is ``g g^T / sigma^2`` with
  ``g = ((x - s_i) / (c r_i), 1)``. It takes part only when it detects, so its expected
  information is ``p_i g g^T / sigma^2`` (the "p-weighted FIM"), summed over sensors.
* **95 % radius.** The Cramér-Rao covariance of (x, y) is the Schur complement's inverse,
  ``C = (F_xy - f f^T / F_tt)^-1``. With eigenvalues ``l1 >= l2`` the horizontal error is
  Gaussian with those variances; the 95 % radius is the R with
  ``P(l1 z1^2 + l2 z2^2 <= R^2) = 0.95`` (z standard normal), computed exactly for the
  ratio l2 / l1 (tabulated once and interpolated): ``R = sqrt(l1) k(l2 / l1)``, from
  k(0) = 1.960 (all error on one axis) to k(1) = 2.448 (``sqrt(-2 ln 0.05)``, circular).

The expected FIM averages information, not covariance, so for cells heard by few sensors
the bound is optimistic (Jensen: ``E[F^-1] >= (E[F])^-1``); the planner pairs it with
P(N >= 3), which carries that uncertainty.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import optimize, special

#: Probability content of the reported radius.
PROBABILITY_95 = 0.95
#: 1-sigma arrival-time error of one sensor used by default, s: measured, not assumed. The
#: robust (1.4826 MAD) residual scale of our solver on ShotSpotter's Pittsburgh pulse tuples
#: is 4.9-10.4 ms per firing position, 6.8 ms on average (``sedcity coverage validate``,
#: ``timing_sigma_s`` in ``benchmarks/results/coverage_validate.json``): pulse picks at 1 ms
#: resolution on paths bent around buildings, so it holds picking and propagation, not only clocks.
DEFAULT_TIMING_SIGMA_S = 0.007
#: Distances below this count as "at the sensor": the direction is undefined, m.
_MIN_RANGE_M = 1e-6
#: The xy information's smaller eigenvalue below this share of the larger one: the geometry
#: cannot fix the position along one axis (sensors on a line, or fewer than three).
_MIN_EIGEN_RATIO = 1e-9
_N_RATIO_STEPS = 201


def count_distribution(*, p: np.ndarray) -> np.ndarray:
    """P(N = 0), P(N = 1), P(N = 2) of the number of sensors that detect.

    Parameters
    ----------
    p : np.ndarray [shape=(n_cells, n_sensors)], each in [0, 1]
        Detection probability of each sensor at each cell (independent).

    Returns
    -------
    np.ndarray [shape=(n_cells, 3), dtype=float64]
        ``P(N >= 3) = 1 - sum`` along the last axis.
    """
    p = np.asarray(p, dtype=np.float64)
    dist = np.zeros((p.shape[0], 3))
    dist[:, 0] = 1.0
    for j in range(p.shape[1]):
        dist = add_to_count(dist=dist, p=p[:, j])
    return dist


def add_to_count(*, dist: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The count distribution after adding one sensor (Poisson-binomial recursion).

    Parameters
    ----------
    dist : np.ndarray [shape=(n_cells, 3)]
        P(N=0), P(N=1), P(N=2) before.
    p : np.ndarray [shape=(n_cells,)], each in [0, 1]
        The new sensor's detection probability at each cell.

    Returns
    -------
    np.ndarray [shape=(n_cells, 3), dtype=float64], a new array
    """
    p = np.asarray(p, dtype=np.float64)
    q = 1.0 - p
    out = np.empty_like(dist, dtype=np.float64)
    out[:, 0] = dist[:, 0] * q
    out[:, 1] = dist[:, 1] * q + dist[:, 0] * p
    out[:, 2] = dist[:, 2] * q + dist[:, 1] * p
    return out


def fisher_increment(
    *,
    cell_xy_m: np.ndarray,
    sensor_xy_m: np.ndarray,
    p: np.ndarray,
    timing_sigma_s: float,
    speed_of_sound_m_s: float = 343.0,
) -> np.ndarray:
    """Expected Fisher information about (x, y, emission time) from one sensor.

    Parameters
    ----------
    cell_xy_m : np.ndarray [shape=(n_cells, 2)]
        Source positions (x east, y north), m.
    sensor_xy_m : np.ndarray [shape=(2,)]
        The sensor's position, m.
    p : np.ndarray [shape=(n_cells,)], each in [0, 1]
        Its detection probability at each cell (the weight of its information).
    timing_sigma_s : float > 0
        1-sigma error of its arrival time, s.
    speed_of_sound_m_s : float > 0

    Returns
    -------
    np.ndarray [shape=(n_cells, 3, 3), dtype=float64]
        Rows/columns (x [m], y [m], t0 [s]): units 1/m^2, 1/(m s), 1/s^2. A sensor at the
        cell itself adds information on t0 only.
    """
    delta = np.asarray(cell_xy_m, dtype=np.float64) - np.asarray(sensor_xy_m, dtype=np.float64)
    range_m = np.hypot(delta[:, 0], delta[:, 1])
    # d t_i / d(x, y) = unit vector from the sensor to the source over c; d t_i / d t0 = 1
    scale = np.where(range_m > _MIN_RANGE_M, 1.0 / (speed_of_sound_m_s * np.maximum(range_m, _MIN_RANGE_M)), 0.0)
    g = np.empty((delta.shape[0], 3))
    g[:, :2] = delta * scale[:, None]
    g[:, 2] = 1.0
    weight = np.asarray(p, dtype=np.float64) / timing_sigma_s**2
    return weight[:, None, None] * g[:, :, None] * g[:, None, :]


def error_95_m(*, fisher: np.ndarray) -> np.ndarray:
    """Predicted 95 % horizontal position error (Cramér-Rao bound), m.

    Parameters
    ----------
    fisher : np.ndarray [shape=(n_cells, 3, 3)]
        Summed :func:`fisher_increment` of the sensors.

    Returns
    -------
    np.ndarray [shape=(n_cells,), dtype=float64], m
        Radius of the circle about the true position holding 95 % of the bound's Gaussian
        error; ``inf`` where the information cannot fix (x, y): no sensors, or all on a line.
    """
    f = np.asarray(fisher, dtype=np.float64)
    f_tt = f[:, 2, 2]
    has_time = f_tt > 0.0
    inv_tt = np.where(has_time, 1.0 / np.where(has_time, f_tt, 1.0), 0.0)
    # Schur complement: information about (x, y) once t0 is estimated too
    a = f[:, 0, 0] - f[:, 0, 2] ** 2 * inv_tt
    b = f[:, 0, 1] - f[:, 0, 2] * f[:, 1, 2] * inv_tt
    d = f[:, 1, 1] - f[:, 1, 2] ** 2 * inv_tt
    half_trace = 0.5 * (a + d)
    root = np.sqrt(np.maximum((0.5 * (a - d)) ** 2 + b**2, 0.0))
    info_max = half_trace + root
    info_min = half_trace - root
    observable = has_time & (info_max > 0.0) & (info_min > _MIN_EIGEN_RATIO * info_max)
    safe_min = np.where(observable, info_min, 1.0)
    safe_max = np.where(observable, info_max, 1.0)
    # covariance eigenvalues are the reciprocals: the largest variance is 1 / info_min
    ratio = safe_min / safe_max
    radius = _radius_factors_table()
    k = np.interp(ratio, radius[0], radius[1])
    return np.where(observable, k / np.sqrt(safe_min), np.inf)


def radius_factor(*, variance_ratio: float, probability: float = PROBABILITY_95) -> float:
    """k with ``P(z1^2 + ratio z2^2 <= k^2) = probability``, z standard normal (exact).

    Parameters
    ----------
    variance_ratio : float in [0, 1]
        Smaller over larger variance of the two axes.
    probability : float in (0, 1)

    Returns
    -------
    float
        The radius in units of the larger axis's standard deviation.
    """
    # integrate over z2 on a fine grid: P = E_z2[ erf( sqrt((k^2 - ratio z2^2) / 2) ) ]
    z2 = np.linspace(-9.0, 9.0, 3601)
    weight = np.exp(-0.5 * z2**2) / np.sqrt(2.0 * np.pi) * (z2[1] - z2[0])

    def shortfall(k: float) -> float:
        inside = np.maximum(k**2 - variance_ratio * z2**2, 0.0)
        return float(np.sum(weight * special.erf(np.sqrt(inside / 2.0)))) - probability

    return float(optimize.brentq(shortfall, 0.0, 10.0, xtol=1e-12))


@functools.cache
def _radius_factors_table() -> tuple[np.ndarray, np.ndarray]:
    ratios = np.linspace(0.0, 1.0, _N_RATIO_STEPS)
    return ratios, np.array([radius_factor(variance_ratio=float(r)) for r in ratios])


__all__ = [
    "DEFAULT_TIMING_SIGMA_S",
    "add_to_count",
    "count_distribution",
    "error_95_m",
    "fisher_increment",
    "radius_factor",
]
