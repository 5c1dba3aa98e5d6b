"""Consensus search behind :func:`sed.fusion.associate.associate` (internal).

:class:`Pool` holds one class's arrivals as arrays and grows groups greedily, largest
support first: hypotheses are exact solutions through three arrivals (seed and two
physically compatible candidates), scored by the quality-weighted number of sensors they
explain; the best is refined with :func:`~sed.fusion.locate.locate` and pruned until every
member fits, then checked against negative evidence (participation) and against being an
echo of a group already accepted.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools

import numpy as np

from sed.fusion.locate import Arrival, Solution, SolveStatus, locate
from sed.fusion.tdoa import exact_triples
from sed.units import NS_PER_S, speed_of_sound_m_per_s

#: Hypotheses drawn per seed when there are more than ``_ENUMERATE_UP_TO`` candidates.
_HYPOTHESES_PER_SEED = 64
_ENUMERATE_UP_TO = 16
#: Refinement rounds of a consensus group.
_CONSENSUS_ROUNDS = 4
#: Arrivals of one sensor this close in time are one sound reported twice, s.
_DUPLICATE_WINDOW_S = 0.002
#: A consensus emitting this close in time to a larger accepted group may be its reflection, s.
_IMAGE_WINDOW_S = 0.05
#: An arrival this soon after its sensor heard an accepted group may be that group's echo, s.
_ECHO_SHADOW_S = 1.0
#: A late echo is located at least this far from the sound it echoes, m.
_ECHO_MIN_OFFSET_M = 15.0
#: An arrival this soon after another of its sensor may be an echo of it, s.
_PRECEDE_WINDOW_S = 0.3
#: Weight of an arrival that follows another of its sensor within the window (likely an echo):
#: in ranking (its quality is scaled) and in size (a group needs ``min_sensors`` of weight).
_PRECEDED_DISCOUNT = 0.25
#: An earlier arrival shadows a later one unless its quality is this much lower (dB-like units).
_SHADOW_MARGIN = 6.0
#: A sensor with any arrival this close in time to an emission counts as live for it, ns.
_ALIVE_WINDOW_NS = 5 * NS_PER_S


@dataclasses.dataclass(frozen=True, kw_only=True)
class Group:
    """Arrivals explained by one source, with the solution that explains them.

    ``arrivals`` has one arrival per sensor (those solved with); ``duplicates`` holds
    further arrivals of member sensors within 2 ms of a member (one sound reported twice):
    explained by the group, so not in the leftover.
    """

    label: str
    arrivals: tuple[Arrival, ...]
    solution: Solution
    duplicates: tuple[Arrival, ...] = ()


@dataclasses.dataclass(frozen=True)
class Settings:
    """Association parameters (see :func:`sed.fusion.associate.associate`)."""

    tolerance_m: float
    min_sensors: int
    min_participation: float


class Pool:
    """Arrivals of one class as arrays, with the consensus search over them."""

    def __init__(
        self, arrivals: list[Arrival], temperature_c: float, source_z_m: float | None, settings: Settings
    ) -> None:
        self.settings = settings
        self.arrivals = sorted(arrivals, key=lambda a: a.arrival_time_ns)
        self.temperature_c = temperature_c
        self.source_z_m = source_z_m
        self.c = speed_of_sound_m_per_s(temperature_c)
        n = len(self.arrivals)
        positions = np.array([a.position_m for a in self.arrivals], dtype=np.float64).reshape(n, 3)
        self.origin = positions.mean(axis=0) if n else np.zeros(3)
        self.local = positions - self.origin
        self.reference_ns = self.arrivals[0].arrival_time_ns if n else 0
        self.ranges_m = np.array([(a.arrival_time_ns - self.reference_ns) / NS_PER_S * self.c for a in self.arrivals])
        names = sorted({a.sensor_id for a in self.arrivals})
        self.quality = np.array([max(a.quality, 1e-6) for a in self.arrivals], dtype=np.float64)
        self.sensor = np.array([names.index(a.sensor_id) for a in self.arrivals], dtype=np.int64)
        self.pending = np.ones(n, dtype=bool)
        self.height = np.zeros(n) if source_z_m is None else (source_z_m - self.origin[2] - self.local[:, 2]) ** 2
        self.rng = np.random.default_rng(0)
        # An arrival soon after another of its sensor is likely an echo of it: discount it.
        self.shadowed = self._shadowed()
        self.weight = np.where(self.shadowed, _PRECEDED_DISCOUNT, 1.0)
        self.quality *= self.weight

    def associate(self) -> tuple[list[Group], list[Arrival]]:
        groups: list[Group] = []
        # Four sensors can be checked (one spare equation); three always fit, so last.
        for min_count in (4, 3) if self.settings.min_sensors <= 3 else (max(4, self.settings.min_sensors),):
            groups += self._greedy(min_count)
        return groups, [a for a, p in zip(self.arrivals, self.pending, strict=True) if p]

    def _greedy(self, min_count: int) -> list[Group]:
        """Accept the largest consensus first; a seed's hypothesis is re-drawn lazily once
        arrivals it relied on have been taken by another group."""
        heap: list[tuple[float, int, float, int]] = []
        hypotheses: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # seed -> (members, candidates)

        def push(seed: int) -> None:
            found = self._seed_hypothesis(seed, min_count)
            if found is not None:
                _, support, preceded, msac, members, candidates = found
                hypotheses[seed] = (members, candidates)
                heapq.heappush(heap, (-support, preceded, msac, seed))

        for seed in np.flatnonzero(self.pending):
            push(int(seed))
        groups: list[Group] = []
        while heap:
            *_, seed = heapq.heappop(heap)
            if not self.pending[seed]:
                continue
            members, candidates = hypotheses[seed]
            if not self.pending[candidates].all():
                push(seed)  # stale: arrivals were taken since it was drawn
                continue
            group = self._consensus(members)
            if group is None:
                continue
            indices, solution = group
            if any(is_echo([self.arrivals[i] for i in indices], solution, earlier) for earlier in groups):
                continue
            self.pending[indices] = False
            duplicates = self._duplicates(indices)
            self.pending[duplicates] = False
            groups.append(
                Group(
                    label=self.arrivals[0].label,
                    arrivals=tuple(self.arrivals[i] for i in indices),
                    solution=solution,
                    duplicates=tuple(self.arrivals[i] for i in duplicates),
                )
            )
        return groups

    def _duplicates(self, members: np.ndarray) -> np.ndarray:
        """Pending arrivals of a member's sensor within ``_DUPLICATE_WINDOW_S`` of it."""
        window_m = _DUPLICATE_WINDOW_S * self.c
        pending = np.flatnonzero(self.pending)
        same = (self.sensor[pending][:, None] == self.sensor[members][None, :]) & (
            np.abs(self.ranges_m[pending][:, None] - self.ranges_m[members][None, :]) <= window_m
        )
        return pending[same.any(axis=1)]

    def _candidates(self, seed: int) -> np.ndarray:
        baseline_m = np.hypot(*(self.local[:, :2] - self.local[seed, :2]).T)
        possible = np.abs(self.ranges_m - self.ranges_m[seed]) <= baseline_m + 2.0 * self.settings.tolerance_m
        return np.flatnonzero(possible & self.pending & (self.sensor != self.sensor[seed]))

    def _seed_hypothesis(
        self, seed: int, min_count: int
    ) -> tuple[int, float, int, float, np.ndarray, np.ndarray] | None:
        """Best hypothesis around ``seed``: (count, support, preceded, MSAC, members, candidates)."""
        candidates = self._candidates(seed)
        if len(np.unique(self.sensor[candidates])) < min_count - 1:
            return None
        triples = self._draw(seed, candidates)
        if triples.size == 0:
            return None
        scored = self._score(self._solve_triples(triples), np.append(candidates, seed))
        if scored is None or scored[0] < min_count:
            return None
        return (*scored, candidates)

    def _draw(self, seed: int, candidates: np.ndarray) -> np.ndarray:
        """Triples: the seed and two candidates of distinct sensors, compatible with each other."""
        sensors = self.sensor[candidates]
        if len(candidates) <= _ENUMERATE_UP_TO:
            pairs = np.array(list(itertools.combinations(range(len(candidates)), 2)), dtype=np.int64).reshape(-1, 2)
        else:
            # Within each sensor, earlier arrivals are likelier direct: weight 1 / (rank + 1).
            ranks = np.zeros(len(candidates))
            for sensor in np.unique(sensors):
                at = np.flatnonzero(sensors == sensor)
                ranks[at] = np.arange(len(at))
            p = 1.0 / (ranks + 1.0)
            p /= p.sum()
            pairs = np.array(
                [self.rng.choice(len(candidates), size=2, replace=False, p=p) for _ in range(_HYPOTHESES_PER_SEED)],
                dtype=np.int64,
            )
        i, j = candidates[pairs[:, 0]], candidates[pairs[:, 1]]
        baseline_m = np.hypot(*(self.local[i, :2] - self.local[j, :2]).T)
        ok = (self.sensor[i] != self.sensor[j]) & (
            np.abs(self.ranges_m[i] - self.ranges_m[j]) <= baseline_m + 2.0 * self.settings.tolerance_m
        )
        return np.column_stack([np.full(int(ok.sum()), seed), i[ok], j[ok]])

    def _solve_triples(self, triples: np.ndarray) -> np.ndarray:
        """Exact (x, y, tau) through each triple: up to two per triple, shape (2h, 3), NaN where none."""
        return exact_triples(self.local[triples][..., :2], self.ranges_m[triples], self.height[triples])

    def _score(self, solutions: np.ndarray, pool: np.ndarray) -> tuple[int, float, int, float, np.ndarray] | None:
        """Best hypothesis: (sensor count, support, preceded, MSAC cost, members).

        Ranked by support (the summed quality of the best arrival of each sensor within
        tolerance: with unit qualities, the sensor count), then fewest preceded, then MSAC.
        """
        tolerance_m = self.settings.tolerance_m
        solutions = solutions[np.isfinite(solutions).all(axis=1)]
        if len(solutions) == 0:
            return None
        # Residuals of every pool arrival under every hypothesis, shape (h, m).
        dx = solutions[:, None, 0] - self.local[pool, 0]
        dy = solutions[:, None, 1] - self.local[pool, 1]
        distance = np.sqrt(dx**2 + dy**2 + self.height[pool])
        residual = np.nan_to_num((self.ranges_m[pool] - solutions[:, None, 2]) - distance, nan=np.inf)
        # Pool sorted by sensor, then time: per-sensor segments.
        order = np.lexsort((self.ranges_m[pool], self.sensor[pool]))
        sensors = self.sensor[pool][order]
        starts = np.flatnonzero(np.r_[True, sensors[1:] != sensors[:-1]])
        capped = np.minimum(residual[:, order] ** 2, tolerance_m**2)
        best_per_sensor = np.minimum.reduceat(capped, starts, axis=1)
        counts = (best_per_sensor < tolerance_m**2).sum(axis=1)
        msac = best_per_sensor.sum(axis=1)
        inlier_quality = np.where(capped < tolerance_m**2, self.quality[pool][order], 0.0)
        support = np.maximum.reduceat(inlier_quality, starts, axis=1).sum(axis=1)
        preceded = self._preceded(pool[order], capped < tolerance_m**2, starts)
        h = int(np.lexsort((msac, preceded, -support))[0])
        inlier = np.abs(residual[h]) <= tolerance_m
        members = _best_per_sensor(pool[inlier], self.ranges_m[pool][inlier], self.sensor)
        return int(counts[h]), float(support[h]), int(preceded[h]), float(msac[h]), members

    def _preceded(self, ordered: np.ndarray, inlier: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Per hypothesis, how many sensors' first inlier follows another pending arrival of that
        sensor within ``_PRECEDE_WINDOW_S``: the direct sound comes first, an echo after it.

        ``ordered`` are pool indices sorted by sensor, then time; ``inlier`` is (h, m) in
        that order; ``starts`` are the first positions of each sensor's segment.
        """
        segment = np.zeros(len(ordered), dtype=np.int64)
        segment[starts[1:]] = 1
        segment = np.cumsum(segment)
        has_previous = self.shadowed[ordered]
        running = np.cumsum(inlier, axis=1)
        before = np.concatenate([np.zeros((len(inlier), 1), dtype=running.dtype), running], axis=1)[:, starts]
        first_inlier = inlier & (running - before[:, segment] == 1)
        return (first_inlier & has_previous).sum(axis=1)

    def _shadowed(self) -> np.ndarray:
        """Per arrival: did its sensor report another, not much weaker one (quality at least
        ``_SHADOW_MARGIN`` below), within ``_PRECEDE_WINDOW_S`` before it? Then it may be an
        echo of that one."""
        shadowed = np.zeros(len(self.arrivals), dtype=bool)
        window_m = _PRECEDE_WINDOW_S * self.c
        raw_quality = np.array([a.quality for a in self.arrivals], dtype=np.float64)
        for sensor in np.unique(self.sensor):
            at = np.flatnonzero(self.sensor == sensor)  # time order (arrivals are sorted)
            lag = self.ranges_m[at][:, None] - self.ranges_m[at][None, :]  # row after column
            strong = raw_quality[at][None, :] >= raw_quality[at][:, None] - _SHADOW_MARGIN
            shadowed[at] = ((lag > 0) & (lag <= window_m) & strong).any(axis=1)
        return shadowed

    def _consensus(self, members: np.ndarray) -> tuple[np.ndarray, Solution] | None:
        tolerance_m, min_sensors = self.settings.tolerance_m, self.settings.min_sensors
        previous: set[int] = set()
        solution = None
        for _ in range(_CONSENSUS_ROUNDS):
            if len(members) < min_sensors:
                return None
            solution = self._locate(members)
            if solution.status is not SolveStatus.LOCATED:
                return None
            if set(members.tolist()) == previous:
                break
            previous = set(members.tolist())
            members = self._inliers(solution, tolerance_m)
        # Drop the worst member until the solution explains every one.
        while len(members) >= min_sensors:
            solution = self._locate(members)
            if solution.status is not SolveStatus.LOCATED:
                return None
            worst = int(np.argmax(np.abs(solution.residuals_m)))
            if abs(solution.residuals_m[worst]) <= tolerance_m:
                plausible = self.weight[members].sum() >= min_sensors and self._participation(members, solution)
                return (members, solution) if plausible else None
            members = np.delete(members, worst)
        return None

    def _participation(self, members: np.ndarray, solution: Solution) -> bool:
        """Did enough of the live sensors around the solution take part (see ``min_participation``)?"""
        if self.settings.min_participation <= 0.0:
            return True
        assert solution.position_m is not None and solution.origin_time_ns is not None
        p = np.array(solution.position_m[:2]) - self.origin[:2]
        distance = np.hypot(*(self.local[:, :2] - p).T)
        reach_m = 1.1 * distance[members].max() + 10.0
        t0_ns = solution.origin_time_ns
        alive = np.abs(np.array([a.arrival_time_ns for a in self.arrivals]) - t0_ns) <= _ALIVE_WINDOW_NS
        expected = len(np.unique(self.sensor[alive & (distance <= reach_m)]))
        return len(members) >= self.settings.min_participation * max(expected, len(members))

    def _locate(self, members: np.ndarray) -> Solution:
        return locate([self.arrivals[i] for i in members], temperature_c=self.temperature_c, source_z_m=self.source_z_m)

    def _inliers(self, solution: Solution, tolerance_m: float) -> np.ndarray:
        """Pending arrivals the solution explains; per sensor the earliest (the shortest path)."""
        assert solution.position_m is not None and solution.origin_time_ns is not None
        p = np.array(solution.position_m) - self.origin
        tau = self.c * (solution.origin_time_ns - self.reference_ns) / NS_PER_S
        pool = np.flatnonzero(self.pending)
        distance = np.sqrt(((self.local[pool, :2] - p[:2]) ** 2).sum(axis=1) + self.height[pool])
        residual = np.abs((self.ranges_m[pool] - tau) - distance)
        inlier = residual <= tolerance_m
        return _best_per_sensor(pool[inlier], self.ranges_m[pool][inlier], self.sensor)


def is_echo(ours: list[Arrival], solution: Solution, earlier: Group) -> bool:
    """Is this consensus a reflection of an accepted group that is at least as large?

    * **Mirror image.** A flat reflector makes an image source: consistent on every sensor
      that hears the reflection, emitting at the *same* time as the real source (within
      ``_IMAGE_WINDOW_S``) and heard after the direct sound on every shared sensor.
    * **Late echo.** Heard only by sensors that heard the earlier group, on each within
      ``_ECHO_SHADOW_S`` after it, and either at most half its size or located elsewhere
      (farther than ``_ECHO_MIN_OFFSET_M`` and both 95 % radii). Its apparent emission
      time can be anything. A burst of shots from one place is kept; a second, quieter
      source in that shadow on the same sensors is given up.
    """
    direct = {a.sensor_id: a.arrival_time_ns for a in earlier.arrivals}
    if len(ours) > len(direct) or solution.origin_time_ns is None or earlier.solution.origin_time_ns is None:
        return False
    lags_s = [(a.arrival_time_ns - direct[a.sensor_id]) / NS_PER_S for a in ours if a.sensor_id in direct]
    if abs(solution.origin_time_ns - earlier.solution.origin_time_ns) <= _IMAGE_WINDOW_S * NS_PER_S:
        return all(lag > 0.0 for lag in lags_s)
    if len(lags_s) < len(ours) or not all(0.0 < lag <= _ECHO_SHADOW_S for lag in lags_s):
        return False
    if 2 * len(ours) <= len(direct):
        return True
    assert solution.position_m is not None and earlier.solution.position_m is not None
    offset_m = float(np.hypot(*np.subtract(solution.position_m[:2], earlier.solution.position_m[:2])))
    radii_m = (solution.uncertainty_m or 0.0) + (earlier.solution.uncertainty_m or 0.0)
    return offset_m > max(_ECHO_MIN_OFFSET_M, radii_m)


def _best_per_sensor(indices: np.ndarray, rank_key: np.ndarray, sensor: np.ndarray) -> np.ndarray:
    """Of several arrivals per sensor keep the one with the smallest ``rank_key``; sorted indices."""
    if indices.size == 0:
        return indices
    order = np.lexsort((rank_key, sensor[indices]))
    chosen = indices[order]
    keep = np.r_[True, sensor[chosen][1:] != sensor[chosen][:-1]]
    return np.sort(chosen[keep])


__all__ = ["Group", "Pool", "Settings", "is_echo"]
