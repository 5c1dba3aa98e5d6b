"""Association around one detection: which of its neighbours' detections heard the same sound.

The fusion node associates one *seed* at a time — the pending detection whose wait for
its peers is over — against its *candidates*: the pending detections of the same class at
poles that can have heard the same sound (:mod:`sed.fusion.neighbourhood`) whose arrival
differs from the seed's by no more than the sound's travel time between the two poles
plus twice the timing tolerance. Everything else in the city is never looked at.

1. **Hypotheses.** The seed and every compatible pair of candidates fix a point and an
   emission time exactly (:func:`~sed.fusion.tdoa.exact_triples`, up to two per triple).
   A hypothesis must be within the hearing range of the seed's pole.
2. **Support.** A pole supports a hypothesis when one of its arrivals is within the timing
   tolerance of the hypothesis's prediction and the pole is within the hearing range of
   the point. Hypotheses are tried most supported first (ties: the smallest summed squared
   residual), up to four distinct member sets, until one survives steps 3 and 4.
3. **Consensus.** The hypothesis is solved with :func:`~sed.fusion.locate.locate`, its
   members re-chosen from every candidate the solution explains (per pole the arrival
   closest to its prediction) until stable, then the worst member dropped until every
   residual is within tolerance.
4. **Plausibility.** Of the poles heard recently that stand nearer to the solution than
   its farthest member (+10 %), at least ``min_participation`` must be members: a real
   sound is heard by the poles around it; a chance alignment of unrelated detections
   leaves most of them silent. The farthest member is dropped while that raises this
   share (another sound's detection that happens to fit; it gets its own turn later).
   Three poles always fit, so a group of exactly three is accepted only when nothing else
   could explain it: no fourth pole offered a compatible detection, no pole nearer to it
   stayed silent, and of the two exact points three poles can give, only one is left
   once silent poles are counted.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from sed.fusion.consensus import Group
from sed.fusion.locate import Arrival, Solution, SolveStatus, locate
from sed.fusion.tdoa import exact_triples
from sed.units import NS_PER_S, speed_of_sound_m_per_s

#: Pairs of candidates tried with the seed; beyond it a fixed sample (a seed with hundreds of
#: compatible candidates is a fireworks storm: a sample still finds the well-supported points).
MAX_PAIRS = 1500
#: Distinct hypotheses tried, best supported first, before a seed is given up.
_TRIES = 4
#: Re-choose members from the refined solution at most this often.
_CONSENSUS_ROUNDS = 3
#: Arrivals of one pole this close in time to a member are the same sound reported twice, ns.
DUPLICATE_WINDOW_NS = 2_000_000
#: Poles this much (relative, then absolute) beyond the farthest member still count as "nearer".
_REACH_SLACK, _REACH_SLACK_M = 1.1, 10.0

#: Poles heard recently within a radius of a point: (point, radius m) -> pole ids.
PolesNear = Callable[[tuple[float, float, float], float], Iterable[str]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeedSettings:
    """How a seed is associated (see the module docstring)."""

    temperature_c: float
    tolerance_m: float
    hearing_range_m: float
    min_sensors: int = 3
    min_participation: float = 0.5
    wind_m_per_s: tuple[float, float] | None = None


def compatible(seed: Arrival, other: Arrival, distance_m: float, *, c: float, tolerance_m: float) -> bool:
    """Can ``other`` (a pole ``distance_m`` from the seed's) have heard the seed's sound?"""
    gap_m = abs(other.arrival_time_ns - seed.arrival_time_ns) * c / NS_PER_S
    return gap_m <= distance_m + 2.0 * tolerance_m


def associate_seed(
    seed: Arrival, candidates: Sequence[Arrival], *, settings: SeedSettings, poles_near: PolesNear
) -> Group | None:
    """The group one source explains among the seed and its candidates, or ``None``.

    Parameters
    ----------
    seed : Arrival
    candidates : sequence of Arrival
        Pending arrivals of the seed's class at its neighbour poles, compatible with it
        (:func:`compatible`); arrivals of the seed's own pole are only ever duplicates.
    settings : SeedSettings
    poles_near : callable
        Poles heard recently within a radius of a point, for the participation check.

    Returns
    -------
    Group or None
        Usually holds the seed; may not, when the seed is a stray among a real sound's
        detections (then the seed stays pending and is tried again).
    """
    pool = [seed, *(a for a in candidates if a.sensor_id != seed.sensor_id)]
    names = sorted({a.sensor_id for a in pool})
    if len(names) < 3:
        return None
    c = speed_of_sound_m_per_s(settings.temperature_c)
    tol_m, range_m = settings.tolerance_m, settings.hearing_range_m
    # A centred frame, ranges from the earliest arrival: the seed at the origin would make every
    # triple's linear system singular (its row would be all zeros).
    positions = np.array([a.position_m for a in pool], dtype=np.float64)
    origin = positions[:, :2].mean(axis=0)
    local = positions[:, :2] - origin
    reference_ns = min(a.arrival_time_ns for a in pool)
    ranges_m = np.array([a.arrival_time_ns - reference_ns for a in pool], dtype=np.float64) * (c / NS_PER_S)
    index = {name: k for k, name in enumerate(names)}
    sensor = np.array([index[a.sensor_id] for a in pool], dtype=np.int64)

    hypotheses = _hypotheses(local, ranges_m, sensor, tol_m, range_m)
    if hypotheses is None:
        return None
    # The best-supported hypothesis may mix several sounds' detections and fall apart when solved:
    # then the next distinct one, a few times (RANSAC's "keep the best that survives").
    frame = (origin, reference_ns)
    ranked = _ranked_members(hypotheses, local, ranges_m, sensor, tol_m, range_m)
    for members in itertools.islice(ranked, _TRIES):
        found = _consensus(pool, members, local, ranges_m, sensor, settings, c, frame, poles_near)
        if found is not None:
            found = _nearest_plausible(pool, *found, settings, poles_near, n_poles=len(names))
        if found is not None:
            break
    else:
        return None
    members, solution = found
    group_arrivals = tuple(pool[i] for i in members)
    return Group(
        label=seed.label,
        arrivals=group_arrivals,
        solution=solution,
        duplicates=duplicates_of(group_arrivals, [*candidates, seed]),
    )


def duplicates_of(members: Sequence[Arrival], others: Iterable[Arrival]) -> tuple[Arrival, ...]:
    """Arrivals of a member's pole within :data:`DUPLICATE_WINDOW_NS` of the member (not members)."""
    at = {a.sensor_id: a.arrival_time_ns for a in members}
    ids = {a.detection_id for a in members}
    return tuple(
        a
        for a in others
        if a.sensor_id in at
        and a.detection_id not in ids
        and abs(a.arrival_time_ns - at[a.sensor_id]) <= DUPLICATE_WINDOW_NS
    )


def fits(arrival: Arrival, solution: Solution, *, c: float, tolerance_m: float, hearing_range_m: float) -> bool:
    """Does a located solution predict this arrival (a late detection joining a shot)?

    The pole must be within the hearing range of the point and its arrival within the
    timing tolerance of the sound's travel time from the point.
    """
    if solution.position_m is None or solution.origin_time_ns is None:
        return False
    distance_m = float(np.hypot(*np.subtract(arrival.position_m[:2], solution.position_m[:2])))
    if distance_m > hearing_range_m:
        return False
    travelled_m = (arrival.arrival_time_ns - solution.origin_time_ns) * c / NS_PER_S
    return abs(travelled_m - distance_m) <= tolerance_m


# --------------------------------------------------------------------- steps


def _hypotheses(
    local: np.ndarray, ranges_m: np.ndarray, sensor: np.ndarray, tol_m: float, range_m: float
) -> np.ndarray | None:
    """Exact (x, y, tau) through the seed (index 0) and compatible pairs, shape (h, 3)."""
    n = len(local)
    i, j = np.triu_indices(n - 1, k=1)
    i, j = i + 1, j + 1
    baseline_m = np.hypot(*(local[i] - local[j]).T)
    # One source within hearing range of both: the pair's poles stand within twice the range of each other.
    ok = (
        (sensor[i] != sensor[j])
        & (baseline_m <= 2.0 * range_m)
        & (np.abs(ranges_m[i] - ranges_m[j]) <= baseline_m + 2.0 * tol_m)
    )
    i, j = i[ok], j[ok]
    if len(i) == 0:
        return None
    if len(i) > MAX_PAIRS:
        keep = np.random.default_rng(0).choice(len(i), size=MAX_PAIRS, replace=False)
        i, j = i[keep], j[keep]
    triples = np.column_stack([np.zeros(len(i), dtype=np.int64), i, j])
    solutions = exact_triples(local[triples], ranges_m[triples], np.zeros(triples.shape))
    solutions = solutions[np.isfinite(solutions).all(axis=1)]
    heard_by_seed = np.hypot(solutions[:, 0] - local[0, 0], solutions[:, 1] - local[0, 1]) <= range_m
    solutions = solutions[heard_by_seed]
    return solutions if len(solutions) else None


def _ranked_members(
    solutions: np.ndarray, local: np.ndarray, ranges_m: np.ndarray, sensor: np.ndarray, tol_m: float, range_m: float
) -> Iterator[np.ndarray]:
    """Members of the hypotheses, best supported first (distinct member sets, at least three poles):
    per pole the arrival closest to the hypothesis's prediction."""
    distance = np.hypot(solutions[:, None, 0] - local[:, 0], solutions[:, None, 1] - local[:, 1])
    residual = (ranges_m - solutions[:, None, 2]) - distance
    inlier = (np.abs(residual) <= tol_m) & (distance <= range_m)
    capped = np.where(inlier, residual**2, tol_m**2)
    order = np.argsort(sensor, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(sensor[order]) != 0])
    best_per_pole = np.minimum.reduceat(capped[:, order], starts, axis=1)
    counts = (best_per_pole < tol_m**2).sum(axis=1)
    cost = best_per_pole.sum(axis=1)
    seen: set[bytes] = set()
    for h in np.lexsort((cost, -counts)):
        if counts[h] < 3:
            return
        members = _closest_per_pole(np.flatnonzero(inlier[h]), np.abs(residual[h]), sensor)
        if members.tobytes() not in seen:
            seen.add(members.tobytes())
            yield members


def _consensus(
    pool: list[Arrival],
    members: np.ndarray,
    local: np.ndarray,
    ranges_m: np.ndarray,
    sensor: np.ndarray,
    settings: SeedSettings,
    c: float,
    frame: tuple[np.ndarray, int],
    poles_near: PolesNear,
) -> tuple[np.ndarray, Solution] | None:
    tol_m = settings.tolerance_m
    solution = None
    for _ in range(_CONSENSUS_ROUNDS):
        solution = _locate(pool, members, settings, poles_near)
        if solution is None:
            return None
        chosen = _explained(solution, local, ranges_m, sensor, frame, settings, c)
        if np.array_equal(chosen, members) or len(chosen) < 3:
            break
        members = chosen
        solution = None
    while len(members) >= 3:
        if solution is None:
            solution = _locate(pool, members, settings, poles_near)
            if solution is None:
                return None
        worst = int(np.argmax(np.abs(solution.residuals_m)))
        if abs(solution.residuals_m[worst]) <= tol_m:
            return (members, solution) if len(members) >= settings.min_sensors else None
        members = np.delete(members, worst)
        solution = None
    return None


def _explained(
    solution: Solution,
    local: np.ndarray,
    ranges_m: np.ndarray,
    sensor: np.ndarray,
    frame: tuple[np.ndarray, int],
    settings: SeedSettings,
    c: float,
) -> np.ndarray:
    """Pool arrivals the solution explains, per pole the one closest to its prediction."""
    assert solution.position_m is not None and solution.origin_time_ns is not None
    origin, reference_ns = frame
    point = np.subtract(solution.position_m[:2], origin)
    tau_m = (solution.origin_time_ns - reference_ns) * c / NS_PER_S
    distance = np.hypot(*(local - point).T)
    residual = np.abs((ranges_m - tau_m) - distance)
    inlier = (residual <= settings.tolerance_m) & (distance <= settings.hearing_range_m)
    return _closest_per_pole(np.flatnonzero(inlier), residual, sensor)


def _nearest_plausible(
    pool: list[Arrival],
    members: np.ndarray,
    solution: Solution,
    settings: SeedSettings,
    poles_near: PolesNear,
    *,
    n_poles: int,
) -> tuple[np.ndarray, Solution] | None:
    """The group, less those of its farthest members whose silent nearer poles say they are
    another sound's detections that happen to fit.

    A sound is heard by the poles nearest to it. The farthest member is dropped while the group
    is implausible (:func:`_participation` below ``min_participation``), and while dropping it
    raises the participation of what is left (four members at least); a member dropped wrongly
    gets its own turn when its wait is over, and rejoins the shot it fits.
    """
    share = _participation(pool, members, solution, settings, poles_near)
    while True:
        if len(members) == 3:
            plausible = n_poles == 3 and share == 1.0  # three always fit: only when nothing else could explain them
            return (members, solution) if plausible else None
        if len(members) <= max(4, settings.min_sensors):
            return (members, solution) if share >= settings.min_participation else None
        assert solution.position_m is not None
        point = solution.position_m[:2]
        farthest = int(np.argmax([math.dist(pool[i].position_m[:2], point) for i in members]))
        fewer = np.delete(members, farthest)
        trimmed = _locate(pool, fewer, settings, poles_near)
        if trimmed is None or not np.all(np.abs(trimmed.residuals_m) <= settings.tolerance_m):
            return (members, solution) if share >= settings.min_participation else None
        trimmed_share = _participation(pool, fewer, trimmed, settings, poles_near)
        if share >= settings.min_participation and trimmed_share <= share:
            return members, solution
        members, solution, share = fewer, trimmed, trimmed_share


def _participation(
    pool: list[Arrival], members: np.ndarray, solution: Solution, settings: SeedSettings, poles_near: PolesNear
) -> float:
    """Of the live poles no farther from the solution than its farthest member (+10 %), the share that are members."""
    assert solution.position_m is not None
    member_poles = {pool[i].sensor_id for i in members}
    farthest_m = max(math.dist(pool[i].position_m[:2], solution.position_m[:2]) for i in members)
    reach_m = min(_REACH_SLACK * farthest_m + _REACH_SLACK_M, settings.hearing_range_m)
    nearer = set(poles_near(solution.position_m, reach_m)) | member_poles
    return len(member_poles) / len(nearer)


def _locate(
    pool: list[Arrival], members: np.ndarray, settings: SeedSettings, poles_near: PolesNear | None = None
) -> Solution | None:
    """The located solution of the members; of three members' two exact points, the one
    that no nearer live pole contradicts (when exactly one is)."""
    arrivals = [pool[i] for i in members]
    solution = locate(arrivals, temperature_c=settings.temperature_c, wind_m_per_s=settings.wind_m_per_s)
    if solution.status is SolveStatus.AMBIGUOUS and poles_near is not None:
        members_at = {a.sensor_id: a.position_m for a in arrivals}
        possible = [p for p in solution.candidates_m if _nobody_else_nearer(p, members_at, settings, poles_near)]
        if len(possible) == 1:
            solution = locate(
                arrivals,
                temperature_c=settings.temperature_c,
                wind_m_per_s=settings.wind_m_per_s,
                prefer_m=possible[0],
            )
    return solution if solution.status is SolveStatus.LOCATED else None


def _nobody_else_nearer(
    point_m: tuple[float, float, float],
    members_at: dict[str, tuple[float, float, float]],
    settings: SeedSettings,
    poles_near: PolesNear,
) -> bool:
    """Within hearing range of every member, and no other live pole nearer than the farthest member."""
    farthest_m = max(math.dist(point_m[:2], p[:2]) for p in members_at.values())
    if farthest_m > settings.hearing_range_m:
        return False
    reach_m = min(_REACH_SLACK * farthest_m + _REACH_SLACK_M, settings.hearing_range_m)
    return set(poles_near(point_m, reach_m)) <= set(members_at)


def _closest_per_pole(indices: np.ndarray, key: np.ndarray, sensor: np.ndarray) -> np.ndarray:
    """Of several arrivals per pole keep the one with the smallest ``key``; sorted indices."""
    if indices.size == 0:
        return indices
    order = np.lexsort((key[indices], sensor[indices]))
    chosen = indices[order]
    keep = np.r_[True, sensor[chosen][1:] != sensor[chosen][:-1]]
    return np.sort(chosen[keep])


__all__ = ["DUPLICATE_WINDOW_NS", "MAX_PAIRS", "SeedSettings", "associate_seed", "compatible", "duplicates_of", "fits"]
