"""Numerical core of :func:`sed.fusion.locate.locate`: closed-form starts, damped Gauss-Newton
with Huber weights, and the covariance. Internal; call :func:`~sed.fusion.locate.locate`.

Coordinates here are local (sensor centroid at 0); ``ranges_m`` are ``c (t_i - t_first)``
and ``tau`` is ``c t0`` on the same scale, so all unknowns are in metres.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

#: Huber threshold, in units of an arrival's sigma.
HUBER_K = 3.0
#: Largest accepted condition number of the (scaled) information matrix.
_MAX_CONDITION = 1e10
_MAX_ITERATIONS = 30


@dataclasses.dataclass(frozen=True)
class Fit:
    """A refined solution: parameters, robust cost, residuals (m) and covariance (or None)."""

    params: np.ndarray  # (x, y, tau) or (x, y, z, tau), local frame, tau = c * t0 (m)
    cost: float
    residuals_m: np.ndarray
    covariance: np.ndarray | None


def placeholder_z(source_z_m: float | None, sensors: np.ndarray) -> float:
    return float(np.mean(sensors[:, 2])) if source_z_m is None else float(source_z_m)


def to_site(params: np.ndarray, origin: np.ndarray, fixed_z: float | None) -> tuple[float, float, float]:
    z = origin[2] + (fixed_z or 0.0)
    return (float(params[0] + origin[0]), float(params[1] + origin[1]), float(z))


def distinct_exact(fits: list[Fit]) -> list[Fit]:
    """Exact (zero-cost) fits more than 1 m apart."""
    exact = [f for f in fits if f.cost < 1e-6]
    kept: list[Fit] = []
    for fit in exact:
        if all(np.hypot(*(fit.params[:2] - k.params[:2])) > 1.0 for k in kept):
            kept.append(fit)
    return kept


def _height_terms(local: np.ndarray, fixed_z: float | None) -> np.ndarray:
    return np.zeros(len(local)) if fixed_z is None else (fixed_z - local[:, 2]) ** 2


def closed_form_starts(local: np.ndarray, ranges_m: np.ndarray, fixed_z: float | None) -> list[np.ndarray]:
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


def fit_all(
    local: np.ndarray, ranges_m: np.ndarray, sigma_m: np.ndarray, fixed_z: float | None, *, robust: bool
) -> list[Fit]:
    """Refinements from the closed-form starts; stop early once a fit explains every arrival."""
    fits = []
    for start in closed_form_starts(local, ranges_m, fixed_z):
        fit = refine(local, ranges_m, sigma_m, start, fixed_z, robust=robust)
        if fit is None:
            continue
        fits.append(fit)
        good = bool(np.all(np.abs(fit.residuals_m) <= HUBER_K * sigma_m))
        if len(local) > 3 and good:
            break
    return fits


def exact_triples(xy: np.ndarray, ranges_m: np.ndarray, height_m2: np.ndarray) -> np.ndarray:
    """Exact (x, y, tau) through many triples of arrivals at once.

    ``|p - s_i|^2 = (r_i - tau)^2`` is linear in (x, y, tau) given ``w = x^2 + y^2 - tau^2``;
    substituting back gives a quadratic in w, so up to two solutions per triple.

    Parameters
    ----------
    xy : np.ndarray [shape=(h, 3, 2)]
        Sensor positions of each triple, local frame, m.
    ranges_m : np.ndarray [shape=(h, 3)]
        ``c (t_i - t_ref)``, m.
    height_m2 : np.ndarray [shape=(h, 3)]
        Squared height difference source - sensor (0 in the plane), m^2.

    Returns
    -------
    np.ndarray [shape=(2h, 3)]
        Both roots of every triple (first roots, then second roots); NaN where a root is
        complex, the triple degenerate, or the emission would follow an arrival.
    """
    rhs = ranges_m**2 - (xy**2).sum(axis=-1) - height_m2
    design = np.concatenate([-2.0 * xy, 2.0 * ranges_m[..., None]], axis=-1)
    scale = np.abs(design).max(axis=(1, 2)) if len(design) else np.zeros(0)
    ok = np.abs(np.linalg.det(design)) > 1e-9 * scale**3 if len(design) else np.zeros(0, dtype=bool)
    solutions = np.full((2, len(ranges_m), 3), np.nan)
    if not ok.any():
        return solutions.reshape(-1, 3)
    u = np.linalg.solve(design[ok], rhs[ok][..., None])[..., 0]
    v = np.linalg.solve(design[ok], -np.ones((int(ok.sum()), 3, 1)))[..., 0]
    qa = v[:, 0] ** 2 + v[:, 1] ** 2 - v[:, 2] ** 2
    qb = 2.0 * (u[:, 0] * v[:, 0] + u[:, 1] * v[:, 1] - u[:, 2] * v[:, 2]) - 1.0
    qc = u[:, 0] ** 2 + u[:, 1] ** 2 - u[:, 2] ** 2
    discriminant = qb**2 - 4.0 * qa * qc
    root = np.sqrt(np.where(discriminant >= 0, discriminant, np.nan))
    linear = np.abs(qa) < 1e-12
    safe_qa = np.where(linear, 1.0, qa)
    for k, sign in enumerate((-1.0, 1.0)):
        w = np.where(linear, -qc / np.where(qb == 0, np.nan, qb), (-qb + sign * root) / (2.0 * safe_qa))
        if k == 1:
            w = np.where(linear, np.nan, w)
        candidate = u + w[:, None] * v
        causal = candidate[:, 2] <= ranges_m[ok].min(axis=1) + 1e-6
        candidate[~causal] = np.nan
        solutions[k, ok] = candidate
    return solutions.reshape(-1, 3)


def _real_roots(a: float, b: float, c: float) -> list[float]:
    discriminant = b * b - 4.0 * a * c
    if discriminant < 0:
        return []
    root = math.sqrt(discriminant)
    return [(-b - root) / (2.0 * a), (-b + root) / (2.0 * a)]


def refine(
    local: np.ndarray,
    ranges_m: np.ndarray,
    sigma_m: np.ndarray,
    start: np.ndarray,
    fixed_z: float | None,
    *,
    robust: bool,
    solve_z: bool = False,
    iterations: int = _MAX_ITERATIONS,
) -> Fit | None:
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
        huber = np.minimum(1.0, HUBER_K / np.maximum(z, 1e-12)) if robust else np.ones_like(z)
        return huber / sigma_m**2

    def cost_of(residual: np.ndarray) -> float:
        z = np.abs(residual) / sigma_m
        if not robust:
            return float(0.5 * (z**2).sum())
        return float(np.where(z <= HUBER_K, 0.5 * z**2, HUBER_K * z - 0.5 * HUBER_K**2).sum())

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
    return Fit(params=params, cost=cost, residuals_m=residual, covariance=_covariance(jac, residual, weights))


def _covariance(
    jac: np.ndarray, residual: np.ndarray, weights: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray | None:
    w = weights(residual)
    information = jac.T @ (jac * w[:, None])
    scale = np.sqrt(np.diag(information))
    if not np.all(scale > 0):
        return None
    normalised = information / np.outer(scale, scale)
    # Symmetric positive semi-definite: its condition number is the ratio of its extreme eigenvalues
    # (eigvalsh is several times cheaper than the SVD behind np.linalg.cond).
    eigenvalues = np.linalg.eigvalsh(normalised)
    if not eigenvalues[0] > 0 or eigenvalues[-1] / eigenvalues[0] > _MAX_CONDITION:
        return None
    covariance = np.linalg.inv(normalised) / np.outer(scale, scale)
    dof = len(residual) - jac.shape[1]
    if dof > 0:
        reduced_chi2 = float((w * residual**2).sum()) / dof
        covariance = covariance * max(1.0, reduced_chi2)
    return covariance


__all__ = [
    "HUBER_K",
    "Fit",
    "closed_form_starts",
    "distinct_exact",
    "exact_triples",
    "fit_all",
    "placeholder_z",
    "refine",
    "to_site",
]
