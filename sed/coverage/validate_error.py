"""Position-error half of ``sedcity coverage validate``: our solver's timing residuals on
ShotSpotter's tuples, the error ``sed bench localize`` measures, and the error
:mod:`sed.coverage.locate_error` predicts for the same geometry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sed.bench.pittsburgh import LiveFireTest
from sed.coverage.locate_error import error_95_m, fisher_increment, radius_factor
from sed.fusion.locate import Arrival, SolveStatus, locate
from sed.units import speed_of_sound_m_per_s

if TYPE_CHECKING:
    from sed.coverage.validate import Observations

#: Smartphone GPS accuracy of the survey point (README-shotspotter.md), read as a 68 % radius, m.
SURVEY_ACCURACY_68_M = 2.5
_RADIUS_68_PER_SIGMA = float(np.sqrt(-2.0 * np.log(1.0 - 0.6827)))


def sensor_sites(tests: list[LiveFireTest]) -> dict[str, tuple[float, float, float]]:
    """Every sensor that reported a pulse in any of ``tests`` (one firing position), xyz m."""
    return {p.serial: p.position_m for t in tests for p in t.pulses}


def timing_sigma_s(tests: list[LiveFireTest]) -> dict[str, float]:
    """Per firing position, the robust 1-sigma timing error of our solver's residuals on
    ShotSpotter's pulse tuples (first pulse per sensor): 1.4826 MAD, degrees of freedom
    corrected (three unknowns per shot), s."""
    residuals: dict[str, list[float]] = {}
    unknowns: dict[str, int] = {}
    for test in tests:
        c = speed_of_sound_m_per_s(test.temperature_c)
        by_uuid = {p.uuid: p for p in test.pulses}
        for uuids in test.shot_pulse_uuids:
            first: dict[str, Arrival] = {}
            for pulse in sorted((by_uuid[u] for u in uuids if u in by_uuid), key=lambda p: p.arrival_time_ns):
                first.setdefault(
                    pulse.serial,
                    Arrival(sensor_id=pulse.serial, position_m=pulse.position_m, arrival_time_ns=pulse.arrival_time_ns),
                )
            solution = locate(list(first.values()), temperature_c=test.temperature_c)
            if solution.status is not SolveStatus.LOCATED:
                continue
            residuals.setdefault(test.firing_position, []).extend((solution.residuals_m / c).tolist())
            unknowns[test.firing_position] = unknowns.get(test.firing_position, 0) + 3
    out = {}
    for fp, values in residuals.items():
        r = np.asarray(values)
        out[fp] = float(1.4826 * np.median(np.abs(r)) * np.sqrt(r.size / max(r.size - unknowns[fp], 1)))
    return out


def measured_errors(tests: list[LiveFireTest], dataset: Path) -> dict[str, dict[str, float | int | None]]:
    """``sed bench localize`` in pulses mode with its default settings: per firing position the
    95th percentile of the 2-D error about the survey point and about the shots' centroid."""
    # the bench's own run, settings and scoring: no second solver here
    from sed.bench.localize import located_pulse_shots

    rows = located_pulse_shots(tests, dataset=dataset)
    survey = {t.firing_position: t.survey_m for t in tests}
    out: dict[str, dict[str, float | int | None]] = {}
    for fp in sorted(survey):
        located = [r for r in rows if r.firing_position == fp and r.located]
        xy = np.array([[r.x_m, r.y_m] for r in located], dtype=np.float64).reshape(-1, 2)
        about_survey = np.hypot(*(xy - np.array(survey[fp][:2])).T)
        about_centroid = np.hypot(*(xy - xy.mean(axis=0)).T) if len(located) else np.array([])
        out[fp] = {
            "fired": sum(r.firing_position == fp for r in rows),
            "located": len(located),
            "error_95_m": float(np.quantile(about_survey, 0.95)) if len(located) else None,
            "spread_95_m": float(np.quantile(about_centroid, 0.95)) if len(located) else None,
            "mean_sensors": float(np.mean([len(r.sensors) for r in located])) if located else None,
        }
    return out


def predicted_errors(
    tests: list[LiveFireTest], obs: Observations, p_held_out: np.ndarray, sigma_s: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Per firing position: the p-weighted Cramér-Rao 95 % radius at the survey point (timing
    sigma pooled from the other firing positions), and that bound with the survey error."""
    out: dict[str, dict[str, float]] = {}
    survey_sigma_m = SURVEY_ACCURACY_68_M / _RADIUS_68_PER_SIGMA
    for fp in sorted(set(obs.firing_position.tolist())):
        fp_tests = [t for t in tests if t.firing_position == fp]
        sites = sensor_sites(fp_tests)
        cell = np.array([fp_tests[0].survey_m[:2]])
        others = [v for k, v in sigma_s.items() if k != fp]
        sigma = float(np.mean(others)) if others else sigma_s[fp]
        c = speed_of_sound_m_per_s(float(np.mean([t.temperature_c for t in fp_tests])))
        rows = obs.firing_position == fp
        fisher = np.zeros((1, 3, 3))
        for serial, xyz in sites.items():
            mine = rows & (obs.sensor == serial)
            if not np.any(mine):
                continue
            p = np.array([float(p_held_out[mine].mean())])
            fisher += fisher_increment(
                cell_xy_m=cell, sensor_xy_m=np.array(xyz[:2]), p=p, timing_sigma_s=sigma, speed_of_sound_m_s=c
            )
        bound_m = float(error_95_m(fisher=fisher)[0])
        covariance = np.linalg.inv(fisher[0])[:2, :2] + survey_sigma_m**2 * np.eye(2)
        small, large = np.linalg.eigvalsh(covariance)
        with_survey_m = float(np.sqrt(large) * radius_factor(variance_ratio=float(small / large)))
        out[fp] = {
            "timing_sigma_s": sigma,
            "expected_sensors": float(sum(p_held_out[rows & (obs.sensor == s)].mean() for s in set(obs.sensor[rows]))),
            "bound_95_m": bound_m,
            "with_survey_95_m": with_survey_m,
        }
    return out


__all__ = ["SURVEY_ACCURACY_68_M", "measured_errors", "predicted_errors", "sensor_sites", "timing_sigma_s"]
