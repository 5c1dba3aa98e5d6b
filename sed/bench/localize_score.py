"""Scoring of located shots against the Pittsburgh survey and ShotSpotter's own grouping.

Kept apart from :mod:`sed.bench.localize` (the command) so that the scoring rules can be
read, and tested, on their own.

* **Reference shots.** Each fired round is a shot. ShotSpotter's pulse tuple for it, solved
  with our solver, gives its emission time; that time is used *only* to tell which of our
  groups is which shot (groups and shots are paired by emission time, within
  ``MATCH_WINDOW_NS``, nearest first). Rounds without a tuple (one in FP1-FP5: test_055
  has tuples for two of its three rounds) come last in index order; the firing cadence
  gives them a slot one mean round spacing before the first or after the last referenced
  round, and the group nearest a free slot, within half a spacing, is theirs. Positions
  are always scored against the survey point, never used to match.
* **Errors** are horizontal (2-D) distances to the survey point, m.
* **Association** (pulses mode): a pulse is identified by (sensor, arrival time) (the
  pulse file repeats some pulses under two ids). Recall is the share of tuple pulses that
  our matched group holds; precision the share of our grouped pulses that are in the
  tuple of the shot the group was matched to (pulses of unmatched groups count against it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from sed.bench.pittsburgh import LiveFireTest
from sed.fusion.associate import Group
from sed.fusion.locate import Arrival, Solution, SolveStatus, error_ellipse, locate
from sed.units import NS_PER_S

#: ShotSpotter TN 098 Table III, MLG, 2D: shots located / fired, mean sensors per shot,
#: survey error (2-D distance of the shots' centroid to the survey point, as the text says;
#: the caption calls it RMS), m, and the square roots of the eigenvalues of the shots'
#: covariance (sigma_1, sigma_2), m. ``rms_error_m`` = sqrt(eps^2 + sigma_1^2 + sigma_2^2):
#: the per-shot RMS distance to the survey point those figures imply.
SHOTSPOTTER_MLG_2D = {
    fp: {
        "located": 36,
        "fired": 36,
        "mean_sensors": n,
        "survey_error_m": eps,
        "sigma_1_m": s1,
        "sigma_2_m": s2,
        "rms_error_m": round(math.sqrt(eps**2 + s1**2 + s2**2), 2),
    }
    for fp, n, eps, s1, s2 in (
        ("FP1", 14.9, 2.94, 0.55, 0.42),
        ("FP2", 11.2, 4.03, 1.87, 0.31),
        ("FP3", 11.2, 0.29, 1.49, 0.23),
        ("FP4", 10.8, 4.55, 1.40, 0.60),
        ("FP5", 11.2, 4.20, 1.97, 0.67),
    )
}
#: TN 098: share of shots within 15 m with six participating sensors (random sub-arrays).
SHOTSPOTTER_WITHIN_15M_SIX_SENSORS = 0.963
#: Our group and a reference shot are the same shot if their emission times are this close.
MATCH_WINDOW_NS = 250_000_000
#: Issue 10's targets for Pittsburgh through the node: pulses RMS within ShotSpotter's MLG
#: survey error + this at every firing position, m; audio located share, median error, m,
#: and share within 15 m over all rounds.
PULSES_RMS_MARGIN_M = 1.0
AUDIO_MIN_LOCATED = 0.95
AUDIO_MAX_MEDIAN_M = 6.0
AUDIO_MIN_WITHIN_15M = 0.90


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReferenceShot:
    index: int
    origin_time_ns: int | None
    pulse_keys: frozenset[tuple[str, int]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShotResult:
    """One fired round and what we made of it (JSON row)."""

    test_id: str
    firing_position: str
    shot_index: int
    located: bool
    x_m: float | None = None
    y_m: float | None = None
    z_m: float | None = None
    origin_time_ns: int | None = None
    ellipse_95_m: tuple[float, float, float] | None = None  # semi-major, semi-minor, angle deg
    uncertainty_95_m: float | None = None
    sensors: tuple[str, ...] = ()
    error_m: float | None = None
    located_after_s: float | None = None  # first detection received -> incident committed located
    tuple_pulses: int = 0
    group_pulses: int = 0
    shared_pulses: int | None = None  # pulses mode only
    audio_coverage: int | None = None  # audio mode: recordings holding the shot


def reference_shots(test: LiveFireTest) -> list[ReferenceShot]:
    """One per fired round, in firing order; emission times from ShotSpotter's tuples."""
    by_uuid = {p.uuid: p for p in test.pulses}
    shots = []
    for index in range(test.num_rounds):
        uuids = test.shot_pulse_uuids[index] if index < len(test.shot_pulse_uuids) else ()
        pulses = sorted((by_uuid[u] for u in uuids if u in by_uuid), key=lambda p: p.arrival_time_ns)
        first_per_sensor = {}
        for pulse in pulses:
            first_per_sensor.setdefault(pulse.serial, pulse)
        arrivals = [
            Arrival(sensor_id=p.serial, position_m=p.position_m, arrival_time_ns=p.arrival_time_ns)
            for p in first_per_sensor.values()
        ]
        solution = locate(arrivals, temperature_c=test.temperature_c) if arrivals else None
        origin = solution.origin_time_ns if solution and solution.status is SolveStatus.LOCATED else None
        keys = frozenset((p.serial, p.arrival_time_ns) for p in pulses)
        shots.append(ReferenceShot(index=index, origin_time_ns=origin, pulse_keys=keys))
    return shots


def match(groups: list[Group], shots: list[ReferenceShot]) -> tuple[dict[int, Group], list[Group]]:
    """Pair groups with shots by emission time (closest pairs first, one-to-one); rounds
    without a reference time are paired by firing cadence (see the module docstring)."""
    timed = [s for s in shots if s.origin_time_ns is not None]
    matched: dict[int, Group] = {}
    used: set[int] = set()
    _pair(groups, [(s.index, s.origin_time_ns) for s in timed], MATCH_WINDOW_NS, matched, used)  # type: ignore[misc]
    untimed = [s.index for s in shots if s.origin_time_ns is None]
    if untimed and timed:
        times = sorted(s.origin_time_ns for s in timed)  # type: ignore[type-var]
        spacing_ns = (times[-1] - times[0]) // (len(times) - 1) if len(times) > 1 else NS_PER_S
        slots = [times[0] - spacing_ns, times[-1] + spacing_ns]
        for index in untimed:
            before = len(matched)
            _pair(groups, [(index, slot) for slot in slots], spacing_ns // 2, matched, used)
            if len(matched) > before:
                slots.remove(min(slots, key=lambda t: abs(t - matched[index].solution.origin_time_ns)))  # type: ignore[operator]
    return matched, [g for gi, g in enumerate(groups) if gi not in used]


def _pair(
    groups: list[Group], slots: list[tuple[int, int]], window_ns: int, matched: dict[int, Group], used: set[int]
) -> None:
    """Greedily pair (shot index, emission time) slots with unused groups, closest first."""
    pairs = sorted(
        (abs(g.solution.origin_time_ns - t), gi, si)
        for gi, g in enumerate(groups)
        for si, t in slots
        if g.solution.origin_time_ns is not None
    )
    for gap, gi, si in pairs:
        if gap > window_ns or gi in used or si in matched:
            continue
        matched[si] = groups[gi]
        used.add(gi)


def score_test(
    test: LiveFireTest,
    groups: list[Group],
    *,
    pulse_keys: dict[str, tuple[str, int]] | None = None,
    located_after_s: dict[int, float] | None = None,
) -> tuple[list[ShotResult], list[Group]]:
    """Per fired round a :class:`ShotResult`; plus our groups that match no round.

    ``pulse_keys`` maps an arrival's ``detection_id`` to its (sensor, time) key (pulses
    mode); ``located_after_s`` maps ``id(group)`` to how long after its first detection
    reached the node it was committed located, s.
    """
    shots = reference_shots(test)
    matched, unmatched = match(groups, shots)
    results = []
    for shot in shots:
        group = matched.get(shot.index)
        base = {"test_id": test.test_id, "firing_position": test.firing_position, "shot_index": shot.index}
        if group is None:
            results.append(ShotResult(**base, located=False, tuple_pulses=len(shot.pulse_keys)))
            continue
        keys = {pulse_keys[a.detection_id] for a in group.arrivals} if pulse_keys else set()
        results.append(
            ShotResult(
                **base,
                located=True,
                **_solution_fields(group.solution, test),
                located_after_s=(located_after_s or {}).get(id(group)),
                tuple_pulses=len(shot.pulse_keys),
                group_pulses=len(group.arrivals),
                shared_pulses=len(keys & shot.pulse_keys) if pulse_keys else None,
            )
        )
    return results, unmatched


def _solution_fields(solution: Solution, test: LiveFireTest) -> dict[str, object]:
    assert solution.position_m is not None and solution.covariance_m2 is not None
    x, y, z = solution.position_m
    return {
        "x_m": x,
        "y_m": y,
        "z_m": z,
        "origin_time_ns": solution.origin_time_ns,
        "ellipse_95_m": error_ellipse(solution.covariance_m2),
        "uncertainty_95_m": solution.uncertainty_m,
        "sensors": solution.sensor_ids,
        "error_m": math.hypot(x - test.survey_m[0], y - test.survey_m[1]),
    }


def summarize(
    results: list[ShotResult],
    *,
    false_groups: int,
    false_group_pulses: int,
    survey_m: dict[str, tuple[float, float, float]],
) -> dict[str, object]:
    """Located/fired, error percentiles, RMS, centroid error, within 15/25 m, association scores.

    ``survey_m`` maps a firing position to its survey point (for the centroid error, which
    is what ShotSpotter's Table III reports; only meaningful within one firing position).
    """
    located = [r for r in results if r.located]
    errors = np.array([r.error_m for r in located], dtype=np.float64)
    fired = len(results)
    summary: dict[str, object] = {
        "fired": fired,
        "located": len(located),
        "false_groups": false_groups,
        "median_error_m": _stat(np.median, errors),
        "p90_error_m": _stat(lambda e: np.percentile(e, 90), errors),
        "rms_error_m": _stat(lambda e: math.sqrt(float(np.mean(e**2))), errors),
        "within_15m": float(np.sum(errors <= 15.0)) / fired if fired else None,
        "within_25m": float(np.sum(errors <= 25.0)) / fired if fired else None,
        "mean_sensors": _stat(np.mean, np.array([len(r.sensors) for r in located], dtype=np.float64)),
        "median_located_after_s": _stat(
            np.median, np.array([r.located_after_s for r in located if r.located_after_s is not None])
        ),
    }
    fps = {r.firing_position for r in results}
    if len(fps) == 1 and located:
        fp = fps.pop()
        centroid = np.mean([[r.x_m, r.y_m] for r in located], axis=0)
        summary["centroid_error_m"] = float(np.hypot(*(centroid - np.array(survey_m[fp][:2]))))
        if len(located) > 2:
            spread = np.linalg.eigvalsh(np.cov(np.array([[r.x_m, r.y_m] for r in located]).T))
            summary["sigma_1_2_m"] = [float(math.sqrt(max(v, 0.0))) for v in spread[::-1]]
    summary["within_15m_of_located"] = float(np.mean(errors <= 15.0)) if errors.size else None
    covered = [r for r in results if r.audio_coverage is not None and r.audio_coverage >= 4]
    if covered:
        summary["covered_by_4_recordings"] = len(covered)
        summary["located_of_covered"] = sum(r.located for r in covered) / len(covered)
    tuple_total = sum(r.tuple_pulses for r in results)
    if any(r.shared_pulses is not None for r in located) and tuple_total:
        shared = sum(r.shared_pulses or 0 for r in results)
        summary["association_recall"] = shared / tuple_total
        grouped = sum(r.group_pulses for r in located) + false_group_pulses
        summary["association_precision"] = shared / grouped if grouped else None
    return summary


def targets(mode: str, per_firing_position: dict[str, dict]) -> dict[str, object]:
    """Issue 10's targets, checked on one mode's summaries (keyed by firing position and "all").

    Pulses: per-shot RMS <= ShotSpotter's MLG survey error + :data:`PULSES_RMS_MARGIN_M` at
    every firing position of Table III present. Audio: over all rounds, located share,
    median error and share within 15 m.
    """
    checks: dict[str, bool] = {}
    if mode == "pulses":
        for fp, summary in per_firing_position.items():
            if fp in SHOTSPOTTER_MLG_2D:
                limit_m = SHOTSPOTTER_MLG_2D[fp]["survey_error_m"] + PULSES_RMS_MARGIN_M
                rms_m = summary["rms_error_m"]
                checks[f"{fp} RMS <= {limit_m:.2f} m"] = rms_m is not None and rms_m <= limit_m
    else:
        summary = per_firing_position["all"]
        median_m = summary["median_error_m"]
        checks[f"located >= {AUDIO_MIN_LOCATED:.0%}"] = summary["located"] >= AUDIO_MIN_LOCATED * summary["fired"]
        checks[f"median <= {AUDIO_MAX_MEDIAN_M:g} m"] = median_m is not None and median_m <= AUDIO_MAX_MEDIAN_M
        checks[f"within 15 m >= {AUDIO_MIN_WITHIN_15M:.0%}"] = (summary["within_15m"] or 0.0) >= AUDIO_MIN_WITHIN_15M
    return {"checks": checks, "met": sum(checks.values()), "of": len(checks)}


def better(mode: str, runs: dict[str, dict]) -> str:
    """The association that measured better on one mode.

    Pulses: more firing positions within the RMS target, then the smaller RMS over all
    rounds. Audio: the larger share of fired rounds within 15 m, then the smaller median
    (the located share alone would reward a run that locates every round among hundreds
    of ghosts).

    ``runs`` maps an association method to its mode report (``targets`` and
    ``per_firing_position`` keys).
    """

    def key(method: str) -> tuple[float, ...]:
        run = runs[method]
        everything = run["per_firing_position"]["all"]
        inf = float("inf")
        if mode == "pulses":
            return (run["targets"]["met"], -(everything["rms_error_m"] or inf))
        return (everything["within_15m"] or 0.0, -(everything["median_error_m"] or inf))

    return max(runs, key=key)


def _stat(function: Callable[[np.ndarray], float], values: np.ndarray) -> float | None:
    return float(function(values)) if values.size else None


__all__ = [
    "AUDIO_MAX_MEDIAN_M",
    "AUDIO_MIN_LOCATED",
    "AUDIO_MIN_WITHIN_15M",
    "MATCH_WINDOW_NS",
    "PULSES_RMS_MARGIN_M",
    "SHOTSPOTTER_MLG_2D",
    "SHOTSPOTTER_WITHIN_15M_SIX_SENSORS",
    "ReferenceShot",
    "ShotResult",
    "better",
    "match",
    "reference_shots",
    "score_test",
    "summarize",
    "targets",
]
